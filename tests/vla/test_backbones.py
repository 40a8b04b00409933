"""Backbone interface: context tokens + padding mask, registry errors, and another Auto-loadable VLM."""

import numpy as np
import pytest
import torch

from vla import DipoleVLA, ModelConfigError, compute_normalization_stats
from vla.backbones import build_backbone
from vla.configuration_dipole import BackboneSettings, ProcessorSettings
from vla.presets import TINY_PRESETS, build_config

from vla.testing import make_agent_input, make_target_poses, tiny_model

TINY_INTERNVL = {
    "model_type": "internvl",
    "vision_config": {"model_type": "internvl_vision", "hidden_size": 32, "intermediate_size": 64,
                      "num_hidden_layers": 1, "num_attention_heads": 2, "image_size": [32, 32], "patch_size": [8, 8]},
    "text_config": {"model_type": "qwen2", "vocab_size": 128, "hidden_size": 32, "intermediate_size": 64,
                    "num_hidden_layers": 2, "num_attention_heads": 2, "num_key_value_heads": 1,
                    "max_position_embeddings": 256},
    "image_token_id": 127,
    "downsample_ratio": 0.5,
    "vision_feature_layer": -1,
    "vision_feature_select_strategy": "default",
}


@pytest.mark.parametrize("preset", TINY_PRESETS)
def test_context_mask_covers_images_and_prompt(preset):
    config = build_config(preset)
    backbone = build_backbone(config.backbone_settings, config.processor_settings).eval()
    h, w = config.processor_settings.image_size
    pixels = torch.randn(2, 3, 3, h, w)
    ids = torch.randint(4, 64, (2, 10))
    mask = torch.ones(2, 10, dtype=torch.long)
    mask[1, 6:] = 0
    with torch.no_grad():
        ctx = backbone(pixels, ids, mask)
    num_image_tokens = ctx.tokens.shape[1] - 10
    assert num_image_tokens > 0 and num_image_tokens % 3 == 0  # the same number of tokens per camera
    assert ctx.tokens.shape == (2, num_image_tokens + 10, backbone.hidden_size)
    assert ctx.mask[:, :num_image_tokens].all()
    assert torch.equal(ctx.mask[:, num_image_tokens:], mask.bool())


def test_internvl_through_the_auto_classes():
    config = build_config("tiny-hf-vlm")
    config.backbone["model_config"] = TINY_INTERNVL
    model = DipoleVLA(config)
    model.set_normalization_stats(compute_normalization_stats(make_target_poses(np.random.default_rng(1), 16)))
    assert type(model.backbone.model).__name__ == "InternVLModel"
    batch = model.processor([make_agent_input(np.random.default_rng(0))])
    assert model.encode(batch).tokens.shape == (1, 3 * 4 + 48, 32)  # 4x4 patches -> 2x2 after pixel shuffle
    assert model.sample(batch, num_steps=2).shape == (1, 1, 8, 3)


def test_registry_errors_name_the_field():
    with pytest.raises(ModelConfigError, match="backbone.type"):
        build_backbone(BackboneSettings(type="clip", model_config={}), ProcessorSettings())
    with pytest.raises(ModelConfigError, match="backbone.model_config"):
        build_backbone(BackboneSettings(type="hf_vlm"), ProcessorSettings())
    with pytest.raises(ModelConfigError, match="backbone.pretrained"):
        build_backbone(BackboneSettings(type="hf_vlm", model_config={}), ProcessorSettings(), load_pretrained=True)


def test_real_siglip_preset_builds_no_classifier_pool_on_the_meta_device():
    """timm's SigLIP attention pool (15.2M parameters) never reaches the context: it is not built."""
    with torch.device("meta"):
        model = DipoleVLA(build_config("siglip-qwen2.5-0.5b"))
    names = [n for n, _ in model.backbone.vision.named_parameters()]
    assert names and not any(n.startswith(("attn_pool.", "fc_norm.", "head.")) for n in names)


VLM_FAMILY_PRESETS = {  # tiny preset -> (HF model class, sequence tokens per 32 x 32 camera, image features)
    "tiny-qwen2.5-vl": ("Qwen2_5_VLModel", 2 + 4, 4),  # vision start / end markers + 4 x 4 patches merged 2 x 2
    "tiny-smolvlm": ("Idefics3Model", 4, 4),  # 4 x 4 patches, pixel shuffle 2
    "tiny-llava-onevision": ("LlavaOnevisionModel", 36, 36),  # base 16 + tile 16 + 4 row newlines
}


