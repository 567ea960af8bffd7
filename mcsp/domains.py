"""Samples and domains: fMRI windows and EEG segments, each as spatial, temporal, frequency.

Spatial = a connectivity matrix (Fisher z, zero diagonal) whose rows are the node features of a
graph; :func:`sparsify` turns it into edges. Temporal = the standardised series (EEG resampled to a
fixed length). Frequency = fMRI amplitude spectra or EEG Welch log-power on a fixed grid.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import Any

import mne
import numpy as np
import scipy.signal

from mcsp.config import schema_defaults
from mcsp.exceptions import ConfigError, McspError
from mcsp.fmri import functional_connectivity

DOMAINS = ("spatial", "temporal", "frequency")
MODALITIES = ("fmri", "eeg")


def study_settings(config: Mapping[str, Any]) -> dict[str, Any]:
    """The config's ``study`` block with every default filled (config from ``load_config``)."""
    study = schema_defaults("config", "study")
    study.update(dict(config.get("study") or {}))
    study["sparsify"] = {**schema_defaults("config", "study.sparsify"), **study["sparsify"]}
    if study["cohorts"] is None:
        study["cohorts"] = list(config.get("cohorts") or [])
    for key in ("eeg_connectivity_band", "fmri_frequency_range", "eeg_frequency_range"):
        low, high = study[key]
        if not 0 <= low < high:
            raise ConfigError(
                f"study.{key} is {study[key]}: give [low, high] in Hz with 0 <= low < high."
            )
    return study


