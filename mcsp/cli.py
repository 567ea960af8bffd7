"""The ``mcsp`` command line: each sub-command calls the same function the workflow rule calls."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from mcsp import __version__
from mcsp.exceptions import McspError

DEFAULT_CONFIG = Path("config/config.yaml")  # relative to the repository root, as in Snakemake


def _synth(args: argparse.Namespace) -> None:
    from mcsp.synth import generate_cohort

    start = time.perf_counter()
    generate_cohort(
        args.out,
        args.subjects,
        args.seed,
        eeg_duration_s=args.eeg_duration,
        fmri_volumes=args.fmri_volumes,
        fmri_voxel_size_mm=args.voxel_size,
        n_jobs=args.jobs,
    )
    print(
        f"wrote {args.subjects} synthetic subjects to {args.out} "
        f"in {time.perf_counter() - start:.1f} s (ground truth: {args.out}/code/ground_truth.json)"
    )


def _cohort_check(args: argparse.Namespace) -> None:
    from mcsp.cohorts import check_cohort

    inventory = check_cohort(args.cohort_file, args.out, strict=args.strict)
    print(inventory.summary())


def _config_check(args: argparse.Namespace) -> None:
    from mcsp.config import (
        check_cohort_overlap,
        check_study_labels,
        cohort_input_problem,
        load_cohort,
        load_config,
    )
    from mcsp.exceptions import ConfigError
    from mcsp.plan import check_variants

    cohorts = [p for p in args.files if Path(p).parent.name == "cohorts"]
    configs = [load_config(p) for p in args.files if p not in cohorts]
    if not configs and DEFAULT_CONFIG.is_file():  # the workflow's base config
        configs = [load_config(DEFAULT_CONFIG)]
    generated = [c["synth"]["out"] for c in configs if c["synth"]["activate"]]
    loaded = {}
    for path in cohorts:
        cohort = load_cohort(path)
        problem = cohort_input_problem(cohort, path, generated)
        if problem:
            raise ConfigError(problem)
        loaded[cohort["name"]] = cohort
    check_cohort_overlap(loaded)
    for config in configs:  # a config given with its cohort files: its study is checked too
        check_variants(config)
        if config["cohorts"] and all(name in loaded for name in config["cohorts"]):
            check_study_labels(config, {name: loaded[name] for name in config["cohorts"]})
    for path in args.files:
        print(f"{path}: valid {'cohort' if path in cohorts else 'config'} file")


def _cohort_import(args: argparse.Namespace) -> None:
    from mcsp.config import load_cohort
    from mcsp.fmri import write_qc_table
    from mcsp.imports import build_imported_inventory, import_timeseries

    cohort = load_cohort(args.cohort_file)
    inventory = build_imported_inventory(cohort, n_jobs=args.jobs)
    table = import_timeseries(cohort, inventory, args.out / "fmri", n_jobs=args.jobs)
    inventory.write(args.out / "inventory.tsv")
    write_qc_table(table, args.out / "fmri_qc.tsv")
    counts = table["status"].value_counts().to_dict()
    print(f"imported {cohort['name']} into {args.out}: {counts} (see {args.out / 'fmri_qc.tsv'})")


def _cohort_synth(args: argparse.Namespace) -> None:
    from mcsp.config import load_cohort
    from mcsp.synth import write_contract_cohort

    cohort = load_cohort(args.cohort_file)
    if cohort["format"] != "synthetic":
        raise SystemExit(f"{args.cohort_file}: format is {cohort['format']!r}, not synthetic")
    truth = write_contract_cohort(cohort, args.out, n_jobs=args.jobs)
    print(
        f"wrote {len(truth['subjects'])} synthetic subjects' contract files to {args.out} "
        f"(ground truth: {args.out / 'ground_truth.json'})"
    )


def _fmri_parcellate(args: argparse.Namespace) -> None:
    from mcsp.config import load_config
    from mcsp.fmri import process_run, split_settings

    atlas, clean = split_settings(load_config(args.config)["fmri"])
    qc = process_run(args.bold, atlas, clean, args.out, strict=args.strict)
    print(f"{args.out}: {qc['status']} {qc.get('reason', '')}".rstrip())


def _eeg_clean(args: argparse.Namespace) -> None:
    from mcsp.bids import cohort_montage
    from mcsp.config import load_cohort, load_config
    from mcsp.eeg import CHANNEL_SETS, DEFAULT_ALIASES, process_recording

    eeg = load_config(args.config)["eeg"]
    settings = {**eeg["preprocessing"], "montage": None}
    aliases = DEFAULT_ALIASES
    if args.cohort is not None:
        cohort = load_cohort(args.cohort)
        settings["montage"] = cohort_montage(cohort, args.site)
        aliases = cohort["eeg"]["channel_aliases"]
    stem = args.recording.name.partition(".")[0].removesuffix("_eeg")
    row = process_recording(
        args.recording,
        settings,
        out_fif=args.out_dir / f"{stem}_desc-clean_eeg.fif",
        out_json=args.out_dir / f"{stem}_desc-clean_eeg.json",
        out_report=args.out_dir / f"{stem}_report.html",
        common_channels=CHANNEL_SETS[eeg["channel_set"]],
        aliases=aliases,
        strict=args.strict,
    )
    print(f"{args.recording}: {row['status']} {row['reason']}".rstrip())


def _qc(args: argparse.Namespace) -> None:
    from mcsp.qc import summarise

    print(summarise(args.folder))


def _store_build(args: argparse.Namespace) -> None:
    from mcsp.config import load_config
    from mcsp.store import build_store

    config = load_config(args.config)
    results = args.results or Path(config["results_dir"])
    summary = build_store(config, results, args.out, jobs=args.jobs)
    counts = {k: v for k, v in summary.items() if k.startswith("n_")}
    print(f"store written to {args.out}: {counts}")


def _pretrain(args: argparse.Namespace) -> None:
    import torch

    from mcsp.config import load_yaml, validate
    from mcsp.parallel import tune_allocator
    from mcsp.train import pretrain

    raw = dict(load_yaml(args.config) or {}) if args.config else {}
    overrides = {"max_steps": args.max_steps, "epochs": args.epochs, "device": args.device}
    raw["pretrain"] = {
        **(raw.get("pretrain") or {}),
        **{k: v for k, v in overrides.items() if v is not None},
    }
    config = validate(raw, "config", str(args.config or "command line"))
    tune_allocator()
    torch.set_num_threads(args.threads)
    summary = pretrain(args.store, args.out, config, resume=not args.restart, progress=True)
    print(f"pretrained model written to {args.out / 'model.pt'}: {summary}")


def _summary(args: argparse.Namespace) -> None:
    import pandas as pd

    from mcsp.compare import paired_text
    from mcsp.experiments import summary_table

    print(summary_table(args.summary, args.metric, args.scope))
    paired = args.summary.with_name("paired.tsv")
    if paired.is_file():
        print()
        print(paired_text(pd.read_csv(paired, sep="\t")))


def _report(args: argparse.Namespace) -> None:
    from mcsp.report import build_report

    print(f"report written to {build_report(args.results_dir, args.out)}")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``mcsp`` (one sub-command per entry point)."""
    parser = argparse.ArgumentParser(
        prog="mcsp", description="Multi-modal cross-domain self-supervised fMRI–EEG pipeline."
    )
    parser.add_argument("--version", action="version", version=f"mcsp {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    synth = sub.add_parser("synth", help="write a synthetic multi-site BIDS cohort")
    synth.add_argument("--out", required=True, type=Path, help="output BIDS folder")
    synth.add_argument("--subjects", type=int, default=30, help="number of subjects")
    synth.add_argument("--seed", type=int, default=42, help="random seed")
    synth.add_argument("--eeg-duration", type=float, default=60.0, help="seconds per EEG run")
    synth.add_argument(
        "--fmri-volumes",
        type=int,
        default=150,
        help="run length in volumes at TR 2 s (every site records the same duration)",
    )
    synth.add_argument("--voxel-size", type=int, default=4, help="BOLD voxel size in mm")
    synth.add_argument("--jobs", type=int, default=1, help="parallel processes")
    synth.set_defaults(func=_synth)

    cohort = sub.add_parser("cohort", help="cohort commands")
    cohort_sub = cohort.add_subparsers(dest="cohort_command", required=True)
    check = cohort_sub.add_parser(
        "check", help="inventory a cohort: subjects, modalities, labels and problems"
    )
    check.add_argument("cohort_file", type=Path, help="config/cohorts/NAME.yaml")
    check.add_argument(
        "--out", type=Path, default=None, help="inventory TSV (default results/NAME/inventory.tsv)"
    )
    check.add_argument("--strict", action="store_true", help="fail when any recording is excluded")
    check.set_defaults(func=_cohort_check)
    imp = cohort_sub.add_parser(
        "import", help="import a parcellated cohort (abide_pcp, xcpd) into the time-series contract"
    )
    imp.add_argument("cohort_file", type=Path, help="config/cohorts/NAME.yaml")
    imp.add_argument("--out", type=Path, required=True, help="folder for fmri/, the QC table, …")
    imp.add_argument("--jobs", type=int, default=1, help="parallel processes")
    imp.set_defaults(func=_cohort_import)
    syn = cohort_sub.add_parser(
        "synth", help="write a synthetic cohort (format synthetic) as contract files"
    )
    syn.add_argument("cohort_file", type=Path, help="config/cohorts/NAME.yaml")
    syn.add_argument("--out", type=Path, required=True, help="folder (results/NAME)")
    syn.add_argument("--jobs", type=int, default=1, help="parallel processes")
    syn.set_defaults(func=_cohort_synth)

    config_help = "workflow config whose fmri/eeg settings apply (default config/config.yaml)"
    fmri = sub.add_parser("fmri", help="fMRI commands")
    fmri_sub = fmri.add_subparsers(dest="fmri_command", required=True)
    parc = fmri_sub.add_parser(
        "parcellate", help="clean and parcellate one fMRIPrep run (as the workflow does)"
    )
    parc.add_argument("bold", type=Path, help="fMRIPrep …_desc-preproc_bold.nii.gz")
    parc.add_argument("--out", type=Path, required=True, help="…_atlas-<name>_timeseries.tsv")
    parc.add_argument("--config", type=Path, default=Path("config/config.yaml"), help=config_help)
    parc.add_argument("--strict", action="store_true", help="fail instead of recording exclusion")
    parc.set_defaults(func=_fmri_parcellate)

    eeg = sub.add_parser("eeg", help="EEG commands")
    eeg_sub = eeg.add_subparsers(dest="eeg_command", required=True)
    clean = eeg_sub.add_parser("clean", help="preprocess one BIDS EEG recording (as the workflow)")
    clean.add_argument("recording", type=Path, help="BIDS EEG file, e.g. …_eeg.vhdr")
    clean.add_argument("--out-dir", type=Path, required=True, help="folder for FIF, JSON, report")
    clean.add_argument("--config", type=Path, default=Path("config/config.yaml"), help=config_help)
    clean.add_argument("--cohort", type=Path, default=None, help="cohort file (montage, aliases)")
    clean.add_argument("--site", default=None, help="site, when the cohort's montage is per site")
    clean.add_argument("--strict", action="store_true", help="fail instead of recording exclusion")
    clean.set_defaults(func=_eeg_clean)

    qc = sub.add_parser("qc", help="summarise a cohort's fMRI and EEG QC tables")
    qc.add_argument("folder", type=Path, help="results/NAME")
    qc.set_defaults(func=_qc)

    store = sub.add_parser("store", help="dataset store commands")
    store_sub = store.add_subparsers(dest="store_command", required=True)
    sbuild = store_sub.add_parser(
        "build", help="pairs, domains and folds of the study from the cohorts' QC tables"
    )
    sbuild.add_argument("--config", type=Path, default=Path("config/config.yaml"))
    sbuild.add_argument("--results", type=Path, default=None, help="default: results_dir")
    sbuild.add_argument("--out", type=Path, required=True, help="store folder")
    sbuild.add_argument("--jobs", type=int, default=1, help="parallel processes")
    sbuild.set_defaults(func=_store_build)

    pre = sub.add_parser(
        "pretrain", help="self-supervised pretraining on a dataset store (resumes when rerun)"
    )
    pre.add_argument("store", type=Path, help="store folder (results/store)")
    pre.add_argument("--out", type=Path, required=True, help="output folder (results/pretrain)")
    pre.add_argument("--config", type=Path, default=None, help="its model and pretrain blocks")
    pre.add_argument("--epochs", type=int, default=None, help="override pretrain.epochs")
    pre.add_argument("--max-steps", type=int, default=None, help="override pretrain.max_steps")
    pre.add_argument("--device", choices=["auto", "cpu", "cuda"], default=None)
    pre.add_argument("--threads", type=int, default=2, help="CPU threads")
    pre.add_argument("--restart", action="store_true", help="ignore an existing checkpoint")
    pre.set_defaults(func=_pretrain)

    summ = sub.add_parser(
        "summary",
        help="print an evaluation summary.tsv as task × model, and paired.tsv beside it",
    )
    summ.add_argument("summary", type=Path, help="results/evaluation/summary.tsv")
    summ.add_argument("--metric", default="auroc", help="metric shown (default auroc)")
    summ.add_argument(
        "--scope", choices=["pooled folds", "per fold"], default=None, help="default: both"
    )
    summ.set_defaults(func=_summary)

    rep = sub.add_parser("report", help="one self-contained HTML page of a results folder")
    rep.add_argument("results_dir", type=Path, help="results folder (results_dir)")
    rep.add_argument(
        "--out", type=Path, default=None, help="HTML file (default RESULTS_DIR/report/index.html)"
    )
    rep.set_defaults(func=_report)

    config = sub.add_parser("config", help="config commands")
    config_sub = config.add_subparsers(dest="config_command", required=True)
    validate = config_sub.add_parser("check", help="validate config or cohort files")
    validate.add_argument("files", nargs="+", type=Path)
    validate.set_defaults(func=_config_check)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``mcsp`` console script."""
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except McspError as err:
        print(f"mcsp: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
