"""Rule fmri_timeseries: clean and parcellate one fMRIPrep run."""

import functools
import logging

from mcsp.fmri import find_preproc_bold, process_run, split_settings
from mcsp.logs import log_to

smk = snakemake  # noqa: F821
with log_to(smk.log[0]):
    if hasattr(smk.input, "bold"):
        bold = smk.input.bold
    else:  # fMRIPrep ran in this workflow: find the run in its output folder
        root = smk.input.fmriprep.rsplit("/", 1)[0]
        bold = functools.partial(find_preproc_bold, root, smk.wildcards.stem, smk.params.space)
    atlas, clean = split_settings(smk.params.settings)
    qc = process_run(bold, atlas, clean, smk.output.tsv, strict=smk.params.strict)
    logging.info("%s: %s %s", qc["bold"], qc["status"], qc.get("reason", ""))
