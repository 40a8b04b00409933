"""DipoleVLA: shapes, DIPOLE losses, guided sampling, training stages and bad inputs (tiny presets, CPU)."""

import math

import numpy as np
import pytest
import torch

from vla import DipoleVLA, NormalizationError, VLAInputError
from vla.backbones import Context
from vla.guidance import dipole_branch_losses
from vla.lora import uniform_rows
from vla.presets import TINY_PRESETS, build_config

from vla.testing import make_agent_input, make_target_poses, perturb, tiny_model

from tests.vla.auxiliary_heads import check_auxiliary_loss

B, K, S = 2, 3, 2


@pytest.fixture(scope="module")
def rng():
    return np.random.default_rng(0)


@pytest.fixture(scope="module")
def agent_inputs(rng):
    return [make_agent_input(rng, speed=4.0 + i, command=i) for i in range(B)]


@pytest.fixture(scope="module")
def trained_like_model():
    """Tiny Florence-2 model with non-zero gates and distinct LoRA weights per adapter."""
    torch.set_num_threads(1)
    model = tiny_model("tiny-florence2")
    perturb(model.head, seed=1)
    return model.eval()


def make_batch(model, agent_inputs, rng, k: int = 0):
    batch = model.processor(agent_inputs, make_target_poses(rng, len(agent_inputs)))
    if k:
        poses = make_target_poses(rng, len(agent_inputs) * k).reshape(len(agent_inputs), k, 8, 3)
        batch["target_poses"] = torch.from_numpy(poses)
    return batch


def count_calls(module):
    calls = []
    handle = module.register_forward_hook(lambda *_: calls.append(1))
    return calls, handle


@pytest.mark.parametrize("preset", TINY_PRESETS)
def test_shapes_and_dtypes_for_every_tiny_backbone(preset, agent_inputs, rng):
    torch.set_num_threads(1)
    model = tiny_model(preset)
    batch = make_batch(model, agent_inputs, rng)
    ctx = model.encode(batch)
    assert ctx.tokens.dim() == 3 and ctx.tokens.shape[0] == B and ctx.tokens.dtype == torch.float32
    assert ctx.mask.shape == ctx.tokens.shape[:2] and ctx.mask.dtype == torch.bool
    loss = model.loss_il(batch, context=None)
    assert loss.shape == () and torch.isfinite(loss)
    loss.backward()
    assert any(p.grad is not None for p in model.backbone.parameters())
    out = model.loss_dipole(make_batch(model, agent_inputs, rng, k=K), torch.randn(B, K), beta=1.0)
    assert out.loss.shape == () and torch.isfinite(out.loss)
    poses = model.sample(batch, omega=0.5, num_steps=3, num_samples=S)
    assert poses.shape == (B, S, 8, 3) and poses.dtype == torch.float32 and torch.isfinite(poses).all()
    assert torch.all(poses[..., 2].abs() <= math.pi)
    sweep = model.sample(batch, omega=[0.0, 1.0], num_steps=2, num_samples=S)
    assert sweep.shape == (B, 2, S, 8, 3)


def test_zero_initialised_adapters_make_guided_sampling_equal_the_base_model(agent_inputs, rng):
    model = tiny_model("tiny-florence2")
    with torch.no_grad():
        for name, param in model.head.named_parameters():
            if "lora_" not in name:
                param.add_(0.05 * torch.randn_like(param))  # a non-trivial base head; LoRA B stays 0
    batch = make_batch(model, agent_inputs, rng)
    ctx = model.encode(batch)
    base = model.sample(batch, mode="base", num_steps=4, num_samples=S, context=ctx,
                        generator=torch.Generator().manual_seed(0))
    for omega in (-1.0, 0.0, 0.5, 4.0):
        guided = model.sample(batch, omega=omega, num_steps=4, num_samples=S, context=ctx,
                              generator=torch.Generator().manual_seed(0))
        assert torch.allclose(guided, base, atol=1e-4), omega


