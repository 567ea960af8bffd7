"""Resting-state EEG preprocessing: a BIDS recording in, a clean recording on common channels out.

Steps, in order (each one switchable in ``settings``; see ``DEFAULTS``): read with MNE-BIDS (a
recording with fewer EEG channels than ``min_eeg_channels`` is excluded; a data file shorter than
the sidecar's RecordingDuration is noted, or excluded below ``min_duration_fraction`` of it),
conditions marked by events inside one recording (cohort ``eeg.conditions``: ``condition/<name>``
annotations from the events.tsv, see ``mark_conditions``), non-finite (NaN/inf) stretches
annotated ``BAD_nan`` and filled, channel positions (electrodes.tsv, or a configured MNE montage
matched to normalised names, see ``montage_match``; too few positioned channels exclude the
recording), channel renaming to the common set
(aliases, and for caps with numbered electrodes such as EGI's GSN-HydroCel, nearest-position
mapping), notch at the sidecar's PowerLineFrequency and its harmonics, band-pass, resampling,
bad-channel detection and interpolation, average reference, ICA with automatic labelling of eye and
muscle components (mne-icalabel's ICLabel, or EOG correlation), bad-segment rejection recorded as
``BAD_segment`` annotations, and harmonisation to the common channel set (missing channels
interpolated within a limit). Every step is recorded in the result's sidecar.

Data-quality failures (too few EEG channels or positioned channels, a truncated file, too many bad
channels, too many missing common channels, too little clean data left) do not raise: the result
carries an exclusion reason, shown in its QC row; a kept recording with a problem (truncated a
little, non-finite data, channels dropped for lack of a position) has QC status warning. Input that
a person must fix (unreadable file, no channel positions, a sampling rate that contradicts the
sidecar, bad settings) raises an ``EegError`` naming the file, the problem and the fix.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import importlib.util
import json
import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema
import mne
import mne_bids
import numpy as np
import pandas as pd

from mcsp.config import closest_key, schema_defaults, subschema
from mcsp.exceptions import ConfigError, McspError
from mcsp.io import atomic_output, write_text

# Named common channel sets (10-20 names, MNE spelling).
CHANNEL_SETS: dict[str, list[str]] = {
    "1020_19": [
        "Fp1", "Fp2", "F7", "F3", "Fz", "F4", "F8", "T7", "C3", "Cz",
        "C4", "T8", "P7", "P3", "Pz", "P4", "P8", "O1", "O2",
    ],
}  # fmt: skip

# Old 10-20 names and their 10-10 equivalents (matched case-insensitively).
DEFAULT_ALIASES: dict[str, str] = {"T3": "T7", "T4": "T8", "T5": "P7", "T6": "P8"}
# Both ways, for matching a montage that holds either spelling.
_OLD_NEW: dict[str, str] = {
    **{k.casefold(): v.casefold() for k, v in DEFAULT_ALIASES.items()},
    **{v.casefold(): k.casefold() for k, v in DEFAULT_ALIASES.items()},
}
# Fewest EEG channels any recording needs: the robust bad-channel check compares each channel
# with its 3 best-correlated others, and ICA needs several channels to separate anything.
MIN_EEG_CHANNELS = 4

# Template giving the reference positions of common channels (nearest-position mapping and the
# interpolation of missing channels). colin27 replaces the deprecated standard_1005 in MNE >= 1.13.
TEMPLATE_MONTAGE = "colin27_1005"

# Preprocessing settings and their defaults live in the config schema (eeg.preprocessing, every
# key described there); "montage" is per cohort (cohort file eeg.montage): an MNE montage name
# used when the recording has no channel positions (no electrodes.tsv), None otherwise;
# "conditions" is per cohort too (cohort file eeg.conditions, see ``mark_conditions``).
SETTINGS_KEY = "eeg.preprocessing"
COHORT_KEYS: dict[str, Any] = {"montage": None, "conditions": {}}
DEFAULTS: dict[str, Any] = {**COHORT_KEYS, **schema_defaults("config", SETTINGS_KEY)}
# Cohort-file key of the condition mapping, and the annotation prefix of condition spans.
CONDITIONS_KEY = "eeg.conditions"
CONDITION_PREFIX = "condition/"
# events.tsv columns searched for a condition's values when its ``column`` is null.
EVENT_COLUMNS = ("trial_type", "value")

EXCLUDED = "excluded"
# Annotation of stretches where an EEG/EOG channel is NaN or infinite (``_mark_nonfinite``).
NONFINITE_ANNOTATION = "BAD_nan"
# A channel non-finite for more than this fraction of the recording is marked bad instead.
NONFINITE_CHANNEL_FRACTION = 0.5
# Fewest fixed-length segments autoreject's cross-validated threshold is computed from.
MIN_AUTOREJECT_EPOCHS = 20
# Least spread (log units) of a channel's segment RMS in the muscle check: on a very steady
# channel a z-score would otherwise flag changes of a few percent.
MUSCLE_MIN_SCALE = 0.1


class EegError(McspError):
    """A recording or the EEG settings cannot be used; names the file, the problem and the fix."""

    def __init__(self, file: str | Path, problem: str, fix: str) -> None:
        self.file, self.problem, self.fix = str(file), problem, fix
        super().__init__(f"{file}: {problem} Fix: {fix}")


class EegExclusion(EegError):
    """The recording's data quality is too poor to keep it; the cohort goes on without it."""


@dataclass
class EegResult:
    """A preprocessed recording: clean Raw on the common channel set (None when excluded)."""

    source: str
    raw: mne.io.BaseRaw | None
    sidecar: dict
    ica: mne.preprocessing.ICA | None = None
    psd_before: mne.time_frequency.Spectrum | None = None
    raw_full: mne.io.BaseRaw | None = field(default=None, repr=False)

    @property
    def exclusion(self) -> str | None:
        """Why the recording was excluded, or None."""
        return self.sidecar.get("exclusion")


def check_settings(settings: Mapping | None) -> dict:
    """DEFAULTS updated by ``settings``; unknown keys raise ConfigError with a suggestion."""
    settings = dict(settings or {})
    for key in settings:
        if key not in DEFAULTS:
            close = closest_key(key, DEFAULTS)
            hint = f" Did you mean {close!r}?" if close else ""
            raise ConfigError(
                f"EEG settings: unknown key {key!r}.{hint} Known keys: {', '.join(DEFAULTS)}."
            )
    merged = {**DEFAULTS, **settings}
    schema = subschema("config", SETTINGS_KEY)
    checked = {k: v for k, v in merged.items() if k not in COHORT_KEYS}
    for err in jsonschema.Draft202012Validator(schema).iter_errors(checked):
        where = ".".join(str(p) for p in err.absolute_path)
        problem = (
            f"must be one of {err.validator_value}, got {err.instance!r}"
            if err.validator == "enum"
            else err.message
        )
        raise ConfigError(f"EEG settings: {where} {problem} (config key {SETTINGS_KEY}.{where}).")
    if merged["montage"] is not None and not isinstance(merged["montage"], str):
        raise ConfigError(
            f"EEG settings: montage must be an MNE montage name, got {merged['montage']!r}."
        )
    _check_conditions(merged["conditions"])
    return merged


def _check_conditions(conditions: Any) -> None:
    """Raise ConfigError unless ``conditions`` is a valid cohort ``eeg.conditions`` mapping."""
    schema = subschema("cohort", CONDITIONS_KEY)
    for err in jsonschema.Draft202012Validator(schema).iter_errors(conditions):
        where = ".".join([CONDITIONS_KEY, *(str(p) for p in err.absolute_path)])
        raise ConfigError(
            f"EEG settings: {where} {err.message}. Give condition name -> {{events: [values],"
            " column: events.tsv column or null}, as described in the cohort schema."
        )
    seen: dict[tuple[str | None, str], str] = {}
    for name, spec in conditions.items():
        for value in spec["events"]:
            key = (spec.get("column"), _event_key(value))
            if key in seen and seen[key] != name:
                raise ConfigError(
                    f"EEG settings: event value {value!r} starts both condition {seen[key]!r}"
                    f" and {name!r} ({CONDITIONS_KEY}); give each value to one condition."
                )
            seen[key] = name


def _limit(limit: int | float, n: int) -> int:
    """A count from an int count or a float fraction of ``n``."""
    if isinstance(limit, float) and limit < 1:
        return int(np.floor(limit * n))
    return int(limit)


