"""Imported ROI time series (mcsp.imports): ABIDE PCP .1D and XCP-D TSV fixtures, and real ABIDE."""

from __future__ import annotations

import copy
import gzip
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

from mcsp.bids import EMPTY_FILE, read_inventory
from mcsp.cohorts import check_cohort
from mcsp.config import load_cohort
from mcsp.exceptions import CohortError, ConfigError
from mcsp.fmri import QC_COLUMNS
from mcsp.imports import ABIDE_SITE_TR, build_imported_inventory, import_timeseries

from .conftest import REPO, SHARED_DATA

ROIS = ["10", "11", "12", "13", "17", "18", "26", "49", "50", "51", "52", "53"]
ABIDE: dict[str, Any] = {
    "name": "tinyabide",
    "format": "abide_pcp",
    "bids_root": None,
    "timeseries": {
        "path": "",
        "phenotype": "",
        "atlas": None,
        "space": None,
        "repetition_time": None,
        "max_constant_roi_fraction": 0.1,
    },
    "fmri": {"tasks": ["rest"]},
    "participants": {"site_column": "SITE_ID"},
    "labels": {
        "ASD": {"column": "DX_GROUP", "mapping": {"1": 1, "2": 0}},
        "sex": {"column": "SEX", "mapping": {"1": 0, "2": 1}},
    },
}
PHENOTYPE = [  # SUB_ID, SITE_ID, DX_GROUP, SEX, func_mean_fd
    (50001, "NYU", 1, 1, 0.11),
    (50002, "NYU", 2, 2, 0.22),
    (50004, "NYU", 1, 1, 0.1),
    (50005, "NYU", 2, 1, 0.1),
    (50006, "NYU", 2, 1, 0.1),
    (50007, "NYU", 2, 1, 0.1),
    (50008, "NYU", 2, 1, 0.1),
    (50009, "NYU", 1, 1, 0.1),
    (50011, "SBL", -9999, 2, 0.3),
    (50099, "NYU", 1, 1, 0.1),  # no file
]


def signal(n_time: int, n_roi: int, seed: int) -> np.ndarray:
    """Values like ABIDE's: tens, six decimals, some negative."""
    return np.round(np.random.default_rng(seed).normal(0, 15, (n_time, n_roi)), 6)


def write_1d(path: Path, data: np.ndarray, labels: list[str] = ROIS, rows: list[str] | None = None):
    lines = ["\t".join(f"#{label}" for label in labels)]
    lines += rows if rows is not None else ["\t".join(f"{v:.6f}" for v in row) for row in data]
    text = "\n".join(lines) + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.name.endswith(".gz"):
        path.write_bytes(gzip.compress(text.encode()))
    else:
        path.write_text(text)
    return path


