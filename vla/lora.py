"""PEFT LoRA adapters on the DiT head (`positive`, `negative`) and on the backbone, plus row-wise routing.

Both DIPOLE branches stay ordinary peft adapters. A batched two-branch forward passes, per row, the name of
the adapter that row uses (peft's mixed-adapter batch, ``adapter_names=[...]``; ``"__base__"`` = no adapter).
Row names are passed explicitly through the head's forward (no global adapter switching), so the same call
works in training, under gradient checkpointing and at inference.

Fast path for contiguous adapter blocks: each adapter's effective weight W + scale * B @ A is formed (with
autograd in training, so A and B still receive gradients; once per sampling call at inference, see
:func:`frozen_adapter_cache`) and the blocks are projected by one batched matmul over the stacked weights,
instead of the base matmul plus the two low-rank matmuls of every adapter. Only layers up to
``MERGE_MAX_WEIGHT_ELEMENTS`` are merged; larger ones keep the base matmul plus batched low-rank updates.
"""

from __future__ import annotations

import re
import warnings
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Iterable, Optional, Sequence, Union

import torch
import torch.nn.functional as F
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
    gather/scatter: equal blocks are one batched matmul over the adapters' stacked effective weights (small
    layers) or one base matmul plus batched low-rank updates (large layers).
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


def branch_rows(names: Sequence[Optional[str]], n: int) -> RowSegments:
    """n rows per adapter in `names`, the adapters' blocks one after the other."""
    return RowSegments(tuple((name or BASE_ROWS, n) for name in names))


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


# Largest base weight (in x out elements) served by merged effective weights. Merging removes the low-rank
# matmuls (and their many small kernels) but, in training, adds the full weight gradient of W + s B A and, at
# inference, holds a merged copy of the weight per adapter. Measured on CPU (1 thread, forward + backward of
# two adapter blocks): merged is 1.2-1.4x faster for 64 x 64 to 64 x 192 weights, 1.2x slower for 256 x 768
# and 1.9-3.9x slower for 1024 x 3072 (the paper-size head), so only small layers are merged.
MERGE_MAX_WEIGHT_ELEMENTS = 2**15


def _merge_applicable(layer: LoraLayer, names: Sequence[Optional[str]]) -> bool:
    """Whether the effective-weight fast path may serve adapters `names` of `layer`.

    Not when a name is the base, the base layer is not a plain linear layer or is larger than
    ``MERGE_MAX_WEIGHT_ELEMENTS``, a LoRA dropout is active (training with dropout > 0), dtypes differ, or any
    weight is managed by DeepSpeed ZeRO-3 (those must be used through their modules' calls, see
    :func:`is_zero3_managed`)."""
    base = layer.base_layer
    if not isinstance(base, nn.Linear) or BASE_ROWS in names or None in names:
        return False
    if base.in_features * base.out_features > MERGE_MAX_WEIGHT_ELEMENTS:
        return False
    weights = [base.weight] + ([] if base.bias is None else [base.bias])
    for name in names:
        dropout = layer.lora_dropout[name]
        if not isinstance(dropout, nn.Identity) and dropout.training:
            return False
        weights += [layer.lora_A[name].weight, layer.lora_B[name].weight]
    return all(w.dtype == base.weight.dtype and not is_zero3_managed(w) for w in weights)


def _use_cache() -> Optional[dict]:
    cache = _STACK_CACHE.get()
    return None if cache is None or torch.is_grad_enabled() else cache


def effective_weight(layer: LoraLayer, adapter: str) -> torch.Tensor:
    """W + scaling * B @ A of one adapter, (out, in); differentiable (cached inside :func:`frozen_adapter_cache`)."""
    cache, key = _use_cache(), (id(layer), "merged", adapter)
    if cache is not None and key in cache:
        return cache[key]
    lora_a, lora_b = layer.lora_A[adapter].weight, layer.lora_B[adapter].weight
    weight = torch.addmm(layer.base_layer.weight, lora_b, lora_a, alpha=layer.scaling[adapter])
    if cache is not None:
        cache[key] = weight
    return weight


def _stacked_transposed_weights(layer: LoraLayer, names: tuple[str, ...]) -> torch.Tensor:
    """Effective weights of several adapters stacked and transposed for a batched matmul: (G, in, out)."""
    cache, key = _use_cache(), (id(layer), "merged", names)
    if cache is not None and key in cache:
        return cache[key]
    stacked = torch.stack([effective_weight(layer, name) for name in names]).transpose(1, 2)
    if cache is not None:
        stacked = stacked.contiguous()
        cache[key] = stacked
    return stacked


