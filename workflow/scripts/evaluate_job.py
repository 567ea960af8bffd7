"""Rules finetune and baseline: one evaluation job (experiment, model, task, fold, seed)."""

import logging
from pathlib import Path

import torch

from mcsp.experiments import run_job, write_job
from mcsp.logs import log_to
from mcsp.parallel import tune_allocator

if __name__ == "__main__":
    smk = snakemake  # noqa: F821
    with log_to(smk.log[0]):
        torch.set_num_threads(smk.threads)
        tune_allocator()
        w = smk.wildcards
        predictions, metrics = run_job(
            Path(smk.input.summary).parent,
            w.model,
            w.task,
            int(w.fold),
            int(w.seed),
            smk.params.config,
            experiment=w.experiment,
            pretrained=smk.input.get("pretrained"),
        )
        write_job(predictions, metrics, smk.output[0])
        logging.info("%s", metrics.set_index("metric")["value"].round(3).to_dict())
