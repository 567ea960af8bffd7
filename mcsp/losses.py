"""Self-supervised losses of MCSP pretraining.

- Cross-domain (CD-SSL): NT-Xent (SimCLR) between the original and augmented views of each
  modality and domain.
- Cross-modal (CM-SSL): distillation from the teacher modality to the student modality in each
  domain (teacher detached) and consistency between the fused fMRI and EEG projections of a pair.

Losses are computed in float32 whatever the inputs' dtype (e.g. under bfloat16 autocast).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from mcsp.config import schema_defaults

__all__ = ["consistency", "distillation", "nt_xent", "pretraining_loss"]

MODALITIES = ("fmri", "eeg")
DOMAINS = ("spatial", "temporal", "frequency")
DIRECTIONS = {"fmri_to_eeg": ("fmri", "eeg"), "eeg_to_fmri": ("eeg", "fmri"), "none": None}


@functools.cache
def _pretrain_defaults() -> dict[str, Any]:
    return schema_defaults("config", "pretrain")


def nt_xent(z1: Tensor, z2: Tensor, temperature: float = 0.2) -> Tensor:
    """SimCLR's NT-Xent loss between two views of ``n`` samples.

    The ``2n`` embeddings are L2-normalised; each anchor's positive is its other view and the
    other ``2n - 2`` embeddings are its negatives; the loss is the mean cross-entropy over the
    ``2n`` anchors of the cosine similarities divided by ``temperature``.

    Args:
        z1: first view, shape ``(n, d)``.
        z2: second view, shape ``(n, d)``.
        temperature: softmax temperature.

    Returns:
        Scalar loss.

    Raises:
        ValueError: if the shapes differ or ``n < 2`` (no negatives; callers skip the term).
    """
    if z1.shape != z2.shape or z1.dim() != 2:
        raise ValueError(f"nt_xent needs two (n, d) views of one shape, got {z1.shape}, {z2.shape}")
    n = z1.shape[0]
    if n < 2:
        raise ValueError(f"nt_xent needs at least 2 samples per view, got {n}")
    z = F.normalize(torch.cat([z1, z2]).float(), dim=1)
    logits = z @ z.T / temperature
    eye = torch.eye(2 * n, dtype=torch.bool, device=z.device)
    logits = logits.masked_fill(eye, float("-inf"))
    targets = torch.arange(2 * n, device=z.device).roll(n)
    return F.cross_entropy(logits, targets)


def _paired(a: Tensor, b: Tensor, kind: str) -> Tensor:
    """Cosine (mean 1 - cos) or mse (of L2-normalised rows, summed over dims) between rows."""
    a, b = a.float(), b.float()
    if kind == "cosine":
        return (1 - F.cosine_similarity(a, b, dim=-1)).mean()
    if kind == "mse":
        return (F.normalize(a, dim=-1) - F.normalize(b, dim=-1)).square().sum(-1).mean()
    raise ValueError(f"unknown loss kind {kind!r}")


def distillation(
    student: Tensor, teacher: Tensor, kind: str = "kl", temperature: float = 1.0
) -> Tensor:
    """Distillation loss from ``teacher`` to ``student`` rows; the teacher is detached here.

    Args:
        student: student embeddings ``(n, d)`` (gets gradients).
        teacher: teacher embeddings ``(n, d)`` (no gradient flows into it).
        kind: ``kl`` = KL(softmax(teacher / T) || softmax(student / T)) * T^2, averaged over
            rows (Hinton-style); ``cosine`` = mean(1 - cos); ``mse`` = squared error of the
            L2-normalised rows, summed over dimensions and averaged over rows.
        temperature: softmax temperature ``T`` of ``kl``.

    Returns:
        Scalar loss.

    Raises:
        ValueError: unknown ``kind`` or shapes that differ.
    """
    if student.shape != teacher.shape:
        raise ValueError(f"student {student.shape} and teacher {teacher.shape} differ in shape")
    teacher = teacher.detach()
    if kind == "kl":
        log_s = F.log_softmax(student.float() / temperature, dim=-1)
        log_t = F.log_softmax(teacher.float() / temperature, dim=-1)
        kl = F.kl_div(log_s, log_t, reduction="batchmean", log_target=True)
        return kl * temperature**2
    return _paired(student, teacher, kind)


def consistency(a: Tensor, b: Tensor, kind: str = "cosine") -> Tensor:
    """Consistency loss between paired rows; both sides get gradients.

    Args:
        a: embeddings ``(n, d)``.
        b: embeddings ``(n, d)``.
        kind: ``cosine`` = mean(1 - cos) or ``mse`` = squared error of L2-normalised rows.

    Returns:
        Scalar loss.

    Raises:
        ValueError: unknown ``kind`` or shapes that differ.
    """
    if a.shape != b.shape:
        raise ValueError(f"consistency inputs differ in shape: {a.shape}, {b.shape}")
    return _paired(a, b, kind)


def _settings(settings: Mapping[str, Any]) -> dict[str, Any]:
    """The pretrain block with the schema's defaults filled (nested blocks included)."""
    defaults = _pretrain_defaults()
    out = {**defaults, **settings}
    for key in ("weights", "distillation"):
        out[key] = {**defaults[key], **(settings.get(key) or {})}
    return out


def _any_rows(out: Mapping[str, Any]) -> Tensor | None:
    """One (n, d) tensor of a model output (``fused_z`` or any domain's ``z``), if any."""
    z = out.get("fused_z")
    if z is None and out.get("z"):
        z = next(iter(out["z"].values()))
    return z


