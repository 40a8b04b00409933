"""DiT denoiser head: eps-prediction over 8 action tokens, conditioned by adaLN-zero and cross-attention.

Block (specs/dipole.md §7): self-attention -> MLP -> cross-attention to the context tokens (key padding
mask) -> cross-MLP, each gated by adaLN-zero (12 modulation chunks). Conditioning vector = timestep
embedding + MLP(proprio). Action tokens = MLP(4 -> 512 -> hidden) + learnable positional embedding
(sinusoidal init).

Efficiency: the cross-attention keys/values of the context do not depend on the noisy actions or on t,
so :meth:`DiTDenoiser.context_kv` computes them once per scene and branch (with that branch's LoRA on the
k/v projections); every denoising step and every sample of the scene reuses them. Query rows are grouped
by scene: ``N = Bc * G`` query rows attend to ``Bc`` context rows, row ``n`` to context row ``n // G``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from vla.bev_decoder import BevGrid
from vla.configuration_dipole import HeadSettings
from vla.errors import VLAInputError
from vla.lora import Rows, apply_linear, apply_linear_branches

TIME_EMBED_SCALE = 1000.0  # continuous t in [0, 1] is embedded as t * 1000, the DiT discrete-step range
MAX_PERIOD = 10000.0  # sinusoidal embedding base (Transformer / DiT)
NORM_EPS = 1e-6  # DiT LayerNorm epsilon
NUM_MODULATION_CHUNKS = 12  # (shift, scale, gate) x 4 sub-layers


def sinusoidal_embedding(positions: torch.Tensor, dim: int) -> torch.Tensor:
    """(N,) -> (N, dim) [cos | sin] features with geometric frequencies."""
    half = dim // 2
    freqs = torch.exp(-math.log(MAX_PERIOD) * torch.arange(half, dtype=torch.float32, device=positions.device) / half)
    args = positions.float()[:, None] * freqs[None]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    if dim % 2:
        emb = torch.cat([emb, torch.zeros_like(emb[:, :1])], dim=-1)
    return emb


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return x * (1 + scale[:, None]) + shift[:, None]


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int, dropout: float):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, rows: Rows = None) -> torch.Tensor:
        x = F.gelu(apply_linear(self.fc1, x, rows), approximate="tanh")
        return self.dropout(apply_linear(self.fc2, self.dropout(x), rows))


class SelfAttention(nn.Module):
    def __init__(self, dim: int, num_heads: int, dropout: float):
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.dropout = dropout

    def forward(self, x: torch.Tensor, rows: Rows = None) -> torch.Tensor:
        n, length, dim = x.shape
        qkv = apply_linear(self.qkv, x, rows).view(n, length, 3, self.num_heads, dim // self.num_heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v, dropout_p=self.dropout if self.training else 0.0)
        return apply_linear(self.proj, out.transpose(1, 2).reshape(n, length, dim), rows)


class CrossAttention(nn.Module):
    def __init__(self, dim: int, num_heads: int, dropout: float):
        super().__init__()
        self.num_heads = num_heads
        self.q = nn.Linear(dim, dim)
        self.k = nn.Linear(dim, dim)
        self.v = nn.Linear(dim, dim)
        self.proj = nn.Linear(dim, dim)
        self.dropout = dropout

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        bc, length, dim = x.shape
        return x.view(bc, length, self.num_heads, dim // self.num_heads).transpose(1, 2)

    def project_kv(self, context: torch.Tensor, rows: Rows) -> tuple[torch.Tensor, torch.Tensor]:
        return self._heads(apply_linear(self.k, context, rows)), self._heads(apply_linear(self.v, context, rows))

    def project_kv_branches(self, context: torch.Tensor,
                            adapters: Sequence[Optional[str]]) -> tuple[torch.Tensor, torch.Tensor]:
        """Keys/values of the same context under several adapters, stacked adapter-major along the batch;
        the base projections run once."""
        k = torch.cat(apply_linear_branches(self.k, context, adapters), dim=0)
        v = torch.cat(apply_linear_branches(self.v, context, adapters), dim=0)
        return self._heads(k), self._heads(v)

    def forward(self, x: torch.Tensor, k: torch.Tensor, v: torch.Tensor, key_mask: torch.Tensor,
                rows: Rows = None) -> torch.Tensor:
        n, length, dim = x.shape
        bc = k.shape[0]
        group = n // bc
        q = apply_linear(self.q, x, rows)
        # fold the G query rows of each scene into one longer query sequence over that scene's context
        q = q.reshape(bc, group * length, self.num_heads, dim // self.num_heads).transpose(1, 2)
        attn_mask = key_mask[:, None, None, :]
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask,
                                             dropout_p=self.dropout if self.training else 0.0)
        out = out.transpose(1, 2).reshape(n, length, dim)
        return apply_linear(self.proj, out, rows)


class DiTBlock(nn.Module):
    def __init__(self, dim: int, num_heads: int, mlp_ratio: float, dropout: float):
        super().__init__()
        mlp_hidden = int(dim * mlp_ratio)
        self.norm1 = nn.LayerNorm(dim, elementwise_affine=False, eps=NORM_EPS)
        self.attn = SelfAttention(dim, num_heads, dropout)
        self.norm2 = nn.LayerNorm(dim, elementwise_affine=False, eps=NORM_EPS)
        self.mlp = Mlp(dim, mlp_hidden, dropout)
        self.norm3 = nn.LayerNorm(dim, elementwise_affine=False, eps=NORM_EPS)
        self.cross_attn = CrossAttention(dim, num_heads, dropout)
        self.norm4 = nn.LayerNorm(dim, elementwise_affine=False, eps=NORM_EPS)
        self.cross_mlp = Mlp(dim, mlp_hidden, dropout)
        self.modulation = nn.Linear(dim, NUM_MODULATION_CHUNKS * dim)
        nn.init.zeros_(self.modulation.weight)  # adaLN-zero: every block starts as the identity
        nn.init.zeros_(self.modulation.bias)

    def forward(self, x: torch.Tensor, cond: torch.Tensor, k: torch.Tensor, v: torch.Tensor, key_mask: torch.Tensor,
                rows: Rows) -> torch.Tensor:
        chunks = self.modulation(F.silu(cond)).chunk(NUM_MODULATION_CHUNKS, dim=-1)
        (sh1, sc1, g1, sh2, sc2, g2, sh3, sc3, g3, sh4, sc4, g4) = chunks
        x = x + g1[:, None] * self.attn(modulate(self.norm1(x), sh1, sc1), rows)
        x = x + g2[:, None] * self.mlp(modulate(self.norm2(x), sh2, sc2), rows)
        x = x + g3[:, None] * self.cross_attn(modulate(self.norm3(x), sh3, sc3), k, v, key_mask, rows)
        x = x + g4[:, None] * self.cross_mlp(modulate(self.norm4(x), sh4, sc4), rows)
        return x


@dataclass
class ContextKV:
    """Per-block cross-attention keys/values of Bc context rows, their key padding mask (True = valid), and the
    BEV grid the pose tokens read (``bev.head_lookup``; None otherwise)."""

    keys: list
    values: list
    mask: torch.Tensor  # (Bc, T) bool
    grid: Optional[BevGrid] = None

    @property
    def num_rows(self) -> int:
        return self.mask.shape[0]

    def select(self, start: int, stop: int) -> "ContextKV":
        """Context rows [start, stop) (e.g. one branch of a two-branch cache)."""
        return ContextKV([k[start:stop] for k in self.keys], [v[start:stop] for v in self.values],
                         self.mask[start:stop], None if self.grid is None else self.grid.select(start, stop))


class DiTDenoiser(nn.Module):
    """eps-predictor eps(a_t, t, proprio, context) for (N, num_tokens, action_dim) noisy actions."""

    def __init__(self, settings: HeadSettings, context_dim: int, proprio_dim: int, num_tokens: int, action_dim: int,
                 grid_reader: Optional[nn.Module] = None):
        """``grid_reader`` (:class:`vla.bev_decoder.PoseGridReader`, ``bev.head_lookup``) adds to each action token
        what the BEV grid shows at its pose; the grid then has to come with the context (``ContextKV.grid``)."""
        super().__init__()
        hidden = settings.hidden_size
        self.settings = settings
        self.num_tokens = num_tokens
        self.action_dim = action_dim
        self.gradient_checkpointing = settings.gradient_checkpointing
        self.action_embed = nn.Sequential(
            nn.Linear(action_dim, settings.action_embed_hidden),
            nn.SiLU(),
            nn.Linear(settings.action_embed_hidden, hidden),
        )
        self.pos_embed = nn.Parameter(sinusoidal_embedding(torch.arange(num_tokens), hidden)[None])
        self.grid_reader = grid_reader
        self.time_embed = nn.Sequential(
            nn.Linear(settings.frequency_embedding_size, hidden), nn.SiLU(), nn.Linear(hidden, hidden)
        )
        self.proprio_embed = nn.Sequential(nn.Linear(proprio_dim, hidden), nn.SiLU(), nn.Linear(hidden, hidden))
        self.context_proj = nn.Sequential(nn.LayerNorm(context_dim, eps=NORM_EPS), nn.Linear(context_dim, hidden))
        self.blocks = nn.ModuleList(
            DiTBlock(hidden, settings.num_heads, settings.mlp_ratio, settings.dropout) for _ in range(settings.depth)
        )
        self.final_norm = nn.LayerNorm(hidden, elementwise_affine=False, eps=NORM_EPS)
        self.final_modulation = nn.Linear(hidden, 2 * hidden)
        self.output = nn.Linear(hidden, action_dim)
        for layer in (self.final_modulation, self.output):  # DiT: zero-initialised output layer
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    def context_kv(self, tokens: torch.Tensor, mask: torch.Tensor, rows: Rows = None,
                   grid: Optional[BevGrid] = None) -> ContextKV:
        """Cross-attention keys/values of every block for context rows (tokens (Bc, T, D), mask (Bc, T)), with
        those rows' BEV grid when the head reads one."""
        hidden = self.context_proj(tokens.to(self.output.weight.dtype))
        keys, values = [], []
        for block in self.blocks:
            k, v = block.cross_attn.project_kv(hidden, rows)
            keys.append(k)
            values.append(v)
        return ContextKV(keys, values, mask.bool(), grid)

    def context_kv_branches(self, tokens: torch.Tensor, mask: torch.Tensor, adapters: Sequence[Optional[str]],
                            grid: Optional[BevGrid] = None) -> ContextKV:
        """Keys/values for each adapter in `adapters` (rows adapter-major: adapter 0's Bc rows first); the
        context projection and the base k/v projections are computed once and shared."""
        hidden = self.context_proj(tokens.to(self.output.weight.dtype))
        keys, values = [], []
        for block in self.blocks:
            k, v = block.cross_attn.project_kv_branches(hidden, adapters)
            keys.append(k)
            values.append(v)
        return ContextKV(keys, values, mask.bool().repeat(len(adapters), 1),
                         None if grid is None else grid.repeat(len(adapters)))

    def forward(self, x: torch.Tensor, t: torch.Tensor, proprio: torch.Tensor, kv: ContextKV,
                rows: Rows = None) -> torch.Tensor:
        """x (N, L, A) noisy actions, t (N,), proprio (N, P); N must be a multiple of kv.num_rows."""
        n = x.shape[0]
        if n % kv.num_rows:
            raise VLAInputError("x", f"{n} query rows are not a multiple of {kv.num_rows} context rows")
        if rows is not None and len(rows) != n:
            raise VLAInputError("rows", f"{len(rows)} adapter names for {n} rows")
        in_dtype, dtype = x.dtype, self.output.weight.dtype  # the sampler state keeps its own (float32) precision
        h = self.action_embed(x.to(dtype)) + self.pos_embed
        if self.grid_reader is not None:
            if kv.grid is None:
                raise VLAInputError("context", "this head reads the BEV grid (bev.head_lookup): build its context "
                                               "keys/values with the grid (a context from encode() carries it)")
            h = h + self.grid_reader(x, kv.grid)
        t_feat = sinusoidal_embedding(t * TIME_EMBED_SCALE, self.settings.frequency_embedding_size).to(dtype)
        cond = self.time_embed(t_feat) + self.proprio_embed(proprio.to(dtype))
        for block, k, v in zip(self.blocks, kv.keys, kv.values):
            if self.gradient_checkpointing and self.training and torch.is_grad_enabled():
                h = checkpoint(block, h, cond, k, v, kv.mask, rows, use_reentrant=False)
            else:
                h = block(h, cond, k, v, kv.mask, rows)
        shift, scale = self.final_modulation(F.silu(cond)).chunk(2, dim=-1)
        return self.output(modulate(self.final_norm(h), shift, scale)).to(in_dtype)
