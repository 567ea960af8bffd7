"""mcsp: multi-modal cross-domain self-supervised pretraining for fMRI and EEG."""

__version__ = "0.1.0"
