"""Tests of mcsp.augment: graph, series and spectrum augmentations and row standardisation."""

from __future__ import annotations

import pytest
import torch
from torch_geometric.data import Batch, Data

from mcsp.augment import (
    augment_graph,
    augment_modality,
    augment_series,
    augment_spectrum,
    prepare_modality,
    standardise_rows,
)
from mcsp.config import schema_defaults


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _graph(n: int, seed: int) -> Data:
    """A graph from a random symmetric matrix (zero diagonal): all off-diagonal edges."""
    g = _gen(seed)
    m = torch.randn(n, n, generator=g)
    m = (m + m.T) / 2
    m.fill_diagonal_(0)
    src, dst = torch.nonzero(~torch.eye(n, dtype=torch.bool), as_tuple=True)
    return Data(x=m.clone(), edge_index=torch.stack([src, dst]), edge_attr=m[src, dst])


def _batch() -> Batch:
    return Batch.from_data_list([_graph(6, 1), _graph(6, 2), _graph(6, 3)])


def _edges(b: Batch) -> dict[tuple[int, int], float]:
    return {
        (int(i), int(j)): float(w)
        for (i, j), w in zip(b.edge_index.T.tolist(), b.edge_attr, strict=True)
    }


def _snapshot(b: Batch) -> dict[str, torch.Tensor]:
    return {k: b[k].clone() for k in ("x", "edge_index", "edge_attr", "batch", "ptr")}


def test_augment_graph_keeps_input_and_copies_nodes() -> None:
    b = _batch()
    before = _snapshot(b)
    out = augment_graph(b, 0.3, 0.2, generator=_gen())
    for key, value in before.items():
        assert torch.equal(b[key], value), key
    assert out is not b and out.x is not b.x and out.batch is not b.batch
    assert torch.equal(out.x, b.x) and torch.equal(out.batch, b.batch)
    assert out.num_graphs == 3
    assert out.edge_index.shape[1] == out.edge_attr.shape[0] < b.edge_index.shape[1]


def test_augment_graph_drop_all_and_none() -> None:
    b = _batch()
    empty = augment_graph(b, 1.0, 0.1, generator=_gen())
    assert empty.edge_index.shape == (2, 0) and empty.edge_attr.shape == (0,)
    assert all(d.edge_index.shape[1] == 0 for d in empty.to_data_list())
    same = augment_graph(b, 0.0, 0.0, generator=_gen())
    assert torch.equal(same.edge_index, b.edge_index)
    assert torch.equal(same.edge_attr, b.edge_attr)


def test_augment_graph_stays_symmetric() -> None:
    b = _batch()
    out = augment_graph(b, 0.5, 0.3, generator=_gen(4))
    before, after = _edges(b), _edges(out)
    assert 0 < len(after) < len(before)
    for (i, j), w in after.items():
        assert after[(j, i)] == w  # same decision and same noise for both directions
    changed = [abs(w - before[e]) for e, w in after.items()]
    assert max(changed) > 0.01
    # Edges stay within their own graph and the per-graph slices follow the drop.
    assert torch.equal(out.batch[out.edge_index[0]], out.batch[out.edge_index[1]])
    graphs = out.to_data_list()
    assert sum(d.edge_index.shape[1] for d in graphs) == len(after)
    for d in graphs:
        assert d.edge_index.numel() == 0 or int(d.edge_index.max()) < d.num_nodes
        assert d.edge_attr.shape[0] == d.edge_index.shape[1]


def test_augment_graph_deterministic() -> None:
    b = _batch()
    one = augment_graph(b, 0.3, 0.2, generator=_gen(7))
    two = augment_graph(b, 0.3, 0.2, generator=_gen(7))
    other = augment_graph(b, 0.3, 0.2, generator=_gen(8))
    assert torch.equal(one.edge_index, two.edge_index)
    assert torch.equal(one.edge_attr, two.edge_attr)
    assert one.edge_index.shape != other.edge_index.shape or not torch.equal(
        one.edge_attr, other.edge_attr
    )