def test_omega_zero_uses_only_positive_and_omega_minus_one_only_negative(trained_like_model, agent_inputs, rng):
    model = trained_like_model
    batch = make_batch(model, agent_inputs, rng)
    ctx = model.encode(batch)

    def run(omega):
        return model.sample(batch, omega=omega, num_steps=3, num_samples=S, context=ctx,
                            generator=torch.Generator().manual_seed(5))

    rows_seen = []
    handle = model.head.register_forward_pre_hook(lambda m, args: rows_seen.append(set(args[4].adapters)))
    pi_pos, pi_neg, guided = run(0.0), run(-1.0), run(0.5)
    handle.remove()
    assert rows_seen[0] == {"positive"}  # omega = 0: no negative pass at all
    saved = {n: p.detach().clone() for n, p in model.head.named_parameters() if ".negative." in n}
    perturb(model.head, seed=7, only_lora=True, adapter="negative")
    try:
        assert torch.equal(run(0.0), pi_pos)  # bit-exact pi+, whatever the negative branch holds
        assert not torch.allclose(run(0.5), guided)
        assert not torch.allclose(run(-1.0), pi_neg)
    finally:
        with torch.no_grad():
            for n, p in model.head.named_parameters():
                if n in saved:
                    p.copy_(saved[n])
    perturb(model.head, seed=8, only_lora=True, adapter="positive")
    try:
        assert torch.equal(run(-1.0), pi_neg)  # omega = -1 is pi- exactly
    finally:
        perturb(model.head, seed=8, only_lora=True, adapter="positive", scale=-0.05)


def test_omega_sweep_reuses_context_and_matches_single_calls(trained_like_model, agent_inputs, rng):
    model = trained_like_model
    batch = make_batch(model, agent_inputs, rng)
    calls, handle = count_calls(model.backbone)
    sweep = model.sample(batch, omega=[0.0, 0.5, 2.0], num_steps=3, num_samples=S,
                         generator=torch.Generator().manual_seed(3))
    handle.remove()
    assert len(calls) == 1  # one backbone pass for all omegas, steps, branches and samples
    for i, omega in enumerate((0.0, 0.5, 2.0)):
        single = model.sample(batch, omega=omega, num_steps=3, num_samples=S,
                              generator=torch.Generator().manual_seed(3))
        assert torch.allclose(sweep[:, i], single, atol=1e-5), omega
    assert not torch.allclose(sweep[:, 0], sweep[:, 2])


def test_samples_differ_across_draws_and_are_reproducible(trained_like_model, agent_inputs, rng):
    model = trained_like_model
    batch = make_batch(model, agent_inputs, rng)
    a = model.sample(batch, omega=0.5, num_steps=3, num_samples=S, generator=torch.Generator().manual_seed(1))
    b = model.sample(batch, omega=0.5, num_steps=3, num_samples=S, generator=torch.Generator().manual_seed(1))
    assert torch.equal(a, b)
    assert not torch.allclose(a[:, 0], a[:, 1])
    for sampler in ("ddim", "dpm_solver_pp"):
        assert model.sample(batch, num_steps=2, sampler=sampler).shape == (B, 1, 8, 3)


def test_loss_dipole_equals_weighted_losses_of_separate_branch_forwards(trained_like_model, agent_inputs, rng):
    model = trained_like_model
    batch = make_batch(model, agent_inputs, rng, k=K)
    g = torch.tensor([[1.0, -0.5, 0.0], [2.0, -3.0, 0.3]])
    out = model.loss_dipole(batch, g, beta=2.0, generator=torch.Generator().manual_seed(11))
    model.eval()
    with torch.no_grad():
        gen = torch.Generator().manual_seed(11)
        actions = model.normalize_poses(batch["target_poses"]).reshape(B * K, 8, 4)
        t = torch.rand(B * K, generator=gen) * (1 - 1e-3) + 1e-3  # vla.diffusion.sample_train_times
        eps = torch.randn(actions.shape, generator=gen)
        a_t = model.schedule.add_noise(actions, eps, t)
        ctx = model.encode(batch)
        proprio = model._proprio(batch).repeat_interleave(K, 0)
        errs = []
        for adapter in ("positive", "negative"):
            kv = model.head.context_kv(ctx.tokens, ctx.mask, uniform_rows(adapter, B))
            eps_hat = model.head(a_t, t, proprio, kv, uniform_rows(adapter, B * K))
            errs.append(((eps_hat - eps) ** 2).mean((-2, -1)))
        loss_pos, loss_neg, w_pos = dipole_branch_losses(errs[0], errs[1], g.reshape(-1), beta=2.0)
    assert torch.allclose(out.loss_positive, loss_pos, atol=1e-5)
    assert torch.allclose(out.loss_negative, loss_neg, atol=1e-5)
    assert torch.allclose(out.weight_positive_mean, w_pos.mean())
    assert torch.allclose(out.loss, loss_pos + loss_neg, atol=1e-5)


