"""Synthetic cohorts of format synthetic: contract files, determinism, store, planted effects."""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
from pathlib import Path

import mne
import pandas as pd
import pytest

from mcsp.config import load_cohort, validate
from mcsp.eeg import CHANNEL_SETS
from mcsp.store import build_store
from mcsp.synth import SynthError, write_contract_cohort

from .conftest import REPO, run, tool

sys.path.insert(0, str(REPO / "benchmarks"))
from bench_planted_ceiling import ceilings, planted_features, read_truth  # noqa: E402

LABELS = {d: {"column": d, "mapping": {"control": 0, "case": 1}} for d in ("ASD", "ADHD", "MDD")}


def _cohort(subjects: int, seed: int = 3, **sizes) -> dict:
    spec = {
        "name": "tiny",
        "format": "synthetic",
        "synthetic": {"subjects": subjects, "seed": seed, **sizes},
        "labels": {**LABELS, "sex": {"column": "sex", "mapping": {"M": 0, "F": 1}}},
    }
    return validate(spec, "cohort", "test cohort")


TINY = {"fmri_volumes": 40, "eeg_duration_s": 8}
STUDY = {"fmri_window": 20, "fmri_stride": 10, "eeg_segment_s": 4.0, "eeg_stride_s": 4.0}


def _hashes(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    results = tmp_path_factory.mktemp("contract") / "results"
    truth = write_contract_cohort(_cohort(16, **TINY), results / "tiny")
    return results, truth


def test_contract_files_have_real_shapes(tiny: tuple[Path, dict]) -> None:
    results, truth = tiny
    folder = results / "tiny"
    inventory = pd.read_csv(folder / "inventory.tsv", sep="\t", dtype=str)
    assert inventory["subject"].nunique() == 16
    assert (inventory["status"] == "ok").all()
    assert set(inventory["modality"]) == {"fmri", "eeg"}
    for label in ("ASD", "ADHD", "MDD"):
        assert (inventory.drop_duplicates("subject")[label] == "1").sum() == 8
    fmri = pd.read_csv(folder / "fmri_qc.tsv", sep="\t", dtype=str)
    series = pd.read_csv(fmri["timeseries"].iloc[0], sep="\t")
    assert series.shape == (40, 300) and series.columns[0] == "001_Auditory"
    sidecar = json.loads(Path(fmri["timeseries"].iloc[0]).with_suffix(".json").read_text())
    assert sidecar["RepetitionTime"] == 2.0
    eeg = pd.read_csv(folder / "eeg_qc.tsv", sep="\t", dtype=str)
    assert len(eeg) == 32
    raw = mne.io.read_raw_fif(eeg["clean_file"].iloc[0], verbose="error")
    assert raw.ch_names == CHANNEL_SETS["1020_19"] and raw.info["sfreq"] == 256.0
    assert raw.n_times == 8 * 256
    assert 1e-6 < raw.get_data().std() < 1e-4  # volts, tens of µV
    presentations = [s["mdd_presentation"] for s in truth["subjects"] if s["MDD"]]
    assert sorted(presentations) == ["eeg"] * 4 + ["fmri"] * 4
    assert (folder / "ground_truth.json").is_file()


def test_same_seed_gives_identical_files(tiny: tuple[Path, dict], tmp_path: Path) -> None:
    results, _ = tiny
    # the tables name their files by path: write the second copy where the first one was
    first = _hashes(results / "tiny")
    moved = tmp_path / "moved"
    shutil.move(results / "tiny", moved)
    try:
        write_contract_cohort(_cohort(16, **TINY), results / "tiny", n_jobs=2)
        assert _hashes(results / "tiny") == first
    finally:
        shutil.rmtree(results / "tiny", ignore_errors=True)
        shutil.move(moved, results / "tiny")
    other = write_contract_cohort(_cohort(16, seed=4, **TINY), tmp_path / "other")
    assert other["subjects"] != tiny[1]["subjects"]


def test_store_reads_the_contract_files(tiny: tuple[Path, dict], tmp_path: Path) -> None:
    results, _ = tiny
    config = validate(
        {"cohorts": ["tiny"], "study": {**STUDY, "folds": 2, "stratify_label": "MDD"}},
        "config",
        "test",
    )
    summary = build_store(config, results, tmp_path / "store")
    assert summary["n_subjects"] == 16
    assert summary["n_samples"] == {"fmri": 16 * 3, "eeg": 16 * 2 * 2}
    assert summary["shapes"]["fmri/spatial"] == [300, 300]
    assert summary["shapes"]["eeg/frequency"] == [19, 89]
    assert summary["labels"] == ["ASD", "ADHD", "MDD", "sex"]
    assert summary["n_excluded"] == 0


def test_planted_ceilings_point_the_planted_way(tmp_path: Path) -> None:
    results = tmp_path / "results"
    write_contract_cohort(_cohort(48, seed=5, fmri_volumes=60, eeg_duration_s=8), results / "tiny")
    config = validate({"cohorts": ["tiny"], "study": {**STUDY, "folds": 2}}, "config", "test")
    build_store(config, results, tmp_path / "store")
    truth = read_truth(None, results / "tiny")
    table = ceilings(planted_features(tmp_path / "store", truth), truth)
    auroc = dict(zip(table["feature"], table["auroc"], strict=True))
    assert auroc["asd_fc"] > 0.8 and auroc["adhd_theta_beta"] > 0.8
    # each modality sees half of the MDD cases, their sum all of them
    combined = auroc["mdd_fc + mdd_asymmetry"]
    assert combined > 0.85
    assert combined > auroc["mdd_fc"] + 0.05 and combined > auroc["mdd_asymmetry"] + 0.05
    assert max(auroc["mdd_fc"], auroc["mdd_asymmetry"]) < 0.9


def test_settings_are_checked() -> None:
    cohort = _cohort(16)
    with pytest.raises(SynthError, match="unknown effect"):
        write_contract_cohort({**cohort, "synthetic": {"effects": {"sd": 1}}}, "/nonexistent")
    bad = {**cohort, "labels": {"ASD": {"column": "diagnosis", "mapping": {"ASD": 1}}}}
    with pytest.raises(SynthError, match="not in the synthetic participants"):
        write_contract_cohort(bad, "/nonexistent")


def test_checks_config_resolves_without_bids_rules(tmp_path: Path) -> None:
    cohort = load_cohort(REPO / "config" / "cohorts" / "synthchecks.yaml")
    assert cohort["format"] == "synthetic"
    result = run(
        [
            tool("snakemake"),
            "-n",
            "--quiet",
            "rules",
            "--configfile",
            "config/experiments/synthetic_checks.yaml",
            "--cores",
            "1",
            "--config",
            f"results_dir={tmp_path / 'results'}",
            f"work_dir={tmp_path / 'work'}",
        ],
        cwd=REPO,
        timeout=300,
    )
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    assert "synth_contract" in out and "store" in out and "pretrain" in out
    for rule in ("cohort_inventory", "eeg_clean", "fmri_timeseries", "import_timeseries"):
        assert rule not in out


def test_check_table_pairs_runs_by_fold_and_seed() -> None:
    from bench_synthetic_checks import check_table

    rows = []
    for fold in ("0", "1", "2", "pooled"):
        for seed in ("0", "1"):
            gain = {"0": 0.10, "1": 0.20, "2": 0.30, "pooled": 0.20}[fold]
            for experiment, model, value in (
                ("fused", "mcsp", 0.6 + gain),
                ("fmri_only", "mcsp", 0.6),
                ("eeg_only", "mcsp", 0.6 + gain + 0.01),
            ):
                rows.append(
                    {"experiment": experiment, "model": model, "task": "MDD", "fold": fold,
                     "seed": seed, "metric": "auroc", "value": value}
                )  # fmt: skip
    table = check_table(pd.DataFrame(rows)).set_index("check")
    fmri = table.loc["MDD: fused > fMRI alone"]
    assert fmri["delta"] == "+0.200 ± 0.089" and fmri["runs"] == 6 and bool(fmri["pass"])
    assert fmri["ratio"] == pytest.approx(0.2 / 0.0894427, abs=0.01)
    eeg = table.loc["MDD: fused > EEG alone"]
    assert eeg["delta"] == "-0.010 ± 0.000" and not bool(eeg["pass"])
    assert len(table) == 2  # no few_labels runs: those checks are not reported
