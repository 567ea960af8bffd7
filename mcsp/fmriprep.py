"""fMRIPrep: one job per subject, run through Apptainer/Singularity, Docker, or precomputed.

``fmriprep_command`` builds the full command line of one subject's fMRIPrep run as a list of
arguments (pure apart from the optional runtime checks and the uid:gid of ``docker run -u``).
Inside the container every runtime sees the same paths::

    /data                        BIDS root (read only)
    /out                         fMRIPrep output folder (the derivatives root)
    /work                        this subject's work folder (-w), BIDS database in /work/bids_db
    /templateflow                TemplateFlow home (TEMPLATEFLOW_HOME)
    /opt/freesurfer/license.txt  FreeSurfer licence (read only)

Resources: ``--nthreads`` is the job's thread count; ``--omp-nthreads`` is fMRIPrep's own default
made explicit, ``min(threads - 1, 8)`` (1 for one thread), so that fMRIPrep never sizes itself to
the whole node. ``--mem-mb`` is the job's memory minus ``max(1024, mem_mb // 10)`` MB of headroom:
fMRIPrep's limit steers its scheduler, not the true peak, and the container and Python
interpreter need memory beyond it; without headroom SLURM kills the job for going over.

Runtime ``fmriprep-docker`` calls fMRIPrep's own Docker wrapper (PyPI ``fmriprep-docker``), which
binds the same folders itself (the work folder at ``/scratch``, the BIDS database at
``/tmp/bids_db``) and builds the ``docker run`` line. By default it adds ``-it``, which fails
without a terminal (SLURM jobs); mcsp passes ``--no-tty``, and spells the memory flag
``--mem_mb``, the only spelling that stops the wrapper asking "Continue anyway? [y/N]" on a
Docker host with less than 8 GB (wrapper 25.2.7). The wrapper cannot bind other folders, so
fMRIPrep uses the TemplateFlow templates inside its image.

The output and work folders must exist before the command runs (Docker would create missing
ones owned by root); the work folder must be per subject so that parallel jobs never share it.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping, Sequence
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from mcsp.bids import file_problem, parse_name, raw_key
from mcsp.config import REPO_ROOT
from mcsp.exceptions import ConfigError, McspError

CONTAINERS_FILE = REPO_ROOT / "containers" / "fmriprep.yaml"
RUNTIMES = ("precomputed", "apptainer", "singularity", "docker", "fmriprep-docker")
WRAPPER = "fmriprep-docker"
DEFAULT_SPACE = "MNI152NLin2009cAsym"
DEFAULT_RESOLUTION = "2"
MAX_OMP_THREADS = 8
MIN_HEADROOM_MB = 1024
MIN_FMRIPREP_MB = 1024
LICENSE_URL = "surfer.nmr.mgh.harvard.edu/registration.html"

# Paths inside the container.
C_BIDS = "/data"
C_OUT = "/out"
C_WORK = "/work"
C_TEMPLATEFLOW = "/templateflow"
C_LICENSE = "/opt/freesurfer/license.txt"

# Flags fmriprep_command sets itself; extra_args must not repeat them.
MANAGED_FLAGS = frozenset(
    {
        "--participant-label",
        "--participant_label",
        "--output-spaces",
        "--nthreads",
        "--n_cpus",
        "--n-cpus",
        "--omp-nthreads",
        "--mem",
        "--mem-mb",
        "--mem_mb",
        "--fs-license-file",
        "--bids-database-dir",
        "-w",
        "--work-dir",
        "--notrack",
        "--fs-no-reconall",
        "--skip-bids-validation",
        "--skip_bids_validation",
    }
)
_INSTALL = {
    "apptainer": "install Apptainer (apptainer.org/docs/admin/main/installation.html) or load "
    "it in the job (e.g. `module load apptainer` in the profile's pre-command)",
    "singularity": "install SingularityCE (docs.sylabs.io) or load it in the job (e.g. "
    "`module load singularity` in the profile's pre-command)",
    "docker": "install Docker (docs.docker.com/engine/install) and add your user to the "
    "`docker` group",
    WRAPPER: "`pip install fmriprep-docker` (fMRIPrep's Docker wrapper) and install Docker "
    "(docs.docker.com/engine/install)",
}
_RAW_BOLD = ("_bold.nii.gz", "_bold.nii")


def fmriprep_command(
    cohort: Mapping[str, Any],
    subject: str,
    *,
    out_dir: str | Path,
    work_dir: str | Path,
    threads: int,
    mem_mb: int,
    check: bool = True,
) -> list[str]:
    """Command line of one subject's fMRIPrep run.

    Args:
        cohort: a validated cohort dict (``fmriprep.runtime`` must not be ``precomputed``).
        subject: participant label, with or without ``sub-``.
        out_dir: fMRIPrep output folder (the derivatives root, it holds ``sub-*/``).
        work_dir: this subject's own work folder.
        threads: threads of the job (``--nthreads``; ``--omp-nthreads`` derives from it).
        mem_mb: memory of the job in MB (``--mem-mb`` leaves headroom below it).
        check: run ``check_runtime`` first (binary, image, licence, TemplateFlow folder).

    Raises:
        ConfigError: runtime ``precomputed``, bad resources, bad options, or a failed check.
    """
    cfg = _fmriprep_cfg(cohort)
    runtime = cfg["runtime"]
    if runtime == "precomputed":
        raise ConfigError(
            f"{_cohort_file(cohort)}: fmriprep.runtime is precomputed, so fMRIPrep is not run "
            "(outputs are read from fmriprep.derivatives); set fmriprep.runtime to apptainer, "
            "singularity or docker to run it."
        )
    if check:
        check_runtime(cohort)
    label = participant_label(subject)
    nthreads, omp = thread_counts(threads)
    binds = [
        (_abs(cohort["bids_root"]), C_BIDS, True),
        (_abs(out_dir), C_OUT, False),
        (_abs(work_dir), C_WORK, False),
        (_abs(templateflow_home(cohort)), C_TEMPLATEFLOW, False),
        (_abs(cfg["fs_license"] or _missing_license(cohort)), C_LICENSE, True),
    ]
    for host, _, _ in binds:
        if ":" in host or "," in host:
            raise ConfigError(
                f"path {host!r} contains ':' or ',', which container bind options cannot carry; "
                "move or link it to a path without them."
            )
    if runtime == WRAPPER:
        return _wrapper_command(cohort, label, binds, nthreads, omp, mem_mb)
    env = [f"TEMPLATEFLOW_HOME={C_TEMPLATEFLOW}"]
    if runtime == "docker":
        prefix = ["docker", "run", "--rm", "-u", f"{os.getuid()}:{os.getgid()}"]
        prefix += [item for e in env for item in ("-e", e)]
        for host, inside, read_only in binds:
            prefix += ["-v", f"{host}:{inside}" + (":ro" if read_only else "")]
        prefix.append(docker_image(cohort))
    else:
        prefix = [runtime, "run", "--cleanenv"]
        prefix += [item for e in env for item in ("--env", e)]
        for host, inside, read_only in binds:
            prefix += ["-B", f"{host}:{inside}" + (":ro" if read_only else "")]
        prefix.append(_abs(cfg["image"] or _missing_image(cohort)))
    args = [C_BIDS, C_OUT, "participant", "--participant-label", label]
    args += ["--output-spaces", *output_spaces(cohort)]
    args += ["--nthreads", str(nthreads), "--omp-nthreads", str(omp)]
    args += ["--mem-mb", str(fmriprep_mem_mb(mem_mb))]
    args += ["--fs-license-file", C_LICENSE]
    args += ["-w", C_WORK, "--bids-database-dir", f"{C_WORK}/bids_db", "--notrack"]
    return prefix + args + _option_args(cohort)


def _wrapper_command(
    cohort: Mapping[str, Any],
    label: str,
    binds: Sequence[tuple[str, str, bool]],
    nthreads: int,
    omp: int,
    mem_mb: int,
) -> list[str]:
    """``fmriprep-docker`` command line: host paths, which the wrapper binds itself."""
    host = {inside: path for path, inside, _ in binds}
    args = [WRAPPER, "--no-tty", "-i", docker_image(cohort), "-u", f"{os.getuid()}:{os.getgid()}"]
    args += [host[C_BIDS], host[C_OUT], "participant", "--participant-label", label]
    args += ["--output-spaces", *output_spaces(cohort)]
    args += ["--nthreads", str(nthreads), "--omp-nthreads", str(omp)]
    args += ["--mem_mb", str(fmriprep_mem_mb(mem_mb))]
    args += ["--fs-license-file", host[C_LICENSE]]
    args += ["-w", host[C_WORK], "--bids-database-dir", f"{host[C_WORK]}/bids_db", "--notrack"]
    return args + _option_args(cohort)


def _option_args(cohort: Mapping[str, Any]) -> list[str]:
    """fMRIPrep flags from the cohort's switches and ``extra_args``."""
    cfg = _fmriprep_cfg(cohort)
    args = ["--fs-no-reconall"] if cfg["fs_no_reconall"] else []
    if cfg["skip_bids_validation"]:
        args.append("--skip-bids-validation")
    return args + _extra_args(cohort, cfg["extra_args"])


