"""Rule eeg_qc: the cohort's EEG QC table from every recording's sidecar."""

import logging

from mcsp.bids import read_inventory
from mcsp.eeg import qc_table
from mcsp.fmri import write_qc_table
from mcsp.logs import log_to

smk = snakemake  # noqa: F821
with log_to(smk.log[0]):
    inventory = read_inventory(smk.input.inventory)
    table = qc_table(smk.input.sidecars, smk.wildcards.cohort, inventory)
    write_qc_table(table, smk.output[0])
    logging.info("EEG QC: %s", table["status"].value_counts().to_dict())
