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
            mem_mb=per_attempt(32000),
            runtime=per_attempt(24 * 60),
        params:
            cohort=job_cohort,
            out_dir=f"{RESULTS}/{{cohort}}/fmriprep",
            work_dir=f"{CONFIG['work_dir']}/fmriprep/{{cohort}}/sub-{{subject}}",
        script:
            "../workflow/scripts/fmriprep.py"


rule fmri_timeseries:
    input:
        unpack(fmri_run_input),
        inventory=job_inventory,
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
        mem_mb=per_attempt(4000),
        runtime=per_attempt(30),
    params:
        settings=FMRI,
        strict=CONFIG["strict"],
        space=fmriprep_space,
    script:
        "../workflow/scripts/fmri_timeseries.py"


rule fmri_qc:
    input:
        inventory=job_inventory,
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
        mem_mb=per_attempt(2000),
        runtime=per_attempt(30),
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
        mem_mb=per_attempt(2000),
        runtime=per_attempt(15),
    script:
        "../workflow/scripts/fmri_figure.py"


if IMPORTED_COHORTS:

    rule import_timeseries:
        input:
            inventory=job_inventory,
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
            mem_mb=per_attempt(4000),
            runtime=per_attempt(60),
        params:
            cohort=job_cohort,
            max_constant_roi_fraction=FMRI["max_constant_roi_fraction"],
        script:
            "../workflow/scripts/import_timeseries.py"
