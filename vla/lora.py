"""PEFT LoRA adapters on the DiT head (`positive`, `negative`) and on the backbone, plus row-wise routing.

Both DIPOLE branches stay ordinary peft adapters. A batched two-branch forward passes, per row, the name of
the adapter that row uses (peft's mixed-adapter batch, ``adapter_names=[...]``; ``"__base__"`` = no adapter).
Row names are passed explicitly through the head's forward (no global adapter switching), so the same call
works in training, under gradient checkpointing and at inference.
"""

from __future__ import annotations

import re
import warnings
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Iterable, Optional, Sequence, Union

import torch
from peft import LoraConfig, inject_adapter_in_model
from peft.tuners.lora import LoraLayer
from torch import nn

from vla.configuration_dipole import ADAPTER_NAMES, LoraSettings

BASE_ROWS = "__base__"  # peft's name for "no adapter" in a mixed batch
BACKBONE_ADAPTER = "backbone"


def head_target_regex(targets: Sequence[str]) -> str:
    """Regex (peft full-match) selecting ``blocks.<i>.<target>`` for every listed per-block projection."""
    alternatives = "|".join(re.escape(t) for t in targets)
    return rf"(.*\.)?blocks\.\d+\.({alternatives})"


def add_dipole_adapters(head: nn.Module, settings: LoraSettings) -> None:
    """Inject the adapters `positive` and `negative` (LoRA B = 0, so both start equal to the base head)."""
    for name in ADAPTER_NAMES:
        config = LoraConfig(
            r=settings.rank,
            lora_alpha=settings.alpha,
            lora_dropout=settings.dropout,
            target_modules=head_target_regex(settings.target_modules),
            init_lora_weights=True,
        )
        with warnings.catch_warnings():  # peft warns that a second adapter joins the first: that is the point
            warnings.filterwarnings("ignore", message="Already found a `peft_config`")
            inject_adapter_in_model(config, head, adapter_name=name)


def add_backbone_adapter(backbone: nn.Module, rank: int, alpha: int, targets: Sequence[str]) -> None:
    """One LoRA adapter named `backbone` on the backbone's matching linear layers (always active)."""
    config = LoraConfig(r=rank, lora_alpha=alpha, lora_dropout=0.0, target_modules=list(targets))
    inject_adapter_in_model(config, backbone, adapter_name=BACKBONE_ADAPTER)


def lora_parameters(module: nn.Module, adapters: Optional[Iterable[str]] = None) -> list[tuple[str, nn.Parameter]]:
    """(name, parameter) of LoRA weights in `module`, optionally only those of the named adapters."""
    wanted = None if adapters is None else set(adapters)
    out = []
    for name, param in module.named_parameters():
        if "lora_" not in name:
            continue
        if wanted is not None and not any(f".{a}." in name or name.endswith(f".{a}") for a in wanted):
            continue
        out.append((name, param))
    return out


def is_lora_parameter(name: str) -> bool:
    return "lora_" in name


Rows = Union[Sequence[str], "RowSegments", None]


class RowSegments(tuple):
    """Contiguous blocks of rows, each using one adapter: ``(("positive", n), ("negative", n))``.

    ``uniform_rows(a, n) + uniform_rows(b, m)`` concatenates blocks. Routing contiguous blocks needs no
    gather/scatter: the base projection runs once over all rows and each block adds its own LoRA update.
    """

    def __add__(self, other):
        return RowSegments(tuple(self) + tuple(other))

    def __len__(self) -> int:  # number of rows, not of blocks
        return sum(count for _, count in self)

    @property
    def adapters(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self)


def uniform_rows(name: Optional[str], n: int) -> RowSegments:
    """n rows that all use adapter `name` (None = base weights only)."""
    return RowSegments(((name or BASE_ROWS, n),))


def lora_delta(layer: LoraLayer, adapter: str, x: torch.Tensor) -> torch.Tensor:
    """The LoRA update B(A(dropout(x))) * scaling of one peft adapter on `x`."""
    lora_a, lora_b = layer.lora_A[adapter], layer.lora_B[adapter]
    update = lora_b(lora_a(layer.lora_dropout[adapter](x.to(lora_a.weight.dtype))))
    return update * layer.scaling[adapter]


