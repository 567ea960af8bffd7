"""Cohort inventory (mcsp.bids) on tiny BIDS trees written by hand in tmp_path."""

from __future__ import annotations

import copy
import json
import logging
import os
import shutil
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

from mcsp.bids import (
    EMPTY_FILE,
    Inventory,
    UnusableCohortError,
    build_inventory,
    read_inventory,
)
from mcsp.cohorts import check_cohort
from mcsp.exceptions import CohortError, ConfigError

SPACE = "MNI152NLin2009cAsym"
EEG_TASKS = ["eyesopen", "eyesclosed"]
COHORT: dict[str, Any] = {
    "name": "tiny",
    "bids_root": "",
    "fmriprep": {"runtime": "precomputed", "derivatives": None, "output_space": SPACE},
    "fmri": {"tasks": ["rest"]},
    "eeg": {"tasks": EEG_TASKS, "extensions": [".vhdr", ".edf", ".bdf", ".set", ".fif"]},
    "participants": {"site_column": "site"},
    "labels": {
        "ADHD": {"column": "diagnosis", "mapping": {"control": 0, "ADHD": 1}},
        "ASD": {"column": "diagnosis", "mapping": {"control": 0, "ASD": 1}},
        "sex": {"column": "sex", "mapping": {"M": 0, "F": 1}},
    },
}
PARTICIPANTS = [
    {"participant_id": "sub-01", "site": "A", "diagnosis": "control", "sex": "F"},
    {"participant_id": "sub-02", "site": "B", "diagnosis": "ADHD", "sex": "M"},
]


# --- fixture helpers: write a BIDS tree by hand ---------------------------------------------------


