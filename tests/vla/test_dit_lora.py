"""DiT head and its two LoRA branches: targets, zero init, and the batched two-branch forward."""

import torch
from peft.tuners.lora import LoraLayer

from vla.configuration_dipole import DIT_LORA_TARGETS, HeadSettings, LoraSettings
import vla.lora as lora_module
from vla.dit import DiTDenoiser
from vla.lora import (RowSegments, add_dipole_adapters, apply_linear, frozen_adapter_cache, lora_delta,
                      lora_parameters, uniform_rows)

from vla.testing import perturb

CONTEXT_DIM, PROPRIO_DIM = 24, 16
FLOAT32_GRAD_TOLERANCE = 1e-5
"""Allowed gradient difference between two float32 summation orders, relative to the gradient's largest entry."""


def make_head(seed: int = 0, gradient_checkpointing: bool = False) -> DiTDenoiser:
    torch.manual_seed(seed)
    settings = HeadSettings(hidden_size=32, depth=2, num_heads=4, mlp_ratio=2.0, dropout=0.0, action_embed_hidden=16,
                            frequency_embedding_size=32, gradient_checkpointing=gradient_checkpointing)
    head = DiTDenoiser(settings, CONTEXT_DIM, PROPRIO_DIM, 8, 4)
    add_dipole_adapters(head, LoraSettings(rank=4, alpha=8))
    return head