@pytest.mark.parametrize("preset", sorted(VLM_FAMILY_PRESETS))
def test_vlm_families_take_images_through_their_own_processor_layout(preset):
    """Each family gets its processor's inputs (grid / 5-D pixels + mask / anyres sizes), its image placeholders
    (with markers where the chat template has them) and, for Qwen, the model's own 3-D rotary positions."""
    torch.set_num_threads(1)
    class_name, tokens_per_camera, features_per_camera = VLM_FAMILY_PRESETS[preset]
    config = build_config(preset)
    backbone = build_backbone(config.backbone_settings, config.processor_settings).eval()
    assert type(backbone.model).__name__ == class_name
    pixels = torch.randn(2, 3, 3, 32, 32)
    inputs = backbone.image_inputs(pixels.flatten(0, 1))
    if preset == "tiny-qwen2.5-vl":
        assert inputs["image_grid_thw"].tolist() == [[1, 4, 4]] * 6
    elif preset == "tiny-smolvlm":
        assert inputs["pixel_values"].shape == (6, 1, 3, 32, 32) and inputs["pixel_attention_mask"].all()
        assert torch.equal(inputs["pixel_values"][:, 0], pixels.flatten(0, 1))  # no resize, no re-normalisation
    else:
        assert inputs["image_sizes"].tolist() == [[32, 32]] * 6
        assert torch.equal(inputs["pixel_values"][:, 0], pixels.flatten(0, 1))
    row = backbone.image_token_row(features_per_camera, "cpu")
    assert len(row) == tokens_per_camera and (row == backbone.image_token_id).sum() == features_per_camera
    ids = torch.randint(4, 64, (2, 10))
    mask = torch.ones(2, 10, dtype=torch.long)
    with torch.no_grad():
        ctx = backbone(pixels, ids, mask)
        changed = pixels.clone()
        changed[:, 1] += 1.0  # the front camera only
        ctx_changed = backbone(changed, ids, mask)
    assert ctx.tokens.shape == (2, 3 * tokens_per_camera + 10, 32)
    assert not torch.allclose(ctx.tokens, ctx_changed.tokens)  # the images reach the language model
    full_ids = torch.cat([row.repeat(3).expand(2, -1), ids], 1)
    positions = backbone.position_ids(full_ids, full_ids == backbone.image_token_id,
                                      torch.ones_like(full_ids), inputs)
    if preset == "tiny-qwen2.5-vl":
        first_image = positions[:, 0, 1:1 + features_per_camera]  # (t, h, w) of camera 0's 2 x 2 merged grid
        assert first_image[1].tolist() == [1, 1, 2, 2] and first_image[2].tolist() == [1, 2, 1, 2]
    else:
        assert positions is None


def test_vlm_family_image_size_errors_name_the_field():
    for preset, size in (("tiny-qwen2.5-vl", "[30, 30]"), ("tiny-smolvlm", "[48, 48]"),
                         ("tiny-llava-onevision", "[64, 64]")):
        config = build_config(preset, overrides=[f"processor.image_size={size}"])
        with pytest.raises(ModelConfigError, match="processor.image_size"):
            build_backbone(config.backbone_settings, config.processor_settings)


@pytest.mark.parametrize("preset", sorted(VLM_FAMILY_PRESETS))
def test_a_few_imitation_steps_lower_the_loss(preset):
    torch.set_num_threads(1)
    model = tiny_model(preset)
    rng = np.random.default_rng(5)
    batch = model.processor([make_agent_input(rng) for _ in range(4)], make_target_poses(rng, 4))

    def fixed_noise_loss():
        with torch.no_grad():
            return model.loss_il(batch, generator=torch.Generator().manual_seed(0)).item()

    before = fixed_noise_loss()
    optimizer = torch.optim.AdamW(model.trainable_parameters(), lr=3e-3)
    for step in range(8):
        loss = model.loss_il(batch, generator=torch.Generator().manual_seed(step))
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    assert fixed_noise_loss() < 0.8 * before
