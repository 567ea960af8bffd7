"""Rule synth: write the synthetic BIDS cohort."""

import logging

from mcsp.logs import log_to
from mcsp.synth import generate_cohort

with log_to(snakemake.log[0]):  # noqa: F821
    p = snakemake.params  # noqa: F821
    generate_cohort(
        snakemake.output[0],  # noqa: F821
        p.subjects,
        p.seed,
        eeg_duration_s=p.eeg_duration_s,
        fmri_volumes=p.fmri_volumes,
        fmri_voxel_size_mm=p.fmri_voxel_size_mm,
        effects=p.effects,
        n_jobs=snakemake.threads,  # noqa: F821
    )
    logging.info("synthetic cohort written to %s", snakemake.output[0])  # noqa: F821
