"""Rule fmri_figure: connectome and carpet plot of one subject."""

from mcsp.figures import fmri_subject_figure
from mcsp.logs import log_to

smk = snakemake  # noqa: F821
with log_to(smk.log[0]):
    fmri_subject_figure(list(smk.input), smk.output[0])
