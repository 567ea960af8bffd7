"""Spatial-domain encoder: a graph transformer over connectivity graphs, with positional encodings.

Node features are the rows of the connectivity matrix; a per-modality linear layer (the
modality-aware projector) maps them, concatenated with a positional encoding computed on the
(possibly augmented) graph, to the hidden width. ``TransformerConv`` blocks with residual
connections, LayerNorm and a feed-forward layer follow, then a global pooling readout.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
from torch import Tensor, nn
from torch_geometric.data import Batch, Data
from torch_geometric.nn import TransformerConv, global_max_pool, global_mean_pool
from torch_geometric.utils import to_dense_adj

POSITIONAL_ENCODINGS = ("random_walk", "laplacian", "none")
POOLINGS = ("mean", "max", "mean_max", "flatten")
ATTENTIONS = ("auto", "dense", "sparse")
DENSE_MAX_NODES = 400
# On CPU message passing costs grow with the edges and dense attention's do not: one thread, 32
# graphs of 300 nodes, forward + backward of the attention: even at ~7% of the node pairs
# (sparse 0.56 s, dense 0.38 s at 10%, 1.5 s vs 0.44 s at 30%; benchmarks/bench_attention.py)
DENSE_MIN_DENSITY_CPU = 0.07


def _dense_adjacency(edge_index: Tensor, batch: Tensor, num_graphs: int) -> tuple[Tensor, Tensor]:
    """Unweighted, undirected dense adjacency without self-loops per graph, and the node mask.

    Returns:
        ``(adj, mask)``: (B, Nmax, Nmax) float32 with 0/1 entries (graphs zero-padded to the largest
        one) and (B, Nmax) bool, True where a position holds a real node.
    """
    adj = _undirected(to_dense_adj(edge_index, batch, batch_size=num_graphs) != 0)
    counts = torch.bincount(batch, minlength=num_graphs)
    mask = torch.arange(adj.size(1), device=adj.device) < counts[:, None]
    return adj, mask


def _undirected(edges: Tensor) -> Tensor:
    """(B, N, N) float 0/1 adjacency from boolean ``edges``: symmetrised, self-loops removed."""
    adj = (edges | edges.transpose(1, 2)).float()
    adj.diagonal(dim1=1, dim2=2).zero_()
    return adj


def random_walk_pe(edge_index: Tensor, batch: Tensor, num_graphs: int, steps: int) -> Tensor:
    """Random-walk structural encoding (RWSE): return probabilities after 1..``steps`` steps.

    The walk runs on the unweighted, undirected graph (edge weights and self-loops are ignored):
    ``P = D⁻¹A`` and node i gets ``[(P^k)_ii for k in 1..steps]``; isolated nodes get zeros.

    Args:
        edge_index: (2, E) edges of all graphs of the batch.
        batch: (num_nodes,) graph index of each node (sorted, as in a PyG ``Batch``).
        num_graphs: number of graphs B.
        steps: number of walk lengths.

    Returns:
        (num_nodes, steps) float32.
    """
    adj, mask = _dense_adjacency(edge_index, batch, num_graphs)
    return _random_walk_diagonals(adj, steps)[mask]


def graph_rwse(graph: Data, steps: int) -> Tensor:
    """The random-walk encoding (:func:`random_walk_pe`) of one graph, (num_nodes, steps), to
    store on it as ``rwse``: the encoder uses a stored one of its ``pe_dim`` instead of computing
    it again each time the graph is batched. An augmentation that removes edges drops it."""
    batch = torch.zeros(graph.num_nodes, dtype=torch.long, device=graph.edge_index.device)
    return random_walk_pe(graph.edge_index, batch, 1, steps)


def _random_walk_diagonals(adj: Tensor, steps: int) -> Tensor:
    """(B, N, steps) ``diag(P^k)`` for k = 1..steps of the 0/1 adjacencies ``adj`` (B, N, N).

    Vectorised over the batch; ``P^(a+b)`` diagonals come from products of powers up to
    ``ceil(steps / 2)``, so only about half as many matrix products are needed.
    """
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
    return torch.stack(columns, dim=-1)


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


class DenseGraphs:
    """A batch of B graphs of N nodes each (nodes b·N … b·N + N − 1 form graph b), as dense
    (B, N, N) tensors indexed [graph, target, source]: edge weights (0 off the edges), an additive
    mask (0 on the edges, −inf elsewhere; 0 on the rows of nodes without in-edges, which
    ``has_in`` marks False) and the 0/1 adjacency for positional encodings.
    """

    def __init__(self, edge_index: Tensor, edge_weight: Tensor, num_graphs: int, nodes: int):
        src, dst = edge_index
        shape = (num_graphs, nodes, nodes)
        graph, target, source = dst // nodes, dst % nodes, src % nodes
        self.shape = shape
        self.edges = (graph, target, source)
        flat = (graph * nodes + target) * nodes + source
        exists = torch.zeros(num_graphs * nodes * nodes, dtype=torch.bool, device=src.device)
        self.exists = exists.index_fill(0, flat, True).view(shape)
        weight = edge_weight.new_zeros(num_graphs * nodes * nodes)
        self.weight = weight.index_put((flat,), edge_weight.view(-1)).view(shape)
        self.has_in = self.exists.any(-1)
        blocked = ~self.exists & self.has_in[..., None]
        self.mask = torch.zeros(shape, device=src.device).masked_fill(blocked, float("-inf"))

    def edge_dropout(self, heads: int, p: float) -> Tensor:
        """(B, heads, N, N) dropout factors (0 or 1 / (1 − p)) drawn per edge and head in
        ``edge_index`` order, as PyG's message passing draws them, laid out densely."""
        graph, target, source = self.edges
        keep = nn.functional.dropout(
            torch.ones(graph.numel(), heads, device=graph.device), p=p, training=True
        )
        b, n, _ = self.shape
        head = torch.arange(heads, device=graph.device)
        flat = ((graph[:, None] * heads + head) * n + target[:, None]) * n + source[:, None]
        layout = torch.zeros(b * heads * n * n, device=graph.device)
        return layout.index_put((flat.view(-1),), keep.view(-1)).view(b, heads, n, n)

    def adjacency(self) -> Tensor:
        """(B, N, N) unweighted, undirected 0/1 adjacency without self-loops."""
        return _undirected(self.exists)


