"""Rules finetune / baseline (one test fold) and finetune_folds / baseline_folds (every test fold
in one process, evaluate.batch_folds): evaluation jobs of (experiment, model, task, seed)."""

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
        plan = smk.params.plan
        for fold, out in zip(plan["folds"], smk.output, strict=True):
            predictions, metrics = run_job(
                Path(smk.input.summary).parent,
                w.model,
                w.task,
                fold,
                int(w.seed),
                smk.params.config,
                experiment=w.experiment,
                pretrained=plan["pretrained"].get(fold),
            )
            write_job(predictions, metrics, out)
            values = metrics.set_index("metric")["value"].round(3).to_dict()
            logging.info("fold %d: %s", fold, values)