def make_abide(root: Path) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """A tiny ABIDE PCP folder: rois_ho/ + phenotype CSV; returns (cohort, source values)."""
    rois = root / "rois_ho"
    data = {s: signal(30, len(ROIS), int(s)) for s in ("0050001", "0050002", "0050003", "0050011")}
    data["0050002"][:, 1] = 0.0  # one all-zero ROI (no coverage), as in 278 ABIDE files
    write_1d(rois / "NYU_0050001_rois_ho.1D", data["0050001"])
    write_1d(rois / "NYU_0050002_rois_ho.1D.gz", data["0050002"])
    write_1d(rois / "NYU_0050003_rois_ho.1D.gz", data["0050003"])  # not in the phenotype
    full = gzip.compress(
        ("\t".join(f"#{r}" for r in ROIS) + "\n" + "\t".join(["1.5"] * 12) + "\n" * 200).encode()
    )
    (rois / "NYU_0050004_rois_ho.1D.gz").write_bytes(full[: len(full) // 2])  # truncated
    write_1d(rois / "NYU_0050005_rois_ho.1D", signal(30, 11, 5), labels=ROIS[:11])
    extra = ["\t".join(f"{v:.6f}" for v in row) for row in signal(30, 13, 6)]
    write_1d(rois / "NYU_0050006_rois_ho.1D", np.empty(0), rows=extra)  # 13 values
    bad = ["\t".join(f"{v:.6f}" for v in row) for row in signal(30, 12, 7)]
    bad[3] = bad[3].replace(bad[3].split("\t")[2], "abc")
    write_1d(rois / "NYU_0050007_rois_ho.1D", np.empty(0), rows=bad)
    (rois / "NYU_0050008_rois_ho.1D.gz").write_bytes(b"")
    flat = signal(30, 12, 9)
    flat[:, [0, 2]] = 0.0  # 2 of 12 ROIs constant: 17% > 10%
    write_1d(rois / "NYU_0050009_rois_ho.1D.gz", flat)
    write_1d(rois / "SBL_0050011_rois_ho.1D.gz", data["0050011"])  # TR of SBL not confirmed
    (rois / "README.txt").write_text("not a time series\n")
    phenotype = root / "Phenotypic_V1_0b_preprocessed1.csv"
    header = ",SUB_ID,SITE_ID,FILE_ID,DX_GROUP,SEX,func_mean_fd"
    lines = [header] + [
        f"{i},{s},{site},{site}_{s:07d},{dx},{sex},{fd}"
        for i, (s, site, dx, sex, fd) in enumerate(PHENOTYPE)
    ]
    phenotype.write_text("\n".join(lines) + "\n")
    cohort = copy.deepcopy(ABIDE)
    cohort["timeseries"].update(path=str(rois), phenotype=str(phenotype))
    return cohort, data


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p): (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*")}


def read_contract(path: str | Path) -> pd.DataFrame:
    return pd.read_csv(path, sep="\t", dtype={})


def assert_same_values(written: pd.DataFrame, source: np.ndarray) -> None:
    """write_timeseries keeps 6 significant digits: relative error below 5e-6."""
    assert written.shape == source.shape
    np.testing.assert_allclose(written.to_numpy(), source, rtol=5e-6, atol=1e-12)


# --- ABIDE PCP -----------------------------------------------------------------------------------


@pytest.fixture
def abide(tmp_path: Path) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    return make_abide(tmp_path / "abide")


def test_abide_inventory_rows_statuses_and_labels(abide) -> None:
    cohort, _ = abide
    inventory = build_imported_inventory(cohort)
    table = inventory.table.set_index("subject")
    assert list(inventory.table.columns[:10]) == [
        "cohort",
        "subject",
        "session",
        "modality",
        "task",
        "run",
        "path",
        "sidecar",
        "derivative",
        "site",
    ]
    assert inventory.labels == ["ASD", "sex"]
    assert list(inventory.table.columns[-2:]) == ["status", "reason"]
    assert sorted(table.index) == [f"00500{i:02d}" for i in (1, 2, 3, 4, 5, 6, 7, 8, 9, 11)]
    assert (table["modality"] == "fmri").all() and (table["task"] == "rest").all()
    assert (table["session"] == "").all() and (table["run"] == "").all()
    rois = Path(cohort["timeseries"]["path"]).resolve()
    assert table.loc["0050001", "path"] == str(rois / "NYU_0050001_rois_ho.1D")
    assert table.loc["0050001", "derivative"] == table.loc["0050001", "path"]
    status = table["status"].to_dict()
    assert status == {
        "0050001": "ok",
        "0050002": "ok",
        "0050003": "excluded",
        "0050004": "excluded",
        "0050005": "excluded",
        "0050006": "excluded",
        "0050007": "excluded",
        "0050008": "excluded",
        "0050009": "excluded",
        "0050011": "warning",
    }
    reason = table["reason"].to_dict()
    assert (
        "SUB_ID 50003 not in the phenotype file Phenotypic_V1_0b_preprocessed1.csv"
        in (reason["0050003"])
    )
    assert "cannot be read" in reason["0050004"] and "truncated or corrupt" in reason["0050004"]
    assert reason["0050005"] == "11 ROI columns where the other files have 12"
    assert reason["0050006"] == "rows have 13 values but the header names 12 ROIs"
    assert reason["0050007"].startswith("non-numeric value 'abc' (ROI 12, time point 4)")
    assert reason["0050008"] == EMPTY_FILE
    assert "2 of 12 ROIs constant (17%" in reason["0050009"]
    assert "max_constant_roi_fraction 0.1" in reason["0050009"]
    assert "RepetitionTime unknown for site SBL" in reason["0050011"]
    # labels and site from the phenotype (matched on SUB_ID); -9999 is not in the mapping
    assert table.loc["0050001", ["ASD", "sex", "site"]].tolist() == [1, 0, "NYU"]
    assert table.loc["0050002", ["ASD", "sex"]].tolist() == [0, 1]
    assert pd.isna(table.loc["0050011", "ASD"]) and table.loc["0050011", "sex"] == 1
    assert table.loc["0050011", "site"] == "SBL"
    assert table.loc["0050003", "site"] == "n/a" and pd.isna(table.loc["0050003", "ASD"])
    assert str(inventory.table["ASD"].dtype) == "Int64"


def test_abide_import_writes_the_contract(abide, tmp_path: Path) -> None:
    cohort, data = abide
    inventory = build_imported_inventory(cohort)
    before = snapshot(tmp_path / "abide")
    out = tmp_path / "out"
    qc = import_timeseries(cohort, inventory, out)
    assert snapshot(tmp_path / "abide") == before  # nothing written in the input folder
    assert list(qc.columns) == QC_COLUMNS
    assert len(qc) == len(inventory.table)
    rows = qc.set_index("subject")
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert written == [
        f"sub-{s}/func/sub-{s}_task-rest_atlas-ho_timeseries.{ext}"
        for s in ("0050001", "0050002", "0050011")
        for ext in ("json", "tsv")
    ]
    for subject in ("0050001", "0050002", "0050011"):
        path = Path(rows.loc[subject, "timeseries"])
        assert path == out / f"sub-{subject}/func/sub-{subject}_task-rest_atlas-ho_timeseries.tsv"
        table = read_contract(path)
        assert list(table.columns) == ROIS
        assert_same_values(table, data[subject])
    excluded = rows[rows["status"] == "excluded"]
    assert (excluded["timeseries"] == "").all() and len(excluded) == 7
    assert excluded["reason"].str.startswith("inventory: ").all()
    ok = rows.loc["0050002"]
    assert ok["status"] == "ok" and ok["reason"] == ""
    assert ok["zero_variance_rois"] == "11" and ok["empty_rois"] == "11"
    assert ok["n_volumes"] == 30 and ok["n_kept"] == 30 and ok["n_censored"] == 0
    assert ok["mean_fd"] == pytest.approx(0.22)
    assert rows.loc["0050009", "zero_variance_rois"] == "10;12"  # listed even when excluded
    assert rows.loc["0050011", "status"] == "warning"
    assert "RepetitionTime unknown for site SBL" in rows.loc["0050011", "reason"]

    sidecar = json.loads(Path(ok["timeseries"]).with_suffix(".json").read_text())
    assert sidecar["RepetitionTime"] == ABIDE_SITE_TR["NYU"] == 2.0
    assert sidecar["Atlas"] == "ho" and sidecar["AtlasKind"] == "labels"
    assert sidecar["ConfoundStrategy"] == "external: ABIDE PCP (C-PAC)"
    assert sidecar["CensoredVolumes"] == [] and sidecar["KeptVolumes"] == list(range(30))
    assert sidecar["NumberOfVolumes"] == 30
    assert sidecar["ZeroVarianceROIs"] == ["11"] and sidecar["EmptyROIs"] == ["11"]
    assert sidecar["Source"].endswith("NYU_0050002_rois_ho.1D.gz")
    assert sidecar["QC"]["status"] == "ok" and sidecar["QC"]["zero_variance_rois"] == ["11"]
    sbl = json.loads(Path(rows.loc["0050011", "timeseries"]).with_suffix(".json").read_text())
    assert sbl["RepetitionTime"] is None


def test_abide_repetition_time_from_the_cohort_file(abide, tmp_path: Path) -> None:
    cohort, _ = abide
    cohort["timeseries"]["repetition_time"] = {"SBL": 2.2}
    inventory = build_imported_inventory(cohort)
    assert inventory.table.set_index("subject").loc["0050011", "status"] == "ok"
    qc = import_timeseries(cohort, inventory, tmp_path / "out").set_index("subject")
    tr = {
        s: json.loads(Path(qc.loc[s, "timeseries"]).with_suffix(".json").read_text())
        for s in ("0050001", "0050011")
    }
    assert tr["0050001"]["RepetitionTime"] == 2.0 and tr["0050011"]["RepetitionTime"] == 2.2
    assert tr["0050011"]["RepetitionTimeSource"] == "timeseries.repetition_time.SBL"
    cohort["timeseries"]["repetition_time"] = 1.5
    qc = import_timeseries(cohort, inventory, tmp_path / "out2").set_index("subject")
    sidecar = json.loads(Path(qc.loc["0050001", "timeseries"]).with_suffix(".json").read_text())
    assert sidecar["RepetitionTime"] == 1.5


def test_abide_constant_roi_limit_is_configurable(abide) -> None:
    cohort, _ = abide
    cohort["timeseries"]["max_constant_roi_fraction"] = 0.5
    table = build_imported_inventory(cohort).table.set_index("subject")
    assert table.loc["0050009", "status"] == "ok"
    cohort["timeseries"]["max_constant_roi_fraction"] = 0.0
    table = build_imported_inventory(cohort).table.set_index("subject")
    assert table.loc["0050002", "status"] == "excluded"
    assert table.loc["0050001", "status"] == "ok"


def test_abide_constant_roi_limit_is_the_configs(abide) -> None:
    """No cohort override: the config's fmri.max_constant_roi_fraction decides, as for BIDS."""
    cohort, _ = abide
    cohort["timeseries"]["max_constant_roi_fraction"] = None
    table = build_imported_inventory(cohort).table.set_index("subject")
    assert table.loc["0050009", "status"] == "excluded"  # the default 0.1
    assert "more than fmri.max_constant_roi_fraction 0.1" in table.loc["0050009", "reason"]
    table = build_imported_inventory(cohort, max_constant_roi_fraction=0.5).table
    assert table.set_index("subject").loc["0050009", "status"] == "ok"
    cohort["timeseries"]["max_constant_roi_fraction"] = 0.05  # the cohort's override wins
    table = build_imported_inventory(cohort, max_constant_roi_fraction=0.5).table
    reason = table.set_index("subject").loc["0050009", "reason"]
    assert "more than timeseries.max_constant_roi_fraction 0.05" in reason


def test_abide_check_cohort_from_a_cohort_file(abide, tmp_path: Path) -> None:
    cohort, _ = abide
    spec = {k: v for k, v in cohort.items() if k != "bids_root"}
    cohort_file = tmp_path / "cohorts" / "tinyabide.yaml"
    cohort_file.parent.mkdir()
    cohort_file.write_text(yaml.safe_dump(spec))
    assert load_cohort(cohort_file)["format"] == "abide_pcp"
    out = tmp_path / "results" / "inventory.tsv"
    inventory = check_cohort(cohort_file, out)
    again = read_inventory(out)
    assert again.table["status"].tolist() == inventory.table["status"].tolist()
    assert "Usable subjects (status ok or warning): fMRI 3" in out.with_suffix(".txt").read_text()
    with pytest.raises(CohortError, match="strict mode and 7 recording"):
        check_cohort(cohort_file, out, strict=True)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda root, c: c["timeseries"].update(path=str(root / "nope")), "does not exist"),
        (lambda root, c: c["timeseries"].update(path=str(root / "emptydir")), "is empty"),
        (
            lambda root, c: c["timeseries"].update(path=str(root / "other")),
            "no ABIDE PCP time-series files",
        ),
        (
            lambda root, c: c["timeseries"].update(phenotype=str(root / "missing.csv")),
            r"missing\.csv \(timeseries\.phenotype of cohort 'tinyabide'\) does not exist",
        ),
        (
            lambda root, c: c["labels"]["ASD"].update(column="DX"),
            r"column\(s\) DX not found",
        ),
        (
            lambda root, c: c["participants"].update(site_column="SITE"),
            r"column\(s\) SITE not found",
        ),
        (
            lambda root, c: c["timeseries"].update(phenotype=str(root / "binary.csv")),
            "cannot be read as a comma-separated table",
        ),
        (
            lambda root, c: c["timeseries"].update(atlas="cc200"),
            "no time-series files of atlas 'cc200' \\(found: ho \\(10 files\\)\\)",
        ),
    ],
)
def test_abide_cohort_errors(abide, tmp_path: Path, change, message) -> None:
    cohort, _ = abide
    root = tmp_path / "abide"
    (root / "emptydir").mkdir()
    (root / "other").mkdir()
    (root / "other" / "notes.txt").write_text("x")
    (root / "binary.csv").write_bytes(b"\xff\xfe\x00\x81" * 50)
    change(root, cohort)
    with pytest.raises(CohortError, match=message) as err:
        build_imported_inventory(cohort)
    assert "Fix" in str(err.value)