def run_fmriprep(
    cohort: Mapping[str, Any],
    subject: str,
    *,
    out_dir: str | Path,
    work_dir: str | Path,
    threads: int,
    mem_mb: int,
    log: str | Path | None = None,
) -> Path:
    """Run one subject's fMRIPrep (``fmriprep_command``) and check that it wrote its outputs.

    Creates the output and work folders first, appends fMRIPrep's output to ``log``, and
    returns ``out_dir/sub-<label>``.

    Raises:
        ConfigError: the runtime cannot run (see ``check_runtime``).
        McspError: fMRIPrep failed, or finished without the subject's preprocessed BOLD.
    """
    import subprocess

    label = participant_label(subject)
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    (Path(work_dir) / "bids_db").mkdir(parents=True, exist_ok=True)
    command = fmriprep_command(
        cohort, label, out_dir=out_dir, work_dir=work_dir, threads=threads, mem_mb=mem_mb
    )
    log_path = Path(log) if log else Path(work_dir) / "fmriprep.log"
    with open(log_path, "a") as stream:
        stream.write("$ " + " ".join(command) + "\n")
        stream.flush()
        done = subprocess.run(command, stdout=stream, stderr=subprocess.STDOUT, check=False)
    if done.returncode != 0:
        raise McspError(
            f"fMRIPrep failed for sub-{label} (exit status {done.returncode}); its output is in "
            f"{log_path} and its crash files in {Path(out_dir) / f'sub-{label}' / 'log'}."
        )
    problem = check_precomputed(cohort, label, derivatives=out_dir)
    if problem:
        raise McspError(f"fMRIPrep finished for sub-{label} but {problem}. See {log_path}.")
    return Path(out_dir) / f"sub-{label}"


