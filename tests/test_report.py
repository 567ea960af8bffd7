"""The HTML report of a results folder: sections, figures, missing inputs, the CLI, provenance."""

from __future__ import annotations

import base64
import io
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from mcsp import provenance
from mcsp.cli import main
from mcsp.report import SECTIONS, build_report

SECTION_IDS = [sid for sid, _ in SECTIONS]
COHORT = "tiny"


def _tsv(path: Path, rows: list[dict] | pd.DataFrame) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(path, sep="\t", index=False)


def _png_bytes(fmt: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (40, 30), (200, 60, 60)).save(buffer, format=fmt)
    return buffer.getvalue()


def _subjects() -> list[dict]:
    """Eight subjects on two sites; ASD balanced, sex one class in the test folds."""
    return [
        {"subject": f"{i:03d}", "site": "siteA" if i < 4 else "siteB", "ASD": i % 2, "sex": 1}
        for i in range(8)
    ]


def write_inventory(results: Path) -> None:
    rows = []
    for s in _subjects():
        for modality, task in (("fmri", "rest"), ("eeg", "eyesclosed")):
            excluded = s["subject"] == "007" and modality == "eeg"
            rows.append(
                {
                    "cohort": COHORT,
                    "subject": s["subject"],
                    "session": "",
                    "modality": modality,
                    "task": task,
                    "run": "",
                    "path": f"/data/sub-{s['subject']}_{modality}",
                    "sidecar": "",
                    "derivative": "",
                    "site": s["site"],
                    "ASD": s["ASD"],
                    "sex": s["sex"],
                    "status": "excluded" if excluded else "ok",
                    "reason": "no EEG recording for task(s) eyesclosed" if excluded else "",
                }
            )
    _tsv(results / COHORT / "inventory.tsv", rows)