def test_adapter_modules_limit_which_adapters_train():
    from vla.errors import ModelConfigError

    model = tiny_model("tiny-florence2")
    model.set_trainable("adapters", adapter_modules=["attn.qkv", "mlp.fc2"])
    trained = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trained and all(".attn.qkv.lora_" in n or ".mlp.fc2.lora_" in n for n in trained)
    assert not any(".cross_mlp.fc2." in n for n in trained)  # a suffix of another module's name does not match
    assert {n.split(".lora_")[1].split(".")[1] for n in trained} == {"positive", "negative"}
    model.set_trainable("positive", adapter_modules=["attn.qkv"])
    assert all(".attn.qkv.lora_" in n and ".positive." in n
               for n, p in model.named_parameters() if p.requires_grad)
    model.set_trainable("adapters")  # all adapters again
    assert any(".cross_attn.k.lora_" in n for n, p in model.named_parameters() if p.requires_grad)
    with pytest.raises(ModelConfigError, match="adapter_modules"):
        model.set_trainable("adapters", adapter_modules=["attn.nope"])


def test_dipole_step_trains_only_the_adapters_on_shared_noise(agent_inputs, rng):
    model = tiny_model("tiny-florence2")
    perturb(model.head, seed=2, only_lora=False)
    batch = make_batch(model, agent_inputs, rng, k=K)
    model.set_trainable("adapters")
    trainable = dict(model.named_parameters())
    assert all("lora_" in n for n, p in trainable.items() if p.requires_grad)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    optimizer = torch.optim.SGD(model.trainable_parameters(), lr=0.1)
    seen = []
    handle = model.head.register_forward_pre_hook(lambda m, args: seen.append((args[0].detach(), args[1].detach())))
    calls, bb_handle = count_calls(model.backbone)
    out = model.loss_dipole(batch, torch.randn(B, K), beta=1.0)
    handle.remove()
    bb_handle.remove()
    out.loss.backward()
    optimizer.step()
    assert len(calls) == 1  # K candidates share one backbone pass per scene
    x, t = seen[0]
    n = B * K
    assert torch.equal(x[:n], x[n:]) and torch.equal(t[:n], t[n:])  # both adapters see the same (a_t, t)
    changed = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    assert changed and all("lora_" in n for n in changed)
    assert any(".positive." in n for n in changed) and any(".negative." in n for n in changed)


def test_loss_ewr_weights_the_positive_branch_exponentially_and_trains_only_it(agent_inputs, rng):
    model = tiny_model("tiny-florence2")
    perturb(model.head, seed=3, only_lora=False)
    batch = make_batch(model, agent_inputs, rng, k=K)
    g = torch.tensor([[1.0, -0.5, 0.0], [2.0, -3.0, 0.3]])
    beta, max_weight = 2.0, 5.0
    model.eval()
    with torch.no_grad():  # same noise as DIPOLE's positive branch -> its per-sample errors
        dipole_zero = model.loss_dipole(batch, torch.zeros_like(g), beta=beta, generator=torch.Generator().manual_seed(5))
        ewr_zero = model.loss_ewr(batch, torch.zeros_like(g), beta, max_weight, generator=torch.Generator().manual_seed(5))
    # g = 0: DIPOLE weights the positive branch by 1/2, EWR by exp(0) = 1
    assert torch.allclose(ewr_zero.loss_positive, 2 * dipole_zero.loss_positive, atol=1e-6)
    assert float(ewr_zero.loss_negative) == 0.0
    weights = torch.exp(beta * g).clamp(max=max_weight)
    out = model.loss_ewr(batch, g, beta, max_weight, generator=torch.Generator().manual_seed(5))
    assert torch.allclose(out.weight_positive_mean, weights.mean())
    model.set_trainable("positive")
    assert all(".positive." in n for n, p in model.named_parameters() if p.requires_grad)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    optimizer = torch.optim.SGD(model.trainable_parameters(), lr=0.1)
    anchor = torch.from_numpy(make_target_poses(rng, B)).reshape(B, 1, 8, 3)
    model.loss_ewr(batch, g, beta, max_weight, anchor_poses=anchor, bc_weight=0.5).loss.backward()
    optimizer.step()
    changed = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    assert changed and all("lora_" in n and ".positive." in n for n in changed)


