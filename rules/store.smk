# The study's dataset store: fMRI windows and EEG segments, cross-matched pairs, spatial / temporal /
# frequency domains in HDF5, index and pairs tables, subject-level folds.


rule store:
    input:
        store_inputs,
    output:
        summary=f"{RESULTS}/store/store.json",
        index=f"{RESULTS}/store/index.tsv",
        pairs=report(
            f"{RESULTS}/store/pairs.tsv",
            caption="../workflow/report/pairs.rst",
            category="Dataset",
        ),
        samples=f"{RESULTS}/store/samples.h5",
        exclusions=f"{RESULTS}/store/exclusions.tsv",
    log:
        f"{RESULTS}/logs/store.log",
    benchmark:
        f"{RESULTS}/benchmarks/store.tsv"
    conda:
        "../workflow/envs/mcsp.yaml"
    threads: 2
    resources:
        mem_mb=per_attempt(4000),
        runtime=per_attempt(120),
    params:
        config={"cohorts": study_cohorts(), "study": CONFIG["study"]},
    script:
        "../workflow/scripts/store.py"
