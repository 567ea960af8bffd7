"""Spatial-domain encoder: a graph transformer over connectivity graphs, with positional encodings.

Node features are the rows of the connectivity matrix; a per-modality linear layer (the
modality-aware projector) maps them, concatenated with a positional encoding computed on the
(possibly augmented) graph, to the hidden width. ``TransformerConv`` blocks with residual
connections, LayerNorm and a feed-forward layer follow, then a global pooling readout.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn
from torch_geometric.data import Batch, Data
from torch_geometric.nn import TransformerConv, global_max_pool, global_mean_pool
from torch_geometric.utils import to_dense_adj

POSITIONAL_ENCODINGS = ("random_walk", "laplacian", "none")
POOLINGS = ("mean", "max", "mean_max", "flatten")


def _dense_adjacency(edge_index: Tensor, batch: Tensor, num_graphs: int) -> tuple[Tensor, Tensor]:
    """Unweighted, undirected dense adjacency without self-loops per graph, and the node mask.

    Returns:
        ``(adj, mask)``: (B, Nmax, Nmax) float32 with 0/1 entries (graphs zero-padded to the largest
        one) and (B, Nmax) bool, True where a position holds a real node.
    """
    adj = to_dense_adj(edge_index, batch, batch_size=num_graphs).float()
    adj = ((adj + adj.transpose(1, 2)) > 0).float()
    adj.diagonal(dim1=1, dim2=2).zero_()
    counts = torch.bincount(batch, minlength=num_graphs)
    mask = torch.arange(adj.size(1), device=adj.device) < counts[:, None]
    return adj, mask


def random_walk_pe(edge_index: Tensor, batch: Tensor, num_graphs: int, steps: int) -> Tensor:
    """Random-walk structural encoding (RWSE): return probabilities after 1..``steps`` steps.

    The walk runs on the unweighted, undirected graph (edge weights and self-loops are ignored):
    ``P = D⁻¹A`` and node i gets ``[(P^k)_ii for k in 1..steps]``; isolated nodes get zeros.
    Vectorised over the batch on dense adjacencies; ``P^(a+b)`` diagonals come from products of
    powers up to ``ceil(steps / 2)``, so only about half as many matrix products are needed.

    Args:
        edge_index: (2, E) edges of all graphs of the batch.
        batch: (num_nodes,) graph index of each node (sorted, as in a PyG ``Batch``).
        num_graphs: number of graphs B.
        steps: number of walk lengths.

    Returns:
        (num_nodes, steps) float32.
    """
    adj, mask = _dense_adjacency(edge_index, batch, num_graphs)
    walk = adj / adj.sum(-1, keepdim=True).clamp_min(1.0)
    powers = [walk]
    while len(powers) < (steps + 1) // 2:
        powers.append(powers[-1] @ walk)
    columns = []
    for k in range(1, steps + 1):
        a, b = (k + 1) // 2, k // 2
        if b == 0:
            columns.append(walk.diagonal(dim1=1, dim2=2))
        else:  # diag(P^a P^b)_i = sum_j (P^a)_ij (P^b)_ji
            columns.append((powers[a - 1] * powers[b - 1].transpose(1, 2)).sum(-1))
    return torch.stack(columns, dim=-1)[mask]


def laplacian_pe(
    edge_index: Tensor, batch: Tensor, num_graphs: int, k: int, random_sign: bool = False
) -> Tensor:
    """Laplacian eigenvector encoding: the first ``k`` non-trivial eigenvectors of each graph.

    Uses the symmetric normalised Laplacian ``I - D^-1/2 A D^-1/2`` of the unweighted, undirected
    graph (batched ``torch.linalg.eigh`` on dense matrices, float32). The eigenvector of the
    smallest eigenvalue is skipped; graphs with fewer than ``k + 1`` nodes get zero columns.

    Args:
        edge_index: (2, E) edges of all graphs of the batch.
        batch: (num_nodes,) graph index of each node (sorted).
        num_graphs: number of graphs B.
        k: number of eigenvectors.
        random_sign: flip the sign of each eigenvector of each graph at random (training).

    Returns:
        (num_nodes, k) float32.
    """
    adj, mask = _dense_adjacency(edge_index, batch, num_graphs)
    deg = adj.sum(-1)
    inv_sqrt = torch.where(deg > 0, deg.clamp_min(1.0).rsqrt(), torch.zeros_like(deg))
    lap = -inv_sqrt[:, :, None] * adj * inv_sqrt[:, None, :]
    # Padding positions get eigenvalue 3 (> 2, the largest possible), so their eigenvectors,
    # which vanish on real nodes, sort after every real one.
    lap = lap + torch.diag_embed(1.0 + 2.0 * (~mask).float())
    _, vectors = torch.linalg.eigh(lap)
    vectors = vectors[:, :, 1 : k + 1]
    if vectors.size(-1) < k:
        vectors = nn.functional.pad(vectors, (0, k - vectors.size(-1)))
    counts = mask.sum(-1, keepdim=True)
    real = torch.arange(1, k + 1, device=adj.device) < counts  # (B, k): column exists in graph
    vectors = vectors * real[:, None, :]
    if random_sign:
        sign = torch.randint(0, 2, (num_graphs, 1, k), device=adj.device) * 2.0 - 1.0
        vectors = vectors * sign
    return vectors[mask]


class _GraphBlock(nn.Module):
    """TransformerConv, residual, LayerNorm; feed-forward (2× width, GELU), residual, LayerNorm."""

    def __init__(self, hidden: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.conv = TransformerConv(
            hidden, hidden // heads, heads=heads, edge_dim=1, dropout=dropout
        )
        self.norm1 = nn.LayerNorm(hidden)
        self.ff = nn.Sequential(
            nn.Linear(hidden, 2 * hidden),
            nn.GELU(),
            nn.Dropout(dropout),
            nn.Linear(2 * hidden, hidden),
        )
        self.norm2 = nn.LayerNorm(hidden)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: Tensor, edge_index: Tensor, edge_attr: Tensor) -> Tensor:
        x = self.norm1(x + self.drop(self.conv(x, edge_index, edge_attr)))
        return self.norm2(x + self.drop(self.ff(x)))


class _Readout(nn.Module):
    """Global pooling of node embeddings into one vector per graph."""

    def __init__(self, hidden: int, pooling: str) -> None:
        super().__init__()
        self.pooling = pooling
        self.mix = nn.Linear(2 * hidden, hidden) if pooling == "mean_max" else None

    def forward(self, x: Tensor, batch: Tensor, num_graphs: int) -> Tensor:
        if self.pooling == "mean":
            return global_mean_pool(x, batch, num_graphs)
        if self.pooling == "max":
            return global_max_pool(x, batch, num_graphs)
        pooled = [global_mean_pool(x, batch, num_graphs), global_max_pool(x, batch, num_graphs)]
        return self.mix(torch.cat(pooled, dim=-1))


class GraphTransformer(nn.Module):
    """Graph transformer for the spatial domain of one or more modalities.

    Args:
        nodes: node count N per modality (node features are N-long connectivity rows).
        hidden: embedding width (divisible by ``heads``).
        layers: number of TransformerConv blocks.
        heads: attention heads per block.
        dropout: dropout in attention, feed-forward and residual branches.
        positional_encoding: ``random_walk`` (RWSE), ``laplacian`` or ``none``.
        pe_dim: random-walk steps or Laplacian eigenvectors.
        pooling: ``mean``, ``max`` or ``mean_max`` (both, concatenated, then a linear layer),
            permutation-invariant; or ``flatten``: the N node embeddings in ROI / channel order,
            concatenated, through a linear layer per modality (order-aware: nodes are the same
            regions in every subject; needs every graph to have all N nodes).
        share: one set of blocks and readout for all modalities (only the input projectors differ);
            False = a separate encoder per modality.
    """

    def __init__(
        self,
        nodes: Mapping[str, int],
        hidden: int = 64,
        layers: int = 1,
        heads: int = 4,
        dropout: float = 0.1,
        positional_encoding: str = "random_walk",
        pe_dim: int = 8,
        pooling: str = "flatten",
        share: bool = True,
    ) -> None:
        super().__init__()
        if positional_encoding not in POSITIONAL_ENCODINGS:
            raise ValueError(f"positional_encoding must be one of {POSITIONAL_ENCODINGS}")
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}")
        if hidden % heads:
            raise ValueError(f"hidden ({hidden}) must be divisible by heads ({heads})")
        self.nodes = dict(nodes)
        self.positional_encoding = positional_encoding
        self.pe_dim = 0 if positional_encoding == "none" else pe_dim
        self.share = share
        self.projectors = nn.ModuleDict(
            {m: nn.Linear(n + self.pe_dim, hidden) for m, n in self.nodes.items()}
        )
        cores = ["shared"] if share else list(self.nodes)
        self.blocks = nn.ModuleDict(
            {
                c: nn.ModuleList(_GraphBlock(hidden, heads, dropout) for _ in range(layers))
                for c in cores
            }
        )
        self.pooling = pooling
        if pooling == "flatten":
            self.readouts = nn.ModuleDict(
                {m: nn.Linear(n * hidden, hidden) for m, n in self.nodes.items()}
            )
        else:
            self.readouts = nn.ModuleDict({c: _Readout(hidden, pooling) for c in cores})

    def positional(self, graph: Data) -> Tensor | None:
        """Positional encoding of every node of ``graph`` (float32, no gradient), or None."""
        if self.positional_encoding == "none":
            return None
        batch, num_graphs = _batch_vector(graph)
        with torch.no_grad(), torch.autocast(graph.x.device.type, enabled=False):
            if self.positional_encoding == "random_walk":
                return random_walk_pe(graph.edge_index, batch, num_graphs, self.pe_dim)
            return laplacian_pe(
                graph.edge_index, batch, num_graphs, self.pe_dim, random_sign=self.training
            )

    def forward(self, graph: Data, modality: str) -> Tensor:
        """Embed a batch of graphs of one modality.

        Args:
            graph: a PyG ``Batch`` (or a single ``Data``) with ``x`` (num_nodes, N), ``edge_index``
                and ``edge_attr`` (E,) or (E, 1) edge weights (all ones when missing).
            modality: key of ``nodes``.

        Returns:
            (B, hidden) graph embeddings.
        """
        return self.readout(self.node_embeddings(graph, modality), graph, modality)

    def node_embeddings(self, graph: Data, modality: str) -> Tensor:
        """(num_nodes, hidden) embeddings of every node after the graph transformer blocks."""
        if modality not in self.projectors:
            raise ValueError(
                f"no spatial encoder for modality {modality!r}: have {list(self.nodes)}"
            )
        x = graph.x.float()
        if x.size(-1) != self.nodes[modality]:
            raise ValueError(
                f"{modality} node features have {x.size(-1)} columns; the model was built for "
                f"N = {self.nodes[modality]}"
            )
        pe = self.positional(graph)
        if pe is not None:
            x = torch.cat([x, pe], dim=-1)
        edge_attr = graph.edge_attr
        if edge_attr is None:
            edge_attr = x.new_ones(graph.edge_index.size(1))
        edge_attr = edge_attr.float().view(-1, 1)
        core = "shared" if self.share else modality
        h = self.projectors[modality](x)
        for block in self.blocks[core]:
            h = block(h, graph.edge_index, edge_attr)
        return h

    def readout(self, h: Tensor, graph: Data, modality: str) -> Tensor:
        """(B, hidden) graph embeddings from the node embeddings ``h`` of ``graph``."""
        core = "shared" if self.share else modality
        batch, num_graphs = _batch_vector(graph)
        if self.pooling != "flatten":
            return self.readouts[core](h, batch, num_graphs)
        if h.size(0) != num_graphs * self.nodes[modality]:
            raise ValueError(
                f"pooling flatten needs all {self.nodes[modality]} nodes in each {modality} graph; "
                f"got {h.size(0)} nodes in {num_graphs} graphs"
            )
        return self.readouts[modality](h.reshape(num_graphs, -1))


def _batch_vector(graph: Data) -> tuple[Tensor, int]:
    """The node-to-graph index and the number of graphs (a lone ``Data`` is one graph)."""
    if isinstance(graph, Batch):
        return graph.batch, int(graph.num_graphs)
    if getattr(graph, "batch", None) is not None:
        return graph.batch, int(graph.batch.max()) + 1
    return graph.x.new_zeros(graph.num_nodes, dtype=torch.long), 1
