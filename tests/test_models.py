"""The MCSP network: shapes, options, gradients, determinism, settings, positional encodings."""

from __future__ import annotations

import json
from typing import Any

import pytest
import torch
from torch_geometric.data import Batch, Data

from mcsp.domains import sparsify
from mcsp.exceptions import ConfigError
from mcsp.models import MCSP, DomainFusion, GraphTransformer, SequenceTransformer
from mcsp.models.graph import laplacian_pe, random_walk_pe
from mcsp.models.sequence import standardise_rows

SIZES = {"fmri": (12, 20, 8), "eeg": (5, 40, 10)}  # N, T, F
SHAPES = {
    f"{m}/{d}": list(s)
    for m, (n, t, f) in SIZES.items()
    for d, s in (("spatial", (n, n)), ("temporal", (n, t)), ("frequency", (n, f)))
}
SMALL = {"hidden": 16, "proj_dim": 8, "sequence": {"patches": 4}}


def graph_batch(n: int, b: int, generator: torch.Generator) -> Batch:
    """B graphs of random symmetric Fisher-z FC (zero diagonal), strongest 20% of edges kept."""
    graphs = []
    for _ in range(b):
        a = torch.randn(n, n, generator=generator) * 0.3
        fc = (a + a.T) / 2
        fc.fill_diagonal_(0)
        edge_index, weight = sparsify(fc.numpy(), "proportional", 0.2)
        graphs.append(
            Data(x=fc, edge_index=torch.from_numpy(edge_index), edge_attr=torch.from_numpy(weight))
        )
    return Batch.from_data_list(graphs)


def inputs(modality: str, b: int = 3, seed: int = 0) -> dict[str, Any]:
    """A per-modality batch as collate_pairs yields it (EEG frequency unstandardised, ~ -11)."""
    g = torch.Generator().manual_seed(seed)
    n, t, f = SIZES[modality]
    offset = -11.0 if modality == "eeg" else 0.0
    return {
        "mask": torch.ones(b, dtype=torch.bool),
        "spatial": graph_batch(n, b, g),
        "temporal": torch.randn(b, n, t, generator=g),
        "frequency": torch.randn(b, n, f, generator=g) + offset,
    }


def settings(**overrides: Any) -> dict[str, Any]:
    """SMALL settings with nested overrides (``graph={...}`` merges into SMALL's graph block)."""
    out = json.loads(json.dumps(SMALL))
    for key, value in overrides.items():
        if isinstance(value, dict):
            out.setdefault(key, {}).update(value)
        else:
            out[key] = value
    return out


def check_output(out: dict[str, Any], domains: tuple[str, ...], b: int = 3) -> None:
    assert set(out) == {"h", "z", "fused", "fused_z"}
    assert set(out["h"]) == set(out["z"]) == set(domains)
    for d in domains:
        assert out["h"][d].shape == (b, 16)
        assert out["z"][d].shape == (b, 8)
    assert out["fused"].shape == (b, 16)
    assert out["fused_z"].shape == (b, 8)
    assert all(torch.isfinite(v).all() for v in [*out["z"].values(), out["fused_z"]])


def test_output_shapes_every_modality_and_domain() -> None:
    torch.manual_seed(0)
    model = MCSP(SHAPES, SMALL)
    assert model.modalities == ("fmri", "eeg")
    assert model.domains == ("spatial", "temporal", "frequency")
    assert model.settings["graph"]["pe_dim"] == 8  # filled from the schema defaults
    for modality in model.modalities:
        data = inputs(modality)
        check_output(model(data, modality), model.domains)
        for domain in model.domains:
            assert model.encode(modality, domain, data).shape == (3, 16)
        assert model.encode(modality, "temporal", data["temporal"]).shape == (3, 16)
        assert model.embed(data, modality).shape == (3, 16)
    assert model.n_parameters() > 0


OPTIONS = [
    {"graph": {"positional_encoding": "random_walk"}},
    {"graph": {"positional_encoding": "laplacian", "pe_dim": 15}},  # > N - 1 for EEG: zero pad
    {"graph": {"positional_encoding": "none"}},
    {"graph": {"pooling": "mean"}},
    {"graph": {"pooling": "max"}},
    {"graph": {"pooling": "mean_max"}},
    {"graph": {"pooling": "flatten"}},
    {"graph": {"attention": "sparse"}},
    {"graph": {"attention": "dense"}},
    {"sequence": {"temporal_tokens": "patch", "frequency_tokens": "patch"}},
    {"sequence": {"temporal_tokens": "region", "frequency_tokens": "region"}},
    {"fusion": "attention"},
    {"fusion": "mean"},
    {"fusion": "concat"},
    {"share_encoders": True},
    {"share_encoders": False, "fusion": "concat"},
]


