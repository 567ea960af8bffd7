"""The ``mcsp`` command line: each sub-command calls the same function the workflow rule calls."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from mcsp import __version__
from mcsp.exceptions import McspError


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
    from mcsp.bids import check_cohort

    inventory = check_cohort(args.cohort_file, args.out, strict=args.strict)
    print(inventory.summary())


def _config_check(args: argparse.Namespace) -> None:
    from mcsp.config import load_cohort, load_config

    for path in args.files:
        is_cohort = Path(path).parent.name == "cohorts"
        (load_cohort if is_cohort else load_config)(path)
        print(f"{path}: valid {'cohort' if is_cohort else 'config'} file")


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
    synth.add_argument("--fmri-volumes", type=int, default=150, help="volumes per BOLD run")
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
