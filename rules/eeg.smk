# EEG branch: one MNE preprocessing job per recording (clean FIF on the common channel set, JSON
# sidecar, mne.Report), then the cohort's EEG QC table.


rule eeg_clean:
    input:
        unpack(eeg_input),
        inventory=job_inventory,
    output:
        json=f"{RESULTS}/{{cohort}}/eeg/{{stem}}_desc-clean_eeg.json",
        report=report(
            f"{RESULTS}/{{cohort}}/eeg/{{stem}}_report.html",
            caption="../workflow/report/eeg_report.rst",
            category="EEG",
            subcategory="{cohort}",
        ),
    log:
        f"{RESULTS}/logs/{{cohort}}/eeg/{{stem}}.log",
    wildcard_constraints:
        cohort=one_of(BIDS_COHORTS),
        stem=r"sub-[A-Za-z0-9]+/(ses-[A-Za-z0-9]+/)?eeg/sub-[A-Za-z0-9]+(_[a-z]+-[A-Za-z0-9]+)*",
    conda:
        "../workflow/envs/mcsp.yaml"
    threads: 1
    resources:
        mem_mb=per_attempt(3000),
        runtime=per_attempt(30),
    params:
        settings=eeg_settings,
        channels=EEG["channel_set"],
        aliases=eeg_aliases,
        fif=f"{RESULTS}/{{cohort}}/eeg/{{stem}}_desc-clean_eeg.fif",
        strict=CONFIG["strict"],
    script:
        "../workflow/scripts/eeg_clean.py"


rule eeg_qc:
    input:
        inventory=job_inventory,
        sidecars=cohort_eeg_sidecars,
    output:
        report(
            f"{RESULTS}/{{cohort}}/eeg_qc.tsv",
            caption="../workflow/report/eeg_qc.rst",
            category="Quality control",
            subcategory="{cohort}",
        ),
    log:
        f"{RESULTS}/logs/{{cohort}}/eeg_qc.log",
    wildcard_constraints:
        cohort=one_of(BIDS_COHORTS),
    conda:
        "../workflow/envs/mcsp.yaml"
    threads: 1
    resources:
        mem_mb=per_attempt(2000),
        runtime=per_attempt(30),
    script:
        "../workflow/scripts/eeg_qc.py"