def test_abide_several_atlases_need_a_choice(abide) -> None:
    cohort, data = abide
    rois = Path(cohort["timeseries"]["path"])
    write_1d(rois / "NYU_0050001_rois_cc200.1D", data["0050001"])
    with pytest.raises(CohortError, match=r"several atlases.*cc200 \(1 files\), ho \(10 files\)"):
        build_imported_inventory(cohort)
    cohort["timeseries"]["atlas"] = "ho"
    assert len(build_imported_inventory(cohort).table) == 10


def test_no_usable_file_is_a_cohort_error(tmp_path: Path) -> None:
    cohort, _ = make_abide(tmp_path / "abide")
    rois = Path(cohort["timeseries"]["path"])
    for path in rois.glob("*_0050001_*") or []:
        path.unlink()
    for name in ("NYU_0050002_rois_ho.1D.gz", "SBL_0050011_rois_ho.1D.gz"):
        (rois / name).write_bytes(b"")
    with pytest.raises(CohortError, match="no usable time-series file"):
        build_imported_inventory(cohort)


def test_import_refuses_to_write_into_the_input(abide) -> None:
    cohort, _ = abide
    inventory = build_imported_inventory(cohort)
    inside = Path(cohort["timeseries"]["path"]).parent / "derived"
    with pytest.raises(ConfigError, match="never writes into input data"):
        import_timeseries(cohort, inventory, inside)
    assert not inside.exists()


