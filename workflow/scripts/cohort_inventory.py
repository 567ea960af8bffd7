"""Rule cohort_inventory: build, write and summarise the cohort inventory."""

import logging

from mcsp.cohorts import check_cohort
from mcsp.logs import log_to

with log_to(snakemake.log[0]):  # noqa: F821
    inventory = check_cohort(
        snakemake.input.cohort_file,  # noqa: F821
        snakemake.output.tsv,  # noqa: F821
        strict=snakemake.params.strict,  # noqa: F821
        fmri=snakemake.params.fmri,  # noqa: F821
    )
    logging.info("\n%s", inventory.summary())
