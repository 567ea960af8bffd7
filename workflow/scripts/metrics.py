"""Rule metrics: every evaluation job's metrics in one tidy table, and its summary."""

import logging

from mcsp.experiments import merge_metrics
from mcsp.logs import log_to

if __name__ == "__main__":
    smk = snakemake  # noqa: F821
    with log_to(smk.log[0]):
        metrics, summary, paired = merge_metrics(list(smk.input), smk.params.evaluate)
        metrics.to_csv(smk.output.metrics, sep="\t", index=False)
        summary.to_csv(smk.output.summary, sep="\t", index=False)
        paired.to_csv(smk.output.paired, sep="\t", index=False)
        logging.info("%d jobs merged", len(smk.input))
