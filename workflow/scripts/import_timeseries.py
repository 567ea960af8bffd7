"""Rule import_timeseries: ready-made ROI time series (ABIDE PCP, XCP-D) into the contract."""

import logging

from mcsp.bids import read_inventory
from mcsp.fmri import write_qc_table
from mcsp.imports import import_timeseries
from mcsp.logs import log_to

# Guarded: worker processes (forkserver) re-import this file as __mp_main__.
if __name__ == "__main__":
    smk = snakemake  # noqa: F821
    with log_to(smk.log[0]):
        inventory = read_inventory(smk.input.inventory)
        table = import_timeseries(
            smk.params.cohort,
            inventory,
            smk.output.folder,
            n_jobs=smk.threads,
            max_constant_roi_fraction=smk.params.max_constant_roi_fraction,
        )
        write_qc_table(table, smk.output.qc)
        logging.info("imported: %s", table["status"].value_counts().to_dict())
