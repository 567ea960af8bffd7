"""The workflow with real snakemake: dry-run from the repository and a real local run."""

from __future__ import annotations

import copy
import json
import platform
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from .conftest import REPO, TINY_SETTINGS, run, tool, write_workflow_config


def test_dry_run_from_repository_root() -> None:
    result = run([tool("snakemake"), "-n", "--forceall", "--quiet", "rules"], cwd=REPO, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout + result.stderr
    assert "synth" in out and "cohort_inventory" in out


def test_bad_config_is_named(tmp_path: Path) -> None:
    config = write_workflow_config(tmp_path)
    data = yaml.safe_load(config.read_text())
    data["synth"]["subjcts"] = 3
    config.write_text(yaml.safe_dump(data))
    result = run(
        [tool("snakemake"), "-s", str(REPO / "Snakefile"), "--configfile", str(config), "-n"],
        cwd=tmp_path,
        timeout=300,
    )
    assert result.returncode != 0
    assert "did you mean 'synth.subjects'?" in result.stdout + result.stderr


def test_missing_bids_root_is_named(tmp_path: Path) -> None:
    config = write_workflow_config(tmp_path, activate=False)
    result = run(
        [tool("snakemake"), "-s", str(REPO / "Snakefile"), "--configfile", str(config), "-n"],
        cwd=tmp_path,
        timeout=300,
    )
    assert result.returncode != 0
    assert "does not exist" in result.stdout + result.stderr


def test_two_cohorts_on_one_folder_are_refused(tmp_path: Path, tiny_cohort: Path) -> None:
    """A cohort file copied under a new name would put every subject in the store twice."""
    config = write_workflow_config(tmp_path, bids=tiny_cohort)
    cohorts = tmp_path / "config" / "cohorts"
    copy_ = yaml.safe_load((cohorts / "synthetic.yaml").read_text())
    copy_["name"] = "synthcopy"
    (cohorts / "synthcopy.yaml").write_text(yaml.safe_dump(copy_))
    data = yaml.safe_load(config.read_text())
    data["cohorts"] = ["synthetic", "synthcopy"]
    config.write_text(yaml.safe_dump(data))
    cmd = [tool("snakemake"), "-s", str(REPO / "Snakefile"), "--configfile", str(config), "-n"]
    result = run(cmd, cwd=tmp_path, timeout=300)
    assert result.returncode != 0
    out = result.stdout + result.stderr
    assert "'synthetic'" in out and "'synthcopy'" in out and "read the same input folder" in out


def test_conflicting_participant_rows_stop_the_inventory(tmp_path: Path, tiny_cohort: Path) -> None:
    """A participant listed twice with different labels: the run stops naming the rows."""
    bids = tmp_path / "bids"
    shutil.copytree(tiny_cohort, bids)
    participants = bids / "participants.tsv"
    lines = participants.read_text().splitlines()
    header, first = lines[0].split("\t"), lines[1].split("\t")
    column = next(c for c in ("ADHD", "ASD", "diagnosis", "sex") if c in header)
    k = header.index(column)
    other = next(row.split("\t")[k] for row in lines[2:] if row.split("\t")[k] != first[k])
    twin = list(first)
    twin[k] = other
    participants.unlink()
    participants.write_text("\n".join([*lines, "\t".join(twin)]) + "\n")
    config = write_workflow_config(tmp_path, bids=bids)
    target = str(tmp_path / "results" / "synthetic" / "inventory.tsv")
    result = run(_snakemake(tmp_path, config, target), cwd=tmp_path, timeout=300)
    assert result.returncode != 0
    out = result.stdout + result.stderr
    assert "listed more than once with different values" in out and first[0] in out
    assert not Path(target).exists()


def test_a_second_run_into_the_same_results_folder_stops(tmp_path: Path) -> None:
    """Another live run (another checkout) holds results_dir: this run stops before any job."""
    config = write_workflow_config(tmp_path, subjects=2)
    results = tmp_path / "results"
    results.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
    try:
        (results / ".mcsp-run.lock").write_text(
            json.dumps({"host": platform.node(), "pid": holder.pid, "cwd": "/other/checkout"})
        )
        target = str(results / "synthetic" / "inventory.tsv")
        result = run(_snakemake(tmp_path, config, target), cwd=tmp_path, timeout=300)
    finally:
        holder.kill()
        holder.wait()
    assert result.returncode != 0
    out = result.stdout + result.stderr
    assert f"PID {holder.pid}" in out and "/other/checkout" in out
    assert not (tmp_path / "resources" / "synthetic").exists()  # no job ran


def _snakemake(root: Path, config: Path, *extra: str) -> list[str]:
    return [
        tool("snakemake"),
        "-s",
        str(REPO / "Snakefile"),
        "--profile",
        str(REPO / "workflow" / "profiles" / "local"),
        "--configfile",
        str(config),
        "--cores",
        "2",
        *extra,
    ]


@pytest.mark.workflow
def test_local_run_generates_cohort_and_inventory(tmp_path: Path) -> None:
    config = write_workflow_config(tmp_path, subjects=10)
    target = str(tmp_path / "results" / "synthetic" / "inventory.tsv")
    cmd = _snakemake(tmp_path, config, target)
    result = run(cmd, cwd=tmp_path, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    bids = tmp_path / "resources" / "synthetic"
    assert (bids / "code" / "ground_truth.json").is_file()
    table = pd.read_csv(target, sep="\t", dtype=str)
    assert set(table["modality"]) == {"fmri", "eeg"}
    assert table["subject"].nunique() == 10
    summary = (tmp_path / "results" / "synthetic" / "inventory.txt").read_text()
    assert "synthetic" in summary
    assert (tmp_path / "results" / "logs" / "synth.log").is_file()
    assert not (tmp_path / "results" / ".mcsp-run.lock").exists()  # released at the end
    again = run([*cmd, "-n"], cwd=tmp_path, timeout=300)
    assert "Nothing to be done" in again.stdout + again.stderr


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.unlink()  # the copy may be a hard link or read-only: write a new file
    path.write_bytes(data[: len(data) // 3])


def _nan_second(vhdr: Path, start_s: float) -> None:
    """One second of NaN on every channel of a BrainVision recording (float32, multiplexed)."""
    header = vhdr.read_text()
    assert "IEEE_FLOAT_32" in header and "MULTIPLEXED" in header
    fields = dict(line.split("=", 1) for line in header.splitlines() if "=" in line)
    n_channels, sfreq = int(fields["NumberOfChannels"]), 1e6 / float(fields["SamplingInterval"])
    path = vhdr.with_suffix(".eeg")
    data = np.fromfile(path, dtype="<f4").reshape(-1, n_channels)
    data[int(start_s * sfreq) : int((start_s + 1) * sfreq)] = np.nan
    path.unlink()
    data.tofile(path)


@pytest.fixture(scope="module")
def branches(tiny_cohort: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The whole workflow on a copy of the tiny cohort with planted faults: a broken BOLD, a
    truncated EEG, a second of NaN in another EEG, and a backup copy of a subject's folder."""
    root = tmp_path_factory.mktemp("branches")
    bids = root / "bids"
    shutil.copytree(tiny_cohort, bids)
    deriv = bids / "derivatives" / "fmriprep"
    bold = sorted(deriv.glob("sub-*/ses-1/func/*_desc-preproc_bold.nii.gz"))[0]
    eeg = sorted(bids.glob("sub-*/ses-1/eeg/*_task-eyesopen_eeg.eeg"))[-1]
    _truncate(bold)
    _truncate(eeg)
    nan_eeg = sorted(bids.glob("sub-*/ses-1/eeg/*_task-eyesclosed_eeg.vhdr"))[0]
    _nan_second(nan_eeg, 2.0)
    backed_up = sorted(bids.glob("sub-*"))[0]
    shutil.copytree(backed_up, backed_up.with_name(backed_up.name + "-bak"))
    settings = copy.deepcopy(TINY_SETTINGS)
    # a second experiment fine-tunes from per-fold pretrainings that never saw the test fold
    settings["evaluate"]["experiments"] = {
        "main": {},
        "heldout": {"models": ["mcsp"], "pretrain_scope": "train_folds"},
        # a pretraining variant: the spatial domain only, its own job and folder
        "spatial": {"models": ["mcsp"], "pretrain_variant": "S"},
    }
    # every test fold of a (experiment, model, task, seed) in one job
    settings["evaluate"]["batch_folds"] = True
    settings["pretrain"]["variants"] = {"S": {"model": {"domains": ["spatial"]}}}
    settings["report"] = {
        "tables": {
            "main": {"rows": [{"experiment": "main"}]},
            "domains": {
                "reference": {"experiment": "main", "model": "mcsp"},
                "rows": [
                    {"experiment": "spatial", "model": "mcsp", "label": "S"},
                    {"experiment": "main", "model": "mcsp", "label": "S+T+F"},
                ],
            },
        }
    }
    config = write_workflow_config(root, bids=bids, settings=settings)
    result = run(_snakemake(root, config), cwd=root, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    results = root / "results" / "synthetic"
    return {
        "root": root,
        "config": config,
        "results": results,
        "bold": bold,
        "eeg": eeg,
        "nan_eeg": nan_eeg,
        "backed_up": backed_up.name.removeprefix("sub-"),
    }


def _read(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, sep="\t", dtype={"subject": str, "session": str, "run": str})


@pytest.mark.workflow
def test_fmri_branch_outputs_and_qc(branches: dict) -> None:
    from mcsp.atlases import get_atlas

    results = branches["results"]
    inventory = _read(results / "inventory.tsv")
    usable = inventory[(inventory["modality"] == "fmri") & inventory["status"].isin(["ok"])]
    qc = _read(results / "fmri_qc.tsv")
    ran = qc[qc["status"].isin(["ok", "excluded"]) & qc["task"].notna()]
    ran = ran[~ran["reason"].fillna("").str.startswith("inventory:")]  # the backup's files
    assert len(ran) == len(usable) >= 8
    broken = qc[qc["subject"] == branches["bold"].name.split("_")[0].removeprefix("sub-")]
    broken = broken[broken["session"] == "1"].iloc[0]
    assert broken["status"] == "excluded" and branches["bold"].name in broken["reason"]
    labels = get_atlas("seitzman300").labels
    ok = qc[qc["status"] == "ok"]
    # the tiny cohort's 40-volume runs may be too short to band-pass: excluded, with that reason
    short = qc[(qc["status"] == "excluded") & qc["reason"].str.startswith("run too short")]
    assert len(ok) + len(short) == len(usable) - 1 and len(ok) >= 4
    for row in ok.itertuples():
        table = pd.read_csv(row.timeseries, sep="\t")
        assert list(table.columns) == labels and len(table) == row.n_kept
        assert np.abs(table.mean()).max() < 0.05  # standardised (zscore_sample)
        assert abs(table.std().median() - 1) < 1e-3
        sidecar = json.loads(Path(row.timeseries).with_suffix(".json").read_text())
        assert sidecar["RepetitionTime"] > 0 and sidecar["ConfoundStrategy"] == "simple"
        assert sidecar["LowPass"] == 0.1 and sidecar["HighPass"] == 0.01
    # subjects without fMRI appear as missing, with the inventory's reason
    assert set(qc.loc[qc["status"] == "missing", "reason"].str[:10]) <= {"inventory:"}
    figures = sorted((results / "figures").glob("sub-*_atlas-seitzman300_fmri.png"))
    assert len(figures) == usable["subject"].nunique()


@pytest.mark.workflow
def test_eeg_branch_outputs_and_qc(branches: dict) -> None:
    import mne

    results = branches["results"]
    inventory = _read(results / "inventory.tsv")
    usable = inventory[(inventory["modality"] == "eeg") & inventory["status"].isin(["ok"])]
    qc = _read(results / "eeg_qc.tsv")
    ran = qc[qc["status"].isin(["ok", "excluded", "warning"]) & qc["task"].notna()]
    ran = ran[~ran["reason"].fillna("").str.startswith("inventory:")]  # the backup's files
    assert len(ran) == len(usable) >= 16
    stem = branches["eeg"].name.removesuffix("_eeg.eeg")
    broken = qc[qc["source"].fillna("").str.contains(stem)].iloc[0]
    assert broken["status"] == "excluded" and broken["reason"].startswith("truncated: ")
    nan_stem = branches["nan_eeg"].name.removesuffix("_eeg.vhdr")
    nan_row = qc[qc["source"].fillna("").str.contains(nan_stem)].iloc[0]
    assert nan_row["status"] == "warning" and "non-finite data" in nan_row["reason"]
    assert nan_row["nonfinite_s"] == pytest.approx(1.0, abs=0.01)
    kept = qc[qc["status"].isin(["ok", "warning"])]
    assert len(kept) >= len(usable) - 3, qc[["subject", "task", "status", "reason"]]
    ok = qc[qc["status"] == "ok"]
    for row in ok.itertuples():
        raw = mne.io.read_raw_fif(row.clean_file, verbose=False)
        assert raw.info["sfreq"] == 256.0 and len(raw.ch_names) == 19
        report = Path(row.clean_file.replace("_desc-clean_eeg.fif", "_report.html"))
        assert "PSD before / after" in report.read_text()
    assert not list((results / "eeg").rglob(f"{stem}_desc-clean_eeg.fif"))


@pytest.mark.workflow
def test_backup_folder_is_excluded_and_the_subject_kept(branches: dict) -> None:
    inventory = _read(branches["results"] / "inventory.tsv")
    subject = branches["backed_up"]
    copies = inventory[inventory["reason"].fillna("").str.contains(f"sub-{subject}-bak/")]
    assert len(copies) >= 2 and (copies["status"] == "excluded").all()
    real = inventory[(inventory["subject"] == subject) & ~inventory.index.isin(copies.index)]
    assert not real["reason"].fillna("").str.contains("duplicate").any()
    assert (real["status"] != "excluded").any()
    assert f"{subject}-bak" not in set(inventory["subject"]) and f"{subject}bak" not in set(
        inventory["subject"]
    )


@pytest.mark.workflow
def test_store_built_from_both_branches(branches: dict) -> None:
    from mcsp.store import PairDataset, collate_pairs, read_store_table

    store = branches["root"] / "results" / "store"
    index = read_store_table(store, "index")
    pairs = read_store_table(store, "pairs")
    assert set(index["modality"]) == {"fmri", "eeg"}
    assert {"natural", "cross", "eeg_only"} <= set(pairs["kind"])
    folds = pairs.groupby("subject")["fold"].nunique()
    assert (folds == 1).all()  # a subject's pairs sit in one fold
    batch = collate_pairs([PairDataset(store)[i] for i in range(4)])
    assert batch["fmri"]["mask"].any() or batch["eeg"]["mask"].any()


@pytest.mark.workflow
def test_pretraining_and_evaluation_ran(branches: dict) -> None:
    results = branches["root"] / "results"
    summary = json.loads((results / "pretrain" / "default" / "all" / "summary.json").read_text())
    assert summary["steps"] == summary["total_steps"] > 0 and summary["exclude_folds"] == []
    curve = pd.read_csv(results / "pretrain" / "default" / "all" / "metrics.csv")
    assert curve.loc[curve["split"] == "train", "step"].iloc[-1] == summary["steps"]
    assert (curve["split"] == "val").sum() == summary["epochs"]
    metrics = pd.read_csv(results / "evaluation" / "metrics.tsv", sep="\t", dtype={"fold": str})
    main = metrics[metrics["experiment"] == "main"]
    assert set(main["model"]) == {"mcsp", "fc_logreg"} and set(metrics["task"]) == {"sex"}
    assert set(metrics["fold"]) == {"0", "1", "2", "pooled"}
    pooled = main[(main["fold"] == "pooled") & (main["metric"] == "auroc")]
    assert pooled["value"].between(0, 1).all() and len(pooled) == 2
    table = pd.read_csv(results / "evaluation" / "summary.tsv", sep="\t")
    assert {"per fold", "pooled folds"} == set(table["scope"])
    assert "mean ± sd" in table.columns
    paired = pd.read_csv(results / "evaluation" / "paired.tsv", sep="\t")
    rows = paired.set_index(["experiment", "model"])
    assert set(rows.index) == {("main", "mcsp"), ("heldout", "mcsp"), ("spatial", "mcsp")}
    assert (rows["reference"] == "fc_logreg").all()
    assert rows.loc[("heldout", "mcsp"), "reference_experiment"] == "main"
    # pairs are the folds where both AUROCs exist (a tiny test fold may hold one class only)
    auroc = metrics[(metrics["metric"] == "auroc") & (metrics["fold"] != "pooled")]
    finite = auroc.dropna(subset=["value"]).groupby(["experiment", "model"])["fold"].apply(set)
    shared = finite[("main", "fc_logreg")]
    for key, row in rows.iterrows():
        assert row["n_folds"] == len(finite[key] & shared) >= 1
    assert rows["ci_low"].le(rows["ci_high"]).all()


@pytest.mark.workflow
def test_variants_batched_folds_tables_and_report(branches: dict) -> None:
    """A pretraining variant has its own folder and model; batch_folds ran every fold of a
    (experiment, model, task, seed) in one job; the tables and the report end the run."""
    import torch

    results = branches["root"] / "results"
    variant = torch.load(results / "pretrain" / "S" / "all" / "model.pt", weights_only=False)
    assert variant["settings"]["model"]["domains"] == ["spatial"]
    job = results / "evaluation" / "spatial" / "mcsp" / "sex" / "fold-0_seed-0_job.json"
    assert json.loads(job.read_text())["pretrained"].endswith("pretrain/S/all/model.pt")
    logs = sorted((results / "logs" / "evaluation" / "main").rglob("*.log"))
    assert [log.name for log in logs] == ["seed-0.log", "seed-0.log"]
    assert all("fold 2:" in log.read_text() for log in logs)
    # the last fold of a batch gives the numbers a job of its own gives (same seed)
    from mcsp.config import validate
    from mcsp.experiments import predictions_path, run_job
    from mcsp.plan import job_settings

    config = validate(yaml.safe_load(branches["config"].read_text()), "config", "test")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the job ran (threads: 1)
    for model in ("mcsp", "fc_logreg"):
        alone, _ = run_job(
            results / "store",
            model,
            "sex",
            2,
            0,
            job_settings(config, "main", model),
            pretrained=results / "pretrain" / "default" / "all" / "model.pt",
        )
        out = results / "evaluation" / "main" / model / "sex" / "fold-2_seed-0_metrics.tsv"
        batched = pd.read_csv(predictions_path(out), sep="\t", dtype={"subject": str})
        assert np.allclose(batched["score"], alone["score"], atol=1e-6), model
    torch.set_num_threads(threads)
    tables = results / "report" / "tables"
    index = json.loads((tables / "index.json").read_text())
    assert sorted(t["name"] for t in index) == ["domains", "main"]
    for ext in ("tsv", "md", "tex", "html"):
        assert (tables / f"domains.{ext}").stat().st_size > 0
    domains = pd.read_csv(tables / "domains.tsv", sep="\t")
    assert list(domains["label"]) == ["S", "S+T+F"] and domains["n_subjects"].gt(0).all()
    assert "\\toprule" in (tables / "domains.tex").read_text()
    page = (results / "report" / "index.html").read_text()
    for section in ("cohorts", "fmri-qc", "eeg-qc", "store", "pretraining", "evaluation"):
        assert f'id="{section}"' in page
    assert "S+T+F" in page and "data:image/png;base64," in page
    provenance = json.loads((results / "provenance.json").read_text())
    assert provenance["config"]["pretrain"]["variants"]["S"]["model"] == {"domains": ["spatial"]}


@pytest.mark.workflow
def test_snakemake_report_holds_the_tables_and_the_page(branches: dict) -> None:
    import zipfile

    root, config = branches["root"], branches["config"]
    out = root / "snakemake_report.zip"
    result = run([*_snakemake(root, config), "--report", str(out)], cwd=root, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    names = [Path(n).name for n in zipfile.ZipFile(out).namelist()]
    for name in ("report.html", "index.html", "main.tsv", "domains.tsv", "summary.tsv"):
        assert name in names, name


@pytest.mark.workflow
def test_paper_experiment_set_plans_every_table(branches: dict) -> None:
    """config/experiments/paper.yaml on the study: the dry run has jobs for every row of every
    table (EEG rows too: the study has both modalities)."""
    root, config = branches["root"], branches["config"]
    paper = yaml.safe_load((REPO / "config" / "experiments" / "paper.yaml").read_text())
    results = root / "results"
    plan = run(
        [
            *_snakemake(root, config, "-n"),
            "--configfile",
            str(REPO / "config" / "experiments" / "paper.yaml"),
            "--config",
            f"results_dir={results}",
            f"work_dir={root / 'work'}",
        ],
        cwd=root,
        timeout=300,
    )
    planned = plan.stdout + plan.stderr
    assert plan.returncode == 0, planned[-3000:]
    for name, table in paper["report"]["tables"].items():
        for row in table["rows"]:
            models = (
                [row["model"]]
                if row.get("model")
                else paper["evaluate"]["experiments"][row["experiment"]]["models"]
            )
            for model in models:
                wanted = f"experiment={row['experiment']}, model={model}"
                assert wanted in planned or (row["experiment"], model) == ("main", "mcsp"), (
                    name,
                    wanted,
                )
    for variant in paper["pretrain"]["variants"]:
        # S has the settings of the study's own variant S: done already, not planned again
        done = (results / "pretrain" / variant / "all" / "model.pt").is_file()
        assert (f"variant={variant}," in planned) != done, variant


@pytest.mark.workflow
def test_train_folds_pretrainings_never_see_their_test_fold(branches: dict) -> None:
    """Experiment heldout (pretrain_scope train_folds): test fold K's jobs start from
    pretrain/default/fold-K, whose subjects exclude every subject of fold K."""
    results = branches["root"] / "results"
    index = pd.read_csv(results / "store" / "index.tsv", sep="\t", dtype={"subject": str})
    for fold in range(3):
        test_subjects = set(index.loc[index["fold"] == fold, "subject"])
        folder = results / "pretrain" / "default" / f"fold-{fold}"
        seen = pd.read_csv(folder / "subjects.tsv", sep="\t", dtype={"subject": str})
        assert test_subjects and not set(seen["subject"]) & test_subjects
        assert set(seen["subject"]) == set(index["subject"]) - test_subjects
        assert json.loads((folder / "summary.json").read_text())["exclude_folds"] == [fold]
        job = results / "evaluation" / "heldout" / "mcsp" / "sex" / f"fold-{fold}_seed-0_job.json"
        assert json.loads(job.read_text())["pretrained"] == str(folder / "model.pt")
        main = job.parents[3] / "main" / "mcsp" / "sex" / f"fold-{fold}_seed-0_job.json"
        assert json.loads(main.read_text())["pretrained"].endswith("pretrain/default/all/model.pt")


@pytest.mark.workflow
def test_qc_summary_command(branches: dict, capsys: pytest.CaptureFixture[str]) -> None:
    from mcsp.cli import main

    assert main(["qc", str(branches["results"])]) == 0
    out = capsys.readouterr().out
    assert "fMRI QC" in out and "EEG QC" in out
    assert "× BOLD file <file> cannot be read" in out  # the broken run, grouped by reason
    assert "× truncated: N s of the declared N s" in out


@pytest.mark.workflow
def test_rerun_has_nothing_to_do_and_strict_mode_fails(branches: dict) -> None:
    root, config = branches["root"], branches["config"]
    again = run([*_snakemake(root, config), "-n"], cwd=root, timeout=300)
    assert "Nothing to be done" in again.stdout + again.stderr
    # adding an experiment plans its jobs only: finished jobs keep their settings (params)
    grown = yaml.safe_load(config.read_text())
    grown["evaluate"]["experiments"]["extra"] = {"models": ["fc_logreg"]}
    # and a pretraining variant: its pretraining only, the other variants' stay done
    grown["pretrain"]["variants"]["T"] = {"model": {"domains": ["temporal"]}}
    grown["evaluate"]["experiments"]["temporal"] = {"models": ["mcsp"], "pretrain_variant": "T"}
    grown_config = root / "config" / "grown.yaml"
    grown_config.write_text(yaml.safe_dump(grown))
    plan = run([*_snakemake(root, grown_config), "-n"], cwd=root, timeout=300)
    planned = plan.stdout + plan.stderr
    assert "experiment=extra" in planned and "variant=T" in planned, planned[-3000:]
    assert "experiment=main" not in planned and "experiment=heldout" not in planned
    assert "variant=default" not in planned and "variant=S" not in planned
    bold = branches["bold"]
    stem = bold.name.split("_space-")[0]
    folder = bold.parent.relative_to(bold.parents[3])
    target = branches["results"] / "fmri" / folder / f"{stem}_atlas-seitzman300_timeseries.tsv"
    assert target.is_file()
    strict_cmd = [
        *_snakemake(root, config, str(target)),
        "--forcerun",
        str(target),
        "--config",
        "strict=True",
    ]
    strict = run(strict_cmd, cwd=root, timeout=300)
    out = strict.stdout + strict.stderr
    # strict: the backup folder's files stop the run at the inventory
    assert strict.returncode != 0 and "strict mode" in out
    assert f"sub-{branches['backed_up']}-bak/" in out
    shutil.rmtree(root / "bids" / f"sub-{branches['backed_up']}-bak")
    strict = run(strict_cmd, cwd=root, timeout=300)
    out = strict.stdout + strict.stderr
    assert strict.returncode != 0 and "FmriInputError" in out and bold.name in out