def write_full(results: Path, tables: bool = False) -> Path:
    """A small results folder in the workflow's file formats, every section's inputs present."""
    rng = np.random.default_rng(0)
    write_inventory(results)
    cohort = results / COHORT
    _tsv(
        cohort / "fmri_qc.tsv",
        [
            {
                "cohort": COHORT,
                "subject": s["subject"],
                "session": "",
                "task": "rest",
                "run": "",
                "atlas": "ho",
                "timeseries": f"results/{COHORT}/fmri/sub-{s['subject']}_timeseries.tsv",
                "n_volumes": 200,
                "n_non_steady_state": 0,
                "n_censored": i,
                "pct_censored": i / 2,
                "n_kept": 200 - i,
                "mean_fd": 0.1 + 0.05 * i,
                "zero_variance_rois": "3455;1401" if i == 2 else "",
                "empty_rois": "3455" if i == 2 else "",
                "status": "ok",
                "reason": "",
            }
            for i, s in enumerate(_subjects())
        ],
    )
    _tsv(
        cohort / "eeg_qc.tsv",
        [
            {
                "cohort": COHORT,
                "subject": s["subject"],
                "session": "",
                "task": "eyesclosed",
                "run": "",
                "source": "",
                "clean_file": "",
                "sfreq": 128.0,
                "duration_s": 60.0,
                "clean_duration_s": 50.0 + i,
                "percent_kept": 80.0 + i,
                "n_bad_channels": i % 3,
                "bad_channels": "",
                "n_ica_removed": i % 2,
                "ica_removed_labels": "",
                "n_interpolated_common": 0,
                "status": "ok",
                "reason": "",
            }
            for i, s in enumerate(_subjects()[:7])
        ],
    )
    figure = cohort / "figures" / "sub-000_atlas-ho_fmri.png"
    figure.parent.mkdir(parents=True)
    figure.write_bytes(_png_bytes())
    report = cohort / "eeg" / "sub-000" / "eeg" / "sub-000_task-eyesclosed_report.html"
    report.parent.mkdir(parents=True)
    webp = base64.b64encode(_png_bytes("WEBP")).decode()
    report.write_text(
        f'<html><body><img class="figure-img" alt="PSD before / after"\n'
        f'  src="data:image/webp;base64,{webp}"></body></html>'
    )

    store = results / "store"
    store.mkdir()
    (store / "store.json").write_text(
        json.dumps(
            {
                "study": {"cohorts": [COHORT], "folds": 2, "split": "stratified_kfold"},
                "atlas": "ho",
                "roi_labels": ["a", "b"],
                "channels": ["Fp1", "Fp2"],
                "labels": ["ASD", "sex"],
                "shapes": {"fmri/spatial": [2, 2]},
                "n_subjects": 8,
                "n_samples": {"fmri": 16, "eeg": 14},
                "n_pairs": {"natural": 12, "fmri_only": 2},
                "n_excluded": 1,
                "seconds": 1.5,
            }
        )
    )
    index, pairs = [], []
    for i, s in enumerate(_subjects()):
        fold = i % 2
        for modality, task in (("fmri", "rest"), ("eeg", "eyesclosed")):
            for k in range(2):
                index.append(
                    {
                        "sample_id": f"{COHORT}_sub-{s['subject']}_{modality}-{k:03d}",
                        "cohort": COHORT,
                        "subject": s["subject"],
                        "session": "",
                        "site": s["site"],
                        "ASD": s["ASD"],
                        "sex": s["sex"],
                        "modality": modality,
                        "task": task,
                        "run": "",
                        "tag": task,
                        "start": k * 10.0,
                        "row": len(index),
                        "fold": fold,
                    }
                )
        pairs.append(
            {
                "pair_id": f"{COHORT}_sub-{s['subject']}_pair-000",
                "cohort": COHORT,
                "subject": s["subject"],
                "site": s["site"],
                "ASD": s["ASD"],
                "sex": s["sex"],
                "fmri_sample": "x",
                "eeg_sample": "" if i == 7 else "y",
                "kind": "fmri_only" if i == 7 else "natural",
                "fold": fold,
            }
        )
    _tsv(store / "index.tsv", index)
    _tsv(store / "pairs.tsv", pairs)
    _tsv(
        store / "exclusions.tsv",
        [
            {
                "cohort": COHORT,
                "subject": "007",
                "session": "",
                "modality": "eeg",
                "task": "eyesclosed",
                "run": "",
                "source": "results/tiny/eeg/sub-007.json",
                "reason": "no usable fMRI window or EEG segment",
            }
        ],
    )

    for variant, scope in (("mcsp", "all"), ("mcsp_small", "fold-0")):
        run = results / "pretrain" / variant / scope
        run.mkdir(parents=True)
        summary = {"steps": 40, "epochs": 2, "best_loss": 3.2, "final_loss": None}
        summary |= {"device": "cpu", "processes": 1, "seconds": 12.5, "pairs_per_s": 30.1}
        (run / "summary.json").write_text(json.dumps(summary))
        rows = []
        for step in range(1, 41):
            rows.append(
                {
                    "step": step,
                    "epoch": step // 20,
                    "split": "train",
                    "lr": 1e-3,
                    "total": 10 / step + 3,
                    "contrastive": 8 / step + 2,
                    "distillation": 1.0,
                    "consistency": 0.1,
                    "reconstruction": np.nan,
                }
            )
            if step % 20 == 0:
                rows.append({"step": step + 1, "epoch": step // 20, "split": "val", "total": 3.5})
        pd.DataFrame(rows).to_csv(run / "metrics.csv", index=False)

    evaluation = results / "evaluation"
    metrics, summary_rows = [], []
    for model in ("mcsp", "fc_logreg"):
        for task in ("ASD", "sex"):
            job = evaluation / "main" / model / task
            for fold in (0, 1):
                for seed in (0, 1):
                    test = [s for i, s in enumerate(_subjects()) if i % 2 == fold]
                    predictions = [
                        {
                            "cohort": COHORT,
                            "subject": s["subject"],
                            "sample_id": f"{s['subject']}-{k}",
                            "y": s[task],
                            "score": float(np.clip(0.3 * s[task] + rng.uniform(0, 0.7), 0, 1)),
                            "split": "test",
                            "experiment": "main",
                            "model": model,
                            "task": task,
                            "fold": fold,
                            "seed": seed,
                        }
                        for s in test
                        for k in range(2)
                    ]
                    _tsv(job / f"fold-{fold}_seed-{seed}_predictions.tsv", predictions)
                    value = float("nan") if task == "sex" else rng.uniform(0.5, 0.9)
                    note = "only one class among the test subjects" if task == "sex" else ""
                    metrics.append(
                        {
                            "experiment": "main",
                            "model": model,
                            "task": task,
                            "fold": fold,
                            "seed": seed,
                            "metric": "auroc",
                            "value": value,
                            "n_subjects": len(test),
                            "note": note,
                        }
                    )
            if task == "ASD":
                pooled = {"fold": "pooled", "seed": 0, "value": 0.66, "note": ""}
                metrics.append({**metrics[-1], **pooled})
            summary_rows.append(
                {
                    "experiment": "main",
                    "model": model,
                    "task": task,
                    "metric": "auroc",
                    "mean": 0.7,
                    "sd": 0.1,
                    "n": 4,
                    "mean ± sd": "0.700 ± 0.100",
                    "scope": "per fold",
                }
            )
    _tsv(evaluation / "metrics.tsv", metrics)
    _tsv(evaluation / "summary.tsv", summary_rows)
    _tsv(
        evaluation / "paired.tsv",
        [
            {
                "experiment": "main",
                "task": "ASD",
                "model": "mcsp",
                "reference": "fc_logreg",
                "reference_experiment": "main",
                "n_folds": 2,
                "n_seeds": 2,
                "n_subjects": 8,
                "model_auroc": 0.7,
                "reference_auroc": 0.65,
                "delta_mean": 0.05,
                "delta_sd": 0.02,
                "folds_better": 2,
                "delta_pooled": 0.04,
                "ci_low": -0.01,
                "ci_high": 0.1,
                "p_wilcoxon": 0.5,
                "p_corrected_t": 0.4,
                "n_bootstrap": 100,
            }
        ],
    )
    if tables:
        folder = results / "report" / "tables"
        folder.mkdir(parents=True)
        (folder / "main.html").write_text("<table><tr><td>MAIN-TABLE</td></tr></table>")
        (folder / "scope.html").write_text("<table><tr><td>SCOPE-TABLE</td></tr></table>")
        entries = [
            {"name": "main", "title": "Main & co", "html": "main.html"},
            {"name": "scope", "title": "Scopes", "html": "scope.html"},
            {"name": "gone", "title": "Gone", "html": "gone.html"},
        ]
        (folder / "index.json").write_text(json.dumps(entries))
    return results


def sections(page: str) -> dict[str, str]:
    """Section id → its HTML, in page order."""
    found = re.findall(r'<section id="([^"]+)">(.*?)</section>', page, flags=re.S)
    return dict(found)


def data_images(page: str) -> list[bytes]:
    return [base64.b64decode(m) for m in re.findall(r'src="data:image/png;base64,([^"]+)"', page)]


@pytest.fixture(scope="module")
def full(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    results = write_full(tmp_path_factory.mktemp("results"))
    out = build_report(results)
    return results, out.read_text()


def test_every_section_in_order_with_navigation(full: tuple[Path, str]) -> None:
    results, page = full
    assert (results / "report" / "index.html").is_file()
    assert list(sections(page)) == SECTION_IDS
    for sid in SECTION_IDS:
        assert f'href="#{sid}"' in page
    assert "Built " in page
    assert "<script src" not in page and "http://" not in page and "https://" not in page


def test_figures_are_valid_png_data_uris(full: tuple[Path, str]) -> None:
    _, page = full
    images = data_images(page)
    assert len(images) >= 8  # QC histograms, PSD, folds, losses, ROC, dots, forest
    assert len(re.findall(r"<img ", page)) == len(images)
    for data in images:
        assert data.startswith(b"\x89PNG\r\n\x1a\n")
        Image.open(io.BytesIO(data)).verify()
    assert len(page) < 2_000_000


def test_sections_show_the_inputs(full: tuple[Path, str]) -> None:
    results, page = full
    parts = sections(page)
    assert "no EEG recording for task(s) eyesclosed" in parts["cohorts"]
    assert "siteA" in parts["cohorts"] and "siteB" in parts["cohorts"]
    assert "ROIs most often without signal" in parts["fmri-qc"]
    assert 'href="../tiny/figures/sub-000_atlas-ho_fmri.png"' in parts["fmri-qc"]
    report = "../tiny/eeg/sub-000/eeg/sub-000_task-eyesclosed_report.html"
    assert f'href="{report}"' in parts["eeg-qc"]
    assert (results / "report" / report).resolve().is_file()
    assert "PSD before / after" in parts["eeg-qc"]
    for kind in ("natural", "cross", "fmri_only", "eeg_only"):
        assert f"<td>{kind}</td>" in parts["store"]
    assert "Subjects per fold: ASD" in parts["store"]
    assert "mcsp/all" in parts["pretraining"] and "mcsp_small/fold-0" in parts["pretraining"]
    assert "30.1" in parts["pretraining"]
    assert "No tables" in parts["evaluation"] and "0.700 ± 0.100" in parts["evaluation"]
    assert 'alt="forest plot' in parts["evaluation"] and "<td>fc_logreg</td>" in parts["evaluation"]
    assert "No provenance.json" in parts["provenance"]


def test_nan_folds_and_one_class_task_reported_in_place(full: tuple[Path, str]) -> None:
    _, page = full
    evaluation = sections(page)["evaluation"]
    assert "sex, main / mcsp: 1 class(es)" in evaluation
    assert "Folds without an AUROC (8)" in evaluation
    assert "only one class among the test subjects" in evaluation
    assert "sex: every AUROC is NaN" in evaluation


def test_inventory_only_results_say_what_is_missing(tmp_path: Path) -> None:
    write_inventory(tmp_path)
    page = build_report(tmp_path, tmp_path / "page.html").read_text()
    parts = sections(page)
    assert list(parts) == SECTION_IDS
    for sid in SECTION_IDS[1:]:
        assert 'class="missing"' in parts[sid], sid
    assert "could not be built" not in page
    assert "No dataset store" in parts["store"]
    assert "No pretraining" in parts["pretraining"]
    assert "No evaluation" in parts["evaluation"]


def test_empty_results_and_odd_files_still_build(tmp_path: Path) -> None:
    page = build_report(tmp_path).read_text()
    assert list(sections(page)) == SECTION_IDS
    assert "No cohort" in sections(page)["cohorts"]
    write_inventory(tmp_path)
    (tmp_path / COHORT / "fmri_qc.tsv").write_text("")
    (tmp_path / "store").mkdir()
    (tmp_path / "store" / "store.json").write_text("{not json")
    run = tmp_path / "pretrain" / "all"
    run.mkdir(parents=True)
    (run / "summary.json").write_text("[]")
    (tmp_path / "evaluation").mkdir()
    _tsv(tmp_path / "evaluation" / "metrics.tsv", pd.DataFrame(columns=["experiment"]))
    page = build_report(tmp_path).read_text()
    parts = sections(page)
    assert list(parts) == SECTION_IDS
    assert "fmri_qc.tsv could not be read" in parts["fmri-qc"]
    assert "store.json could not be read" in parts["store"]
    assert "No *_predictions.tsv" in parts["evaluation"]
    assert "summary.json is not a JSON object" in parts["pretraining"]
    assert "could not be built" not in page


def test_experiment_tables_inlined_in_order(tmp_path: Path) -> None:
    results = write_full(tmp_path, tables=True)
    evaluation = sections(build_report(results).read_text())["evaluation"]
    assert evaluation.index("Main &amp; co") < evaluation.index("MAIN-TABLE")
    assert evaluation.index("MAIN-TABLE") < evaluation.index("SCOPE-TABLE")
    assert "&#x27;gone.html&#x27; is missing" in evaluation
    assert "No tables" not in evaluation


def test_provenance_collect_write_and_shown(tmp_path: Path) -> None:
    record = provenance.collect()
    assert set(record) == {"git", "versions", "machine", "time_utc", "config", "argv"}
    assert record["versions"]["mcsp"] and record["versions"]["python"]
    assert record["config"] is None and record["argv"] is None
    assert record["machine"]["cpu_count"] >= 1
    config = {"results_dir": str(tmp_path), "evaluate": {"tasks": ["ASD"]}, "path": Path("x")}
    path = provenance.write(tmp_path, config, ["snakemake", "--cores", "2"])
    assert path == tmp_path / "provenance.json"
    saved = json.loads(path.read_text())
    assert saved["config"]["evaluate"] == {"tasks": ["ASD"]} and saved["config"]["path"] == "x"
    shown = sections(build_report(tmp_path).read_text())["provenance"]
    assert "<details><summary>Config</summary><pre>" in shown
    assert "snakemake --cores 2" in shown and "tasks:" in shown


def test_cli_report(full: tuple[Path, str], tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    results, _ = full
    out = tmp_path / "sub" / "r.html"
    assert main(["report", str(results), "--out", str(out)]) == 0
    assert str(out) in capsys.readouterr().out
    assert list(sections(out.read_text())) == SECTION_IDS
    hrefs = re.findall(r'href="([^"#][^"]*)"', out.read_text())
    assert hrefs and all((out.parent / h).resolve().is_file() for h in hrefs)