def min_eeg_channels(
    common_channels: list[str], max_interpolated: int | float = DEFAULTS["max_interpolated"]
) -> int:
    """Fewest EEG channels a recording needs: enough to fill ``common_channels`` with at most
    ``max_interpolated`` of them interpolated, and at least MIN_EEG_CHANNELS."""
    n = len(common_channels)
    return max(MIN_EEG_CHANNELS, n - _limit(max_interpolated, n))


def _name_key(name: str) -> str:
    """``name`` as matched: case folded, trailing dots and spaces stripped (EEGMMIDB's ``Fc5.``)."""
    return name.strip().rstrip(". ").casefold()


def _montage(montage: str | mne.channels.DigMontage) -> mne.channels.DigMontage:
    """An MNE montage from its name; an unknown name raises ConfigError."""
    if not isinstance(montage, str):
        return montage
    try:
        with _quiet_ctx():  # deprecated names (standard_1005) still work until MNE removes them
            return mne.channels.make_standard_montage(montage)
    except ValueError as err:
        raise ConfigError(
            f"EEG montage {montage!r} is not an MNE montage; use one of"
            f" {', '.join(mne.channels.get_builtin_montages())}."
        ) from err


def montage_match(
    names: list[str],
    montage: str | mne.channels.DigMontage,
    aliases: Mapping[str, str] | None = None,
) -> tuple[dict[str, str], list[str]]:
    """Match channel ``names`` to a montage's names: ({name: montage name}, unmatched names).

    Names match case-insensitively with trailing dots and spaces ignored (EEGMMIDB's ``Fc5.`` is
    FC5), through ``aliases`` (a cohort's ``eeg.channel_aliases``, old -> new name), and between
    the old and new 10-20 names T3/T7, T4/T8, T5/P7, T6/P8 (whichever the montage has). Each
    montage name is taken once, names already spelled as in the montage first. An unknown montage
    name raises ConfigError.
    """
    spelled = _montage(montage).ch_names
    lookup = {_name_key(n): n for n in spelled}
    alias = {_name_key(k): _name_key(v) for k, v in (aliases or {}).items()}
    found: dict[str, str] = {}
    taken: set[str] = set()
    exact = [n for n in names if n in lookup.values()]
    for name in exact + [n for n in names if n not in exact]:
        key = _name_key(name)
        via = alias.get(key, "")
        for candidate in (via, key, _OLD_NEW.get(via, ""), _OLD_NEW.get(key, "")):
            target = lookup.get(candidate)
            if target is not None and target not in taken:
                found[name] = target
                taken.add(target)
                break
    matched = {n: found[n] for n in names if n in found}
    return matched, [n for n in names if n not in found]


def read_recording(bids_path: mne_bids.BIDSPath | str | Path) -> tuple[mne.io.BaseRaw, dict]:
    """Read a BIDS EEG recording (any format MNE-BIDS reads) and its ``_eeg.json`` sidecar."""
    if not isinstance(bids_path, mne_bids.BIDSPath):
        if not Path(bids_path).is_file():
            raise EegError(bids_path, "the file does not exist.", "check the path.")
        try:
            bids_path = mne_bids.get_bids_path_from_fname(bids_path)
            if bids_path.subject is None:
                raise ValueError("no sub-<label> entity")
        except Exception as err:
            raise EegError(
                bids_path,
                f"not a BIDS file name ({err}).",
                "pass a BIDS EEG file such as sub-01_task-rest_eeg.vhdr inside a BIDS folder.",
            ) from err
    fpath = bids_path.fpath
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            raw = mne_bids.read_raw_bids(bids_path, verbose=False)
            raw.load_data(verbose=False)
    except Exception as err:
        raise EegError(
            fpath,
            f"cannot read the recording ({type(err).__name__}: {err}).",
            "check the file is complete and in a BIDS EEG format (BrainVision, EDF, BDF, EEGLAB);"
            " for BrainVision the .vhdr, .vmrk and .eeg must name each other.",
        ) from err
    sidecar_path = bids_path.copy().update(suffix="eeg", extension=".json")
    try:
        meta = json.loads(Path(sidecar_path.fpath).read_text())
    except (OSError, ValueError):
        meta = {}
    declared = meta.get("SamplingFrequency")
    if declared is not None and not np.isclose(float(declared), raw.info["sfreq"], rtol=1e-3):
        raise EegError(
            fpath,
            f"the data are sampled at {raw.info['sfreq']:g} Hz but the sidecar's"
            f" SamplingFrequency says {declared:g} Hz.",
            f"correct SamplingFrequency in {Path(sidecar_path.fpath).name} or re-export the data.",
        )
    return raw, meta


def _partial_sample_bytes(raw: mne.io.BaseRaw) -> int:
    """Bytes after the last whole sample of a binary BrainVision data file (0 otherwise).

    MNE reads the whole samples and drops the rest silently, so a file cut mid-sample reads as a
    shorter, valid recording. Call on the recording as read (all its channels).
    """
    fmt = (getattr(raw, "_raw_extras", None) or [{}])[0].get("fmt")
    data = Path(raw.filenames[0]) if raw.filenames and raw.filenames[0] else None
    size = {"short": 2, "int": 4, "single": 4}.get(fmt) if isinstance(fmt, str) else None
    if size is None or data is None or data.suffix.lower() != ".eeg" or not data.is_file():
        return 0  # not binary BrainVision (ASCII has a dict fmt)
    return data.stat().st_size % (size * raw.info["nchan"])


def _check_duration(raw: mne.io.BaseRaw, meta: Mapping, settings: Mapping, sidecar: dict) -> None:
    """Compare the data with the sidecar's RecordingDuration; note or exclude a truncated file.

    Sets ``sidecar["truncated"]`` and either ``sidecar["exclusion"]`` (less than
    ``min_duration_fraction`` of the declared duration) or a QC warning in ``sidecar["warnings"]``.
    """
    sfreq, duration = raw.info["sfreq"], sidecar["duration_s"]
    declared = meta.get("RecordingDuration")
    if isinstance(declared, bool) or not isinstance(declared, int | float) or declared <= 0:
        declared = None
    partial = _partial_sample_bytes(raw)
    cut = f"the data file ends mid-sample, {partial} bytes after the last whole sample"
    # mne-bids writes RecordingDuration as (n - 1) / sfreq; others round it.
    if declared is not None and declared - duration > max(2 / sfreq, 1e-3 * declared):
        fraction = settings["min_duration_fraction"]
        text = (
            f"truncated: {duration:.1f} s of the declared {declared:.1f} s (sidecar"
            f" RecordingDuration{'; ' + cut if partial else ''})"
        )
        sidecar["truncated"] = text
        if duration < fraction * declared:
            sidecar["exclusion"] = (
                f"{text}, less than min_duration_fraction {fraction:g} of it. Fix: re-copy or"
                " re-export the data file, or correct RecordingDuration in the sidecar."
            )
        else:
            sidecar["warnings"].append(f"{text}; kept (min_duration_fraction {fraction:g})")
    elif partial:
        text = f"truncated: {cut}; {duration:.1f} s read, no sidecar RecordingDuration to compare"
        sidecar["truncated"] = text
        sidecar["warnings"].append(text)


def _event_key(value: Any) -> str:
    """An events.tsv value as matched: stripped text, numbers in one spelling (20 = "20.0")."""
    text = str(value).strip()
    try:
        number = float(text)
    except ValueError:
        return text
    return repr(number) if np.isfinite(number) else text


def events_path(source: str | Path) -> Path:
    """The BIDS events file beside an EEG data file (``…_eeg.<ext>`` -> ``…_events.tsv``)."""
    source = Path(source)
    stem = re.sub(r"_eeg$", "", source.name.split(".")[0])
    return source.with_name(f"{stem}_events.tsv")