def test_bids_cohort_is_not_imported() -> None:
    with pytest.raises(ConfigError, match="build_inventory"):
        build_imported_inventory({"name": "x", "format": "bids"})


# --- XCP-D ---------------------------------------------------------------------------------------

PARCELS = ["LH_Vis_1", "LH_Vis_2", "RH_Default_1", "Thal_L"]
SPACE = "MNI152NLin6Asym"
ATLAS = "4S156Parcels"


def write_tsv(path: Path, frame: pd.DataFrame) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, sep="\t", index=False, na_rep="n/a")
    return path


def make_xcpd(root: Path) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """A BIDS root (participants.tsv, task-rest_bold.json) and XCP-D outputs laid out as XCP-D
    writes them (0.7+: seg-; 0.10+: atlas-)."""
    bids, xcpd = root / "bids", root / "xcp_d"
    bids.mkdir(parents=True)
    (bids / "dataset_description.json").write_text('{"Name": "x", "BIDSVersion": "1.9.0"}')
    (bids / "task-rest_bold.json").write_text('{"RepetitionTime": 2.0, "TaskName": "rest"}')
    (bids / "participants.tsv").write_text(
        "participant_id\tsite\tdiagnosis\tsex\nsub-01\tA\tASD\tM\nsub-02\tB\tcontrol\tF\n"
        "sub-03\tB\tcontrol\tM\n"
    )
    xcpd.mkdir()
    (xcpd / "dataset_description.json").write_text(
        '{"Name": "XCP-D", "BIDSVersion": "1.9.0", "DatasetType": "derivative"}'
    )
    data: dict[str, np.ndarray] = {}
    # sub-01: censored output (linc): 40 volumes, 5 flagged and removed; TR in the denoised JSON
    func = xcpd / "sub-01" / "func"
    data["01"] = signal(35, 4, 1)
    stem = f"sub-01_task-rest_space-{SPACE}_seg-{ATLAS}_stat-mean_timeseries"
    write_tsv(func / f"{stem}.tsv", pd.DataFrame(data["01"], columns=PARCELS))
    (func / f"{stem}.json").write_text(json.dumps({"SamplingFrequency": "TR", "Sources": []}))
    (func / f"sub-01_task-rest_space-{SPACE}_desc-denoised_bold.json").write_text(
        json.dumps({"RepetitionTime": 0.8, "NuisanceParameters": "36P"})
    )
    flags = np.zeros(40, dtype=int)
    flags[[3, 4, 10, 20, 39]] = 1
    write_tsv(
        func / "sub-01_task-rest_outliers.tsv", pd.DataFrame({"framewise_displacement": flags})
    )
    fd = np.linspace(0.1, 0.3, 40)
    write_tsv(func / "sub-01_task-rest_motion.tsv", pd.DataFrame({"framewise_displacement": fd}))
    write_tsv(  # another space and another task: not imported
        func / f"sub-01_task-rest_space-fsLR_seg-{ATLAS}_stat-mean_timeseries.tsv",
        pd.DataFrame(data["01"], columns=PARCELS),
    )
    write_tsv(
        func / f"sub-01_task-nback_space-{SPACE}_seg-{ATLAS}_stat-mean_timeseries.tsv",
        pd.DataFrame(data["01"], columns=PARCELS),
    )
    write_tsv(func / "sub-01_task-rest_desc-confounds_timeseries.tsv", pd.DataFrame({"a": [1]}))
    # sub-02 ses-1: run-1 interpolated (abcd mode) with an n/a parcel; run-2 older atlas- naming
    func = xcpd / "sub-02" / "ses-1" / "func"
    frame = pd.DataFrame(signal(30, 4, 2), columns=PARCELS)
    frame["Thal_L"] = np.nan
    data["02-1"] = frame.to_numpy()
    write_tsv(
        func / f"sub-02_ses-1_task-rest_run-1_space-{SPACE}_seg-{ATLAS}_stat-mean_timeseries.tsv",
        frame,
    )
    flags = np.zeros(30, dtype=int)
    flags[[0, 1, 29]] = 1
    write_tsv(
        func / "sub-02_ses-1_task-rest_run-1_outliers.tsv",
        pd.DataFrame({"framewise_displacement": flags}),
    )
    data["02-2"] = signal(25, 4, 3)
    write_tsv(
        func / f"sub-02_ses-1_task-rest_run-2_space-{SPACE}_atlas-{ATLAS}_timeseries.tsv",
        pd.DataFrame(data["02-2"], columns=PARCELS),
    )
    # sub-03: n/a in part of a column (excluded); sub-04: not in participants.tsv
    frame = pd.DataFrame(signal(30, 4, 4), columns=PARCELS)
    frame.iloc[5:8, 1] = np.nan
    write_tsv(
        xcpd
        / "sub-03/func"
        / f"sub-03_task-rest_space-{SPACE}_seg-{ATLAS}_stat-mean_timeseries.tsv",
        frame,
    )
    data["04"] = signal(30, 4, 5)
    write_tsv(
        xcpd
        / "sub-04/func"
        / f"sub-04_task-rest_space-{SPACE}_seg-{ATLAS}_stat-mean_timeseries.tsv",
        pd.DataFrame(data["04"], columns=PARCELS),
    )
    cohort = {
        "name": "tinyxcpd",
        "format": "xcpd",
        "bids_root": str(bids),
        "timeseries": {
            "path": str(xcpd),
            "phenotype": None,
            "atlas": None,
            "space": SPACE,
            "repetition_time": None,
            "max_constant_roi_fraction": 0.3,
        },
        "fmri": {"tasks": ["rest"]},
        "participants": {"site_column": "site"},
        "labels": {"ASD": {"column": "diagnosis", "mapping": {"control": 0, "ASD": 1}}},
    }
    return cohort, data


