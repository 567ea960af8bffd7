"""Tests of mcsp.tables: numbers, best marks, n/a notes, row resolution, deltas, renderers."""

from __future__ import annotations

import json
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mcsp.tables import (
    TABLE_COLUMNS,
    build_table,
    footnote,
    latex_escape,
    resolve_rows,
    table_specs,
    to_html,
    to_latex,
    to_markdown,
    write_tables,
)

REAL_METRICS = Path(__file__).resolve().parents[1] / "results/abide/evaluation/metrics.tsv"
CONTEXT = {"folds": 3, "seeds": 2, "pretrain_scope": "train folds only"}

# per (model, task): values of folds 0..2 for seeds 0 and 1
VALUES = {
    ("fc_logreg", "ASD"): [[0.70, 0.80, 0.90], [0.70, 0.80, 0.90]],
    ("mcsp", "ASD"): [[0.60, 0.70, 0.80], [0.80, 0.90, 1.00]],
    ("fc_logreg", "sex"): [[0.60, 0.60, 0.60], [0.60, 0.60, 0.60]],
    ("mcsp", "sex"): [[0.50, np.nan, 0.70], [0.60, 0.50, 0.90]],
}
SIZES = [10, 10, 9]


def _metrics() -> pd.DataFrame:
    rows = []
    for (model, task), seeds in VALUES.items():
        for seed, values in enumerate(seeds):
            for fold, value in enumerate(values):
                note = "one class in the test fold" if np.isnan(value) else ""
                for metric, v in (("auroc", value), ("accuracy", 0.5)):
                    rows.append(
                        ("main", model, task, str(fold), str(seed), metric, v, SIZES[fold], note)
                    )
            rows.append(("main", model, task, "pooled", str(seed), "auroc", 0.99, 29, ""))
    rows.append(("main", "fc_logreg+ens", "ASD", "0", "ens", "auroc", 0.75, 10, ""))
    rows.append(("abl", "mcsp", "ASD", "0", "0", "auroc", 0.65, 10, ""))
    columns = ["experiment", "model", "task", "fold", "seed", "metric", "value"]
    return pd.DataFrame(rows, columns=[*columns, "n_subjects", "note"])


def _paired() -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "experiment": "main",
                "task": "ASD",
                "model": "mcsp",
                "reference": "fc_logreg",
                "reference_experiment": "main",
                "n_folds": 3,
                "n_seeds": 2,
                "n_subjects": 29,
                "model_auroc": 0.8,
                "reference_auroc": 0.8,
                "delta_mean": 0.011,
                "delta_sd": 0.1,
                "folds_better": 2,
                "delta_pooled": 0.02,
                "ci_low": -0.05,
                "ci_high": 0.07,
                "p_wilcoxon": 1.0,
                "p_corrected_t": 1.0,
                "n_bootstrap": 2000,
            }
        ]
    )


EVALUATE = {
    "reference": "fc_logreg",
    "experiments": {"main": {"models": ["mcsp", "fc_logreg"]}, "abl": {"models": ["mcsp"]}},
}


def _main_table(**extra) -> tuple[pd.DataFrame, dict]:
    spec = {**table_specs(EVALUATE, None)["main"], "name": "main", **extra}
    return build_table(_metrics(), _paired(), spec, CONTEXT), spec


def _cell(table: pd.DataFrame, model: str, task: str) -> pd.Series:
    return table[(table["model"] == model) & (table["task"] == task)].iloc[0]


def test_default_specs_one_table_per_experiment():
    specs = table_specs(EVALUATE, {"tables": {}})
    assert list(specs) == ["main", "abl"]
    assert specs["main"]["title"] == "main"
    assert specs["main"]["reference"] == {"experiment": None, "model": "fc_logreg"}
    rows = resolve_rows(specs["main"], _metrics())
    assert [r["model"] for r in rows] == ["mcsp", "fc_logreg", "fc_logreg+ens"]
    assert [r["label"] for r in rows] == ["mcsp", "fc_logreg", "fc_logreg+ens"]