def test_augment_series_shapes_input_determinism() -> None:
    x = torch.randn(3, 4, 50, generator=_gen())
    before = x.clone()
    one = augment_series(x, 0.1, 0.1, 0.1, 0.1, generator=_gen(1))
    two = augment_series(x, 0.1, 0.1, 0.1, 0.1, generator=_gen(1))
    assert one.shape == x.shape and torch.equal(x, before)
    assert torch.equal(one, two)
    assert not torch.equal(one, augment_series(x, 0.1, 0.1, 0.1, 0.1, generator=_gen(2)))
    assert torch.equal(augment_series(x, 0, 0, 0, 0, generator=_gen()), x)


def test_augment_series_mask_span() -> None:
    x = torch.ones(5, 3, 20)
    out = augment_series(x, 0.0, 0.0, 0.0, 0.26, generator=_gen())  # round(5.2) = 5
    zero = out == 0
    assert torch.equal(zero, zero[:, :1].expand_as(zero))  # same span in every row of a sample
    for sample in zero[:, 0]:
        idx = torch.nonzero(sample).flatten()
        assert len(idx) == 5 and int(idx[-1] - idx[0]) == 4


def test_augment_series_shift_is_circular() -> None:
    b, n, t = 6, 3, 40
    x = torch.arange(t, dtype=torch.float32).repeat(b, n, 1) + 100 * torch.arange(n)[:, None]
    out = augment_series(x, 0.0, 0.0, 0.25, 0.0, generator=_gen(3))
    assert torch.equal(out.sort(dim=-1).values, x.sort(dim=-1).values)
    shifts = []
    for k in range(b):
        s = int((t - out[k, 0, 0]) % t)  # out[k, :, 0] = x[k, :, -s]
        assert torch.equal(out[k], torch.roll(x[k], s, dims=-1))  # one shift for all rows
        shifts.append(s if s <= t // 2 else s - t)
    assert max(abs(s) for s in shifts) <= 10 and any(s != 0 for s in shifts)


def test_augment_series_noise_and_gain() -> None:
    x = torch.randn(4, 8, 2000, generator=_gen())
    noisy = augment_series(x, 0.5, 0.0, 0.0, 0.0, generator=_gen(1))
    assert (noisy - x).std().item() == pytest.approx(0.5, rel=0.05)
    scaled = augment_series(x, 0.0, 0.2, 0.0, 0.0, generator=_gen(1))
    gain = scaled / x
    assert torch.allclose(gain, gain[..., :1].expand_as(gain), atol=1e-4)
    assert gain[..., 0].std() > 0.05


def test_augment_spectrum() -> None:
    x = torch.randn(3, 4, 30, generator=_gen())
    before = x.clone()
    assert torch.equal(augment_spectrum(x, 1.0, 0.5, 1.0, generator=_gen()), torch.zeros_like(x))
    assert torch.equal(augment_spectrum(x, 0.0, 0.0, 1.0, generator=_gen()), x)
    assert torch.allclose(augment_spectrum(x, 0.0, 1.0, 2.0, generator=_gen()), x + 2.0)
    out = augment_spectrum(x, 0.3, 0.3, 1.5, generator=_gen(1))
    assert torch.equal(x, before) and out.shape == x.shape
    diff = out - x
    removed = (out == 0) & (x != 0)
    added = torch.isclose(diff, torch.tensor(1.5))
    assert removed.any() and added.any()
    assert torch.all(removed | added | (diff == 0))
    assert torch.equal(out, augment_spectrum(x, 0.3, 0.3, 1.5, generator=_gen(1)))


def test_standardise_rows() -> None:
    x = 3 * torch.randn(2, 3, 40, generator=_gen()) + 5
    x[0, 1] = 5.0  # flat row
    x[1, 2] = 0.0  # zero row
    before = x.clone()
    out = standardise_rows(x)
    assert torch.equal(x, before) and out.shape == x.shape
    assert torch.equal(out[0, 1], torch.zeros(40)) and torch.equal(out[1, 2], torch.zeros(40))
    live = out.reshape(-1, 40)[[0, 2, 3, 4]]
    assert torch.allclose(live.mean(-1), torch.zeros(4), atol=1e-5)
    assert torch.allclose(live.std(-1, unbiased=False), torch.ones(4), atol=1e-5)


def _modality() -> dict:
    g = _gen(5)
    return {
        "mask": torch.tensor([True, False, True]),
        "spatial": Batch.from_data_list([_graph(5, 1), _graph(5, 2)]),
        "temporal": 2 * torch.randn(2, 5, 30, generator=g) + 1,
        "frequency": torch.randn(2, 5, 12, generator=g) - 3,
    }


def test_prepare_modality() -> None:
    data = _modality()
    out = prepare_modality(data)
    assert out is not data and set(out) == set(data)
    assert out["spatial"] is data["spatial"] and out["mask"] is data["mask"]
    for key in ("temporal", "frequency"):
        assert torch.allclose(out[key].mean(-1), torch.zeros(2, 5), atol=1e-5)
        assert torch.allclose(out[key], standardise_rows(data[key]))
    empty = prepare_modality({"mask": torch.zeros(3, dtype=torch.bool), "temporal": None})
    assert empty["temporal"] is None


def test_augment_modality() -> None:
    data = prepare_modality(_modality())
    settings = schema_defaults("config", "pretrain.augment")
    temporal = data["temporal"].clone()
    one = augment_modality(data, settings, generator=_gen(9))
    two = augment_modality(data, settings, generator=_gen(9))
    assert set(one) == set(data) and one["mask"] is data["mask"]
    assert torch.equal(data["temporal"], temporal)
    for key in ("temporal", "frequency"):
        assert one[key].shape == data[key].shape
        assert torch.equal(one[key], two[key]) and not torch.equal(one[key], data[key])
    assert torch.equal(one["spatial"].edge_attr, two["spatial"].edge_attr)
    assert one["spatial"].edge_index.shape[1] < data["spatial"].edge_index.shape[1]
    off = augment_modality(data, dict.fromkeys(settings, 0.0), generator=_gen())
    for key in ("temporal", "frequency"):
        assert torch.equal(off[key], data[key])
    assert torch.equal(off["spatial"].edge_attr, data["spatial"].edge_attr)
    partial = augment_modality({"temporal": data["temporal"], "frequency": None}, {})
    assert set(partial) == {"temporal", "frequency"} and partial["frequency"] is None


def test_window_view_swaps_whole_graphs() -> None:
    from mcsp.augment import window_view

    runs = Batch.from_data_list([_graph(5, seed=k) for k in range(6)])
    windows = Batch.from_data_list([_graph(5, seed=10 + k) for k in range(6)])
    data = {"spatial": runs, "spatial_window": windows}
    assert window_view(data, 0.0) is runs
    assert window_view({"spatial": runs}, 1.0) is runs
    swapped = window_view(data, 1.0, torch.Generator().manual_seed(0))
    assert torch.equal(swapped.x, windows.x) and torch.equal(swapped.edge_index, windows.edge_index)
    half = window_view(data, 0.5, torch.Generator().manual_seed(3)).to_data_list()
    expected = (torch.rand(6, generator=torch.Generator().manual_seed(3)) < 0.5).tolist()
    for graph, window, run, swap in zip(
        half, windows.to_data_list(), runs.to_data_list(), expected, strict=True
    ):
        assert torch.equal(graph.x, window.x if swap else run.x)
    again = window_view(data, 0.5, torch.Generator().manual_seed(3)).to_data_list()
    assert all(torch.equal(a.x, b.x) for a, b in zip(half, again, strict=True))


def test_mask_nodes_hides_rows_columns_and_edges() -> None:
    from mcsp.augment import mask_nodes

    batch = _batch()
    before = _snapshot(batch)
    masked, hidden = mask_nodes(batch, 0.4, _gen(2))
    assert hidden.any() and not hidden.all()
    for key, value in before.items():
        assert torch.equal(batch[key], value)  # input untouched
    graphs = masked.batch
    for node in torch.nonzero(hidden).flatten().tolist():
        g = int(graphs[node])
        local = node - int(batch.ptr[g])
        assert (masked.x[node] == 0).all()
        assert (masked.x[graphs == g][:, local] == 0).all()
    src, dst = masked.edge_index
    assert not (hidden[src] | hidden[dst]).any()
    kept = ~hidden
    visible = masked.x[kept] != 0
    assert torch.equal(batch.x[kept][visible], masked.x[kept][visible])  # the rest unchanged
    assert len(masked.to_data_list()) == 3  # per-graph slices stay consistent
    again, hidden_again = mask_nodes(batch, 0.4, _gen(2))
    assert torch.equal(hidden, hidden_again) and torch.equal(again.x, masked.x)