def write(path: Path, content: bytes | str | dict = b"x") -> Path:
    """Write a file (dicts as JSON, bytes as is: b'' makes a zero-byte placeholder)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, dict):
        content = json.dumps(content)
    if isinstance(content, str):
        content = content.encode()
    path.write_bytes(content)
    return path


def make_dataset(root: Path, participants: list[dict[str, str]] | None = PARTICIPANTS) -> Path:
    """dataset_description.json, participants.tsv and an (empty) fMRIPrep derivatives folder."""
    write(root / "dataset_description.json", {"Name": "tiny", "BIDSVersion": "1.9.0"})
    if participants is not None:
        columns = list(participants[0]) if participants else ["participant_id"]
        lines = ["\t".join(columns)] + ["\t".join(p[c] for c in columns) for p in participants]
        write(root / "participants.tsv", "\n".join(lines) + "\n")
    description = {"Name": "fMRIPrep", "BIDSVersion": "1.9.0", "DatasetType": "derivative"}
    write(
        fmriprep_dir(root) / "dataset_description.json",
        {**description, "GeneratedBy": [{"Name": "fMRIPrep"}]},
    )
    return root


def fmriprep_dir(root: Path) -> Path:
    return root / "derivatives" / "fmriprep"


def prefix(sub: str, ses: str = "", run: str = "", task: str = "rest") -> tuple[str, str]:
    """(relative folder without datatype, file name prefix) of one recording."""
    folder = f"sub-{sub}" + (f"/ses-{ses}" if ses else "")
    name = f"sub-{sub}" + (f"_ses-{ses}" if ses else "") + f"_task-{task}"
    return folder, name + (f"_run-{run}" if run else "")


def add_fmri(
    root: Path,
    sub: str,
    ses: str = "",
    run: str = "",
    data: bytes = b"x",
    sidecar: dict | str | None = None,
    preproc: bytes | None = b"x",
    preproc_sidecar: dict | None = None,
) -> Path:
    """A raw BOLD (+ sidecar) and, unless preproc is None, its fMRIPrep preprocessed BOLD."""
    folder, name = prefix(sub, ses, run)
    bold = write(root / folder / "func" / f"{name}_bold.nii.gz", data)
    write(
        root / folder / "func" / f"{name}_bold.json",
        {"RepetitionTime": 2.0} if sidecar is None else sidecar,
    )
    if preproc is not None:
        out = fmriprep_dir(root) / folder / "func" / f"{name}_space-{SPACE}_desc-preproc_bold"
        write(out.with_name(out.name + ".nii.gz"), preproc)
        write(out.with_name(out.name + ".json"), preproc_sidecar or {})
        write(fmriprep_dir(root) / folder / "func" / f"{name}_desc-confounds_timeseries.tsv")
    return bold


def add_eeg(
    root: Path,
    sub: str,
    task: str,
    ses: str = "",
    ext: str = ".vhdr",
    data: bytes = b"x",
    sidecar: dict | str | None = None,
) -> Path:
    """An EEG recording (BrainVision with .eeg/.vmrk) and, unless sidecar == 'none', its JSON."""
    folder, name = prefix(sub, ses, task=task)
    path = write(root / folder / "eeg" / f"{name}_eeg{ext}", data)
    if ext == ".vhdr":
        write(path.with_suffix(".eeg"), data)
        write(path.with_suffix(".vmrk"), data)
    write(root / folder / "eeg" / f"{name}_channels.tsv", "name\ttype\nCz\tEEG\n")
    if sidecar != "none":
        content = {"SamplingFrequency": 250} if sidecar is None else sidecar
        write(path.with_name(f"{name}_eeg.json"), content)
    return path


def add_subject(root: Path, sub: str, ses: str = "") -> None:
    add_fmri(root, sub, ses)
    for task in EEG_TASKS:
        add_eeg(root, sub, task, ses)


def cohort_for(root: Path, **changes: Any) -> dict[str, Any]:
    cohort = copy.deepcopy(COHORT)
    cohort["bids_root"] = str(root)
    for key, value in changes.items():  # sections are updated, labels replaced
        if key in ("fmriprep", "fmri", "eeg", "participants"):
            cohort[key].update(value)
        else:
            cohort[key] = value
    return cohort


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    """Two complete subjects: fMRI with fMRIPrep output and two EEG tasks each."""
    root = make_dataset(tmp_path / "bids")
    for sub in ("01", "02"):
        add_subject(root, sub)
    return root


def rows(inventory: Inventory, **where: str) -> pd.DataFrame:
    table = inventory.table
    mask = pd.Series(True, index=table.index)
    for column, value in where.items():
        mask &= table[column] == value
    return table[mask]


def only(inventory: Inventory, **where: str) -> pd.Series:
    found = rows(inventory, **where)
    assert len(found) == 1, found
    return found.iloc[0]


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """Every path under root (hidden ones included) with its size and mtime."""
    result = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(folder) / name
            stat = path.lstat()
            result[str(path.relative_to(root))] = (stat.st_size, stat.st_mtime_ns)
    return result


# --- rows that are fine ---------------------------------------------------------------------------


def test_ok_rows_have_the_documented_columns_in_order(dataset: Path) -> None:
    inventory = build_inventory(cohort_for(dataset))
    table = inventory.table
    assert list(table.columns) == [
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
        "ADHD",
        "ASD",
        "sex",
        "status",
        "reason",
    ]
    assert len(table) == 6 and set(table["status"]) == {"ok"} and set(table["reason"]) == {""}
    assert list(table["subject"]) == ["01"] * 3 + ["02"] * 3
    assert list(table["modality"][:3]) == ["fmri", "eeg", "eeg"]
    assert set(table["session"]) == {""} and set(table["run"]) == {""}
    assert set(table["cohort"]) == {"tiny"}
    for label in ("ADHD", "ASD", "sex"):
        assert table[label].dtype == "Int64"

    fmri = only(inventory, subject="01", modality="fmri")
    assert fmri["task"] == "rest"
    assert fmri["path"] == str(dataset / "sub-01/func/sub-01_task-rest_bold.nii.gz")
    assert fmri["sidecar"] == str(dataset / "sub-01/func/sub-01_task-rest_bold.json")
    assert fmri["derivative"] == str(
        fmriprep_dir(dataset)
        / f"sub-01/func/sub-01_task-rest_space-{SPACE}_desc-preproc_bold.nii.gz"
    )
    eeg = only(inventory, subject="02", task="eyesclosed")
    assert eeg["path"].endswith("sub-02/eeg/sub-02_task-eyesclosed_eeg.vhdr")
    assert eeg["sidecar"].endswith("sub-02/eeg/sub-02_task-eyesclosed_eeg.json")
    assert eeg["derivative"] == "" and eeg["site"] == "B"
    assert inventory.subjects() == ["01", "02"]
    assert inventory.subjects("eeg", status="excluded") == []


def test_labels_map_values_and_int_like_yaml_keys(tmp_path: Path) -> None:
    participants = [
        {"participant_id": "sub-01", "site": "A", "diagnosis": "control", "sex": "1"},
        {"participant_id": "02", "site": "A", "diagnosis": "ASD", "sex": "2"},  # no sub- prefix
        {"participant_id": "sub-03", "site": "A", "diagnosis": "other", "sex": "n/a"},
        {"participant_id": "sub-04", "site": "A", "diagnosis": "ADHD", "sex": "3"},
    ]
    root = make_dataset(tmp_path / "bids", participants)
    for sub in ("01", "02", "03", "04"):
        add_subject(root, sub)
    labels = copy.deepcopy(COHORT["labels"])
    labels["sex"]["mapping"] = {1: 0, 2: 1}  # YAML gives int keys for SEX 1/2
    inventory = build_inventory(cohort_for(root, labels=labels))

    def label_row(sub: str) -> list[Any]:
        row = only(inventory, subject=sub, modality="fmri")
        return [None if pd.isna(row[k]) else int(row[k]) for k in ("ADHD", "ASD", "sex")]

    assert label_row("01") == [0, 0, 0]
    assert label_row("02") == [None, 1, 1]
    assert label_row("04") == [1, None, None]  # sex 3 unmapped: that label only is n/a
    assert set(rows(inventory, subject="04")["status"]) == {"ok"}
    # all labels n/a -> usable for pretraining only, with the columns and values named
    sub03 = rows(inventory, subject="03")
    assert set(sub03["status"]) == {"warning"}
    reason = sub03["reason"].iloc[0]
    assert "no label" in reason and "pretraining" in reason
    assert "diagnosis 'other' not in the mapping of ADHD/ASD" in reason and "sex is n/a" in reason
    assert inventory.subjects(status="warning") == ["03"]


def test_subject_without_labels_stays_usable_for_pretraining(tmp_path: Path) -> None:
    participants = [dict(PARTICIPANTS[0]), {**PARTICIPANTS[1], "diagnosis": "n/a", "sex": "n/a"}]
    root = make_dataset(tmp_path / "bids", participants)
    add_subject(root, "01")
    add_subject(root, "02")
    inventory = build_inventory(cohort_for(root))
    assert inventory.subjects() == ["01"]
    assert inventory.subjects("fmri", status="warning") == ["02"]
    assert (
        "diagnosis is n/a, sex is n/a" in only(inventory, subject="02", modality="fmri")["reason"]
    )


def test_participants_without_data_and_data_without_participants(tmp_path: Path) -> None:
    participants = [*PARTICIPANTS, {**PARTICIPANTS[0], "participant_id": "sub-09"}]
    root = make_dataset(tmp_path / "bids", participants)
    add_subject(root, "01")
    add_subject(root, "03")  # not in participants.tsv
    inventory = build_inventory(cohort_for(root))

    for sub in ("02", "09"):  # listed, no folder: one missing row per modality
        listed = rows(inventory, subject=sub)
        assert sorted(listed["modality"]) == ["eeg", "fmri"]
        assert set(listed["status"]) == {"missing"} and set(listed["path"]) == {""}
        assert (
            f"listed in participants.tsv but has no folder sub-{sub}/" in listed["reason"].iloc[0]
        )
    unlisted = rows(inventory, subject="03")
    assert len(unlisted) == 3 and set(unlisted["status"]) == {"warning"}
    assert set(unlisted["reason"]) == {"not listed in participants.tsv (no labels, site unknown)"}
    assert set(unlisted["site"]) == {"n/a"} and unlisted["ADHD"].isna().all()


def test_no_participants_file_is_a_warning_per_subject(tmp_path: Path) -> None:
    root = make_dataset(tmp_path / "bids", participants=None)
    add_subject(root, "01")
    inventory = build_inventory(cohort_for(root))
    assert set(inventory.table["status"]) == {"warning"}
    assert set(inventory.table["reason"]) == {"no participants.tsv (no labels, site unknown)"}


def test_site_missing_is_na_and_a_warning_and_null_site_column_is_one_site(tmp_path: Path) -> None:
    root = make_dataset(tmp_path / "bids", [PARTICIPANTS[0], {**PARTICIPANTS[1], "site": "n/a"}])
    add_subject(root, "01")
    add_subject(root, "02")
    inventory = build_inventory(cohort_for(root))
    sub02 = only(inventory, subject="02", modality="fmri")
    assert sub02["site"] == "n/a" and sub02["status"] == "warning"
    assert sub02["reason"] == "site missing (site is n/a in participants.tsv)"
    assert only(inventory, subject="01", modality="fmri")["status"] == "ok"

    single = build_inventory(cohort_for(root, participants={"site_column": None}))
    assert set(single.table["site"]) == {"1"} and set(single.table["status"]) == {"ok"}


def test_missing_label_column_is_a_cohort_error(dataset: Path) -> None:
    labels = {"dx": {"column": "dx_group", "mapping": {"a": 0}}}
    with pytest.raises(CohortError, match="dx_group") as err:
        build_inventory(cohort_for(dataset, labels=labels))
    assert str(dataset / "participants.tsv") in str(err.value)


def test_participant_listed_twice_with_conflicting_values_is_refused(tmp_path: Path) -> None:
    twice = [*PARTICIPANTS, {**PARTICIPANTS[0], "diagnosis": "ADHD", "participant_id": "01"}]
    root = make_dataset(tmp_path / "bids", twice)
    add_subject(root, "01")
    with pytest.raises(CohortError) as err:
        build_inventory(cohort_for(root))
    assert str(err.value) == (
        f"{root / 'participants.tsv'}: participant_id listed more than once with different "
        "values: sub-01 (lines 2, 4: diagnosis 'control' vs 'ADHD'). Fix: keep one row per "
        "participant (delete or merge the others; line 1 is the header)."
    )


def test_participant_listed_twice_with_the_same_used_values_warns_and_uses_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    twice = [{**p, "age": "9"} for p in PARTICIPANTS]
    twice.append({**twice[1], "age": "10"})  # age is no label or site column: no conflict
    root = make_dataset(tmp_path / "bids", twice)
    add_subject(root, "02")
    with caplog.at_level(logging.WARNING, logger="mcsp.bids"):
        inventory = build_inventory(cohort_for(root))
    assert only(inventory, subject="02", modality="fmri")["ADHD"] == 1
    assert "participant_id listed more than once" in caplog.text
    assert "sub-02 (lines 3, 4)" in caplog.text


def test_label_mapping_matching_no_value_is_refused(dataset: Path) -> None:
    labels = {"ASD": {"column": "diagnosis", "mapping": {"autism": 1, "typical": 0}}}
    with pytest.raises(CohortError) as err:
        build_inventory(cohort_for(dataset, labels=labels))
    assert str(err.value) == (
        f"{dataset / 'participants.tsv'}: no value of column diagnosis is in the mapping of "
        "label ASD, so every subject would have ASD n/a. Values in diagnosis: 'ADHD', "
        "'control'; mapping keys: 'autism', 'typical'. Fix labels.ASD.mapping in the cohort "
        "file to use the column's values (exact text, case-sensitive) or labels.ASD.column."
    )
    # a column without any value is the data's gap, not the mapping's: subjects warn, no error
    participants = [{**p, "sex": "n/a"} for p in PARTICIPANTS]
    root = make_dataset(dataset.parent / "blank", participants)
    add_subject(root, "01")
    assert only(build_inventory(cohort_for(root)), subject="01", modality="fmri")["status"] == "ok"


def test_label_mapping_matching_some_values_warns_with_counts(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """mapping {control: 0, ADHD: 1} on a column of TD/ADHD: TD subjects n/a, said loudly."""
    participants = [
        {"participant_id": f"sub-{i:02d}", "site": "A", "dx": "ADHD" if i <= 8 else "TD"}
        for i in range(1, 25)
    ]
    root = make_dataset(tmp_path / "bids", participants)
    for i in range(1, 25):
        add_fmri(root, f"{i:02d}")
    labels = {"dx": {"column": "dx", "mapping": {"control": 0, "ADHD": 1}}}
    with caplog.at_level(logging.WARNING, logger="mcsp.bids"):
        inventory = build_inventory(cohort_for(root, labels=labels, eeg={"tasks": []}))
    note = (
        f"{root / 'participants.tsv'}: column dx has value(s) not in labels.dx.mapping: "
        "'TD' (16 subjects); 16 subjects get dx n/a. Fix: add them to labels.dx.mapping in "
        "config/cohorts/tiny.yaml (mapping keys: 'control', 'ADHD'), unless they are meant "
        "to be n/a."
    )
    assert inventory.notes == (note,)
    assert note in caplog.text
    summary = inventory.summary()
    assert "dx: class 1: 8, n/a: 16" in summary and f"Warnings (1):\n  {note}" in summary
    out = tmp_path / "results" / "inventory.tsv"
    inventory.write(out)
    assert read_inventory(out).summary() == summary
    # a full mapping says nothing
    labels["dx"]["mapping"]["TD"] = 0
    assert build_inventory(cohort_for(root, labels=labels, eeg={"tasks": []})).notes == ()


def test_yaml_boolean_mapping_keys_are_refused(dataset: Path, tmp_path: Path) -> None:
    cohort = cohort_for(dataset)
    del cohort["labels"]
    cohort_file = write(
        tmp_path / "cohorts" / "tiny.yaml",
        yaml.safe_dump(cohort) + "labels:\n  ADHD: {column: diagnosis, mapping: {no: 0, yes: 1}}\n",
    )
    out = tmp_path / "results" / "tiny" / "inventory.tsv"
    with pytest.raises(ConfigError) as err:
        check_cohort(cohort_file, out)  # `mcsp cohort check`: refused before anything runs
    assert str(err.value) == (
        "cohort 'tiny' (config/cohorts/tiny.yaml): labels.ADHD.mapping has key(s) False, True: "
        "YAML reads unquoted no/yes, false/true, off/on as booleans (and ~ or null as null), "
        "which never match the text in participants.tsv column diagnosis. Fix: quote the keys: "
        "'no': 0, 'yes': 1."
    )
    assert not out.exists()


@pytest.mark.parametrize(("sep", "name"), [(",", "commas"), (";", "semicolons")])
def test_participants_not_tab_separated_is_named_as_such(
    tmp_path: Path, sep: str, name: str
) -> None:
    root = make_dataset(tmp_path / "bids")
    add_subject(root, "01")
    columns = list(PARTICIPANTS[0])
    lines = [sep.join(columns)] + [sep.join(p[c] for c in columns) for p in PARTICIPANTS]
    write(root / "participants.tsv", "\n".join(lines) + "\n")
    with pytest.raises(CohortError) as err:
        build_inventory(cohort_for(root))
    header = sep.join(columns)
    assert str(err.value) == (
        f"{root / 'participants.tsv'}: not tab-separated: its header line has {name} and no "
        f"tabs ({header!r}), so its columns cannot be found. Fix: save it as tab-separated "
        "values (BIDS .tsv files use tabs, not CSV), with 'n/a' for missing values."
    )


# --- EEG problems ---------------------------------------------------------------------------------


def test_eeg_sidecar_problems_exclude_the_recording(dataset: Path) -> None:
    add_subject(dataset, "03")
    add_subject(dataset, "04")
    for sub, sidecar in (("01", "none"), ("02", {"PowerLineFrequency": 50}), ("03", "")):
        name = f"sub-{sub}/eeg/sub-{sub}_task-eyesopen_eeg.json"
        (dataset / name).unlink()
        if sidecar != "none":
            write(dataset / name, sidecar)
    write(dataset / "sub-04/eeg/sub-04_task-eyesopen_eeg.json", {"SamplingFrequency": "n/a"})
    inventory = build_inventory(cohort_for(dataset))

    def eyesopen(sub: str) -> pd.Series:
        return only(inventory, subject=sub, task="eyesopen")

    assert eyesopen("01")["status"] == "excluded" and eyesopen("01")["sidecar"] == ""
    assert eyesopen("01")["reason"] == "no _eeg.json sidecar (BIDS requires one)"
    assert eyesopen("02")["status"] == "excluded"
    assert "has no SamplingFrequency" in eyesopen("02")["reason"]
    assert eyesopen("03")["status"] == "excluded"
    assert "sub-03_task-eyesopen_eeg.json is empty or not valid JSON" in eyesopen("03")["reason"]
    assert eyesopen("04")["status"] == "excluded"
    # the other task of the same subjects is untouched
    assert "excluded" not in set(rows(inventory, task="eyesclosed")["status"])


def test_eeg_sidecar_found_by_inheritance_and_data_extension_filter(tmp_path: Path) -> None:
    root = make_dataset(tmp_path / "bids")
    add_fmri(root, "01")
    add_eeg(root, "01", "eyesopen", ext=".edf", sidecar="none")
    write(root / "task-eyesopen_eeg.json", {"SamplingFrequency": 500})
    inventory = build_inventory(cohort_for(root))
    row = only(inventory, modality="eeg", task="eyesopen")
    assert row["status"] == "ok" and row["sidecar"] == str(root / "task-eyesopen_eeg.json")
    assert row["path"].endswith("_eeg.edf")  # channels.tsv and the sidecar are not recordings
    # EEG restricted to .vhdr: the .edf no longer counts, the modality is missing
    other = build_inventory(cohort_for(root, eeg={"extensions": [".vhdr"]}))
    missing = only(other, subject="01", modality="eeg")
    assert missing["status"] == "missing"
    assert missing["reason"] == "no EEG recording for task(s) eyesopen, eyesclosed"


def test_duplicate_recordings_in_two_formats_keep_one(dataset: Path) -> None:
    add_eeg(dataset, "01", "eyesopen", ext=".edf")
    inventory = build_inventory(cohort_for(dataset))
    both = rows(inventory, subject="01", task="eyesopen")
    assert sorted(both["status"]) == ["excluded", "ok"]
    kept = both[both["status"] == "ok"]["path"].iloc[0]
    assert kept.endswith(".vhdr")  # the first format in eeg.extensions wins
    assert "duplicate of sub-01_task-eyesopen_eeg.vhdr" in " ".join(both["reason"])


def test_backup_folder_beside_the_subject_is_excluded_and_never_wins(dataset: Path) -> None:
    shutil.copytree(dataset / "sub-01", dataset / "sub-01-bak")  # '-' sorts before '/'
    add_eeg(dataset, "01", "eyesopen", ext=".edf")
    edf = dataset / "sub-01-bak/eeg/sub-01_task-eyesopen_eeg.edf"
    (dataset / "sub-01/eeg" / edf.name).rename(edf)  # the .edf exists in the backup only
    add_fmri(dataset, "02", ses="1")
    shutil.copytree(dataset / "sub-02/ses-1", dataset / "sub-02/ses-1-old")
    inventory = build_inventory(cohort_for(dataset))
    table = inventory.table

    def misplaced(name: str, folder: str, instead: str) -> str:
        return (
            f"file {name} lies in folder {folder}/, not {instead}/: a copy or backup? "
            "move it out of the BIDS folder"
        )

    backup = table[table["path"].str.contains("/sub-01-bak/")]
    assert len(backup) == 4 and set(backup["status"]) == {"excluded"}
    assert set(backup["subject"]) == {"01"}
    assert only(inventory, path=str(edf))["reason"] == misplaced(edf.name, "sub-01-bak", "sub-01")
    bold = "sub-01_task-rest_bold.nii.gz"
    assert misplaced(bold, "sub-01-bak", "sub-01") in set(backup["reason"])
    real = table[table["path"].str.contains("/sub-01/")]
    assert len(real) == 3 and set(real["status"]) == {"ok"} and set(real["reason"]) == {""}
    assert not table["reason"].str.contains("duplicate").any()
    assert "01-bak" not in set(table["subject"])  # the backup folder is no subject of its own
    old = dataset / "sub-02/ses-1-old/func/sub-02_ses-1_task-rest_bold.nii.gz"
    assert only(inventory, path=str(old))["status"] == "excluded"
    assert only(inventory, path=str(old))["reason"] == misplaced(
        old.name, "sub-02/ses-1-old", "sub-02/ses-1"
    )
    kept = only(inventory, subject="02", session="1", modality="fmri", status="ok")
    assert kept["path"] == str(dataset / "sub-02/ses-1/func" / old.name)


def test_fmriprep_backup_folder_is_ignored_with_a_reason(dataset: Path) -> None:
    shutil.copytree(fmriprep_dir(dataset) / "sub-01", fmriprep_dir(dataset) / "sub-01-bak")
    shutil.move(fmriprep_dir(dataset) / "sub-02", fmriprep_dir(dataset) / "sub-02-old")
    inventory = build_inventory(cohort_for(dataset))
    name = f"_task-rest_space-{SPACE}_desc-preproc_bold.nii.gz"
    sub01 = only(inventory, subject="01", modality="fmri")
    assert sub01["derivative"] == str(fmriprep_dir(dataset) / f"sub-01/func/sub-01{name}")
    assert sub01["status"] == "warning" and sub01["reason"] == (
        f"fMRIPrep BOLD ignored: file sub-01{name} lies in folder sub-01-bak/, not sub-01/: "
        "a copy or backup? move it out of the fMRIPrep folder"
    )
    sub02 = only(inventory, subject="02", modality="fmri")  # precomputed, only a misplaced copy
    assert sub02["status"] == "excluded" and sub02["derivative"] == ""
    assert sub02["reason"].startswith(
        f"fMRIPrep BOLD ignored: file sub-02{name} lies in folder sub-02-old/, not sub-02/"
    )
    assert "no fMRIPrep preprocessed BOLD: expected" in sub02["reason"]


def test_brainvision_header_without_data_file_is_excluded(dataset: Path) -> None:
    (dataset / "sub-01/eeg/sub-01_task-eyesopen_eeg.eeg").unlink()
    row = only(build_inventory(cohort_for(dataset)), subject="01", task="eyesopen")
    assert row["status"] == "excluded"
    assert row["reason"] == "BrainVision data sub-01_task-eyesopen_eeg.eeg: file not found"


# --- fMRI problems --------------------------------------------------------------------------------


def test_repetition_time_from_inheritance_derivative_or_excluded(tmp_path: Path) -> None:
    root = make_dataset(tmp_path / "bids", [])
    add_fmri(root, "01", sidecar={"TaskName": "rest"}, preproc_sidecar={"RepetitionTime": 2.5})
    add_fmri(root, "02", sidecar={"TaskName": "rest"})
    add_fmri(root, "03", sidecar={"TaskName": "rest"})
    write(root / "sub-03" / "sub-03_task-rest_bold.json", {"RepetitionTime": 1.0})
    add_fmri(root, "04", sidecar={"RepetitionTime": 0})
    cohort = cohort_for(root, eeg={"tasks": []}, labels={}, participants={"site_column": None})
    inventory = build_inventory(cohort)
    assert only(inventory, subject="01")["status"] == "warning"  # TR from fMRIPrep's sidecar
    assert only(inventory, subject="01")["reason"] == "not listed in participants.tsv"
    sub02 = only(inventory, subject="02")
    assert sub02["status"] == "excluded"
    assert sub02["reason"].startswith("no RepetitionTime in the _bold.json sidecars")
    assert only(inventory, subject="03")["status"] == "warning"  # TR from the subject level
    assert only(inventory, subject="03")["sidecar"].endswith("func/sub-03_task-rest_bold.json")
    assert "invalid (0) RepetitionTime" in only(inventory, subject="04")["reason"]
    assert set(inventory.table["modality"]) == {"fmri"}  # eeg.tasks [] -> no EEG rows at all


def test_bold_sidecar_inherited_from_the_dataset_root(dataset: Path) -> None:
    (dataset / "sub-01/func/sub-01_task-rest_bold.json").unlink()
    write(dataset / "task-rest_bold.json", {"RepetitionTime": 2.0})
    row = only(build_inventory(cohort_for(dataset)), subject="01", modality="fmri")
    assert row["status"] == "ok" and row["sidecar"] == str(dataset / "task-rest_bold.json")


def test_precomputed_without_preproc_bold_names_the_expected_file(tmp_path: Path) -> None:
    root = make_dataset(tmp_path / "bids")
    add_fmri(root, "01", ses="1", run="01", preproc=None)
    add_fmri(root, "02", ses="1", run="01")
    inventory = build_inventory(cohort_for(root, eeg={"tasks": []}))
    row = only(inventory, subject="01")
    expected = (
        fmriprep_dir(root)
        / f"sub-01/ses-1/func/sub-01_ses-1_task-rest_run-01_space-{SPACE}_desc-preproc_bold.nii.gz"
    )
    assert row["status"] == "excluded" and row["derivative"] == ""
    assert f"no fMRIPrep preprocessed BOLD: expected {expected}" in row["reason"]
    assert (row["session"], row["run"]) == ("1", "01")
    assert only(inventory, subject="02")["status"] == "ok"
    # with a container runtime fMRIPrep will make it: the run is fine
    apptainer = build_inventory(
        cohort_for(root, eeg={"tasks": []}, fmriprep={"runtime": "apptainer"})
    )
    assert set(apptainer.table["status"]) == {"ok"}
    # the wrong output space is as good as none
    with pytest.raises(CohortError, match="_space-T1w_desc-preproc_bold.nii.gz"):
        build_inventory(cohort_for(root, eeg={"tasks": []}, fmriprep={"output_space": "T1w"}))


def test_derivatives_folder_without_description_excludes_fmri_without_crash(dataset: Path) -> None:
    (fmriprep_dir(dataset) / "dataset_description.json").unlink()
    inventory = build_inventory(cohort_for(dataset))
    fmri = rows(inventory, modality="fmri")
    assert set(fmri["status"]) == {"excluded"}
    assert "has no dataset_description.json" in fmri["reason"].iloc[0]
    assert set(rows(inventory, modality="eeg")["status"]) == {"ok"}


def test_derivatives_without_description_points_at_fmriprep_folder(
    dataset: Path, tmp_path: Path
) -> None:
    """The fix names where fMRIPrep's folder should be; it never asks to write into the input."""
    inner = tmp_path / "deriv" / "fmriprep"
    inner.parent.mkdir()
    fmriprep_dir(dataset).rename(inner)
    outer = inner.parent
    inventory = build_inventory(cohort_for(dataset, fmriprep={"derivatives": str(outer)}))
    reason = only(inventory, subject="01", modality="fmri")["reason"]
    assert reason == (
        f"fMRIPrep derivatives folder {outer} has no dataset_description.json, so it is not the "
        "folder fMRIPrep wrote: set fmriprep.derivatives in the cohort file to fMRIPrep's output "
        "folder, the one holding fMRIPrep's own dataset_description.json and the "
        f"sub-*/[ses-*/]func/ outputs (by default {dataset / 'derivatives' / 'fmriprep'}); did "
        f"you mean {inner}? (mcsp never writes into input data)"
    )
    assert "add {" not in reason and not (outer / "dataset_description.json").exists()


