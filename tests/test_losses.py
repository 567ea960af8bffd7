"""Tests of mcsp.losses: NT-Xent, distillation, consistency and the pretraining loss."""

from __future__ import annotations

import math

import pytest
import torch

from mcsp.config import schema_defaults
from mcsp.losses import consistency, distillation, nt_xent, pretraining_loss

DOMAINS = ("spatial", "temporal", "frequency")


def _expected_nt_xent(z1: list[list[float]], z2: list[list[float]], t: float) -> float:
    """NT-Xent written out with plain math: mean over the 2n anchors."""
    z = [[v / math.sqrt(sum(c * c for c in row)) for v in row] for row in z1 + z2]
    n2 = len(z)
    total = 0.0
    for i in range(n2):
        sims = [sum(a * b for a, b in zip(z[i], z[k], strict=True)) / t for k in range(n2)]
        pos = (i + n2 // 2) % n2
        denom = sum(math.exp(sims[k]) for k in range(n2) if k != i)
        total += -math.log(math.exp(sims[pos]) / denom)
    return total / n2


def test_nt_xent_hand_case() -> None:
    z1 = [[1.0, 0.0], [0.0, 2.0]]
    z2 = [[1.0, 1.0], [-1.0, 3.0]]
    for t in (0.2, 1.0):
        got = nt_xent(torch.tensor(z1), torch.tensor(z2), temperature=t)
        assert got.item() == pytest.approx(_expected_nt_xent(z1, z2, t), rel=1e-5)


def test_nt_xent_symmetric_and_aligned_lower() -> None:
    g = torch.Generator().manual_seed(0)
    z1 = torch.randn(8, 16, generator=g)
    z2 = torch.randn(8, 16, generator=g)
    assert nt_xent(z1, z2).item() == pytest.approx(nt_xent(z2, z1).item(), rel=1e-6)
    aligned = nt_xent(z1, z1 + 0.05 * torch.randn(8, 16, generator=g))
    assert aligned < nt_xent(z1, z2)


def test_nt_xent_needs_two_samples() -> None:
    with pytest.raises(ValueError, match="at least 2"):
        nt_xent(torch.randn(1, 4), torch.randn(1, 4))
    with pytest.raises(ValueError):
        nt_xent(torch.randn(3, 4), torch.randn(2, 4))


def test_distillation_hand_cases() -> None:
    student = torch.tensor([[0.0, 0.0]])
    teacher = torch.tensor([[math.log(3.0), 0.0]])  # softmax = (0.75, 0.25)
    kl = 0.75 * math.log(0.75 / 0.5) + 0.25 * math.log(0.25 / 0.5)
    assert distillation(student, teacher, "kl").item() == pytest.approx(kl, rel=1e-5)
    # Same softened distributions at T = 2, scaled by T^2.
    got = distillation(student, 2 * teacher, "kl", temperature=2.0).item()
    assert got == pytest.approx(4 * kl, rel=1e-5)

    s = torch.tensor([[1.0, 0.0], [0.0, 3.0]])
    t = torch.tensor([[1.0, 1.0], [0.0, 5.0]])
    cos = ((1 - 1 / math.sqrt(2)) + 0.0) / 2
    assert distillation(s, t, "cosine").item() == pytest.approx(cos, rel=1e-5)
    mse = ((1 - 1 / math.sqrt(2)) ** 2 + (1 / math.sqrt(2)) ** 2 + 0.0) / 2
    assert distillation(s, t, "mse").item() == pytest.approx(mse, rel=1e-5)
    with pytest.raises(ValueError):
        distillation(s, t, "nope")


@pytest.mark.parametrize("kind", ["kl", "cosine", "mse"])
def test_distillation_teacher_gets_no_gradient(kind: str) -> None:
    g = torch.Generator().manual_seed(1)
    student = torch.randn(4, 6, generator=g, requires_grad=True)
    teacher = torch.randn(4, 6, generator=g, requires_grad=True)
    distillation(student, teacher, kind).backward()
    assert teacher.grad is None
    assert student.grad is not None and student.grad.abs().sum() > 0
    same = distillation(teacher, teacher.clone(), kind).item()
    assert same == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("kind", ["cosine", "mse"])
def test_consistency_both_sides_get_gradients(kind: str) -> None:
    g = torch.Generator().manual_seed(2)
    a = torch.randn(4, 6, generator=g, requires_grad=True)
    b = torch.randn(4, 6, generator=g, requires_grad=True)
    consistency(a, b, kind).backward()
    assert a.grad is not None and b.grad is not None
    assert a.grad.abs().sum() > 0 and b.grad.abs().sum() > 0
    assert consistency(a, 3 * a, kind).item() == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(ValueError):
        consistency(a, b, "kl")


# --- pretraining_loss -------------------------------------------------------------------------


def _settings(**over) -> dict:
    s = schema_defaults("config", "pretrain")
    for key, value in over.items():
        if isinstance(value, dict):
            s[key] = {**s[key], **value}
        else:
            s[key] = value
    return s


def _leaf(t: torch.Tensor) -> torch.Tensor:
    return t.detach().clone().requires_grad_(True)


def _outputs(masks: dict[str, list[bool]], shared: bool, seed: int = 0, d: int = 5) -> dict:
    """Fake model outputs; with ``shared`` the rows of items having both modalities are equal."""
    g = torch.Generator().manual_seed(seed)
    raw = {}
    for m, mask in masks.items():
        n = sum(mask)
        raw[m] = {
            key: torch.randn(n, d, generator=g)
            for key in (*DOMAINS, "fused_z", *(f"a{x}" for x in DOMAINS))
        }
    if shared and {"fmri", "eeg"} <= set(masks):
        rows_f = [sum(masks["fmri"][: i + 1]) - 1 for i in range(len(masks["fmri"]))]
        rows_e = [sum(masks["eeg"][: i + 1]) - 1 for i in range(len(masks["eeg"]))]
        for i, (f, e) in enumerate(zip(masks["fmri"], masks["eeg"], strict=True)):
            if f and e:
                for key in (*DOMAINS, "fused_z"):
                    raw["eeg"][key][rows_e[i]] = raw["fmri"][key][rows_f[i]]
    out = {}
    for m, r in raw.items():
        out[m] = {
            "orig": {
                "z": {x: _leaf(r[x]) for x in DOMAINS},
                "fused_z": _leaf(r["fused_z"]),
            },
            "aug": {
                "z": {x: _leaf(r[f"a{x}"]) for x in DOMAINS},
                "fused_z": _leaf(r["fused_z"]),
            },
        }
    return out


def _batch(masks: dict[str, list[bool]]) -> dict:
    return {m: {"mask": torch.tensor(mask)} for m, mask in masks.items()}


MASK_SETS = [
    {"fmri": [True, True, False, True], "eeg": [True, False, True, True]},  # items 0 and 3
    {"fmri": [False, True, True, True], "eeg": [True, True, False, True]},  # items 1 and 3
]


@pytest.mark.parametrize("masks", MASK_SETS)
def test_pretraining_loss_aligns_items_having_both(masks: dict) -> None:
    settings = _settings(distillation={"loss": "cosine"}, consistency="cosine")
    total, parts = pretraining_loss(_outputs(masks, shared=True), _batch(masks), settings)
    assert parts["pairs_both"] == 2
    for domain in DOMAINS:
        assert parts[f"distillation/{domain}"] == pytest.approx(0.0, abs=1e-6)
    assert parts["consistency"] == pytest.approx(0.0, abs=1e-6)
    assert parts["contrastive"] > 0
    assert total.item() == pytest.approx(parts["contrastive"], rel=1e-5)

    _, parts = pretraining_loss(_outputs(masks, shared=False), _batch(masks), settings)
    assert all(parts[f"distillation/{d}"] > 1e-3 for d in DOMAINS)
    assert parts["consistency"] > 1e-3


def test_pretraining_loss_kl_zero_when_aligned() -> None:
    masks = MASK_SETS[1]
    _, parts = pretraining_loss(_outputs(masks, shared=True), _batch(masks), _settings())
    assert parts["distillation"] == pytest.approx(0.0, abs=1e-6)


def test_pretraining_loss_parts_and_total() -> None:
    masks = MASK_SETS[0]
    settings = _settings(weights={"contrastive": 0.5, "distillation": 2.0, "consistency": 3.0})
    total, parts = pretraining_loss(_outputs(masks, shared=False), _batch(masks), settings)
    expected_keys = {
        *(f"contrastive/{m}/{d}" for m in ("fmri", "eeg") for d in DOMAINS),
        *(f"distillation/{d}" for d in DOMAINS),
        "consistency",
        "contrastive",
        "distillation",
        "total",
        "pairs_both",
        "terms",
    }
    assert set(parts) == expected_keys
    assert parts["terms"] == 10
    contrastive = sum(parts[f"contrastive/{m}/{d}"] for m in ("fmri", "eeg") for d in DOMAINS)
    assert parts["contrastive"] == pytest.approx(contrastive, rel=1e-6)
    expected = 0.5 * contrastive + 2.0 * parts["distillation"] + 3.0 * parts["consistency"]
    assert total.item() == pytest.approx(expected, rel=1e-5)
    assert parts["total"] == pytest.approx(expected, rel=1e-5)
    assert total.requires_grad


def test_pretraining_loss_distillation_directions_and_gradients() -> None:
    masks = MASK_SETS[0]
    outputs = _outputs(masks, shared=False)
    settings = _settings(weights={"contrastive": 0.0, "consistency": 0.0})
    total, parts = pretraining_loss(outputs, _batch(masks), settings)
    assert set(parts) == {
        "distillation/spatial",
        "distillation/temporal",
        "distillation/frequency",
        "distillation",
        "total",
        "pairs_both",
        "terms",
    }
    total.backward()
    # Defaults: fMRI teaches spatial, EEG teaches temporal and frequency.
    assert outputs["fmri"]["orig"]["z"]["spatial"].grad is None
    assert outputs["eeg"]["orig"]["z"]["spatial"].grad is not None
    for domain in ("temporal", "frequency"):
        assert outputs["eeg"]["orig"]["z"][domain].grad is None
        assert outputs["fmri"]["orig"]["z"][domain].grad is not None
    # Only the rows of items having both modalities get gradients (row 1 of fMRI is item 1).
    grad = outputs["fmri"]["orig"]["z"]["temporal"].grad
    assert grad[1].abs().sum() == 0 and grad[0].abs().sum() > 0 and grad[2].abs().sum() > 0
    assert outputs["fmri"]["aug"]["z"]["temporal"].grad is None


def test_pretraining_loss_zero_weights_and_none_direction_skip() -> None:
    masks = MASK_SETS[0]
    settings = _settings(
        weights={"contrastive": 0.0, "consistency": 0.0},
        distillation={"spatial": "none", "temporal": "fmri_to_eeg"},
    )
    _, parts = pretraining_loss(_outputs(masks, shared=False), _batch(masks), settings)
    assert not any(k.startswith(("contrastive", "consistency")) for k in parts)
    assert "distillation/spatial" not in parts
    assert {"distillation/temporal", "distillation/frequency"} <= set(parts)

    settings = _settings(weights={"distillation": 0.0})
    _, parts = pretraining_loss(_outputs(masks, shared=False), _batch(masks), settings)
    assert not any(k.startswith("distillation") for k in parts)
    assert "consistency" in parts and "contrastive" in parts


@pytest.mark.parametrize("eeg_in_batch", [False, True])
def test_pretraining_loss_fmri_only(eeg_in_batch: bool) -> None:
    masks = {"fmri": [True, True, True]}
    batch = _batch(masks)
    if eeg_in_batch:
        batch["eeg"] = {"mask": torch.zeros(3, dtype=torch.bool)}
    total, parts = pretraining_loss(_outputs(masks, shared=False), batch, _settings())
    assert parts["pairs_both"] == 0
    assert parts["terms"] == 3
    assert set(parts) == {
        *(f"contrastive/fmri/{d}" for d in DOMAINS),
        "contrastive",
        "total",
        "pairs_both",
        "terms",
    }
    assert total.requires_grad


def test_pretraining_loss_nothing_to_compute() -> None:
    masks = {"fmri": [True, False], "eeg": [False, True]}
    total, parts = pretraining_loss(_outputs(masks, shared=False), _batch(masks), _settings())
    assert parts["terms"] == 0 and parts["pairs_both"] == 0
    assert total.item() == 0.0 and not total.requires_grad


def test_pretraining_loss_rejects_misaligned_rows() -> None:
    masks = MASK_SETS[0]
    outputs = _outputs(masks, shared=False)
    batch = _batch({"fmri": [True, True, True, True], "eeg": masks["eeg"]})
    with pytest.raises(ValueError, match="rows"):
        pretraining_loss(outputs, batch, _settings())
