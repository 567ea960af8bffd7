# Cohort inventory: every subject x session x modality x run with its file, site, labels, status.
# Synthetic cohorts (format synthetic) get theirs from rule synth_contract (rules/contract.smk).


checkpoint cohort_inventory:
    input:
        bids=bids_root,
        cohort_file=lambda wc: cohort_path(CONFIG, wc.cohort),
    output:
        tsv=report(
            f"{RESULTS}/{{cohort}}/inventory.tsv",
            caption="../workflow/report/inventory.rst",
            category="Cohorts",
        ),
        summary=f"{RESULTS}/{{cohort}}/inventory.txt",
    log:
        f"{RESULTS}/logs/{{cohort}}/inventory.log",
    wildcard_constraints:
        cohort=one_of(BIDS_COHORTS + IMPORTED_COHORTS),
    conda:
        "../workflow/envs/mcsp.yaml"
    threads: 1
    resources:
        mem_mb=per_attempt(2000),
        runtime=per_attempt(30),
    params:
        strict=CONFIG["strict"],
        # what the confounds check reads (a change reruns the inventory, hence every job)
        fmri={k: FMRI[k] for k in CONFOUND_CHECK_KEYS},
    script:
        "../workflow/scripts/cohort_inventory.py"