def condition_spans(
    events: pd.DataFrame, conditions: Mapping[str, Mapping[str, Any]], duration_s: float
) -> tuple[list[tuple[str, float, float]], dict[str, Any]]:
    """Spans ``(condition, start s, stop s)`` of a recording from its events table.

    An event whose value (in the condition's ``column``, or in any of EVENT_COLUMNS when that is
    null) is one of a condition's ``events`` starts that condition (the first condition listed
    wins a tie). It lasts the event's ``duration`` when one is given (> 0), else until the next
    matching event or ``duration_s``, and never past the next matching event; adjacent spans of
    one condition are joined.

    Returns:
        The spans sorted by start, and ``{"n_events": {condition: matching events},
        "unmatched_values": values of the searched columns that matched nothing,
        "missing_columns": configured columns the table lacks}``. A matching event whose onset
        is not a number is left out.
    """
    onsets, durations = (_numbers(events, c) for c in ("onset", "duration"))
    taken = np.zeros(len(events), bool)
    marks: list[tuple[float, float, str]] = []
    n_events: dict[str, int] = {}
    searched: list[str] = []
    missing = [] if "onset" in events.columns else ["onset"]
    for name, spec in conditions.items():
        column = spec.get("column")
        present = [c for c in ([column] if column else EVENT_COLUMNS) if c in events.columns]
        if column and not present and column not in missing:
            missing.append(column)
        searched += [c for c in present if c not in searched]
        wanted = {_event_key(v) for v in spec["events"]}
        hit = np.zeros(len(events), bool)
        for c in present:
            hit |= events[c].map(_event_key).isin(wanted).to_numpy()
        hit &= ~taken
        taken |= hit
        hit &= np.isfinite(onsets)
        n_events[name] = int(hit.sum())
        marks += [(onsets[i], durations[i], name) for i in np.flatnonzero(hit)]
    marks.sort(key=lambda m: m[0])
    spans: list[tuple[str, float, float]] = []
    for i, (onset, duration, name) in enumerate(marks):
        following = marks[i + 1][0] if i + 1 < len(marks) else duration_s
        stop = min(onset + duration, following) if duration > 0 else following
        start, stop = max(onset, 0.0), min(stop, duration_s)
        if stop <= start:
            continue
        if spans and spans[-1][0] == name and np.isclose(spans[-1][2], start):
            spans[-1] = (name, spans[-1][1], stop)
        else:
            spans.append((name, float(start), float(stop)))
    values = [
        v.strip()
        for c in searched or [c for c in EVENT_COLUMNS if c in events.columns]
        for v in events.loc[~taken, c]
        if v.strip() not in ("", "n/a")
    ]
    found = {"n_events": n_events, "unmatched_values": list(dict.fromkeys(values))}
    return spans, found | {"missing_columns": missing}


def _numbers(events: pd.DataFrame, column: str) -> np.ndarray:
    """Column ``column`` of ``events`` as floats (NaN where absent or not a number)."""
    if column not in events.columns:
        return np.full(len(events), np.nan)
    return pd.to_numeric(events[column], errors="coerce").to_numpy(float)


def _listed(values: list[str], limit: int = 20) -> str:
    shown = ", ".join(values[:limit]) or "none"
    return shown + (f" … ({len(values) - limit} more)" if len(values) > limit else "")


def mark_conditions(
    raw: mne.io.BaseRaw, conditions: Mapping[str, Mapping[str, Any]], source: str, sidecar: dict
) -> None:
    """Annotate the conditions of ``raw`` (in place) from the events.tsv beside ``source``.

    Each span of ``condition_spans`` becomes a ``condition/<name>`` annotation (CONDITION_PREFIX),
    which the clean FIF keeps and the store cuts segments within. ``sidecar["conditions"]``
    records the events file, the spans and the seconds per condition. No events file, an
    unreadable one, or values that match no condition (listed) give a QC warning and no span:
    the recording is then used whole under its own task. Conditions without any event are
    warned about too.
    """
    path = events_path(source)
    duration = raw.n_times / raw.info["sfreq"]
    task = mne_bids.get_entities_from_fname(Path(source).name, on_error="ignore").get("task")
    whole = f"the recording is used whole under its task {task or 'n/a'!r}"
    log: dict[str, Any] = {"events_file": str(path), "segments_from": "task", "spans": []}
    sidecar["conditions"] = log
    mapping = "; ".join(
        f"{name}: {', '.join(str(v) for v in spec['events'])}"
        + (f" in {spec['column']}" if spec.get("column") else "")
        for name, spec in conditions.items()
    )
    fix = "Fix: list the recording's event values under its conditions in the cohort file's"
    fix += f" {CONDITIONS_KEY}."
    if not path.is_file():
        sidecar["warnings"].append(
            f"{CONDITIONS_KEY} is set but there is no events file {path.name} beside the"
            f" recording, so no condition is marked; {whole}. Fix: add the events file (onset,"
            f" duration, trial_type or value), or leave this task out of the cohort's eeg.tasks."
        )
        return
    try:
        events = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    except (OSError, ValueError) as err:
        sidecar["warnings"].append(f"cannot read {path.name} ({err}); {whole}.")
        return
    spans, found = condition_spans(events, conditions, duration)
    log.update(found)
    where = ", ".join(c for c in EVENT_COLUMNS if c in events.columns) or "no value column"
    if found["missing_columns"]:
        sidecar["warnings"].append(
            f"{path.name} has no column {', '.join(found['missing_columns'])} (columns:"
            f" {', '.join(events.columns)}). {fix}"
        )
    if not spans:
        sidecar["warnings"].append(
            f"no event in {path.name} matches {CONDITIONS_KEY} ({mapping}); values found"
            f" ({where}): {_listed(found['unmatched_values'])}; {whole}. {fix}"
        )
        return
    lacking = [name for name, n in found["n_events"].items() if not n]
    if lacking:
        sidecar["warnings"].append(
            f"no event in {path.name} starts condition {', '.join(lacking)} ({mapping}); values"
            f" not mapped ({where}): {_listed(found['unmatched_values'])}. {fix}"
        )
    offset = raw.first_time if raw.annotations.orig_time is not None else 0.0
    raw.set_annotations(
        raw.annotations
        + mne.Annotations(
            [start + offset for _, start, _ in spans],
            [stop - start for _, start, stop in spans],
            [CONDITION_PREFIX + name for name, _, _ in spans],
            orig_time=raw.annotations.orig_time,
        )
    )
    log.update(
        {
            "segments_from": "conditions",
            "spans": [
                {"condition": name, "onset_s": start, "duration_s": stop - start}
                for name, start, stop in spans
            ],
        }
    )


def _annotated_mask(raw: mne.io.BaseRaw, prefix: str, exact: bool = False) -> np.ndarray:
    """Per sample of ``raw``: inside an annotation whose description starts with ``prefix``
    (case-insensitively), or equals it when ``exact``."""
    mask = np.zeros(raw.n_times, bool)
    sfreq = raw.info["sfreq"]
    for ann in raw.annotations:
        text = ann["description"]
        if text == prefix if exact else text.upper().startswith(prefix.upper()):
            onset = ann["onset"] - raw.first_time
            start = max(int(round(onset * sfreq)), 0)
            mask[start : start + int(round(ann["duration"] * sfreq))] = True
    return mask


def _condition_seconds(raw: mne.io.BaseRaw, log: dict) -> None:
    """Add seconds per condition, clean (outside BAD annotations) and in all, to ``log``."""
    sfreq = raw.info["sfreq"]
    clean = ~_annotated_mask(raw, "BAD")
    marked = np.zeros(raw.n_times, bool)
    seconds: dict[str, float] = {}
    clean_seconds: dict[str, float] = {}
    for name in dict.fromkeys(span["condition"] for span in log["spans"]):
        inside = _annotated_mask(raw, CONDITION_PREFIX + name, exact=True)
        marked |= inside
        seconds[name] = round(float(inside.sum() / sfreq), 3)
        clean_seconds[name] = round(float((inside & clean).sum() / sfreq), 3)
    log.update(
        {
            "seconds": seconds,
            "clean_seconds": clean_seconds,
            "outside_s": round(float((~marked).sum() / sfreq), 3),
            "outside_clean_s": round(float((~marked & clean).sum() / sfreq), 3),
        }
    )


def _fill_nonfinite(x: np.ndarray) -> np.ndarray:
    """``x`` with non-finite samples linearly interpolated from the finite ones (0 if none)."""
    bad = ~np.isfinite(x)
    if not bad.any():
        return x
    if bad.all():
        return np.zeros_like(x)
    index = np.arange(len(x))
    x = x.copy()
    x[bad] = np.interp(index[bad], index[~bad], x[~bad])
    return x


