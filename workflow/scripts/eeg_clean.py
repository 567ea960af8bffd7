"""Rule eeg_clean: preprocess one resting EEG recording."""

import logging

from mcsp.eeg import CHANNEL_SETS, process_recording
from mcsp.logs import log_to

smk = snakemake  # noqa: F821
with log_to(smk.log[0]):
    row = process_recording(
        smk.input.recording,
        smk.params.settings,
        out_fif=smk.params.fif,
        out_json=smk.output.json,
        out_report=smk.output.report,
        common_channels=CHANNEL_SETS[smk.params.channels],
        aliases=smk.params.aliases,
        strict=smk.params.strict,
    )
    logging.info("%s: %s %s", smk.input.recording, row["status"], row["reason"])
