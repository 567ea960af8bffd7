"""A deterministic synthetic multi-site BIDS cohort (EEG + fMRIPrep-like fMRI) with planted effects.

``generate_cohort`` writes the dataset and returns its ground truth; ``DEFAULT_EFFECTS`` holds the
default sizes of the planted effects (``fmri_fc``, ``eeg_power``, ``eeg_fc``, ``multimodal``,
``site``). See ``code/ground_truth.json`` in a generated cohort for their definitions.
"""

from mcsp.synth._cohort import generate_cohort
from mcsp.synth._design import DEFAULT_EFFECTS, SynthError

__all__ = ["DEFAULT_EFFECTS", "SynthError", "generate_cohort"]