def check_runtime(cohort: Mapping[str, Any]) -> None:
    """Check that the cohort's fMRIPrep runtime can run (or its derivatives exist).

    Raises:
        ConfigError: saying what to install or which key of the cohort file to set.
    """
    cfg = _fmriprep_cfg(cohort)
    runtime = cfg["runtime"]
    where = _cohort_file(cohort)
    if runtime == "precomputed":
        folder = derivatives_dir(cohort)
        if not folder.is_dir():
            raise ConfigError(
                f"fMRIPrep derivatives folder {folder} does not exist: set fmriprep.derivatives "
                f"in {where} to your fMRIPrep output folder, or set fmriprep.runtime to "
                "apptainer, singularity or docker to run fMRIPrep."
            )
        return
    for binary in (runtime, "docker") if runtime == WRAPPER else (runtime,):
        if shutil.which(binary) is None:
            raise ConfigError(
                f"fmriprep.runtime is {runtime} but `{binary}` is not on PATH: "
                f"{_INSTALL[binary]}, or set fmriprep.runtime in {where} to another runtime "
                f"({', '.join(r for r in RUNTIMES if r != runtime)})."
            )
    bids_root = Path(_abs(cohort["bids_root"]))
    if not bids_root.is_dir():
        raise ConfigError(f"BIDS root {bids_root} does not exist: set bids_root in {where}.")
    if runtime not in ("docker", WRAPPER):
        image = cfg["image"] or _missing_image(cohort)
        if not Path(image).is_file():
            raise ConfigError(
                f"fMRIPrep image {_abs(image)} does not exist: build it on a machine with "
                f"internet (`apptainer build fmriprep-{pinned_version()}.sif "
                f"docker://{_pinned()['docker_image']}`) and set fmriprep.image in {where} "
                "to its path."
            )
    license_file = cfg["fs_license"] or _missing_license(cohort)
    if not Path(license_file).is_file():
        raise ConfigError(
            f"FreeSurfer licence {_abs(license_file)} does not exist: set fmriprep.fs_license in "
            f"{where} to your FreeSurfer licence file (free at {LICENSE_URL})."
        )
    if runtime == WRAPPER:
        if cfg["templateflow_home"]:
            raise ConfigError(
                f"{where}: fmriprep.templateflow_home is set but runtime fmriprep-docker cannot "
                "bind it (the wrapper binds only the folders of its own flags; fMRIPrep uses the "
                "templates inside its image): remove fmriprep.templateflow_home, or set "
                "fmriprep.runtime to docker, which binds it."
            )
        return
    templateflow = Path(templateflow_home(cohort))
    if not templateflow.is_dir():
        raise ConfigError(
            f"TemplateFlow folder {templateflow} does not exist (compute nodes usually have no "
            "internet to fetch templates): create it and fill it on a machine with internet, "
            f'e.g. `TEMPLATEFLOW_HOME={templateflow} python -c "import templateflow.api as t; '
            f"t.get('{output_spaces(cohort)[0].split(':')[0]}', resolution=2)\"`, or set "
            f"fmriprep.templateflow_home in {where} (or TEMPLATEFLOW_HOME) to an existing one."
        )