@pytest.mark.parametrize("option", OPTIONS, ids=lambda o: json.dumps(o, separators=(",", ":")))
def test_every_option_runs(option: dict[str, Any]) -> None:
    torch.manual_seed(0)
    model = MCSP(SHAPES, settings(**option))
    for training in (True, False):
        model.train(training)
        for modality in model.modalities:
            check_output(model(inputs(modality), modality), model.domains)


@pytest.mark.parametrize("fusion", ["attention", "mean", "concat"])
def test_domain_subsets(fusion: str) -> None:
    torch.manual_seed(0)
    model = MCSP(SHAPES, settings(fusion=fusion))
    data = inputs("eeg")
    for domains in (("temporal",), ("spatial", "frequency"), ("frequency", "temporal")):
        check_output(model(data, "eeg", domains), domains)
        assert model.embed(data, "eeg", domains).shape == (3, 16)
    with pytest.raises(ValueError, match="subset"):
        model(data, "eeg", ["spectral"])
    spatial_only = MCSP(SHAPES, settings(domains=["spatial"], fusion=fusion))
    assert spatial_only.domains == ("spatial",)
    assert set(spatial_only.encoders) == {"spatial"}
    check_output(spatial_only(inputs("fmri"), "fmri"), ("spatial",))


@pytest.mark.parametrize("share", [True, False])
def test_gradients_reach_every_parameter(share: bool) -> None:
    torch.manual_seed(0)
    model = MCSP(SHAPES, settings(share_encoders=share)).train()
    loss = torch.zeros(())
    for modality in model.modalities:
        out = model(inputs(modality), modality)
        loss = loss + sum(z.sum() for z in out["z"].values()) + out["fused_z"].sum()
    loss.backward()
    dead = [
        name
        for name, p in model.named_parameters()
        if p.requires_grad and (p.grad is None or not p.grad.abs().sum() > 0)
    ]
    assert not dead


def test_same_seed_same_outputs() -> None:
    outputs = []
    for _ in range(2):
        torch.manual_seed(3)
        model = MCSP(SHAPES, settings(graph={"positional_encoding": "laplacian"})).train()
        outputs.append(model(inputs("fmri"), "fmri")["fused_z"])  # dropout + random signs
    assert torch.equal(outputs[0], outputs[1])


def test_fmri_only_shapes() -> None:
    fmri_only = {k: v for k, v in SHAPES.items() if k.startswith("fmri/")}
    model = MCSP(fmri_only)  # default settings ask for both modalities
    assert model.modalities == ("fmri",)
    assert set(model.encoders["spatial"].projectors) == {"fmri"}
    with pytest.raises(ValueError, match="modality 'eeg'"):
        model(inputs("eeg"), "eeg")


def test_from_store(tmp_path) -> None:
    (tmp_path / "store.json").write_text(json.dumps({"shapes": SHAPES}))
    model = MCSP.from_store(tmp_path, settings(modalities=["eeg"]))
    assert model.modalities == ("eeg",)
    assert model.shapes["eeg/temporal"] == (5, 40)


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ({"hidden": 30}, "divisible"),
        ({"hidden": 24, "graph": {"heads": 5}}, "graph.heads"),
        ({"hiden": 16}, "did you mean 'hidden'"),
        ({"graph": {"pooling": "sum"}}, "graph.pooling"),
        ({"fusion": "gated"}, "fusion"),
        ({"domains": []}, "domains"),
        ({"sequence": {"patches": 0}}, "patches"),
        ({"modalities": ["fmri"], "_shapes": "eeg"}, "share no modality"),
    ],
)
def test_bad_settings_raise_config_error(bad: dict[str, Any], message: str) -> None:
    shapes = SHAPES
    if bad.pop("_shapes", None):
        shapes = {k: v for k, v in SHAPES.items() if k.startswith("eeg/")}
    with pytest.raises(ConfigError, match=message):
        MCSP(shapes, bad)


