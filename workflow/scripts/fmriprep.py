"""Rule fmriprep: run fMRIPrep for one subject in its container."""

from mcsp.fmriprep import run_fmriprep
from mcsp.logs import log_to

smk = snakemake  # noqa: F821
with log_to(smk.log[0]):
    run_fmriprep(
        smk.params.cohort,
        smk.wildcards.subject,
        out_dir=smk.params.out_dir,
        work_dir=smk.params.work_dir,
        threads=smk.threads,
        mem_mb=smk.resources.mem_mb,
        log=smk.log[0],
    )