def test_report_rows_resolve_experiment_only_rows():
    report = {
        "tables": {
            "t1": {
                "title": "Main",
                "caption": "c",
                "rows": [
                    {"experiment": "main", "model": "fc_logreg", "label": "FC + LR"},
                    {"experiment": "abl"},
                ],
                "reference": {"experiment": "main", "model": "fc_logreg"},
            }
        }
    }
    spec = table_specs(EVALUATE, report)["t1"]
    rows = resolve_rows(spec, _metrics())
    assert [(r["experiment"], r["model"], r["label"]) for r in rows] == [
        ("main", "fc_logreg", "FC + LR"),
        ("abl", "mcsp", "mcsp (abl)"),
    ]
    with pytest.raises(ValueError, match="one or more rows"):
        table_specs(EVALUATE, {"tables": {"t": {"title": "t", "rows": []}}})
    with pytest.raises(ValueError, match="rows\\[0\\]"):
        table_specs(EVALUATE, {"tables": {"t": {"rows": [{"model": "mcsp"}]}}})


def test_mean_sd_n_and_subjects():
    table, _ = _main_table()
    assert list(table.columns) == TABLE_COLUMNS
    cell = _cell(table, "mcsp", "ASD")
    values = np.array(VALUES[("mcsp", "ASD")]).ravel()
    assert cell["mean"] == pytest.approx(values.mean())
    assert cell["sd"] == pytest.approx(values.std(ddof=1))
    assert (cell["n"], cell["n_missing"], cell["n_subjects"]) == (6, 0, 29)
    assert (cell["n_folds"], cell["n_seeds"]) == (3, 2)


def test_nan_fold_counted_missing_with_reason():
    table, spec = _main_table()
    cell = _cell(table, "mcsp", "sex")
    assert (cell["n"], cell["n_missing"]) == (5, 1)
    assert cell["mean"] == pytest.approx(np.mean([0.5, 0.7, 0.6, 0.5, 0.9]))
    assert cell["note"] == "1 of 6 values missing: one class in the test fold (1 fold)"
    assert "one class in the test fold" in to_markdown(table, spec, "f")


def test_best_marks_ties_and_skips_single_rows():
    table, spec = _main_table()
    # ASD: fc_logreg and mcsp both 0.800 -> both best; the ensemble has one value, 0.750
    assert _cell(table, "mcsp", "ASD")["best"] and _cell(table, "fc_logreg", "ASD")["best"]
    assert not _cell(table, "fc_logreg+ens", "ASD")["best"]
    assert _cell(table, "mcsp", "sex")["best"] and not _cell(table, "fc_logreg", "sex")["best"]
    markdown = to_markdown(table, spec, "f")
    assert markdown.count("**0.800") == 2
    single = build_table(_metrics(), _paired(), table_specs(EVALUATE, None)["abl"], CONTEXT)
    assert not single["best"].any()


def test_model_without_rows_is_na_with_reason():
    spec = {
        "title": "t",
        "rows": [
            {"experiment": "main", "model": "mcsp"},
            {"experiment": "main", "model": "eegnet"},
        ],
        "tasks": ["ASD"],
        "reference": None,
    }
    context = {**CONTEXT, "not_applicable": {"eegnet": "not applicable: no EEG"}}
    table = build_table(_metrics(), _paired(), spec, context)
    cell = _cell(table, "eegnet", "ASD")
    assert cell["n"] == 0 and np.isnan(cell["mean"])
    assert cell["note"] == "not applicable: no EEG"
    assert "| eegnet | n/a | not applicable: no EEG |" in to_markdown(table, spec, "f")
    default = build_table(_metrics(), _paired(), spec, CONTEXT)
    assert _cell(default, "eegnet", "ASD")["note"].startswith("not applicable")