def _mark_nonfinite(raw: mne.io.BaseRaw, margin_s: float = 0.0) -> dict[str, Any]:
    """Annotate NaN/inf stretches of EEG/EOG channels as bad, fill them; return what was done.

    MNE's ``annotate_nan`` finds the stretches of the good EEG/EOG channels; widened by
    ``margin_s`` on each side they become NONFINITE_ANNOTATION annotations of the whole recording,
    so ``reject_by_annotation`` leaves them out of bad-channel detection, ICA, segment rejection
    and the clean duration. A channel non-finite for more than NONFINITE_CHANNEL_FRACTION of the
    time when most channels are finite is marked bad instead (and interpolated later).

    Non-finite samples of every channel are then linearly interpolated between their finite
    neighbours: filters, resampling and ICA would spread NaN over the whole recording, and a line,
    unlike 0, puts no step into the data. The filled stretch still lacks the slow signal, so the
    high-pass rings into the data beside it: hence the margin.
    """
    finite = np.isfinite(raw.get_data())
    if finite.all():
        return {"seconds": 0.0, "annotated_s": 0.0, "channels": []}
    sfreq = raw.info["sfreq"]
    picks = mne.pick_types(raw.info, eeg=True, eog=True, exclude="bads")
    bad = ~finite[picks]
    # a dropout of most channels at once is bad time, not bad channels
    shared = bad.mean(axis=0) >= 0.5 if len(picks) else np.zeros(raw.n_times, bool)
    limit = NONFINITE_CHANNEL_FRACTION * (~shared).sum()
    own = (bad & ~shared).sum(axis=1)
    mostly = [raw.ch_names[i] for i, n in zip(picks, own, strict=True) if n > limit]
    keep = [raw.ch_names[i] for i in picks[bad.any(axis=1)] if raw.ch_names[i] not in mostly]
    if keep:
        # annotate_nan looks for NaN only: infinities become NaN first
        nan = raw.copy().pick(keep)
        nan.apply_function(lambda x: np.where(np.isfinite(x), x, np.nan), picks="all")
        found = mne.preprocessing.annotate_nan(nan, verbose=False)
        start = raw.first_time if found.orig_time is not None else 0.0
        end = start + raw.n_times / sfreq
        spans = sorted({(a["onset"], a["onset"] + a["duration"]) for a in found})
        onsets = [max(a - margin_s, start) for a, _ in spans]
        ends = [min(b + margin_s, end) for _, b in spans]
        annotations = mne.Annotations(
            onsets,
            np.subtract(ends, onsets),
            NONFINITE_ANNOTATION,
            orig_time=found.orig_time,
        )
        raw.set_annotations(raw.annotations + annotations)
    raw.apply_function(_fill_nonfinite, picks="all")
    raw.info["bads"] = sorted(set(raw.info["bads"]) | set(mostly))
    index = [raw.ch_names.index(c) for c in keep]
    bad = (~finite[index]).any(axis=0) if index else np.zeros(raw.n_times, bool)
    return {
        "seconds": float(bad.sum() / sfreq),
        "annotated_s": _bad_duration(raw, NONFINITE_ANNOTATION),
        "channels": mostly,
    }


def _sphere(xyz: np.ndarray) -> tuple[np.ndarray, float]:
    """Centre and radius of the least-squares sphere through points ``xyz`` (n, 3)."""
    design = np.column_stack([2 * xyz, np.ones(len(xyz))])
    sol, *_ = np.linalg.lstsq(design, (xyz**2).sum(axis=1), rcond=None)
    centre = sol[:3]
    return centre, float(np.sqrt(sol[3] + centre @ centre))


def _eeg_positions(raw: mne.io.BaseRaw) -> dict[str, np.ndarray]:
    """Head-frame positions of EEG channels that have one."""
    out = {}
    for ch, kind in zip(raw.info["chs"], raw.get_channel_types(), strict=True):
        if kind != "eeg":
            continue
        loc = ch["loc"][:3]
        if np.all(np.isfinite(loc)) and np.linalg.norm(loc) > 0:
            out[ch["ch_name"]] = loc.copy()
    return out


def _template_positions(names: list[str]) -> dict[str, np.ndarray]:
    """Head-frame positions of ``names`` in TEMPLATE_MONTAGE."""
    montage = mne.channels.make_standard_montage(TEMPLATE_MONTAGE)
    lookup = {n.lower(): n for n in montage.ch_names}
    missing = [n for n in names if n.lower() not in lookup]
    if missing:
        raise ConfigError(
            f"EEG common channels {missing} are not in the {TEMPLATE_MONTAGE} montage."
        )
    info = mne.create_info([lookup[n.lower()] for n in names], 100.0, "eeg")
    info.set_montage(montage, verbose=False)
    return {n: ch["loc"][:3].copy() for n, ch in zip(names, info["chs"], strict=True)}


def _on_head(raw: mne.io.BaseRaw, names: list[str]) -> dict[str, np.ndarray]:
    """Template positions of ``names`` moved onto the recording's fitted head sphere."""
    own = _eeg_positions(raw)
    centre, radius = _sphere(np.array(list(own.values())))
    template = _template_positions(names)
    t_centre, _ = _sphere(np.array(list(_template_positions(CHANNEL_SETS["1020_19"]).values())))
    out = {}
    for name, pos in template.items():
        direction = pos - t_centre
        out[name] = centre + radius * direction / np.linalg.norm(direction)
    return out


def map_channel_names(
    raw: mne.io.BaseRaw,
    common_channels: list[str],
    aliases: Mapping[str, str],
    *,
    pattern: str | None = DEFAULTS["position_map_pattern"],
    max_mm: float = DEFAULTS["position_map_max_mm"],
) -> dict[str, str]:
    """Rename channels (in place) to the common set's spelling; return {old: new}.

    Names match case-insensitively with trailing dots and spaces ignored, ``aliases`` map old names
    (T3) to common ones (T7). Channels whose name matches ``pattern`` (EGI's numbered E1..E257)
    take the name of the common channel whose template position (TEMPLATE_MONTAGE, on the
    recording's fitted head sphere) is nearest, if within ``max_mm``: the usual way EGI caps are
    harmonised to 10-20 names.
    """
    wanted = {_name_key(name): name for name in common_channels}
    alias = {_name_key(k): v for k, v in aliases.items()}
    mapping: dict[str, str] = {}
    for name in raw.ch_names:
        target = alias.get(_name_key(name), name)
        target = wanted.get(_name_key(target), target)
        if target != name and target not in raw.ch_names:
            mapping[name] = target
    present = {mapping.get(n, n) for n in raw.ch_names}
    todo = [n for n in common_channels if n not in present]
    own = _eeg_positions(raw)
    numbered = {n: p for n, p in own.items() if pattern and re.match(pattern, n)}
    if todo and numbered:
        targets = _on_head(raw, todo)
        names = list(numbered)
        xyz = np.array([numbered[n] for n in names])
        taken: set[str] = set()
        for name in todo:
            dist = np.linalg.norm(xyz - targets[name], axis=1) * 1000
            for index in np.argsort(dist):
                if dist[index] > max_mm:
                    break
                if names[index] not in taken:
                    mapping[names[index]] = name
                    taken.add(names[index])
                    break
    if mapping:
        raw.rename_channels(mapping, verbose=False)
    return mapping


def harmonise(
    raw: mne.io.BaseRaw,
    common_channels: list[str],
    aliases: Mapping[str, str] = DEFAULT_ALIASES,
    max_interpolated: int | float = DEFAULTS["max_interpolated"],
    *,
    pattern: str | None = DEFAULTS["position_map_pattern"],
    max_mm: float = DEFAULTS["position_map_max_mm"],
) -> tuple[mne.io.BaseRaw, dict]:
    """A copy of ``raw`` holding exactly ``common_channels`` (in that order), and what was done.

    Channels are mapped by name (see ``map_channel_names``); missing common channels are added at
    their template positions and interpolated (spherical splines) when there are at most
    ``max_interpolated`` of them (int count, or float fraction of the set); more raise
    ``EegExclusion``. Needs channel positions.
    """
    raw = raw.copy()
    source = raw.filenames[0] if raw.filenames and raw.filenames[0] else "<raw>"
    if not _eeg_positions(raw):
        raise EegError(
            source,
            "no EEG channel has a position, so channels cannot be mapped or interpolated.",
            "add electrodes.tsv to the BIDS folder or set the EEG 'montage' setting.",
        )
    mapping = map_channel_names(raw, common_channels, aliases, pattern=pattern, max_mm=max_mm)
    missing = [n for n in common_channels if n not in raw.ch_names]
    limit = _limit(max_interpolated, len(common_channels))
    if len(missing) > limit:
        raise EegExclusion(
            source,
            f"{len(missing)} of {len(common_channels)} common channels are missing"
            f" ({', '.join(missing)}); at most {limit} may be interpolated.",
            "use a smaller common channel set, add aliases for differently named channels, or"
            " raise max_interpolated.",
        )
    if missing:
        positions = _on_head(raw, missing)
        sfreq = raw.info["sfreq"]
        info = mne.create_info(missing, sfreq, "eeg")
        extra = mne.io.RawArray(np.zeros((len(missing), raw.n_times)), info, verbose=False)
        for ch in extra.info["chs"]:
            ch["loc"][:3] = positions[ch["ch_name"]]
        with _quiet_ctx():
            extra.set_meas_date(raw.info["meas_date"])
            raw.add_channels([extra], force_update_info=True)
        raw.info["bads"] = sorted(set(raw.info["bads"]) | set(missing))
        with _quiet_ctx():
            raw.interpolate_bads(reset_bads=True, verbose=False)
    raw.pick(common_channels)
    raw.info["bads"] = []
    return raw, {"renamed": mapping, "interpolated": missing}