def pretraining_loss(
    outputs: Mapping[str, Mapping[str, Any]],
    batch: Mapping[str, Any],
    settings: Mapping[str, Any],
) -> tuple[Tensor, dict[str, float]]:
    """The MCSP pretraining loss of one batch: CD-SSL contrastive plus CM-SSL terms.

    ``total = w_contrastive * sum over (modality, domain) of nt_xent(orig z, aug z)
    + w_distillation * sum over domains of distillation(student z, teacher z)
    + w_consistency * consistency(fused_z fMRI, fused_z EEG)
    + w_reconstruction * sum over modalities of the mean squared error of the hidden nodes'
    predicted connectivity rows`` (masked-node modelling; only when its weight is positive and
    the outputs hold ``reconstruction``).
    Contrastive terms are skipped for a modality with fewer than 2 items. Cross-modal terms use
    the original views of the items having both modalities, their rows found via the masks
    (row of item ``i`` in a modality = ``cumsum(mask)[i] - 1``); they are skipped when one
    modality is missing or no item has both. A domain whose direction is ``none``, or that one
    modality lacks, has no distillation term. Terms of weight 0 are not computed.

    Args:
        outputs: ``{modality: {"orig": out, "aug": out[, "reconstruction": {"pred", "target"}]}}``
            for each modality the model ran; each
            ``out`` holds ``z`` ({domain: (n, proj)}) and ``fused_z`` ((n, proj)) over the items
            having that modality, in item order.
        batch: the collated batch (:func:`mcsp.store.collate_pairs`); ``batch[modality]["mask"]``
            tells which items the rows belong to.
        settings: the ``pretrain`` block (``weights``, ``temperature``, ``distillation``,
            ``consistency``); missing keys take the schema's defaults.

    Returns:
        ``(total, parts)``. ``parts`` holds the unweighted value of every computed term
        (``contrastive/<modality>/<domain>``, ``distillation/<domain>``, ``consistency``), the
        unweighted group sums ``contrastive`` and ``distillation`` (present when that group
        computed a term), the weighted ``total``, ``pairs_both`` (items having both modalities)
        and ``terms`` (number of terms computed). When no term could be computed (``terms`` is
        0) ``total`` is a zero tensor without gradient: the caller should skip the step.
    """
    s = _settings(settings)
    weights = s["weights"]
    found = [z for views in outputs.values() if (z := _any_rows(views["orig"])) is not None]
    device = found[0].device if found else torch.device("cpu")
    named: list[tuple[str, str, Tensor]] = []  # (group, name, unweighted value)

    def add(group: str, name: str, value: Tensor) -> None:
        named.append((group, name, value))

    if weights["contrastive"] > 0:
        for modality, views in outputs.items():
            orig, aug = views["orig"]["z"], views["aug"]["z"]
            for domain, z in orig.items():
                if z.shape[0] < 2:
                    continue
                value = nt_xent(z, aug[domain], s["temperature"])
                add("contrastive", f"contrastive/{modality}/{domain}", value)

    pairs_both = 0
    cross = all(m in outputs for m in MODALITIES) and all(
        isinstance(batch.get(m), Mapping) and batch[m].get("mask") is not None for m in MODALITIES
    )
    if cross:
        masks = {m: torch.as_tensor(batch[m]["mask"], dtype=torch.bool) for m in MODALITIES}
        both = masks["fmri"] & masks["eeg"]
        pairs_both = int(both.sum())
        index = {}
        for m in MODALITIES:
            rows, n_items = _any_rows(outputs[m]["orig"]), int(masks[m].sum())
            if rows is not None and rows.shape[0] != n_items:
                raise ValueError(
                    f"{m}: the model output has {rows.shape[0]} rows but the batch mask marks "
                    f"{n_items} items having {m}"
                )
            index[m] = (masks[m].long().cumsum(0) - 1)[both].to(device)
    if pairs_both > 0:
        dist = s["distillation"]
        if weights["distillation"] > 0:
            for domain in DOMAINS:
                direction = DIRECTIONS[dist.get(domain, "none")]
                if direction is None:
                    continue
                teacher, student = direction
                z_t = outputs[teacher]["orig"]["z"].get(domain)
                z_s = outputs[student]["orig"]["z"].get(domain)
                if z_t is None or z_s is None:
                    continue
                value = distillation(
                    z_s[index[student]], z_t[index[teacher]], dist["loss"], dist["temperature"]
                )
                add("distillation", f"distillation/{domain}", value)
        if weights["consistency"] > 0:
            f_fmri = outputs["fmri"]["orig"].get("fused_z")
            f_eeg = outputs["eeg"]["orig"].get("fused_z")
            if f_fmri is not None and f_eeg is not None:
                value = consistency(f_fmri[index["fmri"]], f_eeg[index["eeg"]], s["consistency"])
                add("consistency", "consistency", value)

    if weights.get("reconstruction", 0) > 0:
        for modality, views in outputs.items():
            rec = views.get("reconstruction")
            if rec is not None and rec["pred"].shape[0] > 0:
                value = F.mse_loss(rec["pred"].float(), rec["target"].float())
                add("reconstruction", f"reconstruction/{modality}", value)

    parts: dict[str, float] = {}
    if named:
        values = torch.stack([v for _, _, v in named])
        w = torch.tensor([weights[g] for g, _, _ in named], device=values.device)
        total = (w * values).sum()
        floats = torch.cat([values.detach(), total.detach()[None]]).tolist()  # one device sync
        for (group, name, _), value in zip(named, floats, strict=False):
            parts[name] = value
            if name != group:
                parts[group] = parts.get(group, 0.0) + value
        parts["total"] = floats[-1]
    else:
        total = torch.zeros((), device=device)
        parts["total"] = 0.0
    parts["pairs_both"] = pairs_both
    parts["terms"] = len(named)
    return total, parts
