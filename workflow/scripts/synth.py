"""Rule synth: write the synthetic BIDS cohort."""

import logging

from mcsp.logs import log_to
from mcsp.synth import generate_cohort

# Guarded: worker processes (forkserver) re-import this file as __mp_main__.
if __name__ == "__main__":
    with log_to(snakemake.log[0]):  # noqa: F821
        # params are named as generate_cohort's arguments (rules/synth.smk)
        params = dict(snakemake.params.items())  # noqa: F821
        generate_cohort(snakemake.output[0], n_jobs=snakemake.threads, **params)  # noqa: F821
        logging.info("synthetic cohort written to %s", snakemake.output[0])  # noqa: F821
