"""Temporal- and frequency-domain encoder: a transformer over patch or region tokens."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor, nn

TOKENS = ("patch", "region")


def standardise_rows(x: Tensor, eps: float = 1e-5) -> Tensor:
    """Z-score every row of ``x`` along the last axis (per sample); flat rows become 0.

    A row counts as flat when its standard deviation is below ``eps · (1 + |mean|)``, so rounding
    noise of a constant row (e.g. EEG log power near -11) is not blown up.
    """
    x = x.float()
    mean = x.mean(-1, keepdim=True)
    centred = x - mean
    std = centred.pow(2).mean(-1, keepdim=True).sqrt()
    flat = std <= eps * (1.0 + mean.abs())
    return torch.where(flat, torch.zeros_like(centred), centred / torch.where(flat, 1.0, std))


class SequenceTransformer(nn.Module):
    """Transformer encoder over the (N, L) series of one domain of one or more modalities.

    Tokens: ``patch`` cuts the last axis into ``P = min(patches, L)`` pieces of ``L // P`` values
    (the remainder is dropped) and a token is one piece across all N rows (N · piece values);
    ``region`` makes one token per row (its L values). Rows are z-scored per sample first. A
    per-modality linear layer and learned positional embedding make the tokens; a learned CLS
    token is prepended and its pre-norm transformer output, after a final LayerNorm, is the
    embedding.

    Args:
        shapes: (N, L) per modality.
        hidden: embedding width (divisible by ``heads``).
        layers: transformer encoder layers.
        heads: attention heads.
        dropout: dropout inside the encoder.
        tokens: ``patch`` or ``region``.
        patches: number of patches for patch tokens (at most L per modality).
        share: one encoder (and CLS token) for all modalities; only token embeddings and positional
            embeddings are per modality. False = separate encoders per modality.
    """

    def __init__(
        self,
        shapes: Mapping[str, Sequence[int]],
        hidden: int = 64,
        layers: int = 2,
        heads: int = 4,
        dropout: float = 0.1,
        tokens: str = "patch",
        patches: int = 10,
        share: bool = True,
    ) -> None:
        super().__init__()
        if tokens not in TOKENS:
            raise ValueError(f"tokens must be one of {TOKENS}, got {tokens!r}")
        if hidden % heads:
            raise ValueError(f"hidden ({hidden}) must be divisible by heads ({heads})")
        self.shapes = {m: (int(s[0]), int(s[1])) for m, s in shapes.items()}
        self.tokens = tokens
        self.patches = {m: min(patches, length) for m, (_, length) in self.shapes.items()}
        self.share = share
        embed, position = {}, {}
        for m, (n, length) in self.shapes.items():
            if tokens == "patch":
                count = min(patches, length)
                width = n * (length // count)
            else:
                count, width = n, length
            embed[m] = nn.Linear(width, hidden)
            position[m] = nn.Parameter(torch.empty(1, count, hidden))
        self.embed = nn.ModuleDict(embed)
        self.position = nn.ParameterDict(position)
        cores = ["shared"] if share else list(self.shapes)
        self.cls = nn.ParameterDict({c: nn.Parameter(torch.empty(1, 1, hidden)) for c in cores})
        self.encoders = nn.ModuleDict({c: _encoder(hidden, layers, heads, dropout) for c in cores})
        for p in [*self.position.values(), *self.cls.values()]:
            nn.init.trunc_normal_(p, std=0.02)

    def tokenise(self, x: Tensor, modality: str) -> Tensor:
        """(B, N, L) → (B, tokens, token width) per the tokenisation."""
        if self.tokens == "region":
            return x
        patches = self.patches[modality]
        piece = x.size(-1) // patches
        x = x[..., : piece * patches].unflatten(-1, (patches, piece))
        return x.transpose(1, 2).flatten(2)

    def forward(self, x: Tensor, modality: str) -> Tensor:
        """Embed a batch of series.

        Args:
            x: (B, N, L) float series of ``modality`` (any scale: rows are standardised here).
            modality: key of ``shapes``.

        Returns:
            (B, hidden) CLS embeddings.
        """
        if modality not in self.shapes:
            raise ValueError(
                f"no sequence encoder for modality {modality!r}: have {list(self.shapes)}"
            )
        if tuple(x.shape[1:]) != self.shapes[modality]:
            raise ValueError(
                f"{modality} input has shape {tuple(x.shape[1:])} per sample; the model was built "
                f"for {self.shapes[modality]}"
            )
        core = "shared" if self.share else modality
        tokens = self.embed[modality](self.tokenise(standardise_rows(x), modality))
        tokens = tokens + self.position[modality]
        cls = self.cls[core].expand(x.size(0), -1, -1).to(tokens.dtype)
        return self.encoders[core](torch.cat([cls, tokens], dim=1))[:, 0]


def _encoder(hidden: int, layers: int, heads: int, dropout: float) -> nn.TransformerEncoder:
    """Pre-norm transformer encoder (feed-forward 2× width, GELU) with a final LayerNorm."""
    layer = nn.TransformerEncoderLayer(
        hidden,
        heads,
        dim_feedforward=2 * hidden,
        dropout=dropout,
        activation="gelu",
        batch_first=True,
        norm_first=True,
    )
    return nn.TransformerEncoder(
        layer, layers, norm=nn.LayerNorm(hidden), enable_nested_tensor=False
    )