def test_derivatives_folder_elsewhere_and_not_a_derivative(dataset: Path, tmp_path: Path) -> None:
    moved = tmp_path / "fmriprep"
    fmriprep_dir(dataset).rename(moved)
    inventory = build_inventory(cohort_for(dataset, fmriprep={"derivatives": str(moved)}))
    assert set(rows(inventory, modality="fmri")["derivative"].str.startswith(str(moved))) == {True}
    write(moved / "dataset_description.json", {"Name": "raw", "DatasetType": "raw"})
    inventory = build_inventory(cohort_for(dataset, fmriprep={"derivatives": str(moved)}))
    assert (
        "DatasetType 'raw', not 'derivative'"
        in only(inventory, subject="01", modality="fmri")["reason"]
    )


# --- missing modalities, sessions, task names -----------------------------------------------------


def test_missing_modality_per_subject_and_session(tmp_path: Path) -> None:
    root = make_dataset(tmp_path / "bids")
    add_subject(root, "01", ses="1")
    add_fmri(root, "01", ses="2")
    for task in EEG_TASKS:
        add_eeg(root, "02", task)
    inventory = build_inventory(cohort_for(root))
    missing = rows(inventory, status="missing")
    assert sorted(
        zip(missing["subject"], missing["session"], missing["modality"], strict=True)
    ) == [
        ("01", "2", "eeg"),
        ("02", "", "fmri"),
    ]
    assert set(missing["reason"]) == {
        "no EEG recording for task(s) eyesopen, eyesclosed",
        "no fMRI recording for task(s) rest",
    }
    assert set(missing["path"]) == {""} and set(missing["task"]) == {""}
    assert len(rows(inventory, subject="01", session="1")) == 3
    assert inventory.subjects("fmri") == ["01"] and inventory.subjects("eeg") == ["01", "02"]