def _merged_blocks(layer: LoraLayer, rows: "RowSegments", x: torch.Tensor) -> Optional[torch.Tensor]:
    """Equal-size blocks of different adapters projected by one batched matmul over their effective weights.

    Returns None when the fast path does not apply (unequal blocks or see :func:`_merge_applicable`)."""
    names = rows.adapters
    if len({count for _, count in rows}) != 1 or not _merge_applicable(layer, names):
        return None
    weights_t = _stacked_transposed_weights(layer, names)  # (G, in, out)
    xs = x.reshape(len(names), -1, x.shape[-1])
    bias = layer.base_layer.bias
    out = torch.bmm(xs, weights_t) if bias is None else torch.baddbmm(bias, xs, weights_t)
    return out.reshape(*x.shape[:-1], weights_t.shape[2])


def _stacked_deltas(layer: LoraLayer, rows: "RowSegments", x: torch.Tensor) -> Optional[torch.Tensor]:
    """LoRA updates of equal-size blocks of different adapters as two batched matmuls (no slicing / concat);
    the route for layers too large to merge.

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
    """Inference scope in which the adapters' effective weights, and each layer's routing of a given
    :class:`RowSegments`, are built once per layer and reused by every denoising step (the weights must not
    change inside; ignored while autograd is recording)."""
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
        cache = _use_cache()
        if cache is not None:
            key = (id(layer), "plan", rows, x.shape[0])
            plan = cache.get(key)
            if plan is None:
                plan = cache[key] = _routing_plan(layer, rows, x)
            if plan is not _UNPLANNED:
                return plan(x)
        if len(rows) != x.shape[0]:
            raise ValueError(f"{len(rows)} adapter rows for a batch of {x.shape[0]}")
        if all(name == BASE_ROWS for name in rows.adapters):
            return layer.base_layer(x)
        if len(rows.adapters) == 1 and _merge_applicable(layer, rows.adapters):
            return F.linear(x, effective_weight(layer, rows.adapters[0]), layer.base_layer.bias)
        merged = _merged_blocks(layer, rows, x) if len(rows.adapters) > 1 else None
        if merged is not None:
            return merged
        base = layer.base_layer(x)
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


_UNPLANNED = object()  # cached marker: this (layer, rows) pair takes the general route of apply_linear


def _routing_plan(layer: LoraLayer, rows: "RowSegments", x: torch.Tensor):
    """Inside :func:`frozen_adapter_cache`: the fast route of (layer, rows) resolved once, as a function of x,
    so that the denoising steps skip the per-call checks; ``_UNPLANNED`` for the general route."""
    if len(rows) != x.shape[0]:
        raise ValueError(f"{len(rows)} adapter rows for a batch of {x.shape[0]}")
    names = rows.adapters
    bias = layer.base_layer.bias
    if all(name == BASE_ROWS for name in names):
        weight = layer.base_layer.weight
        return lambda inputs: F.linear(inputs, weight, bias)
    if len(names) == 1 and _merge_applicable(layer, names):
        weight = effective_weight(layer, names[0])
        return lambda inputs: F.linear(inputs, weight, bias)
    if len(names) > 1 and len({count for _, count in rows}) == 1 and _merge_applicable(layer, names):
        weights_t = _stacked_transposed_weights(layer, names)  # (G, in, out)
        groups, out_features = len(names), weights_t.shape[2]

        def merged(inputs: torch.Tensor) -> torch.Tensor:
            xs = inputs.reshape(groups, -1, inputs.shape[-1])
            out = torch.bmm(xs, weights_t) if bias is None else torch.baddbmm(bias, xs, weights_t)
            return out.reshape(*inputs.shape[:-1], out_features)

        return merged
    return _UNPLANNED


def apply_linear_branches(layer: nn.Module, x: torch.Tensor, adapters: Sequence[Optional[str]]) -> list[torch.Tensor]:
    """The layer's output on the same input `x` for several adapters (each through its effective weight, or
    with the base projection computed once where the fast path does not apply)."""
    if not isinstance(layer, LoraLayer):
        out = layer(x)
        return [out for _ in adapters]
    if _merge_applicable(layer, adapters):
        return [F.linear(x, effective_weight(layer, name), layer.base_layer.bias) for name in adapters]
    base = layer.base_layer(x)
    return [base if name in (None, BASE_ROWS) else base + lora_delta(layer, name, x).to(base.dtype)
            for name in adapters]
