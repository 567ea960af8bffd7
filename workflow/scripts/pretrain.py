"""Rule pretrain: self-supervised pretraining on the dataset store, resumable."""

import logging
from pathlib import Path

import torch

from mcsp.logs import log_to
from mcsp.parallel import tune_allocator
from mcsp.train import pretrain

# Guarded: DataLoader workers (forkserver) re-import this file as __mp_main__.
if __name__ == "__main__":
    smk = snakemake  # noqa: F821
    with log_to(smk.log[0]):
        torch.set_num_threads(smk.threads)
        tune_allocator()
        summary = pretrain(
            Path(smk.input.summary).parent, Path(smk.output.model).parent, smk.params.config
        )
        logging.info("pretrain: %s", summary)
