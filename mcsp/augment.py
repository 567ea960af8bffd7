"""On-the-fly augmentations that make the second view of the cross-domain contrastive loss.

Each domain has its own augmentation (as in the MCSP paper): edge removal and edge-weight noise
for the spatial graphs, noise, gain, circular jitter and a masked span for the temporal series,
and bin removal and added components for the spectra (in the spirit of TF-C's frequency
augmentation). Temporal and frequency inputs are standardised per row first
(:func:`prepare_modality`), so strengths are in standard deviations.

Every function works batched on the tensors' device, returns new objects (inputs are never
modified) and draws all randomness from an explicit ``torch.Generator`` so runs are reproducible.
A strength of 0 turns its step off (and draws nothing).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor
from torch_geometric.data import Batch

from mcsp.config import schema_defaults

__all__ = [
    "augment_graph",
    "augment_modality",
    "augment_series",
    "augment_spectrum",
    "mask_nodes",
    "prepare_modality",
    "standardise_rows",
    "window_view",
]


@functools.cache
def _augment_defaults() -> dict[str, Any]:
    return schema_defaults("config", "pretrain.augment")


def _draw_device(like: Tensor, generator: torch.Generator | None) -> torch.device:
    return generator.device if generator is not None else like.device


def _rand(
    shape: Sequence[int], like: Tensor, generator: torch.Generator | None, dtype=None
) -> Tensor:
    """Uniform [0, 1) draws on the generator's device, moved to ``like``'s device."""
    dtype = dtype or (like.dtype if like.is_floating_point() else torch.float32)
    out = torch.rand(
        tuple(shape), generator=generator, device=_draw_device(like, generator), dtype=dtype
    )
    return out.to(like.device)


def _randn(
    shape: Sequence[int], like: Tensor, generator: torch.Generator | None, dtype=None
) -> Tensor:
    """Standard normal draws on the generator's device, moved to ``like``'s device."""
    dtype = dtype or (like.dtype if like.is_floating_point() else torch.float32)
    out = torch.randn(
        tuple(shape), generator=generator, device=_draw_device(like, generator), dtype=dtype
    )
    return out.to(like.device)


def _randint(
    low: int, high: int, shape: Sequence[int], like: Tensor, generator: torch.Generator | None
) -> Tensor:
    """Integers in ``[low, high)`` on the generator's device, moved to ``like``'s device."""
    out = torch.randint(
        low, high, tuple(shape), generator=generator, device=_draw_device(like, generator)
    )
    return out.to(like.device)


def standardise_rows(x: Tensor) -> Tensor:
    """Z-score ``x`` along its last axis, row by row.

    Rows whose standard deviation is negligible (relative to the row's largest magnitude, so a
    constant row with float rounding counts as flat) become zeros. Half-precision inputs are
    computed in float32 and cast back.

    Args:
        x: tensor of shape ``(..., L)``.

    Returns:
        A new tensor of the same shape and dtype.
    """
    work = x.float() if x.dtype in (torch.float16, torch.bfloat16) else x
    if work.shape[-1] == 0:
        return x.clone()
    mean = work.mean(dim=-1, keepdim=True)
    centred = work - mean
    sd = centred.square().mean(dim=-1, keepdim=True).sqrt()
    scale = work.abs().amax(dim=-1, keepdim=True)
    tol = 64 * torch.finfo(work.dtype).eps
    flat = sd <= tol * scale
    out = torch.where(flat, torch.zeros_like(centred), centred / torch.where(flat, 1.0, sd))
    return out.to(x.dtype)


def augment_graph(
    batch: Batch,
    edge_drop: float,
    edge_noise: float,
    generator: torch.Generator | None = None,
) -> Batch:
    """Drop undirected edges and jitter the kept weights of a batch of graphs.

    Both directions of an edge share one decision and one noise draw (decided per unordered pair
    ``(min(i, j), max(i, j))`` of global node indices), so symmetric graphs stay symmetric. Only
    ``edge_index`` and ``edge_attr`` change; every other attribute (``x``, ``batch``, …) is a
    copy of the input's. The batch's per-graph edge slices are updated so ``to_data_list`` still
    works.

    Args:
        batch: PyG ``Batch`` (or ``Data``) with ``edge_index`` (2, E) and optional ``edge_attr``
            (E,) or (E, k).
        edge_drop: probability of removing each undirected edge.
        edge_noise: SD of the Gaussian noise added to the kept weights.
        generator: source of randomness.

    Returns:
        A new ``Batch``.
    """
    out = batch.clone()
    edge_index = out.edge_index
    edge_attr = out.get("edge_attr")
    n_edges = edge_index.shape[1]
    if n_edges == 0 or (edge_drop <= 0 and (edge_noise <= 0 or edge_attr is None)):
        return out
    lo = torch.minimum(edge_index[0], edge_index[1])
    hi = torch.maximum(edge_index[0], edge_index[1])
    n_nodes = int(out.num_nodes) if out.num_nodes is not None else int(edge_index.max()) + 1
    _, pair = torch.unique(lo * n_nodes + hi, return_inverse=True)
    n_pairs = int(pair.max()) + 1
    if edge_noise > 0 and edge_attr is not None:
        noise = _randn((n_pairs, *edge_attr.shape[1:]), edge_attr, generator)
        edge_attr = edge_attr + edge_noise * noise[pair]
    if edge_attr is not None:
        out.edge_attr = edge_attr
    if edge_drop > 0:
        _keep_edges(out, (_rand((n_pairs,), edge_index, generator) >= edge_drop)[pair])
    return out


def _keep_edges(graph: Batch, keep: Tensor) -> None:
    """Keep the edges where ``keep`` is true, in place, updating the batch's per-graph edge
    slices so ``to_data_list`` still works."""
    edge_index = graph.edge_index[:, keep]
    slices = getattr(graph, "_slice_dict", None)
    if slices is not None and "edge_index" in slices and graph.get("batch") is not None:
        owner = graph.batch[edge_index[0]]
        counts = torch.bincount(owner, minlength=graph.num_graphs).to(slices["edge_index"])
        bounds = torch.cat([counts.new_zeros(1), counts.cumsum(0)])
        new_slices = dict(slices)
        new_slices["edge_index"] = bounds
        if "edge_attr" in new_slices:
            new_slices["edge_attr"] = bounds.clone()
        graph._slice_dict = new_slices
    if graph.get("edge_attr") is not None:
        graph.edge_attr = graph.edge_attr[keep]
    graph.edge_index = edge_index
    if "rwse" in graph:  # positional encodings of the graph before: the model recomputes them
        del graph.rwse


def augment_series(
    x: Tensor,
    noise: float,
    scale: float,
    shift: float,
    mask: float,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Augment a batch of multichannel time series.

    Steps, in order: a gain ``1 + N(0, scale)`` per row; Gaussian noise of SD ``noise`` per
    point; a circular shift of every row of a sample by one random integer in
    ``[-int(shift * T), int(shift * T)]`` (jitter in time); one contiguous span of
    ``round(mask * T)`` points zeroed at a random start per sample.

    Args:
        x: series of shape ``(B, N, T)``.
        noise: SD of the additive noise.
        scale: SD of the per-row gain around 1.
        shift: largest circular shift as a fraction of ``T``.
        mask: fraction of ``T`` zeroed as one span.
        generator: source of randomness.

    Returns:
        A new tensor of shape ``(B, N, T)``.
    """
    b, n, t = x.shape
    out = x.clone()
    if scale > 0:
        out = out * (1 + scale * _randn((b, n, 1), x, generator))
    if noise > 0:
        out = out + noise * _randn((b, n, t), x, generator)
    max_shift = int(shift * t)
    if max_shift > 0 and t > 1:
        offsets = _randint(-max_shift, max_shift + 1, (b,), x, generator)
        index = (torch.arange(t, device=x.device)[None, :] - offsets[:, None]) % t
        out = torch.gather(out, 2, index[:, None, :].expand(b, n, t))
    length = min(int(round(mask * t)), t)
    if length > 0:
        starts = _randint(0, t - length + 1, (b,), x, generator)
        pos = torch.arange(t, device=x.device)[None, :] - starts[:, None]
        span = (pos >= 0) & (pos < length)
        out = out.masked_fill(span[:, None, :], 0.0)
    return out


