"""Model presets: YAML twins, overrides, and real-preset sizes from configs on the meta device."""

import pytest
import torch
import yaml

from vla import DipoleVLA, DipoleVLAConfig, ModelConfigError
from vla.presets import CONFIG_DIR, PRESETS, REAL_PRESETS, build_config, preset_dict


@pytest.mark.parametrize("name", list(PRESETS))
def test_yaml_twin_matches_the_preset(name):
    path = CONFIG_DIR / f"{name}.yaml"
    assert yaml.safe_load(path.read_text()) == preset_dict(name)
    assert build_config(path).to_dict()["head"] == build_config(name).to_dict()["head"]


def test_overrides_and_unknown_keys():
    config = build_config("tiny-florence2", overrides=["head.depth=3", "diffusion.sampler=ddim"])
    assert config.head_settings.depth == 3 and config.diffusion_settings.sampler == "ddim"
    with pytest.raises(ModelConfigError, match="head.dept"):
        build_config("tiny-florence2", overrides=["head.dept=3"])
    with pytest.raises(ModelConfigError, match="num_heads"):
        build_config("tiny-florence2", overrides=["head.num_heads=5"])
    with pytest.raises(ModelConfigError, match="preset"):
        build_config("no-such-preset")
    assert isinstance(build_config("tiny-hf-vlm"), DipoleVLAConfig)


@pytest.mark.parametrize("name", REAL_PRESETS)
def test_real_presets_build_on_the_meta_device(name):
    """Sizes from configs alone (no download): ~1B in all, DiT head ~0.46B, both adapters ~53M (spec §7)."""
    with torch.device("meta"):
        model = DipoleVLA(build_config(name))
    head = sum(p.numel() for n, p in model.head.named_parameters() if "lora_" not in n)
    lora = sum(p.numel() for n, p in model.head.named_parameters() if "lora_" in n)
    backbone = sum(p.numel() for p in model.backbone.parameters())
    assert 0.40e9 < head < 0.50e9
    assert 50e6 < lora < 57e6
    assert 0.5e9 < backbone < 1.0e9
