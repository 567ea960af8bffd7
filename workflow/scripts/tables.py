"""Rule tables: each table of the run as TSV, Markdown, LaTeX and HTML (mcsp.tables)."""

import logging
from pathlib import Path

from mcsp.logs import log_to
from mcsp.tables import write_tables

if __name__ == "__main__":
    smk = snakemake  # noqa: F821
    with log_to(smk.log[0]):
        index = write_tables(
            smk.input.metrics,
            smk.input.paired,
            Path(smk.output.index).parent,
            smk.params.evaluate,
            smk.params.report,
            smk.params.context,
        )
        logging.info("%d tables: %s", len(index), ", ".join(t["name"] for t in index))
