"""A store's samples held as tensors on the training device, batched there.

``PairDataset`` reads each sample from HDF5, sparsifies its connectivity in NumPy and builds a PyG
``Data`` in a loader process; on a GPU that Python work per sample, not the model, bounds a
pretraining step. :class:`ResidentPairs` reads the samples a dataset uses once, keeps them on the
device, sparsifies every connectivity matrix once (:func:`sparsify_batch`, the same edges as
:func:`mcsp.domains.sparsify`) and builds each batch with a few indexing operations on the device.
Its batches equal :func:`mcsp.store.collate_pairs` of the same items, edge order included, so a
step computes the same losses from either.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch_geometric.data import Batch

from mcsp.exceptions import ConfigError
from mcsp.store import MODALITIES, PairDataset

__all__ = ["ResidentPairs", "resident_bytes", "sparsify_batch"]

READ_CHUNK = 256  # samples read from HDF5 (and sparsified) at a time


def sparsify_batch(matrices: Tensor, rule: str, value: float) -> Tensor:
    """Which upper-triangle edges :func:`mcsp.domains.sparsify` keeps, for many matrices at once.

    Args:
        matrices: (B, N, N) symmetric connectivity matrices (the diagonal is ignored).
        rule: ``proportional``, ``threshold``, ``topk`` or ``none`` (as in ``sparsify``).
        value: the rule's fraction, threshold or k.

    Returns:
        (B, N(N-1)/2) boolean over the upper-triangle pairs in ``torch.triu_indices`` order (row
        by row, as ``numpy.triu_indices``), ties broken as ``sparsify`` breaks them.
    """
    b, n, _ = matrices.shape
    iu, ju = torch.triu_indices(n, n, 1, device=matrices.device)
    weights = matrices[:, iu, ju].abs()
    m = weights.size(1)
    if rule == "none":
        return torch.ones(b, m, dtype=torch.bool, device=matrices.device)
    if rule == "threshold":
        return weights >= value
    if rule == "proportional":
        if not 0 <= value <= 1:
            raise ConfigError(f"study.sparsify.value must be a fraction in [0, 1], got {value}.")
        n_keep = int(round(value * m))
        if n_keep == 0:
            return torch.zeros(b, m, dtype=torch.bool, device=matrices.device)
        cut = torch.kthvalue(weights, m - n_keep + 1, dim=1).values[:, None]
        keep = weights > cut
        ties = weights == cut
        need = n_keep - keep.sum(1, keepdim=True)
        return keep | (ties & (ties.cumsum(1) <= need))
    if rule == "topk":
        k = min(int(value), n - 1)
        chosen = torch.zeros(b, n, n, dtype=torch.bool, device=matrices.device)
        if k > 0:
            strength = matrices.abs().double()
            strength.diagonal(dim1=1, dim2=2).fill_(-torch.inf)
            top = torch.sort(-strength, dim=2, stable=True).indices[:, :, :k]
            chosen.scatter_(2, top, True)
        chosen = chosen | chosen.transpose(1, 2)
        return chosen[:, iu, ju]
    raise ConfigError(
        f"study.sparsify.rule {rule!r} is unknown: use proportional, threshold, topk or none."
    )


def _load_rows(dataset: Any, rows: np.ndarray, device: torch.device) -> Tensor:
    """``dataset[rows]`` of an HDF5 dataset for sorted unique ``rows``, as a tensor on ``device``.

    Read in contiguous blocks of rows (h5py's fancy indexing is slow for thousands of rows) and
    moved block by block, so host memory holds one block at a time.
    """
    out = torch.empty((len(rows), *dataset.shape[1:]), dtype=torch.float32, device=device)
    for start in range(0, len(rows), READ_CHUNK):
        part = rows[start : start + READ_CHUNK]
        block = dataset[int(part[0]) : int(part[-1]) + 1][part - part[0]]
        out[start : start + len(part)] = torch.from_numpy(block.astype(np.float32, copy=False))
    return out


def resident_bytes(dataset: PairDataset) -> int:
    """Bytes the samples a dataset uses take as tensors (edges not counted)."""
    total = 0
    for modality in MODALITIES:
        used = len(dataset.distinct(modality)[0])
        for key, shape in dataset.meta["shapes"].items():
            m, domain = key.split("/")
            if m == modality and (domain != "spatial_window" or dataset.window_views):
                total += used * int(np.prod(shape)) * 4
    return total


class _Graphs:
    """One kind of connectivity graph (``spatial`` or ``spatial_window``) of one modality's
    resident samples: the matrices and their kept upper-triangle edges (CSR by sample)."""

    def __init__(self, matrices: Tensor, rule: str, value: float) -> None:
        self.matrices = matrices
        n = matrices.size(1)
        self.nodes = n
        self.iu, self.ju = torch.triu_indices(n, n, 1, device=matrices.device)
        pairs, counts = [], []
        for start in range(0, matrices.size(0), READ_CHUNK):
            keep = sparsify_batch(matrices[start : start + READ_CHUNK], rule, value)
            counts.append(keep.sum(1).cpu().numpy())
            pairs.append(keep.nonzero()[:, 1])
        self.counts = np.concatenate(counts) if counts else np.zeros(0, dtype=np.int64)
        self.offsets = np.concatenate([[0], np.cumsum(self.counts)])
        self.pairs = torch.cat(pairs) if pairs else torch.zeros(0, dtype=torch.long)

    def batch(self, local: np.ndarray) -> Batch:
        """The graphs of samples ``local`` as ``Batch.from_data_list`` would build them."""
        device = self.matrices.device
        b, n = len(local), self.nodes
        index = torch.as_tensor(local, device=device)
        counts = self.counts[local]
        total = int(counts.sum())
        counts_t = torch.as_tensor(counts, device=device)
        starts = torch.as_tensor(self.offsets[local], device=device)
        before = torch.as_tensor(np.cumsum(counts) - counts, device=device)
        owner = torch.repeat_interleave(torch.arange(b, device=device), counts_t, output_size=total)
        rank = torch.arange(total, device=device) - before[owner]
        pair = self.pairs[starts[owner] + rank]
        i, j = self.iu[pair], self.ju[pair]
        matrices = self.matrices[index]
        # per graph: its kept pairs (i, j) in order, then the same pairs reversed (j, i)
        forward = 2 * before[owner] + rank
        backward = forward + counts_t[owner]
        src, dst = owner * n + i, owner * n + j
        edge_index = torch.empty(2, 2 * total, dtype=torch.long, device=device)
        edge_index[0, forward], edge_index[1, forward] = src, dst
        edge_index[0, backward], edge_index[1, backward] = dst, src
        edge_attr = torch.empty(2 * total, dtype=matrices.dtype, device=device)
        edge_attr[forward] = matrices[owner, i, j]
        edge_attr[backward] = matrices[owner, j, i]
        graph = Batch(
            x=matrices.reshape(b * n, n),
            edge_index=edge_index,
            edge_attr=edge_attr,
            batch=torch.arange(b, device=device).repeat_interleave(n),
            ptr=torch.arange(b + 1, device=device) * n,
        )
        edge_ptr = torch.as_tensor(np.concatenate([[0], np.cumsum(2 * counts)]))
        graph._num_graphs = b
        graph._slice_dict = {
            "x": torch.arange(b + 1) * n,
            "edge_index": edge_ptr,
            "edge_attr": edge_ptr.clone(),
        }
        graph._inc_dict = {
            "x": torch.zeros(b, dtype=torch.long),
            "edge_index": torch.arange(b) * n,
            "edge_attr": torch.zeros(b, dtype=torch.long),
        }
        return graph


class ResidentPairs:
    """The pairs of a :class:`~mcsp.store.PairDataset` with their samples on ``device``.

    Reads every sample the dataset's pairs use once (each modality's spatial, temporal and
    frequency tensors, and the window graphs when the dataset reads ``window_views``). The
    connectivity graphs are sparsified once, by the store's rule. :meth:`batch` returns what
    ``collate_pairs`` returns for the same items, with the tensors already on ``device``.

    Args:
        dataset: the pairs (any subset of a store).
        device: where the samples are kept and the batches built.
    """

    def __init__(self, dataset: PairDataset, device: torch.device | str) -> None:
        self.device = torch.device(device)
        rule = dataset.meta["study"]["sparsify"]
        h5 = dataset._file()
        self.local: dict[str, np.ndarray] = {}
        self.tensors: dict[str, dict[str, Any]] = {}
        for modality in MODALITIES:
            # each distinct sample once, in store order, and each pair's position among them
            samples, self.local[modality] = dataset.distinct(modality)
            used = samples.rows[modality]
            if not len(used):
                continue
            kinds = ["spatial", "temporal", "frequency"]
            if dataset.window_views and f"{modality}/spatial_window" in h5:
                kinds.append("spatial_window")
            tensors: dict[str, Any] = {}
            for kind in kinds:
                data = _load_rows(h5[f"{modality}/{kind}"], used, self.device)
                tensors[kind] = (
                    _Graphs(data, rule["rule"], rule["value"]) if "spatial" in kind else data
                )
            self.tensors[modality] = tensors
        self.pair_ids = dataset.pairs["pair_id"].tolist()

    def __len__(self) -> int:
        return len(self.pair_ids)

    def subset(self, keep: np.ndarray) -> ResidentPairs:
        """The pairs where the boolean ``keep`` is true, sharing these tensors (no copy)."""
        index = np.flatnonzero(np.asarray(keep, dtype=bool))
        out = ResidentPairs.__new__(ResidentPairs)
        out.__dict__.update(self.__dict__)
        out.local = {m: rows[index] for m, rows in self.local.items()}
        out.pair_ids = [self.pair_ids[i] for i in index]
        return out

    def batch(self, items: Sequence[int]) -> dict[str, Any]:
        """The batch of the pairs at positions ``items`` (as ``collate_pairs`` of those items)."""
        items = np.asarray(items, dtype=np.int64)
        out: dict[str, Any] = {"pair_id": [self.pair_ids[i] for i in items]}
        for modality in MODALITIES:
            local = self.local[modality][items]
            present = local >= 0
            entry: dict[str, Any] = {"mask": torch.from_numpy(present)}
            if present.any():
                tensors = self.tensors[modality]
                rows = local[present]
                index = torch.as_tensor(rows, device=self.device)
                entry["spatial"] = tensors["spatial"].batch(rows)
                entry["temporal"] = tensors["temporal"][index]
                entry["frequency"] = tensors["frequency"][index]
                if "spatial_window" in tensors:
                    entry["spatial_window"] = tensors["spatial_window"].batch(rows)
            else:
                entry.update(spatial=None, temporal=None, frequency=None)
            out[modality] = entry
        return out

    def batches(self, schedule: Sequence[Sequence[int]]) -> Iterator[dict[str, Any]]:
        """The batches of a schedule of item lists, in order (a loader's replacement)."""
        for items in schedule:
            yield self.batch(items)