class _quiet_ctx:
    """``with _quiet_ctx():`` silences Python warnings from MNE and its friends."""

    def __enter__(self) -> None:
        self._ctx = warnings.catch_warnings()
        self._ctx.__enter__()
        warnings.simplefilter("ignore")

    def __exit__(self, *exc) -> None:
        self._ctx.__exit__(*exc)


def find_bad_channels(raw: mne.io.BaseRaw, settings: Mapping) -> dict[str, list[str]]:
    """Bad EEG channels by kind: ``flat`` and ``noisy`` (robust), or pyprep's lists.

    Data inside ``BAD*`` annotations (e.g. non-finite stretches) are left out.
    """
    picks = mne.pick_types(raw.info, eeg=True, exclude=[])
    names = [raw.ch_names[i] for i in picks]
    data = raw.get_data(picks=picks, reject_by_annotation="omit", verbose=False)
    if settings["bad_channels"] == "pyprep":
        from pyprep import NoisyChannels

        eeg = mne.io.RawArray(data, raw.copy().pick(names).info, verbose=False)
        with _quiet_ctx():
            finder = NoisyChannels(eeg, random_state=settings["ica_random_state"])
            finder.find_all_bads(ransac=False)
        bads = finder.get_bads(as_dict=True)
        flat = sorted(set(bads["bad_by_flat"]) | set(bads["bad_by_nan"]))
        noisy = sorted(set(finder.get_bads()) - set(flat))
        return {"flat": flat, "noisy": noisy}
    data = data * 1e6
    amplitude = 1.4826 * np.median(np.abs(data - np.median(data, axis=1, keepdims=True)), axis=1)
    flat = data.std(axis=1) < settings["flat_uv"]
    log_amp = np.log(np.where(flat, np.nan, amplitude))
    median = np.nanmedian(log_amp)
    mad = 1.4826 * np.nanmedian(np.abs(log_amp - median))
    z = np.nan_to_num((log_amp - median) / max(mad, 1e-12))
    good = ~flat
    corr = np.zeros(len(names))
    if good.sum() > 3:
        c = np.corrcoef(data[good])
        np.fill_diagonal(c, np.nan)
        corr[good] = np.nanmean(np.sort(np.nan_to_num(c, nan=-1.0), axis=1)[:, -3:], axis=1)
    noisy = good & ((np.abs(z) > settings["bad_z"]) | (corr < settings["min_neighbour_corr"]))
    return {
        "flat": [n for n, f in zip(names, flat, strict=True) if f],
        "noisy": [n for n, f in zip(names, noisy, strict=True) if f],
    }


def _run_ica(raw: mne.io.BaseRaw, settings: Mapping, log: dict) -> mne.preprocessing.ICA:
    """Fit ICA, label components, remove artefact components from ``raw`` in place."""
    rank = mne.compute_rank(raw, rank=None, verbose=False)["eeg"]
    n_components = int(min(settings["ica_n_components"], rank))
    fit_params = {"ortho": False, "extended": True} if settings["ica_method"] == "picard" else None
    ica = mne.preprocessing.ICA(
        n_components=n_components,
        method=settings["ica_method"],
        fit_params=fit_params,
        max_iter="auto",
        random_state=settings["ica_random_state"],
        verbose=False,
    )
    with _quiet_ctx():
        ica.fit(raw, picks="eeg", reject_by_annotation=True, verbose=False)
    labeler = settings["ica_labeler"]
    excluded: list[dict] = []
    if labeler == "iclabel":
        try:
            import mne_icalabel  # noqa: F401  (the package itself: absent means the EOG fallback)
            from mne_icalabel.config import ICALABEL_METHODS_NUMERICAL_TO_STRING
            from mne_icalabel.iclabel import iclabel_label_components
        except ImportError:
            labeler = "eog"
    if labeler == "iclabel":
        with _quiet_ctx():
            scores = iclabel_label_components(raw, ica, backend=_iclabel_backend())
        names = ICALABEL_METHODS_NUMERICAL_TO_STRING["iclabel"]
        best = scores.argmax(axis=1)
        for index, (label, proba) in enumerate(
            zip([names[k] for k in best], scores[np.arange(len(best)), best], strict=True)
        ):
            if label in settings["ica_reject_labels"] and proba >= settings["ica_label_threshold"]:
                excluded.append({"index": index, "label": label, "probability": float(proba)})
    else:
        eog = [raw.ch_names[i] for i in mne.pick_types(raw.info, eeg=False, eog=True)]
        proxies = eog or [c for c in settings["ica_eog_proxy"] if c in raw.ch_names]
        if proxies:
            with _quiet_ctx():
                indices, scores = ica.find_bads_eog(
                    raw, ch_name=proxies, threshold=settings["ica_eog_threshold"], verbose=False
                )
            excluded = [{"index": int(i), "label": "eog", "probability": None} for i in indices]
            log["eog_channels"] = proxies
    ica.exclude = [c["index"] for c in excluded]
    ica.apply(raw, verbose=False)
    log.update(
        {
            "method": settings["ica_method"],
            "n_components": n_components,
            "labeler": labeler,
            "excluded": excluded,
        }
    )
    return ica


def reject_segments(raw: mne.io.BaseRaw, settings: Mapping | None = None) -> dict:
    """Annotate artefact segments of ``raw`` (in place) as BAD_segment; return what was done.

    ``settings`` are EEG preprocessing settings (see ``check_settings``); the segment rejection
    step of ``preprocess_recording`` on a Raw already filtered, referenced and cleaned by ICA.
    """
    log: dict = {"step": "segment_rejection"}
    _reject_segments(raw, check_settings(settings), log)
    return log


def _segment_data(raw: mne.io.BaseRaw, length: float) -> tuple[np.ndarray, np.ndarray]:
    """EEG data of ``raw``'s fixed-length segments clear of BAD annotations, and their onsets."""
    epochs = mne.make_fixed_length_epochs(raw, duration=length, preload=True, verbose=False)
    epochs.pick("eeg")
    return epochs.get_data(), epochs.events[:, 0]


def _ptp(data: np.ndarray) -> np.ndarray:
    return data.max(axis=2) - data.min(axis=2)