@pytest.fixture
def xcpd(tmp_path: Path) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    return make_xcpd(tmp_path)


def test_xcpd_inventory(xcpd) -> None:
    cohort, _ = xcpd
    table = build_imported_inventory(cohort).table
    keys = list(zip(table["subject"], table["session"], table["task"], table["run"], strict=True))
    assert keys == [
        ("01", "", "rest", ""),
        ("02", "1", "rest", "1"),
        ("02", "1", "rest", "2"),
        ("03", "", "rest", ""),
        ("04", "", "rest", ""),
    ]
    assert table["status"].tolist() == ["ok", "ok", "ok", "excluded", "warning"]
    assert "missing values in 1 ROI column(s) (LH_Vis_2) at 3 time point(s)" in table["reason"][3]
    assert table["reason"][4].startswith("not listed in participants.tsv")
    assert table["ASD"].tolist()[:3] == [1, 0, 0] and table["site"].tolist()[:3] == ["A", "B", "B"]
    assert table["sidecar"][0].endswith("_stat-mean_timeseries.json") and table["sidecar"][1] == ""
    assert table["path"][2].endswith(f"_atlas-{ATLAS}_timeseries.tsv")


def test_xcpd_import(xcpd, tmp_path: Path) -> None:
    cohort, data = xcpd
    inventory = build_imported_inventory(cohort)
    before = snapshot(tmp_path / "xcp_d") | snapshot(tmp_path / "bids")
    out = tmp_path / "out"
    qc = import_timeseries(cohort, inventory, out, n_jobs=2)
    assert snapshot(tmp_path / "xcp_d") | snapshot(tmp_path / "bids") == before
    assert list(qc.columns) == QC_COLUMNS and len(qc) == 5
    qc = qc.set_index(["subject", "run"])
    prefix = {
        ("01", ""): "sub-01/func/sub-01_task-rest",
        ("02", "1"): "sub-02/ses-1/func/sub-02_ses-1_task-rest_run-1",
        ("02", "2"): "sub-02/ses-1/func/sub-02_ses-1_task-rest_run-2",
        ("04", ""): "sub-04/func/sub-04_task-rest",
    }
    for key, stem in prefix.items():
        assert qc.loc[key, "timeseries"] == str(out / f"{stem}_atlas-{ATLAS}_timeseries.tsv")
    assert qc.loc[("03", ""), "timeseries"] == "" and qc.loc[("03", ""), "status"] == "excluded"

    # sub-01: already censored by XCP-D; TR from the denoised BOLD JSON; FD from motion.tsv
    row = qc.loc[("01", "")]
    assert (row["n_volumes"], row["n_censored"], row["n_kept"]) == (40, 5, 35)
    assert row["pct_censored"] == pytest.approx(12.5)
    assert row["mean_fd"] == pytest.approx(0.2)
    assert_same_values(read_contract(row["timeseries"]), data["01"])
    sidecar = json.loads(Path(row["timeseries"]).with_suffix(".json").read_text())
    assert sidecar["RepetitionTime"] == 0.8
    assert sidecar["RepetitionTimeSource"].endswith("_desc-denoised_bold.json")
    assert sidecar["CensoredVolumes"] == [3, 4, 10, 20, 39] and len(sidecar["KeptVolumes"]) == 35
    assert sidecar["ConfoundStrategy"] == "external: XCP-D" and sidecar["AtlasSpace"] == SPACE
    assert sidecar["SourceMetadata"] == {"SamplingFrequency": "TR", "Sources": []}

    # sub-02 run-1: interpolated output, flagged volumes dropped; n/a parcel written as 0
    row = qc.loc[("02", "1")]
    assert (row["n_volumes"], row["n_censored"], row["n_kept"]) == (30, 3, 27)
    assert row["empty_rois"] == "Thal_L" and row["zero_variance_rois"] == "Thal_L"
    expected = np.nan_to_num(data["02-1"])[2:29]
    assert_same_values(read_contract(row["timeseries"]), expected)
    assert np.isnan(row["mean_fd"])
    sidecar = json.loads(Path(row["timeseries"]).with_suffix(".json").read_text())
    assert sidecar["RepetitionTime"] == 2.0  # raw BIDS task-rest_bold.json (inheritance)
    assert sidecar["ZeroVarianceROIs"] == ["Thal_L"]

    # sub-02 run-2 (older atlas- naming) and sub-04 (no participants row: warning, imported)
    assert_same_values(read_contract(qc.loc[("02", "2"), "timeseries"]), data["02-2"])
    assert qc.loc[("04", ""), "status"] == "ok"  # label warnings stay in the inventory
    assert_same_values(read_contract(qc.loc[("04", ""), "timeseries"]), data["04"])


