"""Auxiliary bird's-eye-view decoder: learned cell queries cross-attend to the backbone context and predict one
logit per cell and channel (a TransFuser-style semantic BEV target). It only shapes the backbone's features during
imitation learning; planning never calls it."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from vla.configuration_dipole import BevSettings

BEV_ATTENTION_HEADS = 4  # heads of the cell queries' cross-attention (project choice)


class BevDecoder(nn.Module):
    def __init__(self, settings: BevSettings, context_size: int):
        super().__init__()
        width = settings.hidden_size
        self.cells = settings.cells
        self.num_channels = len(settings.channels)
        self.queries = nn.Parameter(torch.randn(settings.cells * settings.cells, width) * 0.02)
        self.context_proj = nn.Linear(context_size, width)
        self.attention = nn.MultiheadAttention(width, BEV_ATTENTION_HEADS, batch_first=True)
        self.norm = nn.LayerNorm(width)
        self.out = nn.Sequential(nn.Linear(width, width), nn.GELU(), nn.Linear(width, self.num_channels))

    def forward(self, tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Context (B, T, D) + valid mask (B, T) -> logits (B, channels, cells, cells)."""
        context = self.context_proj(tokens.float())
        queries = self.queries[None].expand(context.shape[0], -1, -1)
        attended, _ = self.attention(queries, context, context, key_padding_mask=~mask.bool())
        logits = self.out(self.norm(queries + attended))
        return logits.transpose(1, 2).reshape(-1, self.num_channels, self.cells, self.cells)

    def loss(self, tokens: torch.Tensor, mask: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Class-balanced binary cross-entropy against a 0/1 target (B, channels, cells, cells): per channel,
        the mean over occupied cells and the mean over free cells weigh half each (a sparse channel such as
        objects is not learnt as "always free"), then the mean over channels."""
        logits = self(tokens, mask)
        if target.shape != logits.shape:
            raise ValueError(f"bev_target: expected shape {tuple(logits.shape)}, got {tuple(target.shape)}")
        occupied = target.float()
        per_cell = F.binary_cross_entropy_with_logits(logits, occupied, reduction="none")
        dims = (0, 2, 3)
        occupied_mean = (per_cell * occupied).sum(dims) / occupied.sum(dims).clamp_min(1.0)
        free_mean = (per_cell * (1 - occupied)).sum(dims) / (1 - occupied).sum(dims).clamp_min(1.0)
        return (0.5 * (occupied_mean + free_mean)).mean()