def _reject_segments(raw: mne.io.BaseRaw, settings: Mapping, log: dict) -> None:
    """Annotate fixed-length segments that look like artefacts as BAD_segment.

    A segment (``segment_s`` long, clear of BAD annotations) is bad when any EEG channel fails one
    of three checks:

    * amplitude: peak-to-peak of the signal with the rhythm bands ``reject_stop_hz`` band-stopped,
      above the threshold (``segment_rejection``: autoreject's global threshold computed on that
      signal, or the fixed ``reject_uv``). Catches blinks left by ICA, movement, slow drifts,
      electrode pops and steps, large muscle bursts.
    * muscle: RMS above ``reject_muscle_hz`` more than ``reject_muscle_z`` robust z (median,
      1.4826·MAD of log RMS) above that channel's own segments. Catches muscle bursts too small
      for the amplitude check.
    * flat: broadband peak-to-peak below ``reject_flat_uv`` (a dead or saturated stretch).

    Why not one peak-to-peak threshold on the broadband signal: its size is set by the largest
    rhythm, so eyes-closed alpha (3-5 times the eyes-open amplitude over the occipital channels)
    crosses it and the eyes-closed seconds were removed instead of the artefacts. Artefacts differ
    from rhythms by their spectrum: blinks, drifts and movement are slow, pops and steps broadband,
    muscle high-frequency; a rhythm is a narrow band. With the alpha band (6-14 Hz covers a child's
    7-8 Hz alpha) stopped, peak-to-peak measures what artefacts add and no longer depends on eyes
    open or closed. A per-channel median + k·MAD amplitude threshold was not used: a recording half
    eyes-open and half eyes-closed gives each channel two amplitude levels, and a recording with
    frequent artefacts would set its own limit high. The muscle check is per channel because
    high-frequency power varies a lot between channels (temporal ones) but little with rhythms.
    """
    length = settings["segment_s"]
    data, starts = _segment_data(raw, length)
    stopped = raw.copy().pick("eeg")
    bands = settings["reject_stop_hz"] or []
    for low, high in bands:
        if not 0 < low < high < raw.info["sfreq"] / 2:
            raise ConfigError(
                f"EEG settings: reject_stop_hz band [{low}, {high}] must have 0 < low < high <"
                f" Nyquist ({raw.info['sfreq'] / 2:g} Hz) (config key"
                f" {SETTINGS_KEY}.reject_stop_hz)."
            )
        with _quiet_ctx():  # a recording shorter than the filter is warned about
            stopped.filter(high, low, verbose=False)
    if bands:
        stopped_data, _ = _segment_data(stopped, length)
    else:
        stopped_data = data
    method = settings["segment_rejection"]
    if method == "autoreject" and len(data) < MIN_AUTOREJECT_EPOCHS:
        # autoreject cross-validates its threshold over epochs: too few for that
        log["fallback"] = f"amplitude ({len(data)} segments < {MIN_AUTOREJECT_EPOCHS})"
        method = "amplitude"
    if method == "autoreject":
        from autoreject import get_rejection_threshold

        epochs = mne.EpochsArray(stopped_data, stopped.info, verbose=False)
        with _quiet_ctx():
            threshold = get_rejection_threshold(
                epochs, ch_types="eeg", random_state=settings["ica_random_state"], verbose=False
            )["eeg"]
    else:
        threshold = settings["reject_uv"] * 1e-6
    checks = {"amplitude": (_ptp(stopped_data) > threshold).any(axis=1)}
    muscle_hz = settings["reject_muscle_hz"]
    h_freq = raw.info["lowpass"]
    if muscle_hz is not None and muscle_hz < h_freq:
        with _quiet_ctx():
            high = raw.copy().pick("eeg").filter(muscle_hz, None, verbose=False)
        high_data, _ = _segment_data(high, length)
        log_rms = np.log(np.sqrt((high_data**2).mean(axis=2)) + 1e-30)
        centre = np.median(log_rms, axis=0)
        scale = np.maximum(1.4826 * np.median(np.abs(log_rms - centre), axis=0), MUSCLE_MIN_SCALE)
        checks["muscle"] = ((log_rms - centre) / scale > settings["reject_muscle_z"]).any(axis=1)
    elif muscle_hz is not None:
        log["muscle_skipped"] = (
            f"reject_muscle_hz {muscle_hz:g} is not below the low-pass {h_freq:g} Hz"
        )
    if settings["reject_flat_uv"] is not None:
        checks["flat"] = (_ptp(data) < settings["reject_flat_uv"] * 1e-6).any(axis=1)
    bad = np.flatnonzero(np.any(list(checks.values()), axis=0))
    onsets = starts[bad] / raw.info["sfreq"] - raw.first_time
    if len(bad):
        raw.annotations.append(onsets, [length] * len(bad), ["BAD_segment"] * len(bad))
    log.update(
        {
            "method": method,
            "segment_s": length,
            "threshold_uv": float(threshold * 1e6),
            "stop_hz": [list(band) for band in bands],
            "n_segments": len(data),
            "n_bad": len(bad),
            **{f"n_{name}": int(found.sum()) for name, found in checks.items()},
        }
    )


def _bad_duration(raw: mne.io.BaseRaw, prefix: str = "BAD") -> float:
    """Seconds covered by annotations starting with ``prefix`` (overlaps counted once)."""
    mask = np.zeros(raw.n_times, bool)
    for ann in raw.annotations:
        if ann["description"].upper().startswith(prefix.upper()):
            start = raw.time_as_index(ann["onset"] - raw.first_time)[0]
            stop = start + int(round(ann["duration"] * raw.info["sfreq"]))
            mask[max(start, 0) : stop] = True
    return float(mask.sum() / raw.info["sfreq"])


def _set_positions(
    raw: mne.io.BaseRaw,
    settings: Mapping,
    source: str,
    log: dict,
    aliases: Mapping[str, str],
    n_needed: int,
) -> str | None:
    """Keep electrodes.tsv positions, or apply the configured montage; none at all raises.

    For a montage, channel names are matched with ``montage_match`` and renamed to the montage's
    spelling first. EEG channels still without a position are dropped (a QC warning), unless fewer
    than ``n_needed`` or than half of the EEG channels have one: that raises EegExclusion, which
    lists the channels without a position. Returns the QC warning about dropped channels, if any.
    """
    eeg = [raw.ch_names[i] for i in mne.pick_types(raw.info, eeg=True, exclude=[])]
    if _eeg_positions(raw):
        where = "recording (electrodes.tsv)"
        fix = "add their positions to the recording's electrodes.tsv"
    elif settings["montage"] is None:
        raise EegError(
            source,
            "no EEG channel has a position (no electrodes.tsv).",
            "add electrodes.tsv and coordsystem.json to the BIDS folder, or set the EEG"
            " 'montage' setting to the cap's MNE montage name (e.g. 'biosemi64').",
        )
    else:
        name = settings["montage"]
        try:
            montage = _montage(name)
        except ConfigError as err:
            raise EegError(
                source,
                f"cannot apply montage {name!r}: it is not an MNE montage.",
                f"set the cohort file's eeg.montage to one of"
                f" {', '.join(mne.channels.get_builtin_montages())}.",
            ) from err
        matched, _ = montage_match(eeg, montage, aliases)
        renamed = {k: v for k, v in matched.items() if k != v and v not in raw.ch_names}
        if renamed:
            raw.rename_channels(renamed, verbose=False)
            eeg = [renamed.get(c, c) for c in eeg]
        with _quiet_ctx():
            raw.set_montage(montage, on_missing="ignore", verbose=False)
        log["renamed"] = renamed
        where = f"montage {name}"
        fix = (
            f"map these names to {name} names in the cohort file's eeg.channel_aliases, or set the"
            " cohort file's eeg.montage to the cap's MNE montage"
        )
    positioned = _eeg_positions(raw)
    unpositioned = [c for c in eeg if c not in positioned]
    n_eeg, n_pos = len(eeg), len(eeg) - len(unpositioned)
    log.update(
        {
            "positions": f"{where}: {n_pos} of {n_eeg} EEG channels positioned",
            "n_eeg": n_eeg,
            "n_positioned": n_pos,
            "unpositioned": unpositioned,
        }
    )
    if not unpositioned:
        return None
    if n_pos < max(n_needed, n_eeg / 2):
        raise EegExclusion(
            source,
            f"{where} positions only {n_pos} of {n_eeg} EEG channels, fewer than half of them or"
            f" the {n_needed} the common channel set needs; no position for"
            f" {', '.join(unpositioned)}.",
            f"{fix}.",
        )
    raw.drop_channels(unpositioned)
    log["dropped"] = unpositioned
    return (
        f"no position ({where}) for {len(unpositioned)} of {n_eeg} EEG channels, dropped:"
        f" {', '.join(unpositioned)}. Fix: {fix}"
    )


def _iclabel_backend() -> str | None:
    """ICLabel's network through ONNX Runtime when installed (a dependency of mcsp): the same
    network as its PyTorch file, without importing torch in every EEG job (about 1.5 s each)."""
    return "onnx" if importlib.util.find_spec("onnxruntime") is not None else None


def _versions() -> dict[str, str]:
    """Versions of the EEG packages, read from their metadata (importing them costs seconds)."""
    out = {"mne": mne.__version__, "mne_bids": mne_bids.__version__}
    for module, dist in (
        ("mne_icalabel", "mne-icalabel"),
        ("autoreject", "autoreject"),
        ("pyprep", "pyprep"),
        ("picard", "python-picard"),
        ("onnxruntime", "onnxruntime"),
    ):
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            out[module] = importlib.metadata.version(dist)
    return out


