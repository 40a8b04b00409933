"""Model presets: the shipped YAML files, overrides (strings and the training config's mapping), and
real-preset sizes from configs on the meta device."""

import fnmatch
import tomllib
from pathlib import Path

import pytest
import torch

from vla import DipoleVLA, DipoleVLAConfig, ModelConfigError
from vla.presets import PRESET_DIR, REAL_PRESETS, TINY_PRESETS, build_config, list_presets, preset_dict

REPO = Path(__file__).resolve().parents[2]
PUBLISHED_PARAMETERS = {  # model cards' parameter counts (safetensors totals, LM head included)
    "qwen2.5-vl-3b": 3.75e9,  # Qwen/Qwen2.5-VL-3B-Instruct
    "smolvlm-500m": 507e6,  # HuggingFaceTB/SmolVLM-500M-Instruct
    "llava-onevision-0.5b": 894e6,  # llava-hf/llava-onevision-qwen2-0.5b-ov-hf
}
ONE_LAYER = {  # real widths and image geometry, one layer per tower: a forward that fits a CPU test
    "qwen2.5-vl-3b": {"vision_config": {"depth": 1, "fullatt_block_indexes": [0]},
                      "text_config": {"num_hidden_layers": 1}},
    "smolvlm-500m": {"vision_config": {"num_hidden_layers": 1}, "text_config": {"num_hidden_layers": 1}},
    "llava-onevision-0.5b": {"vision_config": {"num_hidden_layers": 1}, "text_config": {"num_hidden_layers": 1}},
}
TOKENS_PER_CAMERA = {"qwen2.5-vl-3b": 2 + 16 * 16, "smolvlm-500m": 64, "llava-onevision-0.5b": 2 * 729 + 27}


@pytest.mark.parametrize("name", list_presets())
def test_every_preset_yaml_builds_by_name_and_by_path(name):
    path = PRESET_DIR / f"{name}.yaml"
    assert preset_dict(name)["preset"] == name
    assert build_config(path).to_dict()["head"] == build_config(name).to_dict()["head"]


def test_presets_ship_inside_the_package_as_the_only_copy():
    assert set(TINY_PRESETS) == {"tiny-florence2", "tiny-hf-vlm", "tiny-timm-lm", "tiny-qwen2.5-vl", "tiny-smolvlm",
                                 "tiny-llava-onevision"}
    assert set(REAL_PRESETS) == {"florence2-large", "internvl3-1b", "siglip-qwen2.5-0.5b", *PUBLISHED_PARAMETERS}
    package_data = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    patterns = package_data.get("*", []) + package_data.get("vla.presets", [])
    assert (PRESET_DIR / "__init__.py").is_file()  # a package, so its *.yaml files are package data
    for path in PRESET_DIR.glob("*.yaml"):
        assert any(fnmatch.fnmatch(path.name, pattern) for pattern in patterns), path.name
    assert not (REPO / "configs" / "model").exists()


def test_training_config_overrides_mapping_reaches_the_model(tmp_path):
    """``model.overrides.head.depth=1`` arrives as a nested mapping and builds the trainer's model."""
    from accelerate import Accelerator

    from data_pipelines.configuration import load_config
    from tests.vla.training.helpers import make_items
    from vla.training import TrainConfig, Trainer

    torch.set_num_threads(1)
    cfg = load_config(TrainConfig, None, [
        f"output_dir={tmp_path}", "stages=[il]", "il.steps=1", "il.batch_size=2", "eval.enabled=false",
        "tensorboard=false", "progress_bars=false", "model.preset=tiny-florence2", "model.overrides.head.depth=1",
        "model.overrides.diffusion.sampler=ddim"])
    assert cfg.model.overrides == {"head": {"depth": 1}, "diffusion": {"sampler": "ddim"}}
    Trainer(cfg, Accelerator(cpu=True), make_items(4, seed=1)).run()
    trained = DipoleVLA.from_pretrained(tmp_path / "il_model")
    assert trained.config.head_settings.depth == 1 and trained.config.diffusion_settings.sampler == "ddim"
    assert build_config("tiny-florence2", {"head.depth": 3}).head_settings.depth == 3


def test_overrides_and_unknown_keys():
    config = build_config("tiny-florence2", overrides=["head.depth=3", "diffusion.sampler=ddim"])
    assert config.head_settings.depth == 3 and config.diffusion_settings.sampler == "ddim"
    with pytest.raises(ModelConfigError, match="head.dept"):
        build_config("tiny-florence2", overrides=["head.dept=3"])
    with pytest.raises(ModelConfigError, match="num_heads"):
        build_config("tiny-florence2", overrides=["head.num_heads=5"])
    with pytest.raises(ModelConfigError, match="preset"):
        build_config("no-such-preset")
    with pytest.raises(ModelConfigError, match="key=value"):
        build_config("tiny-florence2", overrides=["head.depth"])
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
    if name in PUBLISHED_PARAMETERS:  # the VLM families: the published size (+ the LM head that is not built)
        text = model.backbone.model.config.get_text_config()
        lm_head = 0 if text.tie_word_embeddings else text.vocab_size * text.hidden_size
        assert backbone + lm_head == pytest.approx(PUBLISHED_PARAMETERS[name], rel=0.01)
    else:
        assert 0.5e9 < backbone < 1.0e9


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(ONE_LAYER))
def test_real_vlm_family_widths_and_image_geometry_forward(name):
    """The real preset's widths, vision geometry and image processor, one layer per tower: tokens per camera."""
    from data_pipelines.configuration import deep_update
    from vla.backbones import build_backbone

    torch.set_num_threads(1)
    config = build_config(name)
    config.backbone["model_config"] = deep_update(config.backbone["model_config"], ONE_LAYER[name])
    backbone = build_backbone(config.backbone_settings, config.processor_settings).eval()
    h, w = config.processor_settings.image_size
    ids = torch.ones(1, 8, dtype=torch.long)
    with torch.no_grad():
        context = backbone(torch.randn(1, 1, 3, h, w), ids, torch.ones_like(ids))
    assert context.tokens.shape == (1, TOKENS_PER_CAMERA[name] + 8, backbone.hidden_size)
    assert torch.isfinite(context.tokens).all()