def check_precomputed(
    cohort: Mapping[str, Any], subject: str, *, derivatives: str | Path | None = None
) -> str | None:
    """Why the subject's fMRIPrep outputs are unusable, as one sentence; None when complete.

    For every raw resting-state BOLD run (``fmri.tasks``) of the subject, the derivatives must
    hold the preprocessed BOLD in ``fmriprep.output_space`` (any ``res-``/``den-``) and the
    confounds TSV, as fMRIPrep names them. Multi-echo runs count once (fMRIPrep drops ``echo-``).

    Args:
        cohort: a validated cohort dict.
        subject: participant label, with or without ``sub-``.
        derivatives: fMRIPrep output folder; default ``fmriprep.derivatives`` (or its default).
    """
    cfg = _fmriprep_cfg(cohort)
    label = participant_label(subject)
    sub = f"sub-{label}"
    root = Path(_abs(cohort["bids_root"]))
    deriv = Path(_abs(derivatives)) if derivatives is not None else derivatives_dir(cohort)
    tasks = list((cohort.get("fmri") or {}).get("tasks", ["rest"]))
    if not deriv.is_dir():
        return f"fMRIPrep derivatives folder {deriv} does not exist"
    runs = _raw_bold_runs(root / sub, tasks)
    if not runs:
        return f"no resting-state BOLD run (tasks: {', '.join(tasks)}) under {root / sub}"
    space = cfg["output_space"]
    resolution = _resolution(output_spaces(cohort), space)
    problems: list[str] = []
    for rel_dir, stem, key in runs:
        func = deriv / rel_dir
        present = _derivative_files(func)
        res = f"_res-{resolution}" if resolution else ""
        wanted = {
            ("bold", "preproc", space): f"{stem}_space-{space}{res}_desc-preproc_bold.nii.gz",
            ("timeseries", "confounds", None): f"{stem}_desc-confounds_timeseries.tsv",
        }
        for (suffix, desc, want_space), name in wanted.items():
            found = sorted(
                path
                for path, (k, entities, s, ext) in present.items()
                if k == key
                and s == suffix
                and ext in ((".tsv",) if suffix == "timeseries" else (".nii.gz", ".nii"))
                and entities.get("desc") == desc
                and entities.get("space") == want_space
            )
            if not found:
                problems.append(f"missing {func / name}")
            elif problem := file_problem(found[0]):
                problems.append(f"{found[0]}: {problem}")
    if not problems:
        return None
    more = f" (and {len(problems) - 1} more missing or unusable files)" if len(problems) > 1 else ""
    return f"fMRIPrep outputs of {sub} incomplete in {deriv}: {problems[0]}{more}"