def test_masked_candidates_contribute_no_loss(trained_like_model, agent_inputs, rng):
    model = trained_like_model
    batch = make_batch(model, agent_inputs, rng, k=K)
    mask = torch.tensor([[True, True, True], [False, False, False]])
    g = torch.tensor([[0.5, -0.5, 1.0], [math.nan, math.nan, math.nan]])  # failed scores may be NaN when masked
    ref = model.loss_dipole(batch, g, 1.0, sample_mask=mask, generator=torch.Generator().manual_seed(0))
    changed = dict(batch)
    changed["target_poses"] = batch["target_poses"].clone()
    changed["target_poses"][1] += 5.0
    out = model.loss_dipole(changed, g, 1.0, sample_mask=mask, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(out.loss, ref.loss) and torch.isfinite(out.loss)
    with pytest.raises(VLAInputError, match="'g'"):
        model.loss_dipole(batch, g, 1.0)


def test_bc_anchor_and_weight_normalisation(trained_like_model, agent_inputs, rng):
    model = trained_like_model
    batch = make_batch(model, agent_inputs, rng, k=K)
    anchor = torch.from_numpy(make_target_poses(rng, B))
    g = torch.randn(B, K)
    out = model.loss_dipole(batch, g, 1.0, anchor_poses=anchor, bc_weight=0.1,
                            generator=torch.Generator().manual_seed(0))
    assert out.loss_bc > 0
    assert torch.allclose(out.loss, out.loss_positive + out.loss_negative + 0.1 * out.loss_bc, atol=1e-6)
    plain = model.loss_dipole(batch, g, 1.0, generator=torch.Generator().manual_seed(0))
    normed = model.loss_dipole(batch, g, 1.0, normalize_weights=True, generator=torch.Generator().manual_seed(0))
    w = torch.sigmoid(g).mean()
    assert torch.allclose(normed.loss_positive, plain.loss_positive / w, rtol=1e-4)


def test_bc_anchor_pulls_both_branches_alike(agent_inputs, rng):
    """With every rollout sample masked out only the anchor trains; identical adapters get identical gradients,
    so the anchor is common to eps+ and eps- and the guided combination does not amplify it."""
    torch.set_num_threads(1)
    model = tiny_model("tiny-florence2")
    perturb(model.head, seed=3)
    positive, negative = model.adapter_parameters("positive"), model.adapter_parameters("negative")
    with torch.no_grad():
        for name, param in positive.items():
            negative[name.replace(".positive.", ".negative.")].copy_(param)
    model.set_trainable("adapters")
    batch = make_batch(model, agent_inputs, rng, k=K)
    anchor = torch.from_numpy(make_target_poses(rng, B))
    mask = torch.zeros(B, K, dtype=torch.bool)
    out = model.loss_dipole(batch, torch.randn(B, K), 1.0, sample_mask=mask, anchor_poses=anchor, bc_weight=1.0,
                            generator=torch.Generator().manual_seed(0))
    assert out.loss_positive == 0 and out.loss_negative == 0 and out.loss_bc > 0
    out.loss.backward()
    for name, param in positive.items():
        twin = negative[name.replace(".positive.", ".negative.")]
        assert param.grad is not None and param.grad.abs().sum() > 0, name
        assert torch.allclose(param.grad, twin.grad, atol=1e-6), name


def test_loss_il_weights_masks_and_candidates(trained_like_model, agent_inputs, rng):
    model = trained_like_model
    batch = make_batch(model, agent_inputs, rng, k=K)
    ref = model.loss_il(batch, generator=torch.Generator().manual_seed(0))
    doubled = model.loss_il(batch, sample_weights=torch.full((B, K), 2.0), generator=torch.Generator().manual_seed(0))
    assert torch.allclose(doubled, 2 * ref, rtol=1e-5)
    masked = model.loss_il(batch, sample_mask=torch.tensor([[True] * K, [False] * K]),
                           generator=torch.Generator().manual_seed(0))
    assert torch.isfinite(masked) and not torch.allclose(masked, ref)
    model.set_trainable("base")
    assert all(not p.requires_grad for n, p in model.head.named_parameters() if "lora_" in n)
    assert all(p.requires_grad for n, p in model.head.named_parameters() if "lora_" not in n)


def test_loss_il_proprio_dropout_hides_the_ego_state(trained_like_model, agent_inputs, rng):
    model = trained_like_model
    batch = make_batch(model, agent_inputs, rng, k=K)
    mean = (model.config.normalization or {}).get("proprio_mean")
    hidden = dict(batch, proprio=torch.as_tensor(mean, dtype=torch.float32).expand_as(batch["proprio"]).clone()
                  if mean is not None else torch.zeros_like(batch["proprio"]))

    def loss(data, **kwargs):
        return model.loss_il(data, generator=torch.Generator().manual_seed(0), **kwargs)

    assert torch.equal(loss(batch, proprio_dropout=0.0), loss(batch))
    assert torch.allclose(loss(batch, proprio_dropout=1.0), loss(hidden), atol=1e-6)
    assert not torch.allclose(loss(batch, proprio_dropout=1.0), loss(batch))
    with pytest.raises(ValueError, match="proprio_dropout"):
        loss(batch, proprio_dropout=1.5)


def test_loss_il_proprio_dropout_keeps_the_driving_command(rng):
    """With the command in the proprio vector, dropout hides the ego motion but not the command (the route)."""
    torch.set_num_threads(1)
    model = tiny_model("tiny-florence2", overrides=["processor.command_in_proprio=true"])
    perturb(model.head, seed=1)
    inputs = [make_agent_input(rng, command=c) for c in (0, 2)]
    batch = make_batch(model.eval(), inputs, rng)
    seen = []
    handle = model.head.proprio_embed.register_forward_hook(lambda _m, args, _out: seen.append(args[0].clone()))
    model.loss_il(batch, proprio_dropout=1.0, generator=torch.Generator().manual_seed(0))
    handle.remove()
    command = list(model.config.processor_settings.one_hot_proprio_columns)
    motion = [i for i in range(model.config.proprio_dim) if i not in command]
    assert torch.equal(seen[0][:, motion], torch.zeros_like(seen[0][:, motion]))
    assert torch.equal(seen[0][:, command], torch.as_tensor(np.eye(4)[[0, 2]], dtype=seen[0].dtype))


def test_trainable_scope_options():
    frozen = tiny_model("tiny-florence2", overrides=["backbone.freeze=true"])
    assert not any(p.requires_grad for p in frozen.backbone.parameters())
    lora = tiny_model("tiny-timm-lm", overrides=["backbone.lora_rank=2", "backbone.gradient_checkpointing=true",
                                                  "head.gradient_checkpointing=true"])
    trainable = [n for n, p in lora.backbone.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n and "backbone" in n for n in trainable)
    rng = np.random.default_rng(1)
    batch = lora.processor([make_agent_input(rng)], make_target_poses(rng, 1))
    lora.train()
    lora.loss_il(batch).backward()
    assert all(lora.backbone.get_parameter(n).grad is not None for n in trainable)
    lora.set_trainable("none")
    assert not lora.trainable_parameters()


def test_normalisation_round_trip_and_missing_stats(agent_inputs, rng):
    model = tiny_model("tiny-hf-vlm")
    poses = torch.from_numpy(make_target_poses(rng, 5))
    back = model.denormalize_poses(model.normalize_poses(poses))
    assert torch.allclose(back, poses, atol=1e-4)
    fresh = DipoleVLA(build_config("tiny-hf-vlm"))
    batch = model.processor(agent_inputs)
    with pytest.raises(NormalizationError, match="set_normalization_stats"):
        fresh.sample(batch, num_steps=1)
    with pytest.raises(NormalizationError):  # the processor passes raw poses; the model normalises
        fresh.loss_il(fresh.processor(agent_inputs, make_target_poses(rng, B)))


def test_bad_batches_raise_clear_errors(trained_like_model, agent_inputs, rng):
    model = trained_like_model
    batch = make_batch(model, agent_inputs, rng)
    cases = {
        "3 cameras": {**batch, "pixel_values": batch["pixel_values"][:, :2]},
        "size": {**batch, "pixel_values": batch["pixel_values"][..., :32, :32]},
        "proprio": {**batch, "proprio": batch["proprio"].clone().fill_(math.nan)},
        "'input_ids'": {k: v for k, v in batch.items() if k != "input_ids"},
    }
    for match, bad in cases.items():
        with pytest.raises(VLAInputError, match=match):
            model.sample(bad, num_steps=1)
    with pytest.raises(VLAInputError, match="target_poses"):
        model.loss_il({k: v for k, v in batch.items() if k != "target_poses"})
    with pytest.raises(VLAInputError, match="'g'"):
        model.loss_dipole(batch, torch.zeros(B, 2), 1.0)
    with pytest.raises(VLAInputError, match="mode"):
        model.sample(batch, mode="greedy")


def test_bfloat16_weights_keep_float32_trajectories(agent_inputs, rng):
    model = tiny_model("tiny-timm-lm")
    perturb(model.head)
    model = model.to(torch.bfloat16)
    batch = make_batch(model, agent_inputs, rng)  # float32 pixels are cast to the backbone's dtype
    assert model.encode(batch).tokens.dtype == torch.bfloat16
    poses = model.sample(batch, omega=0.5, num_steps=3)
    assert poses.dtype == torch.float32 and torch.isfinite(poses).all()
    assert torch.isfinite(model.loss_il(batch)) and torch.isfinite(model.loss_dipole(batch, torch.zeros(B), 1.0).loss)


def test_bev_loss_trains_the_decoder_and_the_backbone_and_survives_save_load(agent_inputs, rng, tmp_path):
    torch.set_num_threads(1)
    model = tiny_model("tiny-florence2", overrides=["bev.cells=4"]).eval()  # eval: no dropout, same loss twice
    batch = make_batch(model, agent_inputs, rng)
    with pytest.raises(VLAInputError, match="bev_target"):
        model.loss_il(batch, bev_weight=1.0)
    batch["bev_target"] = torch.from_numpy(rng.integers(0, 2, size=(B, 2, 4, 4)).astype(np.uint8))
    check_auxiliary_loss(model, batch, "bev_decoder", "loss_bev", "bev_weight", tmp_path)
    no_decoder = tiny_model("tiny-florence2")
    assert no_decoder.bev_decoder is None
    with pytest.raises(Exception, match="bev.cells"):
        no_decoder.loss_il(batch, bev_weight=1.0)


def test_bev_feed_head_puts_one_cell_token_per_cell_in_the_heads_context(agent_inputs, rng, tmp_path):
    torch.set_num_threads(1)
    model = tiny_model("tiny-florence2", overrides=["bev.cells=4", "bev.feed_head=true"]).eval()
    perturb(model.head)
    batch = make_batch(model, agent_inputs, rng)
    backbone_tokens = model.backbone(*model._check_visual_inputs(batch)).tokens
    context = model.encode(batch)
    assert context.tokens.shape[1] == backbone_tokens.shape[1] + 16 and context.mask[:, -16:].all()
    assert context.bev_features.shape == (B, 16, model.config.bev_settings.hidden_size)
    torch.manual_seed(0)
    before = model.sample(batch, mode="base", num_steps=2)
    with torch.no_grad():
        model.bev_decoder.to_context.weight.mul_(3.0)
    torch.manual_seed(0)
    assert not torch.allclose(before, model.sample(batch, mode="base", num_steps=2))  # the head reads the cells

    # the BEV loss reads the cell features the context carries; a frozen backbone still trains the decoder
    batch["bev_target"] = torch.from_numpy(rng.integers(0, 2, size=(B, 2, 4, 4)).astype(np.uint8))
    from_tokens = model.bev_decoder.loss(model.backbone(*model._check_visual_inputs(batch)), batch["bev_target"])
    assert torch.allclose(model.loss_bev(batch, model.encode(batch)), from_tokens)
    frozen = tiny_model("tiny-florence2", overrides=["bev.cells=4", "bev.feed_head=true", "backbone.freeze=true"])
    perturb(frozen.head)
    frozen.loss_il(batch, bev_weight=1.0).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in frozen.bev_decoder.parameters())
    assert all(p.grad is None for p in frozen.backbone.parameters())
    model.save_pretrained(tmp_path / "m")
    loaded = DipoleVLA.from_pretrained(str(tmp_path / "m")).eval()
    assert torch.equal(loaded.bev_decoder.to_context.weight, model.bev_decoder.to_context.weight)
    torch.manual_seed(1)
    again = model.sample(batch, mode="base", num_steps=2)
    torch.manual_seed(1)
    assert torch.allclose(loaded.sample(batch, mode="base", num_steps=2), again)


