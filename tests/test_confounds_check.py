"""`mcsp cohort check` reads one fMRIPrep confounds file and says which strategies it fits."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from mcsp.cohorts import check_cohort
from mcsp.exceptions import CohortError
from mcsp.fmri import check_confounds

from .test_bids import add_fmri, cohort_for, fmriprep_dir, make_dataset, prefix, write

MOTION = ["trans_x", "trans_y", "trans_z", "rot_x", "rot_y", "rot_z"]
SIMPLE = {"strategy": "simple", "strategy_options": {}, "fd_threshold": 0.5}


def _motion_only(path: Path, n: int = 20) -> Path:
    """An fMRIPrep-style confounds TSV with the 6 motion parameters and no expansions."""
    columns = [*MOTION, "csf", "white_matter", "global_signal", "framewise_displacement"]
    values = np.random.default_rng(0).normal(size=(n, len(columns)))
    pd.DataFrame(values, columns=columns).to_csv(path, sep="\t", index=False)
    return path


@pytest.fixture
def cohort_file(tmp_path: Path) -> Path:
    """A BIDS cohort with fMRIPrep derivatives whose confounds lack derivatives/power2 columns."""
    root = make_dataset(tmp_path / "bids")
    for sub in ("01", "02"):
        add_fmri(root, sub)
        folder, name = prefix(sub)
        _motion_only(fmriprep_dir(root) / folder / "func" / f"{name}_desc-confounds_timeseries.tsv")
    path = tmp_path / "cohorts" / "tiny.yaml"
    write(path, yaml.safe_dump(cohort_for(root)))
    return path


def test_check_confounds_reuses_the_strategy_logic(tmp_path: Path) -> None:
    check = check_confounds(_motion_only(tmp_path / "x_desc-confounds_timeseries.tsv"), SIMPLE)
    assert {name: fit.ok for name, fit in check.presets.items()} == {
        "simple": False,
        "scrubbing": False,
        "compcor": False,
        "ica_aroma": True,
    }
    assert "trans_x_derivative1" in check.chosen.missing and len(check.chosen.missing) == 18
    assert check.fix == {"motion": "basic"} and check.censor_problem is None
    fitted = check_confounds(check.confounds, {**SIMPLE, "strategy_options": check.fix})
    assert fitted.chosen.ok and fitted.fix is None
    no_fd = check_confounds(check.confounds, {**SIMPLE, "std_dvars_threshold": 1.5})
    assert "no 'std_dvars' column" in no_fd.censor_problem


def test_cohort_check_names_file_missing_columns_and_fix(cohort_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "results" / "inventory.tsv"
    inventory = check_cohort(cohort_file, out, fmri=SIMPLE)
    confounds = (
        tmp_path
        / "bids/derivatives/fmriprep/sub-01/func/sub-01_task-rest_desc-confounds_timeseries.tsv"
    )
    summary = out.with_suffix(".txt").read_text()
    assert (
        "fMRI confounds (sub-01_task-rest_desc-confounds_timeseries.tsv): fits ica_aroma (it also "
        "needs the AROMA BOLD of fMRIPrep < 23.1); does not fit simple (missing 18 columns: "
        "_derivative1, _power2, _derivative1_power2 of rot_x, rot_y, rot_z, trans_x, trans_y, "
        "trans_z), scrubbing (missing 6 columns: _derivative1, _power2, _derivative1_power2 of "
        "csf, white_matter), compcor (missing its JSON sidecar" in summary
    )
    problem = next(n for n in inventory.notes if n.startswith("Problem:"))
    assert problem == (
        f"Problem: {confounds} does not fit fmri.strategy 'simple' of config/config.yaml: "
        "missing 18 columns: _derivative1, _power2, _derivative1_power2 of rot_x, rot_y, rot_z, "
        "trans_x, trans_y, trans_z; every fMRI run of the cohort would be excluded. Fix: set "
        "fmri.strategy_options: {motion: basic} in config/config.yaml."
    )
    fixed = check_cohort(cohort_file, out, fmri={**SIMPLE, "strategy_options": {"motion": "basic"}})
    assert not any(n.startswith("Problem:") for n in fixed.notes)
    with pytest.raises(CohortError, match="strict mode and Problem: .* does not fit"):
        check_cohort(cohort_file, out, strict=True, fmri=SIMPLE)


def test_cohort_check_without_a_fitting_option(cohort_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "results" / "inventory.tsv"
    inventory = check_cohort(cohort_file, out, fmri={**SIMPLE, "strategy": "compcor"})
    problem = next(n for n in inventory.notes if n.startswith("Problem:"))
    assert "missing its JSON sidecar (desc-confounds_timeseries.json, needed for CompCor)" in (
        problem
    )
    assert problem.endswith(
        "Fix: no strategy_options make it fit: use fMRIPrep's full confounds output, or set "
        "fmri.strategy in config/config.yaml to one that fits (ica_aroma)."
    )


def test_cohort_check_strategy_nilearn_lacks(cohort_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "results" / "inventory.tsv"
    inventory = check_cohort(cohort_file, out, fmri={**SIMPLE, "strategy": "srp"})
    problem = next(n for n in inventory.notes if n.startswith("Problem:"))
    assert problem.startswith("Problem: fmri.strategy 'srp' of config/config.yaml is not a ")
    assert problem.endswith("Fix: set it to one of simple, scrubbing, compcor, ica_aroma.")