# --- helpers -------------------------------------------------------------------------------------


def participant_label(subject: str) -> str:
    """``sub-01`` or ``01`` -> ``01``."""
    label = subject.removeprefix("sub-")
    if not label or not label.isalnum():
        raise ConfigError(f"invalid subject {subject!r}: expected a BIDS label like sub-01 or 01.")
    return label


def thread_counts(threads: int) -> tuple[int, int]:
    """``(--nthreads, --omp-nthreads)``: fMRIPrep's default rule ``min(threads - 1, 8)``."""
    if threads < 1:
        raise ConfigError(f"fMRIPrep needs at least 1 thread, got threads={threads}.")
    return threads, 1 if threads == 1 else min(threads - 1, MAX_OMP_THREADS)


def fmriprep_mem_mb(mem_mb: int) -> int:
    """``--mem-mb``: the job's memory less ``max(1024, mem_mb // 10)`` MB of headroom."""
    value = mem_mb - max(MIN_HEADROOM_MB, mem_mb // 10)
    if value < MIN_FMRIPREP_MB:
        raise ConfigError(
            f"mem_mb={mem_mb} is too little for fMRIPrep: give the fMRIPrep rule at least "
            f"{MIN_FMRIPREP_MB + MIN_HEADROOM_MB} MB (fMRIPrep needs about 8000 MB per subject)."
        )
    return value


def output_spaces(cohort: Mapping[str, Any]) -> list[str]:
    """``--output-spaces`` values; they must include ``fmriprep.output_space``."""
    cfg = _fmriprep_cfg(cohort)
    space = cfg["output_space"]
    spaces = cfg["output_spaces"]
    if spaces is None:
        return [f"{space}:res-{DEFAULT_RESOLUTION}"]
    spaces = [str(s) for s in spaces]
    if space not in (s.split(":")[0] for s in spaces):
        raise ConfigError(
            f"{_cohort_file(cohort)}: fmriprep.output_spaces {spaces} lacks fmriprep.output_space "
            f"{space!r}, which mcsp reads: add e.g. '{space}:res-{DEFAULT_RESOLUTION}'."
        )
    return spaces


def derivatives_dir(cohort: Mapping[str, Any]) -> Path:
    """``fmriprep.derivatives`` or ``<bids_root>/derivatives/fmriprep``, absolute."""
    folder = _fmriprep_cfg(cohort)["derivatives"]
    return Path(_abs(folder or Path(cohort["bids_root"]) / "derivatives" / "fmriprep"))


def templateflow_home(cohort: Mapping[str, Any]) -> str:
    """``fmriprep.templateflow_home``, else ``$TEMPLATEFLOW_HOME``, else ~/.cache/templateflow."""
    folder = _fmriprep_cfg(cohort)["templateflow_home"] or os.environ.get("TEMPLATEFLOW_HOME")
    return _abs(os.path.expanduser(folder or "~/.cache/templateflow"))


def docker_image(cohort: Mapping[str, Any]) -> str:
    """``fmriprep.docker_image``, else the image pinned in containers/fmriprep.yaml."""
    return _fmriprep_cfg(cohort)["docker_image"] or _pinned()["docker_image"]


def pinned_version() -> str:
    """The fMRIPrep release pinned in containers/fmriprep.yaml."""
    return str(_pinned()["version"])


@cache
def _pinned() -> dict[str, Any]:
    try:
        data = yaml.safe_load(CONTAINERS_FILE.read_text())
    except (OSError, yaml.YAMLError) as err:
        raise ConfigError(f"{CONTAINERS_FILE}: cannot read the pinned fMRIPrep ({err}).") from err
    if not isinstance(data, dict) or not {"version", "docker_image"} <= set(data):
        raise ConfigError(f"{CONTAINERS_FILE}: needs keys 'version' and 'docker_image'.")
    return data


def _fmriprep_cfg(cohort: Mapping[str, Any]) -> dict[str, Any]:
    """The ``fmriprep`` block with defaults for keys the schema may not declare yet."""
    cfg = dict(cohort.get("fmriprep") or {})
    defaults: dict[str, Any] = {
        "runtime": "precomputed",
        "derivatives": None,
        "output_space": DEFAULT_SPACE,
        "output_spaces": None,
        "image": None,
        "docker_image": None,
        "fs_license": None,
        "templateflow_home": None,
        "fs_no_reconall": False,
        "skip_bids_validation": False,
        "extra_args": [],
    }
    for key, value in defaults.items():
        cfg.setdefault(key, value)
    if cfg["runtime"] not in RUNTIMES:
        raise ConfigError(
            f"{_cohort_file(cohort)}: fmriprep.runtime {cfg['runtime']!r} is not one of "
            f"{', '.join(RUNTIMES)}."
        )
    return cfg


def _cohort_file(cohort: Mapping[str, Any]) -> str:
    return f"config/cohorts/{cohort.get('name', 'NAME')}.yaml"


def _missing_image(cohort: Mapping[str, Any]) -> str:
    runtime = _fmriprep_cfg(cohort)["runtime"]
    raise ConfigError(
        f"fmriprep.runtime is {runtime} but fmriprep.image is not set: set it in "
        f"{_cohort_file(cohort)} to the fMRIPrep .sif file (build it on a machine with internet: "
        f"`apptainer build fmriprep-{pinned_version()}.sif docker://{_pinned()['docker_image']}`)."
    )


def _missing_license(cohort: Mapping[str, Any]) -> str:
    raise ConfigError(
        f"fmriprep.fs_license is not set: set fmriprep.fs_license in {_cohort_file(cohort)} to "
        f"your FreeSurfer licence file (free at {LICENSE_URL})."
    )


def _extra_args(cohort: Mapping[str, Any], extra: Sequence[str]) -> list[str]:
    extra = [str(a) for a in extra]
    for arg in extra:
        if arg.split("=")[0] in MANAGED_FLAGS:
            raise ConfigError(
                f"{_cohort_file(cohort)}: fmriprep.extra_args contains {arg!r}, which mcsp sets "
                "itself (from the job's resources or other fmriprep keys): remove it."
            )
    return extra


def _abs(path: str | Path) -> str:
    """Absolute path without resolving symlinks (relative paths are relative to the cwd)."""
    return os.path.abspath(os.path.expanduser(str(path)))


def _raw_bold_runs(subject_dir: Path, tasks: Sequence[str]) -> list[tuple[Path, str, tuple]]:
    """``(func dir relative to the BIDS root, stem without echo/_bold, key)`` per BOLD run."""
    runs: dict[tuple, tuple[Path, str, tuple]] = {}
    dirs = [subject_dir / "func", *sorted(subject_dir.glob("ses-*/func"))]
    for func in dirs:
        if not func.is_dir():
            continue
        for path in sorted(func.iterdir()):
            if not path.name.endswith(_RAW_BOLD) or not path.name.startswith("sub-"):
                continue
            entities = parse_name(path.name)[0]
            if entities.get("task") not in tasks:
                continue
            stem = path.name.partition(".")[0].removesuffix("_bold")
            stem = "_".join(p for p in stem.split("_") if not p.startswith("echo-"))
            key = raw_key(entities)
            runs.setdefault(key, (func.relative_to(subject_dir.parent), stem, key))
    return list(runs.values())


def _derivative_files(func: Path) -> dict[Path, tuple[tuple, dict[str, str], str, str]]:
    if not func.is_dir():
        return {}
    out = {}
    for path in func.iterdir():
        entities, suffix, ext = parse_name(path.name)
        out[path] = (raw_key(entities), entities, suffix, ext)
    return out


def _resolution(spaces: Sequence[str], space: str) -> str | None:
    """The ``res-`` of ``space`` among ``--output-spaces`` values, e.g. '2', or None."""
    for spec in spaces:
        name, *mods = spec.split(":")
        if name == space:
            for mod in mods:
                if mod.startswith("res-") and mod != "res-native":
                    return mod.removeprefix("res-")
            return None
    return None