def dense_transformer_conv(conv: TransformerConv, x: Tensor, dense: DenseGraphs) -> Tensor:
    """PyG ``TransformerConv`` (heads concatenated, root weight, no beta, 1-d edge features)
    computed with batched dense attention over graphs of equal size, with the same parameters.

    The result equals ``conv(x, edge_index, edge_attr)`` up to float rounding, in training too:
    the attention dropout is drawn per edge in the order PyG draws it. Cost does not grow with the
    number of edges (memory: B·heads·N² floats per tensor), so it beats message passing on all but
    very sparse graphs, and on GPUs.

    Shapes: ``x`` (B·N, F) → (B·N, heads·C).
    """
    b, n, _ = dense.shape
    h, c = conv.heads, conv.out_channels
    query = (conv.lin_query(x) / math.sqrt(c)).view(b, n, h, c).transpose(1, 2)
    key = conv.lin_key(x).view(b, n, h, c).transpose(1, 2)
    value = conv.lin_value(x).view(b, n, h, c).transpose(1, 2)
    edge = conv.lin_edge.weight.view(h, c)  # a scalar edge weight e adds e · edge to key, value
    weight = dense.weight[:, None]
    # q·(k + e·edge) = q·k + e·(q·edge); padding rows (no in-edge) are finite and zeroed below
    scores = torch.matmul(query, key.transpose(-1, -2))
    scores = (
        scores.addcmul(weight, (query * edge[:, None]).sum(-1, keepdim=True)) + dense.mask[:, None]
    )
    alpha = torch.softmax(scores, dim=-1)
    if conv.training and conv.dropout > 0:
        alpha = alpha * dense.edge_dropout(h, conv.dropout)
    out = torch.matmul(alpha, value) + (alpha * weight).sum(-1, keepdim=True) * edge[:, None]
    out = out * dense.has_in[:, None, :, None]
    return out.transpose(1, 2).reshape(b * n, h * c) + conv.lin_skip(x)


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

    def forward(
        self, x: Tensor, edge_index: Tensor, edge_attr: Tensor, dense: DenseGraphs | None = None
    ) -> Tensor:
        if dense is None:
            attended = self.conv(x, edge_index, edge_attr)
        else:
            attended = dense_transformer_conv(self.conv, x, dense)
        x = self.norm1(x + self.drop(attended))
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
        attention: ``sparse`` (PyG message passing over the edges), ``dense`` (batched (B, N, N)
            attention, :func:`dense_transformer_conv`, same parameters and result) or ``auto``
            (dense for graphs of up to 400 nodes that all have the modality's N nodes, on CPU only
            when at least 7% of the node pairs are edges).
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
        attention: str = "auto",
    ) -> None:
        super().__init__()
        if attention not in ATTENTIONS:
            raise ValueError(f"attention must be one of {ATTENTIONS}")
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
        self.attention = attention
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

    def dense_graphs(self, graph: Data, modality: str, edge_attr: Tensor) -> DenseGraphs | None:
        """``graph`` as :class:`DenseGraphs` when the attention runs dense, else None."""
        nodes = self.nodes[modality]
        _, num_graphs = _batch_vector(graph)
        if self.attention == "sparse" or graph.num_nodes != num_graphs * nodes:
            if self.attention == "dense":
                raise ValueError(
                    f"attention dense needs all {nodes} nodes in each {modality} graph; got "
                    f"{graph.num_nodes} nodes in {num_graphs} graphs"
                )
            return None
        if self.attention == "auto":
            density = graph.edge_index.size(1) / max(1, num_graphs * nodes * (nodes - 1))
            cpu = graph.x.device.type == "cpu"
            if nodes > DENSE_MAX_NODES or (cpu and density < DENSE_MIN_DENSITY_CPU):
                return None
        return DenseGraphs(graph.edge_index, edge_attr, num_graphs, nodes)

    def positional(self, graph: Data, dense: DenseGraphs | None = None) -> Tensor | None:
        """Positional encoding of every node of ``graph`` (float32, no gradient), or None;
        ``dense`` (the same graph as :class:`DenseGraphs`) saves building its adjacency again."""
        if self.positional_encoding == "none":
            return None
        stored = graph.get("rwse") if self.positional_encoding == "random_walk" else None
        if stored is not None and stored.size(-1) == self.pe_dim:
            return stored.float()  # computed once per graph by the dataset (graph_rwse)
        batch, num_graphs = _batch_vector(graph)
        with torch.no_grad(), torch.autocast(graph.x.device.type, enabled=False):
            if self.positional_encoding == "random_walk":
                if dense is not None:
                    pe = _random_walk_diagonals(dense.adjacency(), self.pe_dim)
                    return pe.reshape(-1, self.pe_dim)
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
        edge_attr = graph.edge_attr
        if edge_attr is None:
            edge_attr = x.new_ones(graph.edge_index.size(1))
        edge_attr = edge_attr.float().view(-1, 1)
        dense = self.dense_graphs(graph, modality, edge_attr)
        pe = self.positional(graph, dense)
        if pe is not None:
            x = torch.cat([x, pe], dim=-1)
        core = "shared" if self.share else modality
        h = self.projectors[modality](x)
        for block in self.blocks[core]:
            h = block(h, graph.edge_index, edge_attr, dense)
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