def test_delta_from_paired_and_computed():
    table, _ = _main_table()
    from_paired = _cell(table, "mcsp", "ASD")
    assert from_paired["delta_source"] == "paired"
    assert from_paired["delta"] == pytest.approx(0.011)
    assert (from_paired["ci_low"], from_paired["ci_high"]) == (-0.05, 0.07)
    computed = _cell(table, "mcsp", "sex")
    assert computed["delta_source"] == "computed"
    # pairs with a value on both sides: 5 (fold 1 of seed 0 is NaN)
    diffs = np.array([-0.1, 0.1, 0.0, -0.1, 0.3])
    assert computed["delta"] == pytest.approx(diffs.mean())
    assert computed["delta_sd"] == pytest.approx(diffs.std(ddof=1))
    assert computed["folds_better"] == 1  # per-fold means: -0.05, -0.1, +0.2
    assert np.isnan(computed["ci_low"])
    assert _cell(table, "fc_logreg", "ASD")["is_reference"]
    assert _cell(table, "fc_logreg+ens", "ASD")["is_reference"]


def test_cell_text_in_markdown():
    table, spec = _main_table()
    markdown = to_markdown(table, spec, footnote(table, spec, CONTEXT))
    assert "Δ 0.011 ± 0.100; pooled 0.020 [−0.050, 0.070]" in markdown
    assert f"Δ 0.040 ± {np.std([-0.1, 0.1, 0.0, -0.1, 0.3], ddof=1):.3f}" in markdown
    assert "| fc_logreg | **0.800 ± 0.089** | ref. |" in markdown
    lines = [line for line in markdown.splitlines() if line.startswith("|")]
    widths = {line.replace("\\|", "").count("|") for line in lines}
    assert len(widths) == 1
    assert set(lines[1].strip("|").replace(":", "").split("|")) == {"---"}
    assert lines[2].startswith("| n subjects | 29 |")


def test_footnote_names_design_and_reference():
    table, spec = _main_table()
    text = footnote(table, spec, CONTEXT)
    for part in ("3 subject-level test folds", "2 seeds", "train folds only", "AUROC"):
        assert part in text
    assert "fc_logreg" in text and "bootstrap" in text and "±" in text


def test_latex_escaping_and_booktabs():
    assert latex_escape("fc_mcsp+ens 5% & $") == r"fc\_mcsp+ens 5\% \& \$"
    table, spec = _main_table(title="Main_table 100%")
    tex = to_latex(table, spec, footnote(table, spec, CONTEXT))
    for rule in (r"\toprule", r"\midrule", r"\bottomrule", r"\label{tab:main}"):
        assert rule in tex
    assert r"\caption{Main\_table 100\%}" in tex
    assert r"\textbf{0.800 $\pm$ 0.089}" in tex
    assert r"fc\_logreg+ens" in tex and "±" not in tex and "Δ" not in tex
    assert r"\par\footnotesize" in tex


