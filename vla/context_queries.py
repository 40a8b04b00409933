"""Learned queries that cross-attend to the backbone context: the read-out the auxiliary heads share (the BEV
decoder's cell queries, the scene-plan probe's one query). Planning reads the context through the trajectory
head; these heads only shape it during imitation (or, with ``bev.feed_head`` / ``bev.head_lookup``, add to it)."""

from __future__ import annotations

import torch
from torch import nn

QUERY_INIT_STD = 0.02  # std of the queries' initial values (project choice, as transformer embeddings)


class ContextQueries(nn.Module):
    """``num_queries`` learned queries of ``width`` that attend to the projected context (one residual
    cross-attention, then a LayerNorm). Subclasses add their output layers."""

    def __init__(self, num_queries: int, context_size: int, width: int, num_heads: int):
        super().__init__()
        self.queries = nn.Parameter(torch.randn(num_queries, width) * QUERY_INIT_STD)
        self.context_proj = nn.Linear(context_size, width)
        self.attention = nn.MultiheadAttention(width, num_heads, batch_first=True)
        self.norm = nn.LayerNorm(width)

    def read_context(self, tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Context (B, T, D) + valid mask (B, T) -> query features (B, num_queries, width); masked tokens are
        not read."""
        context = self.context_proj(tokens.float())
        queries = self.queries[None].expand(context.shape[0], -1, -1)
        attended, _ = self.attention(queries, context, context, key_padding_mask=~mask.bool())
        return self.norm(queries + attended)