def preprocess_recording(
    bids_path_or_file: mne_bids.BIDSPath | str | Path,
    settings: Mapping | None = None,
    *,
    common_channels: list[str] = CHANNEL_SETS["1020_19"],
    aliases: Mapping[str, str] = DEFAULT_ALIASES,
) -> EegResult:
    """Preprocess one resting EEG recording (see the module docstring and ``DEFAULTS``).

    Returns an ``EegResult`` whose ``raw`` is the clean recording on ``common_channels`` with
    BAD_segment annotations, or None with ``sidecar["exclusion"]`` set when data quality is too
    poor. Raises ``EegError`` for input a person must fix, ``ConfigError`` for bad settings.
    """
    settings = check_settings(settings)
    raw, meta = read_recording(bids_path_or_file)
    source = str(raw.filenames[0])
    steps: list[dict] = []
    sidecar: dict[str, Any] = {
        "source": source,
        "exclusion": None,
        "sfreq_recorded": raw.info["sfreq"],
        "duration_s": float(raw.times[-1] + 1 / raw.info["sfreq"]),
        "steps": steps,
        "settings": settings,
        "versions": _versions(),
        "warnings": [],
    }
    result = EegResult(source=source, raw=None, sidecar=sidecar)
    n_needed = min_eeg_channels(common_channels, settings["max_interpolated"])
    eeg = [raw.ch_names[i] for i in mne.pick_types(raw.info, eeg=True, exclude=[])]
    if len(eeg) < n_needed:
        n_common = len(common_channels)
        why = (
            f"to fill the {n_common}-channel common set with at most"
            f" {_limit(settings['max_interpolated'], n_common)} interpolated (max_interpolated"
            f" {settings['max_interpolated']:g})"
            if n_needed > MIN_EEG_CHANNELS
            else "for bad-channel detection (each channel is compared with its 3 best-correlated"
            " others) and ICA"
        )
        sidecar["exclusion"] = (
            f"only {len(eeg)} EEG channels ({', '.join(eeg) or 'none'}); at least {n_needed} are"
            f" needed {why}. Fix: none if the recording has no more; if channels.tsv gives EEG"
            " channels another type (MISC, EOG), correct their type there."
        )
        return result
    _check_duration(raw, meta, settings, sidecar)
    if sidecar["exclusion"]:
        return result
    if settings["conditions"]:
        mark_conditions(raw, settings["conditions"], source, sidecar)
    if sidecar["duration_s"] < settings["min_clean_s"]:
        sidecar["exclusion"] = (
            f"recording too short ({sidecar['duration_s']:.1f} s; at least "
            f"{settings['min_clean_s']:g} s of clean data needed)"
        )
        return result
    margin = 0.5 / settings["l_freq"] if settings["l_freq"] else 0.0
    nonfinite = _mark_nonfinite(raw, margin)
    sidecar["nonfinite_s"] = nonfinite["seconds"]
    if nonfinite["seconds"] or nonfinite["channels"]:
        steps.append(
            {"step": "nonfinite", "annotation": NONFINITE_ANNOTATION, "margin_s": margin}
            | nonfinite
        )
        notes = []
        if nonfinite["seconds"]:
            notes.append(
                f"non-finite data (NaN/inf): {nonfinite['seconds']:.1f} s, left out as"
                f" {nonfinite['annotated_s']:.1f} s of {NONFINITE_ANNOTATION} (with"
                f" {margin:g}-s margins for filter edges)"
            )
        if nonfinite["channels"]:
            notes.append(
                "non-finite for most of the recording, marked bad: "
                + ", ".join(nonfinite["channels"])
            )
        sidecar["warnings"] += notes
    log: dict[str, Any] = {"step": "positions"}
    steps.append(log)
    try:
        dropped = _set_positions(raw, settings, source, log, aliases, n_needed)
    except EegExclusion as err:
        sidecar["exclusion"] = f"{err.problem} Fix: {err.fix}"
        return result
    if dropped:
        sidecar["warnings"].append(dropped)
    mapping = map_channel_names(
        raw,
        common_channels,
        aliases,
        pattern=settings["position_map_pattern"],
        max_mm=settings["position_map_max_mm"],
    )
    steps.append({"step": "rename", "mapping": mapping})
    n_eeg = len(mne.pick_types(raw.info, eeg=True, exclude=[]))
    with _quiet_ctx():
        result.psd_before = raw.compute_psd(
            fmax=min(raw.info["sfreq"] / 2, 100.0), picks="eeg", exclude=[], verbose=False
        )
    h_freq = settings["h_freq"]
    line = meta.get("PowerLineFrequency", raw.info["line_freq"])
    if settings["notch"] and isinstance(line, int | float) and line > 0:
        stop = raw.info["sfreq"] / 2
        if h_freq is not None:
            stop = min(stop, h_freq + min(max(0.25 * h_freq, 2.0), stop - h_freq))
        freqs = np.arange(line, stop, line)
        if len(freqs):
            raw.notch_filter(freqs, picks=["eeg", "eog"], verbose=False)
        steps.append({"step": "notch", "line_freq": float(line), "freqs": freqs.tolist()})
    if settings["l_freq"] is not None or h_freq is not None:
        raw.filter(settings["l_freq"], h_freq, picks=["eeg", "eog"], verbose=False)
        steps.append({"step": "bandpass", "l_freq": settings["l_freq"], "h_freq": h_freq})
    if settings["resample_sfreq"] and raw.info["sfreq"] != settings["resample_sfreq"]:
        raw.resample(settings["resample_sfreq"], verbose=False)
        steps.append({"step": "resample", "sfreq": settings["resample_sfreq"]})
    bads = {"flat": [], "noisy": []}
    if settings["bad_channels"]:
        found = find_bad_channels(raw, settings)
        bads = {k: [c for c in v if c not in nonfinite["channels"]] for k, v in found.items()}
        all_bads = bads["flat"] + bads["noisy"]
        raw.info["bads"] = sorted(set(raw.info["bads"]) | set(all_bads))
        steps.append({"step": "bad_channels", "method": settings["bad_channels"], **bads})
    bads["non_finite"] = nonfinite["channels"]
    sidecar["bad_channels"] = bads
    limit = _limit(settings["max_bad_channels"], n_eeg)
    n_bad = len(mne.pick_types(raw.info, eeg=True, exclude="bads"))
    n_bad = n_eeg - n_bad
    if n_bad > limit:
        sidecar["exclusion"] = f"too many bad channels ({n_bad} of {n_eeg}; limit {limit})"
        return result
    interpolated = [b for b in raw.info["bads"] if b in raw.ch_names]
    if interpolated and settings["interpolate_bads"]:
        with _quiet_ctx():
            raw.interpolate_bads(reset_bads=True, verbose=False)
        steps.append({"step": "interpolate_bads", "channels": interpolated})
    elif interpolated:
        raw.drop_channels(interpolated)
        steps.append({"step": "drop_bads", "channels": interpolated})
    if settings["average_reference"]:
        raw.set_eeg_reference("average", projection=False, verbose=False)
        steps.append({"step": "average_reference"})
    if settings["ica"]:
        log = {"step": "ica"}
        result.ica = _run_ica(raw, settings, log)
        steps.append(log)
        sidecar["ica"] = log
    if settings["segment_rejection"]:
        log = {"step": "segment_rejection"}
        _reject_segments(raw, settings, log)
        steps.append(log)
    total = raw.times[-1] + 1 / raw.info["sfreq"]
    clean = total - _bad_duration(raw)
    if "conditions" in sidecar:
        _condition_seconds(raw, sidecar["conditions"])
    sidecar.update(
        {
            "clean_duration_s": float(clean),
            "percent_kept": float(100 * clean / total),
            "sfreq": raw.info["sfreq"],
        }
    )
    result.raw_full = raw
    if clean < settings["min_clean_s"]:
        sidecar["exclusion"] = (
            f"too little clean data ({clean:.1f} s; at least {settings['min_clean_s']:g} s needed)"
        )
        return result
    try:
        result.raw, harmonised = harmonise(
            raw,
            common_channels,
            aliases,
            settings["max_interpolated"],
            pattern=settings["position_map_pattern"],
            max_mm=settings["position_map_max_mm"],
        )
    except EegExclusion as err:
        sidecar["exclusion"] = err.problem
        return result
    steps.append({"step": "harmonise", **harmonised})
    sidecar.update(
        {
            "channels": list(common_channels),
            "interpolated_common": harmonised["interpolated"],
        }
    )
    return result