def test_patches_capped_by_series_length() -> None:
    model = MCSP(SHAPES, {**SMALL, "sequence": {"patches": 30}})
    assert model.encoders["frequency"].patches == {"fmri": 8, "eeg": 10}
    assert model(inputs("fmri"), "fmri")["z"]["frequency"].shape == (3, 8)


def test_missing_domain_shape_raises() -> None:
    shapes = {k: v for k, v in SHAPES.items() if k != "eeg/frequency"}
    with pytest.raises(ConfigError, match="eeg/frequency"):
        MCSP(shapes, SMALL)


def _graphs(*edge_lists: list[tuple[int, int]], sizes: tuple[int, ...]) -> Batch:
    graphs = []
    for edges, n in zip(edge_lists, sizes, strict=True):
        ei = torch.tensor(edges).T
        graphs.append(Data(x=torch.zeros(n, 1), edge_index=torch.cat([ei, ei.flip(0)], dim=1)))
    return Batch.from_data_list(graphs)


def test_random_walk_pe_matches_hand_values() -> None:
    # A path 0-1-2 and a triangle, batched (different sizes: the path is padded).
    batch = _graphs([(0, 1), (1, 2)], [(0, 1), (1, 2), (0, 2)], [(0, 1)], sizes=(3, 3, 2))
    pe = random_walk_pe(batch.edge_index, batch.batch, batch.num_graphs, steps=5)
    path = torch.tensor([[0, 0.5, 0, 0.5, 0], [0, 1, 0, 1, 0], [0, 0.5, 0, 0.5, 0]])
    # triangle: P = (J - I) / 2, so (P^k)_ii = (1 + 2 (-1/2)^k) / 3
    tri = torch.tensor([(1 + 2 * (-0.5) ** k) / 3 for k in range(1, 6)]).expand(3, 5)
    pair = torch.tensor([[0, 1, 0, 1, 0.0]]).expand(2, 5)
    torch.testing.assert_close(pe, torch.cat([path, tri, pair]))


def test_laplacian_pe_eigenvectors_and_padding() -> None:
    path5 = [(i, i + 1) for i in range(4)]
    batch = _graphs([(0, 1), (1, 2)], path5, sizes=(3, 5))
    pe = laplacian_pe(batch.edge_index, batch.batch, batch.num_graphs, k=4)
    assert pe.shape == (8, 4)
    assert torch.equal(pe[:3, 2:], torch.zeros(3, 2))  # a 3-node graph has 2 non-trivial ones
    for graph, rows in ((batch[0], slice(0, 3)), (batch[1], slice(3, 8))):
        alone = laplacian_pe(graph.edge_index, torch.zeros(graph.num_nodes, dtype=torch.long), 1, 4)
        torch.testing.assert_close(pe[rows].abs(), alone.abs(), atol=1e-5, rtol=0)
        n = graph.num_nodes
        adj = torch.zeros(n, n)
        adj[graph.edge_index[0], graph.edge_index[1]] = 1
        d = adj.sum(1).rsqrt()
        lap = torch.eye(n) - d[:, None] * adj * d[None, :]
        vecs = alone[:, : n - 1]
        values = (vecs * (lap @ vecs)).sum(0)
        torch.testing.assert_close(lap @ vecs, vecs * values, atol=1e-5, rtol=0)
        assert (values > 1e-4).all()  # the trivial eigenvector (eigenvalue 0) is skipped


def test_laplacian_sign_flips_only_in_training() -> None:
    encoder = GraphTransformer({"fmri": 12}, hidden=16, positional_encoding="laplacian", pe_dim=4)
    graph = graph_batch(12, 4, torch.Generator().manual_seed(0))
    encoder.eval()
    assert torch.equal(encoder.positional(graph), encoder.positional(graph))
    encoder.train()
    torch.manual_seed(0)
    flipped = [encoder.positional(graph) for _ in range(4)]
    assert not all(torch.equal(flipped[0], f) for f in flipped[1:])
    assert all(torch.allclose(flipped[0].abs(), f.abs()) for f in flipped)


