"""Fusion of a modality's domain embeddings into one embedding."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor, nn

from mcsp.models.sequence import _encoder

FUSIONS = ("attention", "mean", "concat")


class DomainFusion(nn.Module):
    """Fuse {domain: (B, hidden)} embeddings into (B, hidden).

    Modes: ``attention`` (a learned summary token and learned domain-type embeddings, one pre-norm
    transformer layer over ``[summary, domain tokens]`` plus a LayerNorm; the summary token's
    output is the fused embedding; works with any subset of domains), ``mean`` (average of the
    domains given) and ``concat`` (the embeddings in the fixed order of ``domains`` concatenated,
    then a linear layer; a missing domain is filled with zeros).

    Args:
        domains: every domain the module may receive, in a fixed order.
        hidden: embedding width (divisible by ``heads`` for attention).
        mode: ``attention``, ``mean`` or ``concat``.
        heads: attention heads (attention mode).
        dropout: dropout (attention mode).
    """

    def __init__(
        self,
        domains: Sequence[str],
        hidden: int = 64,
        mode: str = "attention",
        heads: int = 4,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        if mode not in FUSIONS:
            raise ValueError(f"fusion mode must be one of {FUSIONS}, got {mode!r}")
        self.domains = tuple(domains)
        self.mode = mode
        if mode == "attention":
            self.summary = nn.Parameter(torch.empty(1, 1, hidden))
            self.domain_embedding = nn.Parameter(torch.empty(len(self.domains), hidden))
            nn.init.trunc_normal_(self.summary, std=0.02)
            nn.init.trunc_normal_(self.domain_embedding, std=0.02)
            self.layer = _encoder(hidden, 1, heads, dropout)
        elif mode == "concat":
            self.linear = nn.Linear(len(self.domains) * hidden, hidden)

    def forward(self, h: Mapping[str, Tensor]) -> Tensor:
        """Fuse the embeddings of the domains given (a subset of ``domains``, in any order).

        Args:
            h: {domain: (B, hidden)}.

        Returns:
            (B, hidden).
        """
        unknown = set(h) - set(self.domains)
        if not h or unknown:
            raise ValueError(f"fusion needs embeddings of some of {self.domains}, got {sorted(h)}")
        present = [d for d in self.domains if d in h]
        if self.mode == "mean":
            return torch.stack([h[d] for d in present]).mean(0)
        if self.mode == "concat":
            ref = h[present[0]]
            parts = [h[d] if d in h else torch.zeros_like(ref) for d in self.domains]
            return self.linear(torch.cat(parts, dim=-1))
        index = torch.tensor([self.domains.index(d) for d in present], device=self.summary.device)
        tokens = torch.stack([h[d] for d in present], dim=1) + self.domain_embedding[index]
        summary = self.summary.expand(tokens.size(0), -1, -1).to(tokens.dtype)
        return self.layer(torch.cat([summary, tokens], dim=1))[:, 0]