def write_clean(result: EegResult, out_fif: str | Path, out_json: str | Path) -> list[Path]:
    """Write the JSON sidecar and, unless excluded, the clean FIF (``…_desc-clean_eeg.fif``)."""
    out_fif, out_json = Path(out_fif), Path(out_json)
    written = []
    if result.raw is not None and result.exclusion is None:
        with atomic_output(out_fif) as tmp:
            result.raw.save(tmp, overwrite=True, verbose=False)
        written.append(out_fif)
    write_text(out_json, json.dumps(result.sidecar, indent=2, default=_jsonable) + "\n")
    written.append(out_json)
    return written


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


QC_COLUMNS = [
    "cohort",
    "subject",
    "session",
    "task",
    "run",
    "source",
    "clean_file",
    "sfreq",
    "duration_s",
    "clean_duration_s",
    "nonfinite_s",
    "percent_kept",
    "n_bad_channels",
    "bad_channels",
    "n_ica_removed",
    "ica_removed_labels",
    "n_interpolated_common",
    "status",
    "reason",
]


def qc_row(result: EegResult | Mapping[str, Any], cohort: str = "") -> dict[str, Any]:
    """One row of the cohort EEG QC table (``QC_COLUMNS``), from a result or its sidecar.

    Status ``excluded`` (reason: the exclusion, then any warnings), ``warning`` (kept; reason: the
    sidecar's warnings, e.g. a truncated file or non-finite data) or ``ok``.
    """
    sidecar = result.sidecar if isinstance(result, EegResult) else result
    source = str(sidecar.get("source", ""))
    entities = mne_bids.get_entities_from_fname(Path(source).name, on_error="ignore")
    bads = sidecar.get("bad_channels") or {"flat": [], "noisy": []}
    bad_names = [c for kind in ("non_finite", "flat", "noisy") for c in bads.get(kind, [])]
    excluded = (sidecar.get("ica") or {}).get("excluded") or []
    exclusion = sidecar.get("exclusion") or ""
    notes = sidecar.get("warnings")
    if notes is None:  # sidecars written before "warnings" existed
        notes = [sidecar["truncated"]] if sidecar.get("truncated") and not exclusion else []
    status = EXCLUDED if exclusion else "warning" if notes else "ok"
    reason = "; ".join([exclusion, *notes] if exclusion else notes)
    return {
        "cohort": cohort,
        "subject": entities.get("subject"),
        "session": entities.get("session"),
        "task": entities.get("task"),
        "run": entities.get("run"),
        "source": source,
        "clean_file": sidecar.get("clean_file", ""),
        "sfreq": sidecar.get("sfreq"),
        "duration_s": sidecar.get("duration_s"),
        "clean_duration_s": sidecar.get("clean_duration_s"),
        "nonfinite_s": sidecar.get("nonfinite_s"),
        "percent_kept": sidecar.get("percent_kept"),
        "n_bad_channels": len(bad_names),
        "bad_channels": ";".join(bad_names),
        "n_ica_removed": len(excluded),
        "ica_removed_labels": ";".join(c["label"] for c in excluded),
        "n_interpolated_common": len(sidecar.get("interpolated_common") or []),
        "status": status,
        "reason": reason,
    }


def process_recording(
    recording: str | Path,
    settings: Mapping[str, Any],
    *,
    out_fif: str | Path,
    out_json: str | Path,
    out_report: str | Path,
    common_channels: list[str] = CHANNEL_SETS["1020_19"],
    aliases: Mapping[str, str] = DEFAULT_ALIASES,
    strict: bool = False,
) -> dict[str, Any]:
    """Preprocess one recording and write its clean FIF, JSON sidecar and report; return QC.

    The FIF is written only for a kept recording (the sidecar's ``clean_file`` names it; a stale
    one is removed first). Data-quality exclusions are recorded; input a person must fix
    (``EegError``) is recorded as an exclusion too unless ``strict``. Settings errors raise.
    """
    out_fif = Path(out_fif)
    out_fif.unlink(missing_ok=True)
    try:
        result = preprocess_recording(
            recording, settings, common_channels=common_channels, aliases=aliases
        )
    except EegExclusion as err:
        result = EegResult(str(recording), None, {"source": str(recording), "exclusion": str(err)})
    except EegError as err:
        if strict:
            raise
        sidecar = {"source": str(recording), "exclusion": f"{err.problem} Fix: {err.fix}"}
        result = EegResult(str(recording), None, sidecar)
    kept = result.raw is not None and result.exclusion is None
    result.sidecar["clean_file"] = str(out_fif) if kept else ""
    write_clean(result, out_fif, out_json)
    make_report(result, out_report)
    return qc_row(result)


def qc_table(sidecars: list[str | Path], cohort: str, inventory=None) -> pd.DataFrame:
    """The cohort's EEG QC table from the recordings' sidecars (``QC_COLUMNS``).

    Recordings the inventory already excluded (``inventory``, an ``mcsp.bids.Inventory``) are
    added with their reason, so the table accounts for every resting EEG recording.
    """
    rows = [qc_row(json.loads(Path(p).read_text()), cohort) for p in sidecars]
    if inventory is not None:
        table = inventory.table
        bad = table[(table["modality"] == "eeg") & ~table["status"].isin(["ok", "warning"])]
        for record in bad.to_dict("records"):
            rows.append(
                {
                    "cohort": cohort,
                    **{k: record.get(k) or None for k in ("subject", "session", "task", "run")},
                    "source": record.get("path", ""),
                    "status": record["status"],
                    "reason": f"inventory: {record['reason']}",
                }
            )
    df = pd.DataFrame(rows, columns=QC_COLUMNS)
    return df.sort_values(["subject", "session", "task", "run"], kind="stable").reset_index(
        drop=True
    )


def make_report(result: EegResult, out_html: str | Path) -> Path:
    """A per-recording ``mne.Report``: PSD before/after, bad channels, ICA components."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    title = Path(result.source).name
    report = mne.Report(title=f"EEG preprocessing: {title}", verbose=False)
    row = qc_row(result)
    html = "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in row.items())
    report.add_html(f"<table>{html}</table>", title="Summary", section="QC")
    fig, ax = plt.subplots(figsize=(7, 3.5))
    for label, spectrum in (("before", result.psd_before), ("after", _psd(result))):
        if spectrum is None:
            continue
        psd = spectrum.get_data().mean(axis=0) * 1e12
        ax.semilogy(spectrum.freqs, psd, label=label)
    ax.set(xlabel="Frequency (Hz)", ylabel="Mean PSD (µV²/Hz)")
    ax.legend()
    report.add_figure(fig, title="PSD before / after", section="QC")
    plt.close(fig)
    conditions = result.sidecar.get("conditions")
    if conditions:
        clean = conditions.get("clean_seconds", {})
        lines = [
            f"{k}: {v:.1f} s ({clean.get(k, 0):.1f} s clean)"
            for k, v in conditions.get("seconds", {}).items()
        ]
        lines.append(f"outside every condition: {conditions.get('outside_s', 0):.1f} s (not used)")
        if conditions["segments_from"] == "task":
            lines = ["no condition marked: the recording is used whole under its task"]
        report.add_html("<p>" + "<br>".join(lines) + "</p>", title="Conditions", section="QC")
    bads = result.sidecar.get("bad_channels", {})
    report.add_html(
        "<p>" + "<br>".join(f"{k}: {', '.join(v) or 'none'}" for k, v in bads.items()) + "</p>",
        title="Bad channels",
        section="QC",
    )
    if result.ica is not None:
        removed = result.sidecar.get("ica", {}).get("excluded", [])
        names = {c["index"]: f"IC{c['index']:02d} {c['label']}" for c in removed}
        with _quiet_ctx():
            figs = result.ica.plot_components(
                picks=range(min(result.ica.n_components_, 20)),
                res=32,
                sensors=False,
                contours=0,
                show=False,
                verbose=False,
            )
        for fig in figs if isinstance(figs, list) else [figs]:
            report.add_figure(fig, title="ICA components", section="ICA")
            plt.close(fig)
        report.add_html(
            "<p>Removed: " + (", ".join(names.values()) or "none") + "</p>",
            title="ICA removed",
            section="ICA",
        )
    out_html = Path(out_html)
    with atomic_output(out_html) as tmp:
        report.save(tmp, overwrite=True, open_browser=False, verbose=False)
    return out_html


def _psd(result: EegResult) -> mne.time_frequency.Spectrum | None:
    raw = result.raw_full if result.raw_full is not None else result.raw
    if raw is None:
        return None
    with _quiet_ctx():
        return raw.compute_psd(fmax=min(raw.info["sfreq"] / 2, 100.0), picks="eeg", verbose=False)