def zscore(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """Standardise along ``axis``; flat series become zeros."""
    x = np.asarray(x, dtype=float)
    sd = x.std(axis=axis, keepdims=True)
    return (x - x.mean(axis=axis, keepdims=True)) / np.where(sd < 1e-12, 1.0, sd)


def window_starts(n: int, length: int, stride: int) -> list[int]:
    """Starts of every full window of ``length`` in ``n`` points, every ``stride``."""
    return list(range(0, n - length + 1, stride)) if n >= length else []


def fmri_windows(ts: np.ndarray, window: int, stride: int) -> tuple[list[int], list[str]]:
    """Window starts (in kept volumes) of a time × ROI array whose values are all finite.

    Returns:
        ``(starts, problems)``: problems say why there are no windows (too short, NaN).
    """
    starts = window_starts(len(ts), window, stride)
    if not starts:
        return [], [f"{len(ts)} kept volumes, fewer than the {window}-volume window"]
    finite = np.isfinite(ts).all(axis=1)
    good = [s for s in starts if finite[s : s + window].all()]
    if not good:
        return [], [f"every {window}-volume window holds non-finite values (NaN or inf)"]
    return good, []


def clean_mask(raw: mne.io.BaseRaw) -> np.ndarray:
    """Boolean per sample of ``raw``: False inside any ``BAD*`` annotation."""
    good = np.ones(raw.n_times, dtype=bool)
    sfreq = raw.info["sfreq"]
    for ann in raw.annotations:
        if not ann["description"].upper().startswith("BAD"):
            continue
        onset = ann["onset"] - raw.first_time
        start = max(int(np.floor(onset * sfreq)), 0)
        stop = min(int(np.ceil((onset + ann["duration"]) * sfreq)), raw.n_times)
        good[start:stop] = False
    return good


def annotation_spans(raw: mne.io.BaseRaw, prefix: str) -> list[tuple[str, int, int]]:
    """Spans ``(name, start, stop)`` (samples of ``raw``, sorted by start) of the annotations
    whose description starts with ``prefix`` (name = the rest), rounded inwards."""
    sfreq = raw.info["sfreq"]
    spans = []
    for ann in raw.annotations:
        if not ann["description"].startswith(prefix):
            continue
        onset = ann["onset"] - raw.first_time
        start = max(int(np.ceil(onset * sfreq - 1e-6)), 0)
        stop = min(int(np.floor((onset + ann["duration"]) * sfreq + 1e-6)), raw.n_times)
        if stop > start:
            spans.append((ann["description"][len(prefix) :], start, stop))
    return sorted(spans, key=lambda span: span[1])


def eeg_segment_starts(good: np.ndarray, length: int, stride: int) -> list[int]:
    """Starts (samples) of segments of ``length`` lying wholly in clean data, greedily.

    From each start the next candidate is ``stride`` later; a candidate overlapping bad data moves
    to just after its last bad sample, so clean stretches between annotations are all used.
    """
    bad_cum = np.concatenate([[0], np.cumsum(~good)])
    starts, s, n = [], 0, len(good)
    while s + length <= n:
        if bad_cum[s + length] == bad_cum[s]:
            starts.append(s)
            s += stride
        else:
            s = int(np.flatnonzero(~good[s : s + length])[-1]) + s + 1
    return starts


def fisher_z(r: np.ndarray) -> np.ndarray:
    """Fisher z of a correlation-like matrix, diagonal set to zero."""
    z = np.arctanh(np.clip(np.nan_to_num(r), -1 + 1e-7, 1 - 1e-7))
    np.fill_diagonal(z, 0.0)
    return z


@functools.lru_cache(maxsize=8)
def _upper(n: int) -> tuple[np.ndarray, np.ndarray]:
    return np.triu_indices(n, k=1)


def sparsify(matrix: np.ndarray, rule: str, value: float) -> tuple[np.ndarray, np.ndarray]:
    """Edges of a symmetric connectivity matrix under a sparsification rule.

    Args:
        matrix: N × N, symmetric; the diagonal is ignored.
        rule: ``proportional`` (strongest ``value`` fraction of the N(N-1)/2 edges by |weight|,
            rounded), ``threshold`` (|weight| >= value), ``topk`` (each node's ``value`` strongest,
            symmetrised: the union) or ``none``.
        value: the rule's fraction, threshold or k.

    Returns:
        ``(edge_index, edge_weight)``: int64 2 × E with both directions of every kept undirected
        edge, and float32 E.
    """
    n = matrix.shape[0]
    iu, ju = _upper(n)
    weights = np.abs(matrix[iu, ju])
    if rule == "none":
        keep = np.ones(len(iu), dtype=bool)
    elif rule == "threshold":
        keep = weights >= value
    elif rule == "proportional":
        if not 0 <= value <= 1:
            raise ConfigError(f"study.sparsify.value must be a fraction in [0, 1], got {value}.")
        n_keep = int(round(value * len(iu)))
        keep = np.zeros(len(iu), dtype=bool)
        if n_keep:
            cut = np.partition(weights, len(weights) - n_keep)[len(weights) - n_keep]
            keep = weights > cut
            keep[np.flatnonzero(weights == cut)[: n_keep - keep.sum()]] = True
    elif rule == "topk":
        k = min(int(value), n - 1)
        strength = np.abs(matrix).astype(float)
        np.fill_diagonal(strength, -np.inf)
        chosen = np.zeros((n, n), dtype=bool)
        if k > 0:
            top = np.argsort(-strength, axis=1, kind="stable")[:, :k]
            chosen[np.repeat(np.arange(n), k), top.ravel()] = True
        chosen |= chosen.T
        keep = chosen[iu, ju]
    else:
        raise ConfigError(
            f"study.sparsify.rule {rule!r} is unknown: use proportional, threshold, topk or none."
        )
    src, dst = iu[keep], ju[keep]
    edge_index = np.stack([np.concatenate([src, dst]), np.concatenate([dst, src])]).astype(np.int64)
    weight = matrix[edge_index[0], edge_index[1]].astype(np.float32)
    return edge_index, weight


def amplitude_spectrum(x: np.ndarray, tr: float, band: Sequence[float], bins: int) -> np.ndarray:
    """Amplitude spectra of time × ROI ``x`` (TR seconds) on ``bins`` points over ``band`` Hz.

    Each ROI is standardised first; the FFT amplitude is linearly interpolated onto the grid.
    Returns ROI × bins.
    """
    x = zscore(scipy.signal.detrend(np.asarray(x, dtype=float), axis=0), axis=0)
    amp = np.abs(np.fft.rfft(x, axis=0)) / len(x)
    freqs = np.fft.rfftfreq(len(x), d=tr)
    if band[1] > freqs[-1] + 1e-9:
        raise McspError(
            f"fMRI frequency band {list(band)} Hz exceeds the Nyquist frequency {freqs[-1]:.3g} Hz "
            f"of TR {tr} s: lower study.fmri_frequency_range."
        )
    grid = np.linspace(band[0], band[1], bins)
    return np.stack([np.interp(grid, freqs, a) for a in amp.T])


def welch_log_power(
    x: np.ndarray, sfreq: float, band: Sequence[float], bins: int, nperseg: int | None = None
) -> np.ndarray:
    """log10 Welch power (V²/Hz) of channel × time ``x`` on ``bins`` points over ``band`` Hz."""
    nperseg = min(nperseg or int(round(2 * sfreq)), x.shape[1])
    freqs, psd = scipy.signal.welch(x, fs=sfreq, nperseg=nperseg, axis=1)
    logp = np.log10(np.maximum(psd, 1e-30))
    grid = np.linspace(band[0], band[1], bins)
    return np.stack([np.interp(grid, freqs, p) for p in logp])


def fmri_domains(window: np.ndarray, tr: float, study: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """Spatial (ROI × ROI FC, Fisher z), temporal (ROI × time, z-scored), frequency (ROI × bins)."""
    return {
        "spatial": functional_connectivity(window).astype(np.float32),
        "temporal": zscore(window, axis=0).T.astype(np.float32),
        "frequency": amplitude_spectrum(
            window, tr, study["fmri_frequency_range"], study["fmri_frequency_bins"]
        ).astype(np.float32),
    }


def eeg_connectivity(
    x: np.ndarray, sfreq: float, study: Mapping[str, Any], log_power: np.ndarray | None = None
) -> np.ndarray:
    """Channel × channel connectivity (Fisher z, zero diagonal) of a segment, by study measure."""
    measure = study["eeg_connectivity"]
    low, high = study["eeg_connectivity_band"]
    if measure == "spectral_correlation":
        if log_power is None:
            log_power = welch_log_power(
                x, sfreq, study["eeg_frequency_range"], study["eeg_frequency_bins"]
            )
        return fisher_z(np.corrcoef(log_power))
    if measure == "aec":
        filtered = mne.filter.filter_data(x, sfreq, low, high, verbose="error")
        envelope = np.abs(scipy.signal.hilbert(filtered, axis=1))
        return fisher_z(np.corrcoef(envelope))
    if measure in ("coherence", "wpli"):
        from mne_connectivity import spectral_connectivity_epochs

        n = int(round(sfreq))
        epochs = np.stack([x[:, s : s + n] for s in range(0, x.shape[1] - n + 1, n)])
        if len(epochs) < 2:
            raise McspError(
                f"EEG {measure} needs two or more 1-s epochs per segment: raise "
                "study.eeg_segment_s."
            )
        con = spectral_connectivity_epochs(
            epochs,
            method="coh" if measure == "coherence" else "wpli",
            sfreq=sfreq,
            fmin=low,
            fmax=high,
            faverage=True,
            verbose="error",
        )
        dense = con.get_data(output="dense")[:, :, 0]
        dense = dense + dense.T
        return fisher_z(dense)
    raise ConfigError(
        f"study.eeg_connectivity {measure!r} is unknown: use spectral_correlation, aec, "
        "coherence or wpli."
    )


def eeg_domains(
    segment: np.ndarray, sfreq: float, study: Mapping[str, Any]
) -> dict[str, np.ndarray]:
    """Spatial (channel × channel), temporal (channel × length, z-scored), frequency (ch × bins)."""
    log_power = welch_log_power(
        segment, sfreq, study["eeg_frequency_range"], study["eeg_frequency_bins"]
    )
    temporal = scipy.signal.resample(segment, study["eeg_temporal_length"], axis=1)
    return {
        "spatial": eeg_connectivity(segment, sfreq, study, log_power).astype(np.float32),
        "temporal": zscore(temporal, axis=1).astype(np.float32),
        "frequency": log_power.astype(np.float32),
    }
