"""ComBat fitted on training subjects and applied to others."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mcsp.baselines import run_baseline
from mcsp.exceptions import McspError
from mcsp.harmonize import ComBat

from .test_baselines import store  # noqa: F401  (the module-scoped store fixture)


def _sites(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Three sites with their own offset and scale of 20 features; 30 samples each."""
    rng = np.random.default_rng(seed)
    sites = np.repeat(["A", "B", "C"], 30)
    offset = {"A": 0.0, "B": 2.0, "C": -1.0}
    scale = {"A": 1.0, "B": 2.0, "C": 0.5}
    x = rng.normal(size=(90, 20))
    x = np.stack([x[i] * scale[s] + offset[s] for i, s in enumerate(sites)])
    return x, sites


def test_transform_of_the_fitted_samples_is_neurocombats_output() -> None:
    from neuroCombat import neuroCombat

    x, sites = _sites()
    with contextlib.redirect_stdout(io.StringIO()):
        expected = neuroCombat(x.T, pd.DataFrame({"site": sites}), "site")["data"].T
    np.testing.assert_allclose(ComBat().fit(x, sites).transform(x, sites), expected, atol=1e-8)


def test_site_effects_removed_from_unseen_subjects() -> None:
    x, sites = _sites()
    train = np.arange(90) % 3 != 0
    combat = ComBat().fit(x[train], sites[train])
    held_out = combat.transform(x[~train], sites[~train])
    means = pd.DataFrame(held_out).groupby(sites[~train]).mean().mean(axis=1)
    raw = pd.DataFrame(x[~train]).groupby(sites[~train]).mean().mean(axis=1)
    assert np.ptp(means) < 0.3 < 2.5 < np.ptp(raw)
    with pytest.raises(McspError, match=r"without sites \['D'\]"):
        combat.transform(x[:2], ["A", "D"])
    with pytest.raises(McspError, match="two or more sites"):
        ComBat().fit(x[:30], sites[:30])


def test_baseline_with_combat_needs_sites(store: Path) -> None:  # noqa: F811
    with pytest.raises(McspError, match="two or more sites"):
        run_baseline(store, "fc_logreg", "ASD", 0, settings={"harmonize": "combat"})
    with pytest.raises(McspError, match="harmonize 'yes'"):
        run_baseline(store, "fc_logreg", "ASD", 0, settings={"harmonize": "yes"})
