"""Per-subject figures for the report: the fMRI connectome and a carpet plot of ROI time series."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from mcsp.exceptions import McspError
from mcsp.fmri import functional_connectivity
from mcsp.io import atomic_output


def _read_run(tsv: Path) -> tuple[pd.DataFrame, dict]:
    table = pd.read_csv(tsv, sep="\t")
    sidecar = tsv.with_suffix(".json")
    meta = json.loads(sidecar.read_text()) if sidecar.is_file() else {}
    return table, meta


def fmri_subject_figure(timeseries: Sequence[str | Path], out_png: str | Path) -> Path:
    """Connectome (mean Fisher-z FC over the subject's kept runs) beside the first run's carpet.

    ROIs are ordered by network when the atlas has networks (labels ``Network_…`` or the
    sidecar's order otherwise). Runs without data (excluded) are listed in the title.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from nilearn.plotting import plot_matrix

    paths = [Path(p) for p in timeseries]
    if not paths:
        raise McspError(f"{out_png}: no time series given for the figure.")
    runs = [(p, *_read_run(p)) for p in paths]
    kept = [(p, t, m) for p, t, m in runs if len(t) >= 3]
    excluded = [p.name for p, t, _ in runs if len(t) < 3]
    subject = paths[0].name.split("_")[0]
    fig, axes = plt.subplots(1, 2, figsize=(13, 5.5), gridspec_kw={"width_ratios": [1, 1.4]})
    if kept:
        fc = np.mean([functional_connectivity(t) for _, t, _ in kept], axis=0)
        plot_matrix(
            fc, axes=axes[0], vmin=-1, vmax=1, colorbar=True, title="FC (Fisher z)", cmap="RdBu_r"
        )
        path, table, meta = kept[0]
        data = table.to_numpy(dtype=float).T
        axes[1].imshow(data, aspect="auto", cmap="gray", vmin=-2.5, vmax=2.5, interpolation="none")
        tr = meta.get("RepetitionTime")
        axes[1].set(
            xlabel=f"kept volume (TR {tr:g} s)" if tr else "kept volume",
            ylabel=f"ROI ({table.shape[1]})",
            title=f"Carpet: {path.name.split('_atlas-')[0]}",
        )
    else:
        for ax in axes:
            ax.axis("off")
        axes[0].text(0.5, 0.5, "every run excluded (see the QC table)", ha="center")
    title = f"sub-{subject.removeprefix('sub-')}: {len(kept)} run(s)"
    if excluded:
        title += f"; excluded: {', '.join(excluded)}"
    fig.suptitle(title)
    out_png = Path(out_png)
    with atomic_output(out_png) as tmp:
        fig.savefig(tmp, dpi=80, bbox_inches="tight")
    plt.close(fig)
    return out_png
