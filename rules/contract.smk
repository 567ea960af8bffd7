# Synthetic cohorts of format `synthetic`: their contract files (ROI time series, clean EEG, the
# inventory and QC tables, participants.tsv, ground_truth.json) are written directly by
# mcsp.synth.write_contract_cohort, without BIDS, EEG cleaning or fMRI parcellation; the store
# reads them as it reads any cohort's.


if SYNTHETIC_COHORTS:

    rule synth_contract:
        input:
            cohort_file=lambda wc: cohort_path(CONFIG, wc.cohort),
        output:
            inventory=f"{RESULTS}/{{cohort}}/inventory.tsv",
            summary=f"{RESULTS}/{{cohort}}/inventory.txt",
            fmri_qc=f"{RESULTS}/{{cohort}}/fmri_qc.tsv",
            eeg_qc=f"{RESULTS}/{{cohort}}/eeg_qc.tsv",
            participants=f"{RESULTS}/{{cohort}}/participants.tsv",
            truth=f"{RESULTS}/{{cohort}}/ground_truth.json",
            fmri=directory(f"{RESULTS}/{{cohort}}/fmri"),
            eeg=directory(f"{RESULTS}/{{cohort}}/eeg"),
        log:
            f"{RESULTS}/logs/{{cohort}}/synth_contract.log",
        benchmark:
            f"{RESULTS}/benchmarks/{{cohort}}/synth_contract.tsv"
        wildcard_constraints:
            cohort=one_of(SYNTHETIC_COHORTS),
        conda:
            "../workflow/envs/mcsp.yaml"
        threads: SYNTH["threads"]
        resources:
            mem_mb=per_attempt(4000),
            runtime=per_attempt(60),
        params:
            cohort=job_cohort,
        script:
            "../workflow/scripts/synth_contract.py"
