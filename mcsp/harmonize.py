"""Site harmonisation fitted on training subjects only: ComBat.

ComBat (Johnson et al. 2007; Fortin et al. 2017 for neuroimaging) removes each site's additive
and multiplicative shift of every feature with empirical-Bayes estimates. The estimates come from
``neuroCombat.neuroCombat`` run on the training subjects alone; applying them to validation and
test subjects is written here because the package's ``neuroCombatFromTraining`` fails under
NumPy 2 (it converts a one-element array with ``int()``). No label is used: the model that is fitted
has the site as its only covariate.
"""

from __future__ import annotations

import contextlib
import io
from typing import Any

import numpy as np
import pandas as pd

from mcsp.exceptions import McspError


class ComBat:
    """ComBat with the site as batch, fitted on one set of subjects and applied to others.

    Args:
        parametric: parametric empirical-Bayes priors (ComBat's default) or non-parametric.
    """

    def __init__(self, parametric: bool = True) -> None:
        self.parametric = parametric

    def fit(self, x: np.ndarray, sites: Any) -> ComBat:
        """Estimate the site effects of ``x`` (samples × features) from these samples only."""
        from neuroCombat import neuroCombat

        sites = np.asarray(sites).astype(str)
        counts = pd.Series(sites).value_counts()
        if len(counts) < 2:
            raise McspError("ComBat needs training samples from two or more sites.")
        single = [str(s) for s in counts[counts < 2].index]
        if single:
            raise McspError(
                f"ComBat needs two or more training samples per site; sites {single} have one: "
                "drop harmonisation or merge those sites."
            )
        covariates = pd.DataFrame({"site": sites})
        with contextlib.redirect_stdout(io.StringIO()):  # the package prints its progress
            fitted = neuroCombat(
                np.asarray(x, dtype=float).T, covariates, "site", parametric=self.parametric
            )
        estimates = fitted["estimates"]
        self.sites_ = [str(s) for s in estimates["batches"]]
        self.mean_ = np.asarray(estimates["stand.mean"])[:, 0]
        self.scale_ = np.sqrt(np.asarray(estimates["var.pooled"])[:, 0])
        self.gamma_ = np.asarray(estimates["gamma.star"])
        self.delta_ = np.asarray(estimates["delta.star"])
        return self

    def transform(self, x: np.ndarray, sites: Any) -> np.ndarray:
        """Harmonised ``x``: standardised, site shift and scale removed, scaled back.

        Raises:
            McspError: a site the fit did not see.
        """
        sites = np.asarray(sites).astype(str)
        unseen = sorted(set(sites.tolist()) - set(self.sites_))
        if unseen:
            raise McspError(
                f"ComBat was fitted without sites {unseen}: a site must be in the training folds "
                "to be harmonised (harmonise with stratified folds, not leave-one-site-out)."
            )
        index = np.array([self.sites_.index(s) for s in sites])
        z = (np.asarray(x, dtype=float) - self.mean_) / self.scale_
        z = (z - self.gamma_[index]) / np.sqrt(self.delta_[index])
        return z * self.scale_ + self.mean_
