"""Rule fmri_qc: the cohort's fMRI QC table from every run's sidecar."""

import logging

from mcsp.bids import read_inventory
from mcsp.fmri import qc_table, write_qc_table
from mcsp.logs import log_to

smk = snakemake  # noqa: F821
with log_to(smk.log[0]):
    inventory = read_inventory(smk.input.inventory)
    table = qc_table(smk.input.sidecars, smk.wildcards.cohort, inventory)
    write_qc_table(table, smk.output[0])
    logging.info("fMRI QC: %s", table["status"].value_counts().to_dict())
