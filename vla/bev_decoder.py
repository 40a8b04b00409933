"""Auxiliary bird's-eye-view decoder: learned cell queries cross-attend to the backbone context and predict one
logit per cell and channel (a TransFuser-style semantic BEV target). It shapes the backbone's features during
imitation learning; with ``bev.feed_head`` its cell features also join the trajectory head's context (one token per
cell, as a TransFuser-style planner reads its BEV features), otherwise planning never calls it."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from vla.backbones.base import Context
from vla.configuration_dipole import BevSettings
from vla.context_queries import ContextQueries

BEV_ATTENTION_HEADS = 4  # heads of the cell queries' cross-attention (project choice)
LOOKUP_OFFSETS_CELLS = ((0.0, 0.0), (1.0, 0.0), (0.0, 1.0), (0.0, -1.0))
"""Where a pose token reads the grid, in cells of the pose's own frame (forward, left): at the pose, one cell ahead,
one to the left, one to the right (project choice: enough to tell the road's edge and direction)."""


class BevDecoder(ContextQueries):
    def __init__(self, settings: BevSettings, context_size: int):
        width = settings.hidden_size
        super().__init__(settings.cells * settings.cells, context_size, width, BEV_ATTENTION_HEADS)
        self.cells = settings.cells
        self.num_channels = len(settings.channels)
        self.out = nn.Sequential(nn.Linear(width, width), nn.GELU(), nn.Linear(width, self.num_channels))
        self.to_context = nn.Linear(width, context_size) if settings.feed_head else None

    def cell_features(self, tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Context (B, T, D) + valid mask (B, T) -> cell features (B, cells * cells, width), row-major."""
        return self.read_context(tokens, mask)

    def logits(self, features: torch.Tensor) -> torch.Tensor:
        """Cell features (B, cells * cells, width) -> logits (B, channels, cells, cells)."""
        return self.out(features).transpose(1, 2).reshape(-1, self.num_channels, self.cells, self.cells)

    def forward(self, tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Context (B, T, D) + valid mask (B, T) -> logits (B, channels, cells, cells)."""
        return self.logits(self.cell_features(tokens, mask))

    def extend_context(self, context: Context) -> Context:
        """The backbone's context followed by one projected token per cell (``bev.feed_head``)."""
        if self.to_context is None:
            raise ValueError("extend_context needs a decoder built with bev.feed_head")
        features = self.cell_features(context.tokens, context.mask)
        cells = self.to_context(features).to(context.tokens.dtype)
        valid = torch.ones(cells.shape[:2], dtype=context.mask.dtype, device=context.mask.device)
        return Context(torch.cat([context.tokens, cells], dim=1), torch.cat([context.mask, valid], dim=1), features)

    def predict(self, context: Context) -> torch.Tensor:
        """Logits (B, channels, cells, cells) of a context: from the cell features it carries (a context that
        :meth:`extend_context` made, whose last tokens are the cells' own), else from its tokens."""
        if context.bev_features is not None:
            return self.logits(context.bev_features)
        return self(context.tokens, context.mask)

    def loss(self, context: Context, target: torch.Tensor) -> torch.Tensor:
        """Class-balanced binary cross-entropy of :meth:`predict` against a 0/1 target (B, channels, cells,
        cells): per channel, the mean over occupied cells and the mean over free cells weigh half each (a sparse
        channel such as objects is not learnt as "always free"), then the mean over channels."""
        logits = self.predict(context)
        if target.shape != logits.shape:
            raise ValueError(f"bev_target: expected shape {tuple(logits.shape)}, got {tuple(target.shape)}")
        occupied = target.float()
        per_cell = F.binary_cross_entropy_with_logits(logits, occupied, reduction="none")
        dims = (0, 2, 3)
        occupied_mean = (per_cell * occupied).sum(dims) / occupied.sum(dims).clamp_min(1.0)
        free_mean = (per_cell * (1 - occupied)).sum(dims) / (1 - occupied).sum(dims).clamp_min(1.0)
        return (0.5 * (occupied_mean + free_mean)).mean()


@dataclass
class BevGrid:
    """What :class:`PoseGridReader` needs besides the pose tokens: each scene's decoded probabilities (Bc, channels,
    cells, cells) and the action normalisation (mean, std broadcastable to (8, 4)) that maps normalised poses to
    metres. Rows follow the context rows of :class:`vla.dit.ContextKV`."""

    probabilities: torch.Tensor
    action_mean: torch.Tensor
    action_std: torch.Tensor

    def select(self, start: int, stop: int) -> "BevGrid":
        return BevGrid(self.probabilities[start:stop], self.action_mean, self.action_std)

    def repeat(self, times: int) -> "BevGrid":
        return BevGrid(self.probabilities.repeat(times, 1, 1, 1), self.action_mean, self.action_std)


class PoseGridReader(nn.Module):
    """Embeds, for each of N = Bc * G pose tokens, the grid's probabilities at the points of
    ``LOOKUP_OFFSETS_CELLS`` around the (noisy) pose, turned by its heading; points off the grid read 0. The
    embedding starts at zero, so a head gains the lookup without changing its output."""

    def __init__(self, settings: BevSettings, hidden_size: int):
        super().__init__()
        self.settings = settings
        self.embed = nn.Linear(len(LOOKUP_OFFSETS_CELLS) * len(settings.channels), hidden_size)
        nn.init.zeros_(self.embed.weight)
        nn.init.zeros_(self.embed.bias)

    def grid_coordinates(self, poses: torch.Tensor) -> torch.Tensor:
        """Features (..., 4) in metres (x, y, cos, sin) -> grid_sample coordinates (..., points, 2) (column from y,
        row from x; -1 and 1 are the grid's outer edges, align_corners=False)."""
        extent = self.settings.cells * self.settings.cell_size_m
        heading = F.normalize(poses[..., 2:4], dim=-1, eps=1e-6)
        left = torch.stack([-heading[..., 1], heading[..., 0]], dim=-1)
        # built here, not held as a buffer: from_pretrained materialises unsaved buffers uninitialised
        offsets = poses.new_tensor(LOOKUP_OFFSETS_CELLS) * self.settings.cell_size_m
        forward, sideways = offsets[:, 0], offsets[:, 1]
        points = (poses[..., None, :2] + forward[:, None] * heading[..., None, :]
                  + sideways[:, None] * left[..., None, :])
        column = 2.0 * points[..., 1] / extent
        row = 2.0 * (points[..., 0] + self.settings.behind_m) / extent - 1.0
        return torch.stack([column, row], dim=-1)

    def forward(self, x: torch.Tensor, grid: BevGrid) -> torch.Tensor:
        """Normalised noisy poses x (N, L, 4) -> (N, L, hidden)."""
        return self.embed(self.read(x, grid).to(self.embed.weight.dtype))

    def read(self, x: torch.Tensor, grid: BevGrid) -> torch.Tensor:
        """Normalised poses x (N, L, 4) -> probabilities (N, L, points * channels), point-major; row n reads the
        grid of scene n // G."""
        n, length = x.shape[:2]
        scenes = grid.probabilities.shape[0]
        if n % scenes:
            raise ValueError(f"{n} pose rows are not a multiple of {scenes} grid rows")
        coords = self.grid_coordinates(x.float() * grid.action_std + grid.action_mean)
        points = coords.shape[-2]
        coords = coords.reshape(scenes, (n // scenes) * length, points, 2)
        read = F.grid_sample(grid.probabilities.float(), coords, mode="bilinear", padding_mode="zeros",
                             align_corners=False)  # (Bc, channels, G * L, points)
        return read.permute(0, 2, 3, 1).reshape(n, length, -1)