@pytest.mark.skipif(shutil.which("pdflatex") is None, reason="pdflatex not on PATH")
def test_latex_compiles(tmp_path):
    table, spec = _main_table()
    body = to_latex(table, spec, footnote(table, spec, CONTEXT))
    document = (
        "\\documentclass{article}\n\\usepackage[utf8]{inputenc}\n\\usepackage{booktabs}\n"
        f"\\begin{{document}}\n{body}\\end{{document}}\n"
    )
    (tmp_path / "t.tex").write_text(document)
    done = subprocess.run(
        ["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "t.tex"],
        cwd=tmp_path,
        capture_output=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout.decode(errors="replace")[-2000:]


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.open: list[str] = []
        self.seen: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.seen.append(tag)
        if tag != "br":
            self.open.append(tag)

    def handle_endtag(self, tag):
        assert self.open and self.open.pop() == tag

    def handle_data(self, data):
        self.text.append(data)


def test_html_fragment_parses():
    table, spec = _main_table(title="A <b> & c")
    fragment = to_html(table, spec, footnote(table, spec, CONTEXT))
    assert fragment.startswith('<table class="mcsp-table">')
    parser = _Tags()
    parser.feed(fragment)
    parser.close()
    assert parser.open == []
    for tag in ("caption", "thead", "tbody", "tfoot", "b"):
        assert tag in parser.seen
    assert "A &lt;b&gt; &amp; c" in fragment
    assert "Δ 0.011 ± 0.100; pooled 0.020 [−0.050, 0.070]" in "".join(parser.text)


def test_write_tables_files_and_index(tmp_path):
    metrics_tsv, paired_tsv = tmp_path / "metrics.tsv", tmp_path / "paired.tsv"
    _metrics().to_csv(metrics_tsv, sep="\t", index=False)
    _paired().to_csv(paired_tsv, sep="\t", index=False)
    index = write_tables(metrics_tsv, paired_tsv, tmp_path / "out", EVALUATE, None, CONTEXT)
    assert [entry["name"] for entry in index] == ["main", "abl"]
    assert json.loads((tmp_path / "out/index.json").read_text()) == index
    assert index[0] == {
        "name": "main",
        "title": "main",
        "html": "main.html",
        "tsv": "main.tsv",
        "md": "main.md",
        "tex": "main.tex",
    }
    for entry in index:
        for key in ("html", "tsv", "md", "tex"):
            assert (tmp_path / "out" / entry[key]).is_file()
    tidy = pd.read_csv(tmp_path / "out/main.tsv", sep="\t")
    assert len(tidy) == 3 * 2
    assert not list((tmp_path / "out").glob(".tmp*"))


def test_write_tables_without_metrics(tmp_path):
    evaluate = {"tasks": ["ASD"], "experiments": {"main": {"models": ["mcsp"]}}}
    report = {"tables": {"t": {"rows": [{"experiment": "main", "model": "mcsp"}]}}}
    for rep in (None, report):
        index = write_tables(
            tmp_path / "none.tsv", tmp_path / "none.tsv", tmp_path / "out", evaluate, rep, {}
        )
        tidy = pd.read_csv(tmp_path / "out" / index[0]["tsv"], sep="\t")
        assert tidy["mean"].isna().all() and tidy["note"].notna().all()
        markdown = (tmp_path / "out" / index[0]["md"]).read_text()
        assert "n/a" in markdown and "no metrics" in markdown


@pytest.mark.skipif(not REAL_METRICS.is_file(), reason="no ABIDE evaluation results")
def test_real_abide_main_table():
    metrics = pd.read_csv(REAL_METRICS, sep="\t", dtype={"fold": str, "seed": str})
    paired_tsv = REAL_METRICS.with_name("paired.tsv")
    paired = pd.read_csv(paired_tsv, sep="\t") if paired_tsv.is_file() else pd.DataFrame()
    evaluate = {
        "reference": "fc_logreg",
        "reference_experiment": "main",
        "experiments": {"main": {"models": ["mcsp", "fc_logreg"]}},
    }
    spec = table_specs(evaluate, None)["main"]
    table = build_table(metrics, paired, spec, {"folds": 10, "seeds": 3})
    cell = _cell(table, "fc_logreg", "ASD")
    assert round(cell["mean"], 3) == 0.773
    assert round(cell["sd"], 3) == 0.034
    assert (cell["n"], cell["n_missing"], cell["n_subjects"]) == (30, 0, 977)
    assert cell["is_reference"]


def test_fold_notes_read_once_per_cause() -> None:
    from mcsp.tables import short_reason

    notes = [
        "fine-tuning ADHD, test fold 0: the training folds lack a class; use fewer folds or more "
        "subjects.",
        "fine-tuning ADHD, test fold 2: the training folds lack a class; use fewer folds or more "
        "subjects.",
        "the test subjects (3) hold class 0 only: AUROC is undefined on this fold (the "
        "pooled-folds row scores it); use fewer folds or more subjects.",
    ]
    reasons = [short_reason(n) for n in notes]
    assert reasons[0] == reasons[1] == "the training folds lack a class"
    assert reasons[2] == "the test subjects hold one class: AUROC is undefined on this fold"
