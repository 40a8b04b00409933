"""Backbone interface: context tokens + padding mask, registry errors, and another Auto-loadable VLM."""

import numpy as np
import pytest
import torch

from vla import DipoleVLA, ModelConfigError, compute_normalization_stats
from vla.backbones import build_backbone
from vla.configuration_dipole import BackboneSettings, ProcessorSettings
from vla.presets import TINY_PRESETS, build_config

from vla.testing import make_agent_input, make_target_poses

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