def test_standardisation_makes_frequency_offset_irrelevant() -> None:
    torch.manual_seed(0)
    model = MCSP(SHAPES, SMALL).eval()
    data = inputs("eeg")
    shifted = {**data, "frequency": data["frequency"] + 5.0}
    scaled = {**data, "frequency": data["frequency"] * 3.0}
    with torch.no_grad():
        ref = model(data, "eeg")["fused_z"]
        torch.testing.assert_close(model(shifted, "eeg")["fused_z"], ref, atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(model(scaled, "eeg")["fused_z"], ref, atol=1e-5, rtol=1e-4)
    flat = standardise_rows(torch.full((2, 3, 7), -11.3))
    assert torch.equal(flat, torch.zeros(2, 3, 7))


def test_components_standalone() -> None:
    torch.manual_seed(0)
    seq = SequenceTransformer({"eeg": (5, 40)}, hidden=16, tokens="patch", patches=4)
    assert seq(torch.randn(2, 5, 40), "eeg").shape == (2, 16)
    with pytest.raises(ValueError, match="shape"):
        seq(torch.randn(2, 5, 41), "eeg")
    fusion = DomainFusion(["spatial", "temporal"], hidden=16)
    assert fusion({"temporal": torch.randn(2, 16)}).shape == (2, 16)
    graph = graph_batch(5, 2, torch.Generator().manual_seed(1))
    graph.edge_attr = None  # unweighted graphs work too
    assert GraphTransformer({"eeg": 5}, hidden=16)(graph, "eeg").shape == (2, 16)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_bfloat16_autocast() -> None:
    torch.manual_seed(0)
    for pe in ("random_walk", "laplacian"):
        model = MCSP(SHAPES, settings(graph={"positional_encoding": pe})).cuda().train()
        loss = torch.zeros((), device="cuda")
        with torch.autocast("cuda", dtype=torch.bfloat16):
            for modality in model.modalities:
                data = inputs(modality)
                data = {k: v.to("cuda") for k, v in data.items()}
                out = model(data, modality)
                loss = loss + sum(z.float().sum() for z in out["z"].values())
                loss = loss + out["fused_z"].float().sum()
        loss.backward()
        assert torch.isfinite(loss)
        assert all(p.grad is not None for p in model.parameters())


def test_flatten_readout_is_order_aware() -> None:
    """Permuting the nodes (relabelling ROIs) leaves pooled readouts unchanged, not flatten."""
    torch.manual_seed(0)
    n = 6
    x = torch.randn(n, n)
    edges = torch.tensor([[i, j] for i in range(n) for j in range(n) if i != j]).T
    perm = torch.randperm(n)
    inverse = torch.empty_like(perm)
    inverse[perm] = torch.arange(n)
    permuted = Data(x=x[perm], edge_index=inverse[edges], edge_attr=torch.ones(edges.size(1)))
    original = Data(x=x, edge_index=edges, edge_attr=torch.ones(edges.size(1)))
    for pooling, same in (("mean_max", True), ("flatten", False)):
        encoder = GraphTransformer({"fmri": n}, hidden=8, heads=2, pooling=pooling).eval()
        a, b = encoder(original, "fmri"), encoder(permuted, "fmri")
        assert torch.allclose(a, b, atol=1e-5) == same, pooling
    with pytest.raises(ValueError, match="needs all 6 nodes"):
        encoder(Data(x=x[:5, :], edge_index=edges[:, :4], edge_attr=torch.ones(4)), "fmri")


def _both_paths(graph: Batch, n: int, train: bool, dropout: float = 0.3) -> list[tuple]:
    """Output and gradients of the same encoder through sparse and dense attention, with the
    same random state (so training draws the same dropout)."""
    torch.manual_seed(0)
    encoder = GraphTransformer({"fmri": n}, hidden=16, layers=2, dropout=dropout)
    encoder.train(train)
    results = []
    for attention in ("sparse", "dense"):
        encoder.attention = attention
        encoder.zero_grad()
        torch.manual_seed(7)
        out = encoder(graph, "fmri")
        (out**2).sum().backward()
        grads = [p.grad.clone() for p in encoder.parameters() if p.grad is not None]
        results.append((out.detach(), grads))
    return results


@pytest.mark.parametrize("train", [False, True])
def test_dense_attention_equals_message_passing(train: bool) -> None:
    """Dense attention is PyG's TransformerConv with the same parameters: same outputs and
    gradients, in training the same dropout draws; a node without in-edges gets none."""
    graph = graph_batch(12, 3, torch.Generator().manual_seed(1))
    lone = (graph.edge_index[1] != 4) & (graph.edge_index[0] != 4)  # node 4 of graph 0: isolated
    graph.edge_index, graph.edge_attr = graph.edge_index[:, lone], graph.edge_attr[lone]
    graph._slice_dict["edge_index"] = graph._slice_dict["edge_attr"] = torch.tensor(
        [0, *(graph.batch[graph.edge_index[1]].bincount(minlength=3).cumsum(0).tolist())]
    )
    (out_s, grads_s), (out_d, grads_d) = _both_paths(graph, 12, train)
    assert torch.allclose(out_s, out_d, atol=1e-5), (out_s - out_d).abs().max()
    assert len(grads_s) == len(grads_d) > 0
    for g_s, g_d in zip(grads_s, grads_d, strict=True):
        assert torch.allclose(g_s, g_d, atol=1e-4), (g_s - g_d).abs().max()
    if train:  # dropout drew something: the outputs differ from eval mode's
        (out_e, _), _ = _both_paths(graph, 12, False)
        assert not torch.allclose(out_e, out_d, atol=1e-3)


def test_auto_attention_policy() -> None:
    """auto: dense for graphs of one size up to 400 nodes with at least 7% of node pairs as
    edges on CPU; sparse for sparser graphs, graphs of other sizes, or an explicit choice."""
    generator = torch.Generator().manual_seed(2)
    graph = graph_batch(12, 2, generator)  # 20% of pairs
    edge_attr = graph.edge_attr.view(-1, 1)
    auto = GraphTransformer({"fmri": 12})
    assert auto.dense_graphs(graph, "fmri", edge_attr) is not None
    sparse = graph.clone()
    keep = torch.arange(sparse.num_edges) % 4 == 0  # 5% of pairs
    sparse.edge_index, sparse.edge_attr = sparse.edge_index[:, keep], sparse.edge_attr[keep]
    assert auto.dense_graphs(sparse, "fmri", sparse.edge_attr.view(-1, 1)) is None
    assert (
        GraphTransformer({"fmri": 12}, attention="sparse").dense_graphs(graph, "fmri", edge_attr)
        is None
    )
    assert (
        GraphTransformer({"fmri": 12}, attention="dense").dense_graphs(
            sparse, "fmri", sparse.edge_attr.view(-1, 1)
        )
        is not None
    )
    odd = Batch.from_data_list([Data(x=torch.zeros(5, 12), edge_index=graph.edge_index[:, :2])])
    assert auto.dense_graphs(odd, "fmri", torch.ones(2, 1)) is None
    with pytest.raises(ValueError, match="attention dense needs all 12 nodes"):
        GraphTransformer({"fmri": 12}, attention="dense").dense_graphs(
            odd, "fmri", torch.ones(2, 1)
        )
    with pytest.raises(ValueError, match="attention must be one of"):
        GraphTransformer({"fmri": 12}, attention="fast")


def test_stored_random_walk_encoding_is_used_and_dropped_with_edges() -> None:
    """A graph's stored ``rwse`` (computed once by the dataset) gives the encoder's own result;
    an augmentation that removes edges drops it, so the encoder computes the new graph's."""
    from mcsp.augment import augment_graph
    from mcsp.models.graph import graph_rwse

    generator = torch.Generator().manual_seed(3)
    plain = graph_batch(12, 3, generator)
    graphs = plain.to_data_list()
    for graph in graphs:
        graph.rwse = graph_rwse(graph, 8)
    stored = Batch.from_data_list(graphs)
    encoder = GraphTransformer({"fmri": 12}, hidden=16).eval()
    assert torch.allclose(encoder.positional(stored), encoder.positional(plain))
    assert torch.equal(encoder.positional(stored), stored.rwse)
    assert torch.allclose(encoder(stored, "fmri"), encoder(plain, "fmri"), atol=1e-6)
    dropped = augment_graph(stored, 0.5, 0.0, torch.Generator().manual_seed(0))
    assert "rwse" not in dropped and dropped.num_edges < stored.num_edges
    assert not torch.allclose(encoder.positional(dropped), stored.rwse)
    other = GraphTransformer({"fmri": 12}, hidden=16, pe_dim=4).eval()  # another width: computed
    assert other.positional(stored).shape == (36, 4)
