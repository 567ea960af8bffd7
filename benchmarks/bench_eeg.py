"""Benchmark: default EEG preprocessing of a 5-minute, 64-channel, 500 Hz BIDS recording.

Usage: python benchmarks/bench_eeg.py [work_dir]. Prints seconds and peak memory (MiB).
"""

from __future__ import annotations

import resource
import sys
import tempfile
import time
import warnings
from pathlib import Path

import mne
import mne_bids
import numpy as np

from mcsp.eeg import preprocess_recording


def make_recording(root: Path, minutes: float = 5, sfreq: float = 500.0) -> mne_bids.BIDSPath:
    """Spatially smooth 64-channel resting EEG with blinks, 50 Hz mains and one noisy channel."""
    rng = np.random.default_rng(0)
    montage = mne.channels.make_standard_montage("biosemi64")
    pos = np.array(list(montage.get_positions()["ch_pos"].values()))
    pos = pos / np.linalg.norm(pos, axis=1, keepdims=True)
    n = int(minutes * 60 * sfreq)
    sources = rng.normal(size=(40, 3))
    sources /= np.linalg.norm(sources, axis=1, keepdims=True)
    gain = np.exp(-((pos[:, None] - sources[None]) ** 2).sum(-1) / 0.5)
    activity = np.cumsum(rng.normal(size=(40, n)), axis=1)
    activity -= mne.filter.filter_data(activity, sfreq, None, 0.5, verbose=False)
    data = gain @ activity
    data *= 10e-6 / data.std()
    t = np.arange(n) / sfreq
    data += 3e-6 * np.sin(2 * np.pi * 50 * t)
    blink = np.zeros(n)
    for onset in rng.integers(0, n - 200, int(minutes * 60 * 0.3)):
        blink[onset : onset + 150] += 150e-6 * np.sin(np.linspace(0, np.pi, 150)) ** 2
    data += np.exp(-((pos - [0, 0.95, -0.3]) ** 2).sum(-1) / 0.18)[:, None] * blink
    data[10] += rng.normal(0, 60e-6, n)
    info = mne.create_info(montage.ch_names, sfreq, "eeg")
    raw = mne.io.RawArray(data, info, verbose=False).set_montage(montage, verbose=False)
    raw.info["line_freq"] = 50.0
    path = mne_bids.BIDSPath(subject="01", task="rest", datatype="eeg", root=root)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mne_bids.write_raw_bids(
            raw, path, format="BrainVision", allow_preload=True, overwrite=True, verbose=False
        )
    return path


def main() -> None:
    work = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp())
    path = make_recording(work / "bids")
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = preprocess_recording(path)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    sidecar = result.sidecar
    print(f"64 channels x 5 min @ 500 Hz: {seconds:.1f} s, peak RSS {peak:.0f} MiB")
    print(
        f"bad channels {sidecar['bad_channels']}, ICA removed "
        f"{[c['label'] for c in sidecar['ica']['excluded']]}, kept {sidecar['percent_kept']:.1f}%,"
        f" exclusion {sidecar['exclusion']}"
    )


if __name__ == "__main__":
    main()
