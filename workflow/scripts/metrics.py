"""Rule metrics: every evaluation job's metrics in one tidy table, and its summary."""

import logging

from mcsp.experiments import merge_metrics
from mcsp.io import atomic_output
from mcsp.logs import log_to

if __name__ == "__main__":
    smk = snakemake  # noqa: F821
    with log_to(smk.log[0]):
        metrics, summary, paired = merge_metrics(list(smk.input), smk.params.evaluate)
        for table, out in ((metrics, smk.output.metrics), (summary, smk.output.summary),
                           (paired, smk.output.paired)):  # fmt: skip
            with atomic_output(out) as tmp:
                table.to_csv(tmp, sep="\t", index=False)
        logging.info("%d jobs merged", len(smk.input))