def test_task_names_absent_from_the_dataset_get_a_hint(dataset: Path) -> None:
    inventory = build_inventory(cohort_for(dataset, fmri={"tasks": ["resting"]}))
    reason = only(inventory, subject="01", modality="fmri")["reason"]
    assert "no fMRI recording for task(s) resting (this dataset has task(s) rest" in reason


# --- placeholders ---------------------------------------------------------------------------------


def test_zero_byte_and_broken_symlink_placeholders_are_excluded_not_fatal(dataset: Path) -> None:
    add_fmri(dataset, "03", data=b"", preproc=b"")
    for task in EEG_TASKS:
        add_eeg(dataset, "03", task, data=b"")
    target = dataset / ".git" / "annex" / "objects" / "missing"
    bold = dataset / "sub-02/func/sub-02_task-rest_bold.nii.gz"
    bold.unlink()
    bold.symlink_to(target)  # a git-annex file that was never fetched
    inventory = build_inventory(cohort_for(dataset))

    sub03 = rows(inventory, subject="03")
    assert set(sub03["status"]) == {"excluded"}
    assert set(sub03["reason"].str.split("; ").str[0]) == {EMPTY_FILE, f"raw BOLD: {EMPTY_FILE}"}
    assert "fMRIPrep BOLD" in only(inventory, subject="03", modality="fmri")["reason"]
    # fMRIPrep derivatives are precomputed: an unfetched raw BOLD only warns
    sub02 = only(inventory, subject="02", modality="fmri")
    assert sub02["status"] == "warning" and "raw BOLD: broken symlink" in sub02["reason"]
    assert inventory.subjects() == ["01", "02"]
    strict = build_inventory(cohort_for(dataset, fmriprep={"runtime": "apptainer"}))
    sub02 = only(strict, subject="02", modality="fmri")
    assert sub02["status"] == "excluded" and "broken symlink" in sub02["reason"]


