"""Samples kept on the training device: the same edges, batches and losses as the loader's."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import mcsp.train as train
from mcsp.domains import sparsify
from mcsp.models import MCSP
from mcsp.resident import ResidentPairs, resident_bytes, sparsify_batch
from mcsp.store import PairDataset, collate_pairs
from mcsp.train import Views, batch_loss, pretrain, training_settings, use_resident

from .test_train import _build, _config, _losses

RULES = [("proportional", 0.1), ("proportional", 0.0), ("threshold", 0.6), ("topk", 3)]
RULES += [("topk", 0), ("none", 0.0)]


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("resident")
    return {
        "pairs": _build(root / "pairs"),
        "run": _build(root / "run", spatial="run", sparsify={"rule": "topk", "value": 2}),
    }


@pytest.mark.parametrize(("rule", "value"), RULES)
def test_sparsify_batch_keeps_the_edges_of_sparsify(rule: str, value: float) -> None:
    rng = np.random.default_rng(3)
    matrices = rng.normal(size=(5, 12, 12)).astype(np.float32)
    matrices = (matrices + matrices.transpose(0, 2, 1)) / 2
    matrices[0] = np.round(matrices[0])  # many ties at the cut
    keep = sparsify_batch(torch.from_numpy(matrices), rule, value).numpy()
    iu, ju = np.triu_indices(12, 1)
    for matrix, kept in zip(matrices, keep, strict=True):
        edge_index, _ = sparsify(matrix, rule, value)
        half = edge_index[:, : kept.sum()]
        assert edge_index.shape[1] == 2 * kept.sum()
        assert np.array_equal(half, np.stack([iu[kept], ju[kept]]))


def _assert_same_batch(loader: dict, resident: dict) -> None:
    assert loader["pair_id"] == resident["pair_id"]
    for modality in ("fmri", "eeg"):
        a, b = loader[modality], resident[modality]
        assert torch.equal(a["mask"], b["mask"])
        for key in ("temporal", "frequency"):
            assert (a[key] is None and b[key] is None) or torch.equal(a[key], b[key])
        for key in ("spatial", "spatial_window"):
            if a.get(key) is None:
                assert b.get(key) is None
                continue
            for attr in ("x", "edge_index", "edge_attr", "batch", "ptr"):
                assert torch.equal(a[key][attr], b[key][attr]), (modality, key, attr)
            assert a[key].num_graphs == b[key].num_graphs
            graphs = zip(a[key].to_data_list(), b[key].to_data_list(), strict=True)
            assert all(torch.equal(g.edge_attr, h.edge_attr) for g, h in graphs)


@pytest.mark.parametrize("kind", ["pairs", "run", "eeg samples"])
def test_resident_batches_equal_the_loader_batches(stores: dict[str, Path], kind: str) -> None:
    """Pairs of both modalities, with window graphs (a topk store), and items without fMRI."""
    dataset = PairDataset(
        stores["run" if kind == "run" else "pairs"],
        window_views=kind == "run",
        modality="eeg" if kind == "eeg samples" else None,
    )
    resident = ResidentPairs(dataset, "cpu")
    assert resident_bytes(dataset) > 0
    order = np.random.default_rng(0).permutation(len(dataset))
    for items in [order[:8].tolist(), order[8:11].tolist(), [int(order[0])] * 2]:
        _assert_same_batch(collate_pairs([dataset[i] for i in items]), resident.batch(items))
    keep = dataset.pairs["subject"].isin(["01", "02"]).to_numpy()
    part, part_resident = dataset.subset(keep), resident.subset(keep)
    assert len(part_resident) == len(part) < len(dataset)
    items = list(range(len(part)))
    _assert_same_batch(collate_pairs([part[i] for i in items]), part_resident.batch(items))


def test_resident_pretraining_has_the_loaders_losses(
    stores: dict[str, Path], tmp_path: Path
) -> None:
    loader = pretrain(stores["pairs"], tmp_path / "loader", _config(epochs=2, resident=False))
    resident = pretrain(stores["pairs"], tmp_path / "resident", _config(epochs=2, resident=True))
    assert not loader["resident"] and resident["resident"]
    assert loader["final_loss"] == resident["final_loss"]
    for split in ("train", "val"):
        pd.testing.assert_frame_equal(
            _losses(tmp_path / "loader", split), _losses(tmp_path / "resident", split)
        )


def test_resident_auto_by_size(stores: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    dataset = PairDataset(stores["pairs"])
    cpu = torch.device("cpu")
    assert use_resident("auto", dataset, cpu) and not use_resident(False, dataset, cpu)
    monkeypatch.setattr(train, "RESIDENT_CPU_MAX_BYTES", resident_bytes(dataset) - 1)
    assert not use_resident("auto", dataset, cpu) and use_resident(True, dataset, cpu)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_resident_batch_on_cuda_has_the_cpu_losses(stores: dict[str, Path]) -> None:
    """A fixed batch without random draws (no augmentation, no dropout): the GPU's resident
    batch gives the loss terms of the CPU's loader batch, up to float rounding."""
    config = _config(amp=False)
    config["model"] = {**config["model"], "dropout": 0.0}
    settings = training_settings(config)["pretrain"]
    settings["augment"] = dict.fromkeys(settings["augment"], 0.0)
    dataset = PairDataset(stores["pairs"])
    torch.manual_seed(0)
    model = MCSP(dataset.meta["shapes"], training_settings(config)["model"])
    items = list(range(8))
    cpu = Views(model)
    _, expected = batch_loss(
        cpu, collate_pairs([dataset[i] for i in items]), settings, torch.device("cpu"), 1
    )
    cuda = torch.device("cuda")
    gpu = Views(copy.deepcopy(model)).to(cuda)
    _, got = batch_loss(gpu, ResidentPairs(dataset, cuda).batch(items), settings, cuda, 1)
    assert expected.keys() == got.keys()
    for key, value in expected.items():
        assert got[key] == pytest.approx(value, rel=1e-4, abs=1e-5), key
    assert use_resident("auto", dataset, cuda)