def augment_spectrum(
    x: Tensor,
    remove: float,
    add: float,
    add_strength: float,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Augment a batch of spectra by removing and adding frequency components (TF-C style).

    Each bin of each row is removed (set to 0) with probability ``remove``; each bin not removed
    gets ``+ add_strength`` with probability ``add``.

    Args:
        x: spectra of shape ``(B, N, F)``.
        remove: probability of zeroing each bin.
        add: probability of adding a component to each (kept) bin.
        add_strength: size of an added component.
        generator: source of randomness.

    Returns:
        A new tensor of shape ``(B, N, F)``.
    """
    out = x.clone()
    removed = None
    if remove > 0:
        removed = _rand(x.shape, x, generator) < remove
    if add > 0 and add_strength != 0:
        added = _rand(x.shape, x, generator) < add
        if removed is not None:
            added = added & ~removed
        out = out + add_strength * added.to(out.dtype)
    if removed is not None:
        out = out.masked_fill(removed, 0.0)
    return out


def augment_modality(
    data: Mapping[str, Any],
    settings: Mapping[str, Any],
    generator: torch.Generator | None = None,
) -> dict[str, Any]:
    """Augment every domain of one modality's batch.

    Args:
        data: ``{spatial, temporal, frequency, [mask], [spatial_window]}`` as in
            :func:`mcsp.store.collate_pairs` (any domain may be None or absent).
        settings: the ``pretrain.augment`` block; missing keys take the schema's defaults
            (``window_view``: :func:`window_view` before the graph augmentation).
        generator: source of randomness (domains are drawn in the order spatial, temporal,
            frequency).

    Returns:
        A new dict with the same keys: augmented domains, everything else (``mask``) passed
        through.
    """
    s = {**_augment_defaults(), **settings}
    out = dict(data)
    if data.get("spatial") is not None:
        spatial = window_view(data, s["window_view"], generator)
        out["spatial"] = augment_graph(
            spatial, s["edge_drop"], s["edge_noise"], generator=generator
        )
    if data.get("temporal") is not None:
        out["temporal"] = augment_series(
            data["temporal"],
            s["time_noise"],
            s["time_scale"],
            s["time_shift"],
            s["time_mask"],
            generator=generator,
        )
    if data.get("frequency") is not None:
        out["frequency"] = augment_spectrum(
            data["frequency"],
            s["freq_remove"],
            s["freq_add"],
            s["freq_add_strength"],
            generator=generator,
        )
    return out


def window_view(
    data: Mapping[str, Any], probability: float, generator: torch.Generator | None = None
) -> Batch:
    """The spatial batch with each graph replaced, with ``probability``, by its window's own.

    With ``study.spatial: run`` a sample's graph is its whole run's connectivity and
    ``spatial_window`` its window's (noisier) one: swapping them is an augmentation that keeps
    the subject and changes the estimate. Draws nothing (and returns ``data["spatial"]``) when
    ``probability`` is 0 or there is no ``spatial_window``.
    """
    spatial = data["spatial"]
    windows = data.get("spatial_window")
    if probability <= 0 or windows is None:
        return spatial
    swap = (_rand([spatial.num_graphs], spatial.x, generator) < probability).tolist()
    if not any(swap):
        return spatial
    graphs = [
        w if s else g
        for g, w, s in zip(spatial.to_data_list(), windows.to_data_list(), swap, strict=True)
    ]
    return Batch.from_data_list(graphs)


def mask_nodes(
    graph: Batch, ratio: float, generator: torch.Generator | None = None
) -> tuple[Batch, Tensor]:
    """Hide a random ``ratio`` of the nodes of a batch of connectivity graphs.

    A hidden node loses its connectivity row (its features) and its column in every other node
    of its graph (the same values, as the matrix is symmetric), and its edges: nothing of its
    connectivity is left to copy, so it must be inferred from the rest of the graph.

    Args:
        graph: a PyG ``Batch`` whose node features are connectivity rows (``x``: num_nodes × N,
            column ``j`` = the graph's node ``j``).
        ratio: probability of hiding each node.
        generator: source of randomness.

    Returns:
        ``(masked, hidden)``: a new batch and a (num_nodes,) boolean tensor of the hidden nodes.
    """
    x = graph.x
    hidden = _rand([x.size(0)], x, generator) < ratio
    batch = graph.batch if graph.batch is not None else torch.zeros_like(hidden, dtype=torch.long)
    ptr = torch.cumsum(torch.bincount(batch), 0) - torch.bincount(batch)
    local = torch.arange(x.size(0), device=x.device) - ptr[batch]
    columns = torch.zeros(int(batch.max()) + 1, x.size(1), dtype=torch.bool, device=x.device)
    columns[batch[hidden], local[hidden]] = True
    out = graph.clone()
    out.x = x.masked_fill(columns[batch] | hidden[:, None], 0.0)
    src, dst = graph.edge_index
    _keep_edges(out, ~(hidden[src] | hidden[dst]))
    return out, hidden


def prepare_modality(data: Mapping[str, Any]) -> dict[str, Any]:
    """Standardise one modality's temporal and frequency rows (before augmenting).

    Args:
        data: ``{spatial, temporal, frequency, [mask]}`` (any domain may be None or absent).

    Returns:
        A new dict with ``temporal`` and ``frequency`` z-scored per row
        (:func:`standardise_rows`); everything else (``spatial``, ``mask``) unchanged.
    """
    out = dict(data)
    for key in ("temporal", "frequency"):
        if data.get(key) is not None:
            out[key] = standardise_rows(data[key])
    return out
