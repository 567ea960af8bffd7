"""Rule store: build the study's dataset store from the cohorts' QC tables."""

import logging
from pathlib import Path

from mcsp.logs import log_to
from mcsp.store import build_store

# Guarded: worker processes (forkserver) re-import this file as __mp_main__.
if __name__ == "__main__":
    smk = snakemake  # noqa: F821
    with log_to(smk.log[0]):
        out_dir = Path(smk.output.summary).parent  # <results_dir>/store
        summary = build_store(smk.params.config, out_dir.parent, out_dir, jobs=smk.threads)
        logging.info("store: %s", {k: v for k, v in summary.items() if k.startswith("n_")})