def test_xcpd_several_spaces_or_atlases_need_a_choice(xcpd, tmp_path: Path) -> None:
    cohort, data = xcpd
    cohort["timeseries"]["space"] = None
    with pytest.raises(
        CohortError, match=rf"several spaces \({SPACE} \(6 files\), fsLR \(1 files\)\)"
    ):
        build_imported_inventory(cohort)
    cohort["timeseries"]["space"] = SPACE
    write_tsv(
        tmp_path / "xcp_d/sub-04/func" / f"sub-04_task-rest_space-{SPACE}_seg-Glasser_stat-"
        "mean_timeseries.tsv",
        pd.DataFrame(data["04"], columns=PARCELS),
    )
    with pytest.raises(CohortError, match="timeseries.atlas is null") as err:
        build_imported_inventory(cohort)
    assert f"{ATLAS} (" in str(err.value) and "Glasser (1 files)" in str(err.value)
    cohort["timeseries"]["atlas"] = "Glasser"
    assert build_imported_inventory(cohort).table["subject"].tolist() == ["04"]


def test_xcpd_errors(xcpd, tmp_path: Path) -> None:
    cohort, _ = xcpd
    cohort["fmri"]["tasks"] = ["movie"]
    with pytest.raises(CohortError, match=r"no XCP-D time series of task\(s\) movie .*nback, rest"):
        build_imported_inventory(cohort)
    cohort["fmri"]["tasks"] = ["rest"]
    cohort["timeseries"]["path"] = str(tmp_path / "bids")
    with pytest.raises(CohortError, match="no XCP-D parcellated time series"):
        build_imported_inventory(cohort)


