"""Rule synth_contract: a synthetic cohort's contract files, inventory and QC tables."""

import logging
from pathlib import Path

from mcsp.logs import log_to
from mcsp.synth import write_contract_cohort

# Guarded: worker processes (forkserver) re-import this file as __mp_main__.
if __name__ == "__main__":
    smk = snakemake  # noqa: F821
    with log_to(smk.log[0]):
        out = Path(smk.output.inventory).parent
        truth = write_contract_cohort(smk.params.cohort, out, n_jobs=smk.threads)
        logging.info("synthetic cohort of %d subjects written to %s", len(truth["subjects"]), out)