def test_bev_head_lookup_feeds_each_pose_token_the_grid_under_it(agent_inputs, rng, tmp_path):
    torch.set_num_threads(1)
    model = tiny_model("tiny-florence2", overrides=["bev.cells=4", "bev.head_lookup=true"]).eval()
    perturb(model.head)
    batch = make_batch(model, agent_inputs, rng)
    context = model.encode(batch)
    assert context.bev_probabilities.shape == (B, 2, 4, 4) and not context.bev_probabilities.requires_grad
    assert torch.allclose(context.bev_probabilities, torch.sigmoid(model.bev_decoder.predict(context)))
    # the BEV loss reuses the cell features the lookup decoded, with the loss of decoding the tokens again
    batch["bev_target"] = torch.from_numpy(rng.integers(0, 2, size=(B, 2, 4, 4)).astype(np.uint8))
    backbone = model.backbone(*model._check_visual_inputs(batch))
    calls, handle = count_calls(model.bev_decoder.attention)
    reused = model.loss_bev(batch, context)
    assert not calls  # the carried features: no second decoder pass
    assert torch.allclose(reused, model.bev_decoder.loss(backbone, batch["bev_target"]))
    handle.remove()
    torch.manual_seed(0)
    before = model.sample(batch, omega=[0.0, 2.0], num_steps=2, num_samples=3)
    shifted = Context(context.tokens, context.mask, None, 1.0 - context.bev_probabilities)
    torch.manual_seed(0)
    assert not torch.allclose(before, model.sample(batch, omega=[0.0, 2.0], num_steps=2, num_samples=3,
                                                   context=shifted))  # the pose tokens read the grid
    with pytest.raises(VLAInputError, match="head_lookup"):
        model.sample(batch, context=Context(context.tokens, context.mask), num_steps=2)

    # imitation trains the reader; DIPOLE's branches see the same grid (the reader is base, not adapted)
    model.train()
    model.loss_il(batch).backward()
    assert model.head.grid_reader.embed.weight.grad.abs().sum() > 0
    g = torch.tensor([0.9, 0.1, 0.5])[:B]
    out = model.loss_dipole(batch, g, beta=2.0, context=model.encode(batch).detach())
    assert torch.isfinite(out.loss)
    model.save_pretrained(tmp_path / "m")
    loaded = DipoleVLA.from_pretrained(str(tmp_path / "m")).eval()
    model.eval()
    torch.manual_seed(1)
    again = model.sample(batch, num_steps=2)
    torch.manual_seed(1)
    assert torch.allclose(loaded.sample(batch, num_steps=2), again)
    with pytest.raises(Exception, match="bev.head_lookup"):
        tiny_model("tiny-florence2", overrides=["bev.head_lookup=true"])