def is_zero3_managed(param: torch.Tensor) -> bool:
    """True for a parameter partitioned by DeepSpeed ZeRO-3 (it carries a ``ds_id``).

    Such a weight holds its full data only inside its own module's forward (ZeRO-3's module hooks gather it
    there and re-gather it for that module's backward); reading ``module.weight`` anywhere else sees an empty
    shard or escapes the backward bookkeeping, so those weights must be used through their modules' calls.
    """
    return hasattr(param, "ds_id")


def _stacked_deltas(layer: LoraLayer, rows: "RowSegments", x: torch.Tensor) -> Optional[torch.Tensor]:
    """LoRA updates of equal-size blocks of different adapters as two batched matmuls (no slicing / concat).

    Returns None when the fast path does not apply (a base block, unequal blocks, LoRA dropout, or weights
    managed by DeepSpeed ZeRO-3)."""
    counts = {count for _, count in rows}
    names = rows.adapters
    if len(counts) != 1 or BASE_ROWS in names or any(
        not isinstance(layer.lora_dropout[name], nn.Identity) for name in names
    ):
        return None
    if any(is_zero3_managed(layer.lora_A[name].weight) or is_zero3_managed(layer.lora_B[name].weight)
           for name in names):
        return None
    cache = _STACK_CACHE.get()
    key = (id(layer), names)
    if cache is not None and not torch.is_grad_enabled() and key in cache:
        a_t, b_t = cache[key]
    else:
        a_t = torch.stack([layer.lora_A[name].weight for name in names]).transpose(1, 2)  # (G, in, r)
        scale = torch.tensor([layer.scaling[name] for name in names], dtype=a_t.dtype, device=a_t.device)
        b_t = (torch.stack([layer.lora_B[name].weight for name in names]) * scale.view(-1, 1, 1)).transpose(1, 2)
        if cache is not None and not torch.is_grad_enabled():
            cache[key] = (a_t.contiguous(), b_t.contiguous())
    xs = x.reshape(len(names), -1, x.shape[-1]).to(a_t.dtype)
    return torch.bmm(torch.bmm(xs, a_t), b_t).reshape(*x.shape[:-1], b_t.shape[2])


_STACK_CACHE: ContextVar[Optional[dict]] = ContextVar("dipole_lora_stack_cache", default=None)


@contextmanager
def frozen_adapter_cache():
    """Inference scope in which stacked per-adapter LoRA weights are built once per layer and reused by every
    denoising step (the weights must not change inside; ignored while autograd is recording)."""
    token = _STACK_CACHE.set({})
    try:
        yield
    finally:
        _STACK_CACHE.reset(token)


def apply_linear(layer: nn.Module, x: torch.Tensor, rows: Rows) -> torch.Tensor:
    """Call a (possibly LoRA-wrapped) linear layer with per-row adapters.

    ``rows``: None (base weights for every row), :class:`RowSegments` (contiguous blocks; fast path), or a
    list with one adapter name per row (peft's mixed-adapter batch). ``"__base__"`` = base weights only.
    """
    if not isinstance(layer, LoraLayer):
        return layer(x)
    if rows is None:
        return layer.base_layer(x)
    if isinstance(rows, RowSegments):
        if len(rows) != x.shape[0]:
            raise ValueError(f"{len(rows)} adapter rows for a batch of {x.shape[0]}")
        base = layer.base_layer(x)
        if all(name == BASE_ROWS for name in rows.adapters):
            return base
        if len(rows.adapters) == 1:
            return base + lora_delta(layer, rows.adapters[0], x).to(base.dtype)
        stacked = _stacked_deltas(layer, rows, x)
        if stacked is not None:
            return base + stacked.to(base.dtype)
        pieces, start = [], 0
        for name, count in rows:
            segment = base[start:start + count]
            if name != BASE_ROWS:
                segment = segment + lora_delta(layer, name, x[start:start + count]).to(base.dtype)
            pieces.append(segment)
            start += count
        return torch.cat(pieces, dim=0)
    return layer(x, adapter_names=list(rows))


def apply_linear_branches(layer: nn.Module, x: torch.Tensor, adapters: Sequence[Optional[str]]) -> list[torch.Tensor]:
    """The layer's output on the same input `x` for several adapters, with the base projection computed once."""
    if not isinstance(layer, LoraLayer):
        out = layer(x)
        return [out for _ in adapters]
    base = layer.base_layer(x)
    return [base if name in (None, BASE_ROWS) else base + lora_delta(layer, name, x).to(base.dtype)
            for name in adapters]
