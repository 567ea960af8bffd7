"""Deterministic synthetic cohorts with planted effects.

``generate_cohort`` writes a multi-site BIDS cohort (EEG + fMRIPrep-like fMRI) and returns its
ground truth; ``DEFAULT_EFFECTS`` holds the default sizes of its planted effects (``fmri_fc``,
``eeg_power``, ``eeg_fc``, ``multimodal``, ``site``; see ``code/ground_truth.json`` in a generated
cohort). ``write_contract_cohort`` writes a cohort of format ``synthetic`` directly as the
workflow's contract files (ROI time series, clean EEG, inventory and QC tables), with the
effects of ``CONTRACT_EFFECTS`` built for the synthetic checks (see ``mcsp.synth._contract``).
"""

from mcsp.synth._cohort import generate_cohort
from mcsp.synth._contract import CONTRACT_EFFECTS, write_contract_cohort
from mcsp.synth._design import DEFAULT_EFFECTS, SynthError

__all__ = [
    "CONTRACT_EFFECTS",
    "DEFAULT_EFFECTS",
    "SynthError",
    "generate_cohort",
    "write_contract_cohort",
]