def inputs(b: int = 2, s: int = 3, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    ctx = torch.randn(b, 5, CONTEXT_DIM, generator=gen)
    mask = torch.ones(b, 5, dtype=torch.bool)
    mask[-1, 3:] = False  # padded context tokens
    n = b * s
    return ctx, mask, torch.randn(n, 8, 4, generator=gen), torch.rand(n, generator=gen), torch.randn(n, PROPRIO_DIM,
                                                                                                        generator=gen)


def test_adapters_sit_on_every_listed_projection():
    head = make_head()
    wrapped = {name for name, module in head.named_modules() if isinstance(module, LoraLayer)}
    expected = {f"blocks.{i}.{target}" for i in range(2) for target in DIT_LORA_TARGETS}
    assert wrapped == expected
    for name in wrapped:
        layer = head.get_submodule(name)
        assert set(layer.lora_A.keys()) == {"positive", "negative"}
        assert layer.r["positive"] == 4 and layer.scaling["positive"] == 8 / 4


def test_zero_initialised_adapters_equal_the_base_head():
    head = make_head().eval()
    for name, param in lora_parameters(head):
        if "lora_B" in name:
            assert torch.count_nonzero(param) == 0
    perturb(head, only_lora=False)  # non-zero gates, but re-zero LoRA B
    with torch.no_grad():
        for name, param in lora_parameters(head):
            if "lora_B" in name:
                param.zero_()
    ctx, mask, x, t, proprio = inputs()
    kv = head.context_kv(ctx, mask, None)
    base = head(x, t, proprio, kv, None)
    for adapter in ("positive", "negative"):
        kv_a = head.context_kv(ctx, mask, uniform_rows(adapter, 2))
        assert torch.equal(head(x, t, proprio, kv_a, uniform_rows(adapter, 6)), base)


def test_batched_two_branch_forward_equals_two_separate_forwards():
    head = make_head().eval()
    perturb(head)  # non-zero gates and LoRA B, different per adapter
    ctx, mask, x, t, proprio = inputs()
    kv2 = head.context_kv(torch.cat([ctx, ctx]), torch.cat([mask, mask]), uniform_rows("positive", 2)
                          + uniform_rows("negative", 2))
    both = head(torch.cat([x, x]), torch.cat([t, t]), torch.cat([proprio, proprio]), kv2,
                uniform_rows("positive", 6) + uniform_rows("negative", 6))
    separate = []
    for adapter in ("positive", "negative"):
        kv = head.context_kv(ctx, mask, uniform_rows(adapter, 2))
        separate.append(head(x, t, proprio, kv, uniform_rows(adapter, 6)))
    assert torch.allclose(both[:6], separate[0], atol=1e-5)
    assert torch.allclose(both[6:], separate[1], atol=1e-5)
    assert not torch.allclose(separate[0], separate[1], atol=1e-3)  # the branches really differ


def test_grouped_cross_attention_equals_per_row_context():
    """N = Bc * G query rows share a scene's keys/values; same result as repeating the context per row."""
    head = make_head().eval()
    perturb(head)
    ctx, mask, x, t, proprio = inputs(b=2, s=3)
    grouped = head(x, t, proprio, head.context_kv(ctx, mask, None), None)
    repeated = head(x, t, proprio, head.context_kv(ctx.repeat_interleave(3, 0), mask.repeat_interleave(3, 0), None),
                    None)
    assert torch.allclose(grouped, repeated, atol=1e-5)


def test_padded_context_tokens_are_ignored():
    head = make_head().eval()
    perturb(head)
    ctx, mask, x, t, proprio = inputs(b=2, s=1)
    out = head(x, t, proprio, head.context_kv(ctx, mask, None), None)
    ctx_changed = ctx.clone()
    ctx_changed[-1, 3:] += 100.0  # only padded tokens change
    out_changed = head(x, t, proprio, head.context_kv(ctx_changed, mask, None), None)
    assert torch.equal(out, out_changed)


def test_gradient_checkpointing_gives_the_same_gradients():
    grads = []
    for checkpointing in (False, True):
        head = make_head(gradient_checkpointing=checkpointing).train()
        perturb(head)
        ctx, mask, x, t, proprio = inputs()
        rows = uniform_rows("positive", 6)
        out = head(x, t, proprio, head.context_kv(ctx, mask, uniform_rows("positive", 2)), rows)
        out.pow(2).mean().backward()
        grads.append(torch.cat([p.grad.flatten() for p in head.parameters() if p.grad is not None]))
    assert torch.allclose(grads[0], grads[1], atol=1e-6)


def test_row_segments_match_peft_mixed_batch_and_shared_base_kv():
    """The contiguous-block routing equals peft's own mixed-adapter batch (one name per row), and the
    shared-base two-branch context cache equals computing each branch's cache separately."""
    head = make_head().eval()
    perturb(head)
    ctx, mask, x, t, proprio = inputs()
    kv_two = head.context_kv_branches(ctx, mask, ["positive", "negative"])
    names = ["positive"] * 2 + ["negative"] * 2
    kv_peft = head.context_kv(torch.cat([ctx, ctx]), torch.cat([mask, mask]), names)
    for k_fast, k_ref in zip(kv_two.keys + kv_two.values, kv_peft.keys + kv_peft.values):
        assert torch.allclose(k_fast, k_ref, atol=1e-6)
    assert torch.equal(kv_two.mask, kv_peft.mask)
    segments = uniform_rows("positive", 6) + uniform_rows("negative", 6)
    assert len(segments) == 12 and segments.adapters == ("positive", "negative")
    fast = head(torch.cat([x, x]), torch.cat([t, t]), torch.cat([proprio, proprio]), kv_two, segments)
    reference = head(torch.cat([x, x]), torch.cat([t, t]), torch.cat([proprio, proprio]), kv_peft,
                     ["positive"] * 6 + ["negative"] * 6)
    assert torch.allclose(fast, reference, atol=1e-5)


def test_zero3_managed_adapter_weights_are_used_only_through_their_modules():
    """Under DeepSpeed ZeRO-3 a weight is whole only inside its own module's call; the two-branch forward must
    then skip the effective-weight fast path (which reads ``lora_A/B.weight`` directly) with the same result."""
    outputs, grads, lora_calls = [], [], []
    for managed in (False, True):
        head = make_head().train()
        perturb(head)
        if managed:
            for index, (_, param) in enumerate(lora_parameters(head)):
                param.ds_id = index  # the marker DeepSpeed ZeRO-3 puts on every parameter it partitions
        calls = []
        hooks = [module.register_forward_hook(lambda *_: calls.append(1))
                 for name, module in head.named_modules() if name.endswith(("lora_A.positive", "lora_B.negative"))]
        ctx, mask, x, t, proprio = inputs()
        kv = head.context_kv_branches(ctx, mask, ["positive", "negative"])
        out = head(torch.cat([x, x]), torch.cat([t, t]), torch.cat([proprio, proprio]), kv,
                   uniform_rows("positive", 6) + uniform_rows("negative", 6))
        out.pow(2).mean().backward()
        for hook in hooks:
            hook.remove()
        outputs.append(out.detach())
        grads.append(torch.cat([p.grad.flatten() for _, p in lora_parameters(head)]))
        lora_calls.append(len(calls))
    assert torch.allclose(outputs[0], outputs[1], atol=1e-5)
    assert torch.allclose(grads[0], grads[1], atol=1e-6) and grads[0].abs().sum() > 0
    # the LoRA modules are called only when managed (otherwise their weights are merged per branch)
    assert lora_calls[1] > lora_calls[0]


def _reference_rows(layer, x, blocks):
    """Base projection plus each block's own LoRA update, through the modules (the unmerged definition)."""
    base, pieces, start = layer.base_layer(x), [], 0
    for name, count in blocks:
        pieces.append(base[start:start + count] + lora_delta(layer, name, x[start:start + count]))
        start += count
    return torch.cat(pieces)


def test_effective_weight_path_equals_base_plus_lora_update_with_gradients():
    """One batched matmul over the merged weights W + s B A gives the unmerged outputs and LoRA gradients."""
    head = make_head().train()
    perturb(head)
    layer = head.blocks[0].mlp.fc1
    x = torch.randn(12, 8, layer.in_features, generator=torch.Generator().manual_seed(3))
    lora = [p for _, p in lora_parameters(layer)]
    for blocks in ((("positive", 12),), (("positive", 6), ("negative", 6))):
        results = []
        for fn in (lambda: apply_linear(layer, x, RowSegments(blocks)), lambda: _reference_rows(layer, x, blocks)):
            head.zero_grad(set_to_none=True)
            out = fn()
            out.pow(2).sum().backward()
            results.append((out.detach(), [p.grad.clone() if p.grad is not None else torch.zeros_like(p)
                                           for p in lora]))
        (fast, fast_grads), (ref, ref_grads) = results
        assert torch.allclose(fast, ref, rtol=1e-5, atol=1e-6), blocks
        for g_fast, g_ref in zip(fast_grads, ref_grads):
            # float32 sums in another order: the error scales with the gradient's size (entries up to ~100 here;
            # the matmul kernels, and so the rounding, differ between CPUs), a wrong update would be off by O(1)
            scale = float(g_ref.abs().max())
            assert torch.allclose(g_fast, g_ref, rtol=1e-5, atol=FLOAT32_GRAD_TOLERANCE * scale), blocks
        assert sum(float(g.abs().sum()) for g in fast_grads) > 0


def test_active_lora_dropout_uses_the_lora_modules():
    """With LoRA dropout > 0 a training forward cannot merge the weights: the LoRA modules are called."""
    torch.manual_seed(0)
    settings = HeadSettings(hidden_size=32, depth=1, num_heads=4, mlp_ratio=2.0, dropout=0.0, action_embed_hidden=16,
                            frequency_embedding_size=32)
    head = DiTDenoiser(settings, CONTEXT_DIM, PROPRIO_DIM, 8, 4)
    add_dipole_adapters(head, LoraSettings(rank=4, alpha=8, dropout=0.5))
    perturb(head)
    layer = head.blocks[0].mlp.fc1
    calls = []
    hook = layer.lora_A["positive"].register_forward_hook(lambda *_: calls.append(1))
    x = torch.randn(4, 8, layer.in_features)
    rows = uniform_rows("positive", 2) + uniform_rows("negative", 2)
    head.eval()
    with torch.no_grad():
        merged = apply_linear(layer, x, rows)
    assert not calls  # dropout is inactive in eval: merged weights
    head.train()
    apply_linear(layer, x, rows)
    hook.remove()
    assert calls
    head.eval()
    with torch.no_grad():
        assert torch.allclose(merged, _reference_rows(layer, x, tuple(rows)), rtol=1e-5, atol=1e-6)


def test_frozen_adapter_cache_reuses_merged_weights_only_inside_its_scope():
    head = make_head().eval()
    perturb(head)
    layer = head.blocks[0].attn.qkv
    x = torch.randn(2, 8, layer.in_features)
    rows = uniform_rows("positive", 2)
    with torch.no_grad():
        with frozen_adapter_cache():
            first = apply_linear(layer, x, rows)
            layer.lora_B["positive"].weight.add_(1.0)
            cached = apply_linear(layer, x, rows)  # weights are declared fixed inside: the cache is used
        fresh = apply_linear(layer, x, rows)
    assert torch.equal(first, cached)
    assert not torch.allclose(first, fresh, atol=1e-3)
    assert torch.allclose(fresh, _reference_rows(layer, x, tuple(rows)), rtol=1e-5, atol=1e-6)


def test_layers_too_large_to_merge_take_the_low_rank_route_with_the_same_result(monkeypatch):
    """Above ``MERGE_MAX_WEIGHT_ELEMENTS`` the base matmul plus batched low-rank updates serve the same blocks."""
    results, low_rank_calls = [], []
    low_rank = lora_module._stacked_deltas
    monkeypatch.setattr(lora_module, "_stacked_deltas", lambda *a: low_rank_calls.append(1) or low_rank(*a))
    for limit in (lora_module.MERGE_MAX_WEIGHT_ELEMENTS, 0):
        monkeypatch.setattr(lora_module, "MERGE_MAX_WEIGHT_ELEMENTS", limit)
        low_rank_calls.clear()
        head = make_head().train()
        perturb(head)
        calls = []
        hook = head.blocks[0].attn.qkv.lora_A["positive"].register_forward_hook(lambda *_: calls.append(1))
        ctx, mask, x, t, proprio = inputs()
        kv = head.context_kv_branches(ctx, mask, ["positive", "negative"])
        out = head(torch.cat([x, x]), torch.cat([t, t]), torch.cat([proprio, proprio]), kv,
                   uniform_rows("positive", 6) + uniform_rows("negative", 6))
        out.pow(2).mean().backward()
        hook.remove()
        results.append((out.detach(), torch.cat([p.grad.flatten() for _, p in lora_parameters(head)])))
        assert not calls  # neither route calls the LoRA modules (the low-rank route reads the stacked weights)
        assert bool(low_rank_calls) == (limit == 0)
    assert torch.allclose(results[0][0], results[1][0], rtol=1e-5, atol=1e-6)
    assert torch.allclose(results[0][1], results[1][1], rtol=1e-5, atol=1e-6)
