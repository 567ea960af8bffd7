# fMRI branch: fMRIPrep (container runtimes) or its precomputed derivatives -> nilearn confound
# cleaning and atlas parcellation per run -> QC table and figures per cohort. Cohorts that arrive
# parcellated (ABIDE PCP, XCP-D) are imported into the same contract by one job.


if FMRIPREP_COHORTS:

    rule fmriprep:
        input:
            bids=bids_root,
        output:
            directory(f"{RESULTS}/{{cohort}}/fmriprep/sub-{{subject}}"),
        log:
            f"{RESULTS}/logs/{{cohort}}/fmriprep/sub-{{subject}}.log",
        benchmark:
            f"{RESULTS}/benchmarks/{{cohort}}/fmriprep/sub-{{subject}}.tsv"
        wildcard_constraints:
            cohort=one_of(FMRIPREP_COHORTS),
        conda:
            "../workflow/envs/mcsp.yaml"
        threads: 8
        resources:
            mem_mb=lambda wc, attempt: 32000 * attempt,
            runtime=lambda wc, attempt: 24 * 60 * attempt,
        params:
            cohort=lambda wc: COHORTS[wc.cohort],
            out_dir=lambda wc: f"{RESULTS}/{wc.cohort}/fmriprep",
            work_dir=lambda wc: f"{CONFIG['work_dir']}/fmriprep/{wc.cohort}/sub-{wc.subject}",
        script:
            "../workflow/scripts/fmriprep.py"


rule fmri_timeseries:
    input:
        unpack(fmri_run_input),
        inventory=lambda wc: inventory_table(wc.cohort),
    output:
        tsv=f"{RESULTS}/{{cohort}}/fmri/{{stem}}_atlas-{{atlas}}_timeseries.tsv",
        json=f"{RESULTS}/{{cohort}}/fmri/{{stem}}_atlas-{{atlas}}_timeseries.json",
    log:
        f"{RESULTS}/logs/{{cohort}}/fmri/{{stem}}_atlas-{{atlas}}.log",
    wildcard_constraints:
        cohort=one_of(BIDS_COHORTS),
        atlas=ATLAS,
        stem=r"sub-[A-Za-z0-9]+/(ses-[A-Za-z0-9]+/)?func/sub-[A-Za-z0-9]+(_[a-z]+-[A-Za-z0-9]+)*",
    conda:
        "../workflow/envs/mcsp.yaml"
    threads: 1
    resources:
        mem_mb=lambda wc, attempt: 4000 * attempt,
        runtime=lambda wc, attempt: 30 * attempt,
    params:
        settings=FMRI,
        strict=CONFIG["strict"],
        space=lambda wc: COHORTS[wc.cohort]["fmriprep"]["output_space"],
    script:
        "../workflow/scripts/fmri_timeseries.py"


rule fmri_qc:
    input:
        inventory=lambda wc: inventory_table(wc.cohort),
        sidecars=cohort_timeseries_sidecars,
    output:
        report(
            f"{RESULTS}/{{cohort}}/fmri_qc.tsv",
            caption="../workflow/report/fmri_qc.rst",
            category="Quality control",
            subcategory="{cohort}",
        ),
    log:
        f"{RESULTS}/logs/{{cohort}}/fmri_qc.log",
    wildcard_constraints:
        cohort=one_of(BIDS_COHORTS),
    conda:
        "../workflow/envs/mcsp.yaml"
    threads: 1
    resources:
        mem_mb=lambda wc, attempt: 2000 * attempt,
        runtime=lambda wc, attempt: 30 * attempt,
    script:
        "../workflow/scripts/fmri_qc.py"


rule fmri_figure:
    input:
        subject_timeseries,
    output:
        report(
            f"{RESULTS}/{{cohort}}/figures/sub-{{subject}}_atlas-{{atlas}}_fmri.png",
            caption="../workflow/report/fmri_figure.rst",
            category="fMRI",
            subcategory="{cohort}",
        ),
    log:
        f"{RESULTS}/logs/{{cohort}}/figures/sub-{{subject}}_atlas-{{atlas}}.log",
    wildcard_constraints:
        cohort=one_of(BIDS_COHORTS),
        atlas=ATLAS,
    conda:
        "../workflow/envs/mcsp.yaml"
    threads: 1
    resources:
        mem_mb=lambda wc, attempt: 2000 * attempt,
        runtime=lambda wc, attempt: 15 * attempt,
    script:
        "../workflow/scripts/fmri_figure.py"


if IMPORTED_COHORTS:

    rule import_timeseries:
        input:
            inventory=lambda wc: inventory_table(wc.cohort),
        output:
            qc=report(
                f"{RESULTS}/{{cohort}}/fmri_qc.tsv",
                caption="../workflow/report/fmri_qc.rst",
                category="Quality control",
                subcategory="{cohort}",
            ),
            folder=directory(f"{RESULTS}/{{cohort}}/fmri"),
        log:
            f"{RESULTS}/logs/{{cohort}}/import_timeseries.log",
        wildcard_constraints:
            cohort=one_of(IMPORTED_COHORTS),
        conda:
            "../workflow/envs/mcsp.yaml"
        threads: 2
        resources:
            mem_mb=lambda wc, attempt: 4000 * attempt,
            runtime=lambda wc, attempt: 60 * attempt,
        params:
            cohort=lambda wc: COHORTS[wc.cohort],
            max_constant_roi_fraction=FMRI["max_constant_roi_fraction"],
        script:
            "../workflow/scripts/import_timeseries.py"
