"""The MCSP network: domain encoders shared by fMRI and EEG, projection heads and domain fusion."""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import jsonschema
from torch import Tensor, nn

from mcsp.config import closest_key, schema_defaults, subschema
from mcsp.exceptions import ConfigError, McspError
from mcsp.models.fusion import DomainFusion
from mcsp.models.graph import GraphTransformer
from mcsp.models.sequence import SequenceTransformer

MODALITIES = ("fmri", "eeg")
DOMAINS = ("spatial", "temporal", "frequency")


def model_settings(settings: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The ``model`` settings with defaults filled in (nested), validated.

    Args:
        settings: a (partial) ``model`` block of the workflow config; None = all defaults.

    Returns:
        A new dict with every key present.

    Raises:
        ConfigError: unknown keys, wrong types or values, or widths not divisible by heads.
    """
    filled = _merge(schema_defaults("config", "model"), settings or {})
    schema = subschema("config", "model")
    errors = sorted(
        jsonschema.Draft202012Validator(schema).iter_errors(filled),
        key=lambda e: list(e.absolute_path),
    )
    if errors:
        raise ConfigError("invalid model settings:\n  " + "\n  ".join(map(_describe, errors[:5])))
    hidden = filled["hidden"]
    for part in ("graph", "sequence"):
        heads = filled[part]["heads"]
        if hidden % heads:
            raise ConfigError(
                f"model.hidden ({hidden}) must be divisible by model.{part}.heads ({heads}): "
                "change one of them."
            )
    return filled


def _merge(base: dict[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _describe(err: jsonschema.ValidationError) -> str:
    where = ".".join(["model", *map(str, err.absolute_path)])
    if err.validator == "additionalProperties":
        valid = sorted(err.schema.get("properties", {}))
        hints = []
        for key in sorted(set(err.instance) - set(valid)):
            close = closest_key(key, valid)
            hints.append(
                f"unknown key '{where}.{key}': "
                + (f"did you mean '{close}'?" if close else f"valid keys: {', '.join(valid)}")
            )
        return "; ".join(hints)
    return f"'{where}': {err.message}"


class MCSP(nn.Module):
    """Multi-modal cross-domain network for fMRI and EEG.

    One encoder per domain (graph transformer for ``spatial``, transformers for ``temporal`` and
    ``frequency``) whose layers serve both modalities when ``share_encoders`` (per-modality input
    projectors and positional embeddings only), a projection head per domain shared by the
    modalities (so cross-modal distillation compares like with like), a domain fusion per modality
    (shared when ``share_encoders``) and a projection head for fused embeddings.

    Args:
        shapes: per-sample shapes keyed ``"<modality>/<domain>"`` (the store's ``shapes``); a
            modality absent here is dropped.
        settings: the config's ``model`` block (missing keys take the schema defaults).

    Raises:
        ConfigError: bad settings, no modality left, or shapes that do not fit the settings.
    """

    def __init__(
        self, shapes: Mapping[str, Sequence[int]], settings: Mapping[str, Any] | None = None
    ) -> None:
        super().__init__()
        s = model_settings(settings)
        self.settings = s
        self.modalities = tuple(
            m
            for m in MODALITIES
            if m in s["modalities"] and any(k.startswith(f"{m}/") for k in shapes)
        )
        self.domains = tuple(d for d in DOMAINS if d in s["domains"])
        if not self.modalities:
            raise ConfigError(
                f"model.modalities {s['modalities']} and the store's shapes ({sorted(shapes)}) "
                "share no modality: nothing to encode."
            )
        missing = [
            f"{m}/{d}" for m in self.modalities for d in self.domains if f"{m}/{d}" not in shapes
        ]
        if missing:
            raise ConfigError(
                f"the store's shapes lack {missing} needed by model.domains {list(self.domains)}."
            )
        self.shapes = {
            f"{m}/{d}": self._shape(shapes, m, d)
            for m in self.modalities
            for d in DOMAINS
            if f"{m}/{d}" in shapes
        }
        hidden, share = s["hidden"], s["share_encoders"]
        self.encoders = nn.ModuleDict({d: self._encoder(d) for d in self.domains})
        self.heads = nn.ModuleDict({d: _head(hidden, s["proj_dim"]) for d in self.domains})
        self.fused_head = _head(hidden, s["proj_dim"])
        cores = ["shared"] if share else list(self.modalities)
        self.fusion = nn.ModuleDict(
            {
                c: DomainFusion(
                    self.domains, hidden, s["fusion"], s["sequence"]["heads"], s["dropout"]
                )
                for c in cores
            }
        )

    def _encoder(self, domain: str) -> nn.Module:
        """The encoder of ``domain`` for every modality of the model (shapes checked here)."""
        s = self.settings
        common = {"hidden": s["hidden"], "dropout": s["dropout"], "share": s["share_encoders"]}
        per_modality = {m: self.shapes[f"{m}/{domain}"] for m in self.modalities}
        if domain == "spatial":
            g = s["graph"]
            for m, (rows, cols) in per_modality.items():
                if rows != cols:
                    raise ConfigError(f"shapes['{m}/spatial'] must be square, got {[rows, cols]}.")
            return GraphTransformer(
                {m: shape[0] for m, shape in per_modality.items()},
                layers=g["layers"],
                heads=g["heads"],
                positional_encoding=g["positional_encoding"],
                pe_dim=g["pe_dim"],
                pooling=g["pooling"],
                attention=g["attention"],
                **common,
            )
        q = s["sequence"]
        tokens = q[f"{domain}_tokens"]
        return SequenceTransformer(
            per_modality,
            layers=q["layers"],
            heads=q["heads"],
            tokens=tokens,
            patches=q["patches"],
            **common,
        )

    @staticmethod
    def _shape(shapes: Mapping[str, Sequence[int]], modality: str, domain: str) -> tuple[int, int]:
        shape = tuple(int(v) for v in shapes[f"{modality}/{domain}"])
        if len(shape) != 2 or min(shape) < 1:
            raise ConfigError(f"shapes['{modality}/{domain}'] must be [N, L], got {list(shape)}.")
        return shape  # type: ignore[return-value]

    @classmethod
    def from_store(cls, store_dir: str | Path, settings: Mapping[str, Any] | None = None) -> MCSP:
        """Build the model for the shapes in ``<store_dir>/store.json``."""
        path = Path(store_dir) / "store.json"
        if not path.is_file():
            raise McspError(f"{path}: not found; build the store first (mcsp.store.build_store).")
        return cls(json.loads(path.read_text())["shapes"], settings)

    def _check(self, modality: str, domains: Sequence[str]) -> None:
        if modality not in self.modalities:
            raise ValueError(f"modality {modality!r} is not in the model {self.modalities}")
        missing = [d for d in domains if d not in self.domains]
        if missing or not domains:
            raise ValueError(
                f"domains {list(domains)} must be a non-empty subset of {self.domains}"
            )

    def encode(self, modality: str, domain: str, data: Any) -> Tensor:
        """Embed one domain of one modality.

        Args:
            modality: ``fmri`` or ``eeg``.
            domain: ``spatial``, ``temporal`` or ``frequency``.
            data: the domain's input (a PyG ``Batch`` for spatial, a (B, N, L) tensor otherwise)
                or the per-modality dict holding it under ``domain``.

        Returns:
            (B, hidden).
        """
        self._check(modality, [domain])
        if isinstance(data, Mapping):
            data = data[domain]
        if data is None:
            raise ValueError(
                f"no {modality} {domain} input (no sample of the batch has {modality})"
            )
        return self.encoders[domain](data, modality)

    def encode_nodes(self, modality: str, graph: Any) -> Tensor:
        """(num_nodes, hidden) node embeddings of the spatial encoder (masked-node pretraining)."""
        self._check(modality, ["spatial"])
        return self.encoders["spatial"].node_embeddings(graph, modality)

    def project(self, domain: str, h: Tensor) -> Tensor:
        """Projection head of ``domain`` (shared by the modalities): (B, hidden) → (B, proj_dim)."""
        return self.heads[domain](h)

    def project_fused(self, h: Tensor) -> Tensor:
        """Projection head of fused embeddings: (B, hidden) → (B, proj_dim)."""
        return self.fused_head(h)

    def fuse(self, h: Mapping[str, Tensor], modality: str) -> Tensor:
        """Fuse domain embeddings {domain: (B, hidden)} of ``modality`` into (B, hidden)."""
        return self.fusion["shared" if self.settings["share_encoders"] else modality](h)

    def forward(
        self, data: Mapping[str, Any], modality: str, domains: Sequence[str] | None = None
    ) -> dict[str, Any]:
        """Encode, project and fuse one modality.

        Args:
            data: ``collate_pairs(...)[modality]``: ``spatial`` (PyG ``Batch``), ``temporal`` and
                ``frequency`` ((B, N, L) tensors); other keys (``mask``) are ignored.
            modality: ``fmri`` or ``eeg``.
            domains: the domains to use (default all of ``self.domains``).

        Returns:
            ``{"h": {domain: (B, hidden)}, "z": {domain: (B, proj_dim)}, "fused": (B, hidden),
            "fused_z": (B, proj_dim)}``.
        """
        domains = tuple(self.domains if domains is None else domains)
        self._check(modality, domains)
        h = {d: self.encode(modality, d, data) for d in domains}
        z = {d: self.project(d, v) for d, v in h.items()}
        fused = self.fuse(h, modality)
        return {"h": h, "z": z, "fused": fused, "fused_z": self.project_fused(fused)}

    def embed(
        self, data: Mapping[str, Any], modality: str, domains: Sequence[str] | None = None
    ) -> Tensor:
        """Fused embedding (B, hidden) without projection, for linear probes and fine-tuning."""
        domains = tuple(self.domains if domains is None else domains)
        self._check(modality, domains)
        return self.fuse({d: self.encode(modality, d, data) for d in domains}, modality)

    def n_parameters(self, trainable: bool = True) -> int:
        """Number of (trainable) parameters."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable)


def _head(hidden: int, out: int) -> nn.Sequential:
    """Projection MLP hidden → hidden → out with GELU."""
    return nn.Sequential(nn.Linear(hidden, hidden), nn.GELU(), nn.Linear(hidden, out))