# --- real data: ABIDE Preprocessed, Harvard-Oxford ----------------------------------------------

ABIDE_DATA = SHARED_DATA / "abide_pcp_ho"


def test_real_abide_import(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if not (ABIDE_DATA / "rois_ho").is_dir():
        pytest.skip(f"{ABIDE_DATA} not present (shared real data)")
    monkeypatch.chdir(REPO)  # the cohort file's paths are relative to the repository root
    cohort = load_cohort(REPO / "config" / "cohorts" / "abide.yaml")
    start = time.perf_counter()
    inventory = build_imported_inventory(cohort, n_jobs=2)
    middle = time.perf_counter()
    qc = import_timeseries(cohort, inventory, tmp_path / "fmri", n_jobs=2)
    end = time.perf_counter()
    print(f"ABIDE inventory {middle - start:.1f} s, import {end - middle:.1f} s")

    table = inventory.table
    assert len(table) == 1102 and table["subject"].nunique() == 1102
    assert table["site"].nunique() == 20
    assert table["ASD"].value_counts().to_dict() == {0: 571, 1: 531}
    assert table["sex"].value_counts().to_dict() == {0: 939, 1: 163}
    # constant-ROI policy (limit 0.1 = 11 of 111 ROIs) excludes 3 files; LEUVEN_1/2 and SBL
    # (94 subjects) have no confirmed TR: usable with a warning
    assert table["status"].value_counts().to_dict() == {"ok": 1005, "warning": 94, "excluded": 3}
    excluded = table[table["status"] == "excluded"]
    assert excluded["subject"].tolist() == ["0050209", "0051469", "0051478"]
    assert excluded["reason"].str.contains("ROIs constant").all()
    assert set(table.loc[table["status"] == "warning", "site"]) == {"LEUVEN_1", "LEUVEN_2", "SBL"}

    assert list(qc.columns) == QC_COLUMNS and len(qc) == 1102
    files = sorted((tmp_path / "fmri").rglob("*_atlas-ho_timeseries.tsv"))
    assert len(files) == 1099 == int(qc["status"].isin(["ok", "warning"]).sum())
    assert (qc["zero_variance_rois"] != "").sum() == 278  # as the data README says
    usable = table[table["status"] != "excluded"]
    assert usable["ASD"].value_counts().to_dict() == {0: 569, 1: 530}

    phenotype = pd.read_csv(ABIDE_DATA / "Phenotypic_V1_0b_preprocessed1.csv")
    phenotype = phenotype.set_index(phenotype["SUB_ID"].map(lambda s: f"{s:07d}"))
    rows = qc.set_index("subject")
    sample = usable.sample(12, random_state=0)
    flat = qc.loc[(qc["zero_variance_rois"] != "") & (qc["status"] != "excluded"), "subject"]
    sample = pd.concat([sample, usable[usable["subject"].isin(flat.iloc[:3])]])
    for record in sample.to_dict("records"):
        subject = record["subject"]
        source = pd.read_csv(record["path"], sep="\t")
        written = read_contract(rows.loc[subject, "timeseries"])
        assert list(written.columns) == [c.lstrip("#") for c in source.columns]
        assert_same_values(written, source.to_numpy())
        constant = [c.lstrip("#") for c in source.columns[source.std(ddof=0).to_numpy() < 1e-8]]
        assert rows.loc[subject, "zero_variance_rois"] == ";".join(constant)
        pheno = phenotype.loc[subject]
        assert record["ASD"] == {1: 1, 2: 0}[pheno["DX_GROUP"]]
        assert record["sex"] == {1: 0, 2: 1}[pheno["SEX"]]
        assert record["site"] == pheno["SITE_ID"]
        if pd.notna(pheno["func_mean_fd"]):
            assert rows.loc[subject, "mean_fd"] == pytest.approx(pheno["func_mean_fd"])
        sidecar = json.loads(Path(rows.loc[subject, "timeseries"]).with_suffix(".json").read_text())
        assert sidecar["RepetitionTime"] == ABIDE_SITE_TR.get(record["site"])
