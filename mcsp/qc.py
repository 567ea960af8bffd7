"""A person-readable summary of a cohort's QC tables (``fmri_qc.tsv``, ``eeg_qc.tsv``)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from mcsp.bids import USABLE
from mcsp.exceptions import McspError


def _reasons(table: pd.DataFrame, width: int = 110) -> list[str]:
    """Non-ok rows grouped by reason, with file paths and numbers blanked out."""
    bad = table[table["status"] != "ok"]
    kinds = (
        bad["reason"]
        .fillna("(no reason)")
        .str.replace(r"/\S+", "<file>", regex=True)
        .str.replace(r"\d+(\.\d+)?", "N", regex=True)
        .str.slice(0, width)
    )
    return [f"    {n} × {kind}" for kind, n in kinds.value_counts().items()]


def summarise(folder: str | Path) -> str:
    """Status counts, key QC medians and exclusion reasons of ``results/<cohort>/``'s tables."""
    folder = Path(folder)
    lines: list[str] = []
    fmri, eeg = folder / "fmri_qc.tsv", folder / "eeg_qc.tsv"
    if not fmri.is_file() and not eeg.is_file():
        raise McspError(f"{folder}: no fmri_qc.tsv or eeg_qc.tsv; run the workflow first.")
    if fmri.is_file():
        table = pd.read_csv(fmri, sep="\t", dtype={"subject": str})
        ok = table[table["status"].isin(USABLE)]  # what the store uses
        lines.append(
            f"fMRI QC ({fmri}): {len(table)} rows, "
            + ", ".join(f"{n} {s}" for s, n in table["status"].value_counts().items())
        )
        if len(ok):
            lines.append(
                f"  kept runs: median mean FD {ok['mean_fd'].median():.3f} mm, median "
                f"{ok['pct_censored'].median():.1f}% censored, median {ok['n_kept'].median():.0f}"
                f" volumes kept, {int(ok['zero_variance_rois'].notna().sum())} runs "
                "with zero-variance ROIs"
            )
        lines += _reasons(table)
    if eeg.is_file():
        table = pd.read_csv(eeg, sep="\t", dtype={"subject": str})
        ok = table[table["status"].isin(USABLE)]  # what the store uses
        lines.append(
            f"EEG QC ({eeg}): {len(table)} rows, "
            + ", ".join(f"{n} {s}" for s, n in table["status"].value_counts().items())
        )
        if len(ok):
            lines.append(
                f"  kept recordings: median {ok['percent_kept'].median():.1f}% of data kept, "
                f"mean {ok['n_bad_channels'].mean():.2f} bad channels, mean "
                f"{ok['n_ica_removed'].mean():.2f} ICA components removed, mean "
                f"{ok['n_interpolated_common'].mean():.2f} common channels interpolated"
            )
        lines += _reasons(table)
    return "\n".join(lines)


def lost_modalities(results_dir: str | Path, cohorts: list[str]) -> list[str]:
    """One message per cohort and modality whose recordings were all excluded (none usable)
    although the cohort has some, with the most common reason: printed at the end of a run, so
    a modality that vanished is not only an ``n/a`` in the evaluation table."""
    messages = []
    for cohort in cohorts:
        for modality, name in (("fmri", "fMRI runs"), ("eeg", "EEG recordings")):
            path = Path(results_dir) / cohort / f"{modality}_qc.tsv"
            if not path.is_file():
                continue
            table = pd.read_csv(path, sep="\t", dtype={"subject": str})
            tried = table[table["status"].isin(("ok", "warning", "excluded"))]
            if tried.empty or tried["status"].isin(USABLE).any():
                continue
            reasons = _reasons(tried)
            messages.append(
                f"cohort {cohort}: all {len(tried)} {name} were excluded, so the study has none "
                f"from it; most common reason:\n{reasons[0] if reasons else '    (none given)'}\n"
                f"  See {path} (`mcsp qc {path.parent}`) and fix the cause or the settings."
            )
    return messages