def test_all_placeholder_tree_is_one_clear_cohort_error(tmp_path: Path) -> None:
    root = make_dataset(tmp_path / "bids")
    for sub in ("01", "02"):
        add_fmri(root, sub, data=b"", preproc=b"", sidecar="")
        for task in EEG_TASKS:
            add_eeg(root, sub, task, data=b"", sidecar="")
    write(root / "sub-01" / "anat" / "sub-01_T1w.nii.gz", b"")
    with pytest.raises(CohortError) as err:
        build_inventory(cohort_for(root))
    message = str(err.value)
    assert str(root) in message and "no subject has a usable" in message and EMPTY_FILE in message


# --- whole-cohort errors --------------------------------------------------------------------------


def _no_dir(tmp: Path) -> Path:
    return tmp / "nowhere"


def _empty_dir(tmp: Path) -> Path:
    (tmp / "empty").mkdir()
    return tmp / "empty"


def _no_description(tmp: Path) -> Path:
    root = make_dataset(tmp / "bids")
    add_subject(root, "01")
    (root / "dataset_description.json").unlink()
    return root


def _no_subjects(tmp: Path) -> Path:
    return make_dataset(tmp / "bids")


def _nothing_usable(tmp: Path) -> Path:
    root = make_dataset(tmp / "bids")
    write(root / "sub-01" / "anat" / "sub-01_T1w.nii.gz")
    return root


