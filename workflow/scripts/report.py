"""Rule report: one self-contained HTML page of the results folder."""

from mcsp.logs import log_to
from mcsp.report import build_report

smk = snakemake  # noqa: F821
with log_to(smk.log[0]):
    build_report(smk.params.results, smk.output.html)