@pytest.mark.parametrize(
    ("make", "problem"),
    [
        (_no_dir, "does not exist"),
        (_empty_dir, "is empty"),
        (_no_description, "has no dataset_description.json"),
        (_no_subjects, "no subjects found"),
        (_nothing_usable, "no subject has a usable fMRI or EEG recording"),
    ],
)
def test_whole_cohort_errors_name_path_problem_and_fix(
    tmp_path: Path, make: Any, problem: str
) -> None:
    root = make(tmp_path)
    with pytest.raises(CohortError) as err:
        build_inventory(cohort_for(root))
    message = str(err.value)
    assert str(root) in message and problem in message and "Fix" in message


def test_bids_root_one_level_too_high_gets_a_hint(dataset: Path) -> None:
    with pytest.raises(CohortError, match="Did you mean"):
        build_inventory(cohort_for(dataset.parent))


def test_relative_bids_root_is_relative_to_the_working_directory(
    dataset: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(dataset.parent)
    inventory = build_inventory(cohort_for(Path("bids")))
    assert inventory.bids_root == str(dataset)
    assert Path(inventory.table["path"][0]).is_absolute()


# --- output ---------------------------------------------------------------------------------------


def test_nothing_is_written_inside_bids_root(dataset: Path, tmp_path: Path) -> None:
    add_fmri(dataset, "03", data=b"")
    before = snapshot(dataset)
    inventory = build_inventory(cohort_for(dataset))
    inventory.write(tmp_path / "results" / "inventory.tsv")
    inventory.summary()
    assert snapshot(dataset) == before
    with pytest.raises(ConfigError, match="inside the BIDS folder"):
        inventory.write(dataset / "derivatives" / "inventory.tsv")
    assert snapshot(dataset) == before


def test_write_read_round_trip(tmp_path: Path) -> None:
    participants = [*PARTICIPANTS, {**PARTICIPANTS[0], "participant_id": "sub-03", "sex": "n/a"}]
    root = make_dataset(tmp_path / "bids", participants)
    add_subject(root, "01", ses="1")
    add_fmri(root, "02", run="2")
    add_eeg(root, "03", "eyesopen", data=b"")
    inventory = build_inventory(cohort_for(root))
    assert {"ok", "excluded", "missing"} <= set(inventory.table["status"])
    assert inventory.table["sex"].isna().any()

    out = tmp_path / "results" / "tiny" / "inventory.tsv"
    inventory.write(out)
    text = out.read_text()
    assert text.splitlines()[0].split("\t")[-2:] == ["status", "reason"] and "n/a" in text
    back = read_inventory(out)
    pd.testing.assert_frame_equal(back.table, inventory.table)
    assert (back.cohort, back.bids_root) == ("tiny", str(root))
    assert back.summary() == inventory.summary()
    # what other tools read: plain TSV, empty strings stay empty
    plain = pd.read_csv(out, sep="\t", dtype=str, keep_default_na=False)
    assert set(plain["session"]) == {"1", ""}


def test_summary_reports_sites_statuses_labels_and_grouped_problems(tmp_path: Path) -> None:
    participants = [
        {"participant_id": f"sub-{i:02d}", "site": "AB"[i % 2], "diagnosis": "control", "sex": "M"}
        for i in range(1, 10)
    ]
    participants[0]["diagnosis"] = "ADHD"
    root = make_dataset(tmp_path / "bids", participants)
    for i in range(1, 10):
        empty = b"" if i > 1 else b"x"
        add_fmri(root, f"{i:02d}", data=empty, preproc=empty)
        add_eeg(root, f"{i:02d}", "eyesopen")
    summary = build_inventory(cohort_for(root)).summary()
    print(summary)
    assert "Cohort tiny" in summary and str(root) in summary
    assert "Subjects: 9 (by site: A: 4, B: 5)" in summary
    assert "fMRI 1, EEG 9, both 1, any 9" in summary
    fmri_line = next(line for line in summary.splitlines() if line.strip().startswith("fMRI "))
    assert fmri_line.split()[1:] == ["1", "0", "8", "0"]
    assert "ADHD: class 0: 8, class 1: 1, n/a: 0" in summary
    assert "ASD: class 0: 8, n/a: 1" in summary
    assert f"{EMPTY_FILE} — 8 subjects, 8 row(s): sub-02, sub-03" in summary
    assert "… and 3 more" in summary


def test_subjects_rejects_unknown_status_and_modality(dataset: Path) -> None:
    inventory = build_inventory(cohort_for(dataset))
    with pytest.raises(ValueError, match="usable"):
        inventory.subjects(status="usable")
    with pytest.raises(ValueError, match="modality"):
        inventory.subjects("mri")


def test_check_cohort_writes_table_and_summary(dataset: Path, tmp_path: Path) -> None:
    cohort_file = tmp_path / "cohorts" / "tiny.yaml"
    write(cohort_file, yaml.safe_dump(cohort_for(dataset)))
    out = tmp_path / "results" / "tiny" / "inventory.tsv"
    inventory = check_cohort(cohort_file, out)
    assert read_inventory(out).table.equals(inventory.table)
    assert out.with_suffix(".txt").read_text() == inventory.summary() + "\n"


def test_check_cohort_writes_table_of_unusable_cohort_then_fails(
    tmp_path: Path,
) -> None:
    """Nothing usable: the table (every row with its reason) and summary are written, then error."""
    root = make_dataset(tmp_path / "bids")
    for sub in ("01", "02"):
        add_fmri(root, sub, data=b"", preproc=b"")
        add_eeg(root, sub, "eyesopen", data=b"")
    cohort_file = tmp_path / "cohorts" / "tiny.yaml"
    write(cohort_file, yaml.safe_dump(cohort_for(root)))
    out = tmp_path / "results" / "tiny" / "inventory.tsv"
    with pytest.raises(UnusableCohortError) as err:
        check_cohort(cohort_file, out)
    message = str(err.value)
    assert "no subject has a usable fMRI or EEG recording" in message
    assert f"The inventory with every row's reason is in {out}" in message
    table = read_inventory(out).table
    assert len(table) == 4 and set(table["status"]) == {"excluded"}
    assert (table["reason"] != "").all()
    assert EMPTY_FILE in set(table["reason"])
    assert (
        "Usable subjects (status ok or warning): fMRI 0, EEG 0"
        in out.with_suffix(".txt").read_text()
    )
    assert isinstance(err.value, CohortError)


def test_check_cohort_strict_fails_on_exclusions(dataset: Path, tmp_path: Path) -> None:
    add_fmri(dataset, "03", data=b"", preproc=b"")
    cohort_file = tmp_path / "cohorts" / "tiny.yaml"
    write(cohort_file, yaml.safe_dump(cohort_for(dataset)))
    out = tmp_path / "results" / "tiny" / "inventory.tsv"
    assert len(check_cohort(cohort_file, out).subjects()) == 2
    with pytest.raises(CohortError, match="strict mode and 1 recording") as err:
        check_cohort(cohort_file, out, strict=True)
    assert "sub-03" in str(err.value) and out.is_file()


def test_montage_that_positions_too_few_channels_is_reported_before_any_job(
    tmp_path: Path,
) -> None:
    """EEGMMIDB names (`Fc5.`) match standard_1005; names no montage knows exclude the
    recording in the inventory, naming them; a stray channel is a warning."""
    root = make_dataset(tmp_path / "bids")
    eegmmidb = ["Fc5.", "Fc3.", "Fcz.", "C3..", "Cz..", "C4..", "Cp3.", "Pz..", "O1..", "O2.."]
    layouts = {"01": eegmmidb, "02": [f"X{i}" for i in range(10)], "03": [*eegmmidb, "EXG1"]}
    for sub, names in layouts.items():
        add_subject(root, sub)
        for task in EEG_TASKS:
            folder, name = prefix(sub, task=task)
            table = "name\ttype\n" + "".join(f"{n}\tEEG\n" for n in names) + "VEOG\tEOG\n"
            (root / folder / "eeg" / f"{name}_channels.tsv").write_text(table)
    inventory = build_inventory(cohort_for(root, eeg={"montage": "standard_1005"}))
    eeg = rows(inventory, modality="eeg")
    assert (eeg.loc[eeg["subject"] == "01", "status"] == "ok").all()
    bad = eeg[eeg["subject"] == "02"]
    assert (bad["status"] == "excluded").all()
    assert bad["reason"].str.contains("positions only 0 of 10 EEG channels").all()
    assert bad["reason"].str.contains("X0, X1").all() and bad["reason"].str.contains("alias").all()
    stray = eeg[eeg["subject"] == "03"]
    assert (stray["status"] == "warning").all() and stray["reason"].str.contains("EXG1").all()
