"""Named model presets: tiny random ones (tests, CPU demo; no downloads) and real ones (hub id or local path).

Every preset has a YAML twin in ``configs/model/<name>.yaml`` (same content; a test keeps them in sync).
``build_config(name, overrides=["head.depth=4", ...])`` applies dotted overrides; unknown keys raise
:class:`~vla.errors.ModelConfigError`.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Callable, Optional, Sequence, Union

import yaml

from vla.configuration_dipole import DipoleVLAConfig
from vla.errors import ModelConfigError

CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs" / "model"

# Tiny sizes: small enough for 2-core CPU tests, every code path exercised.
TINY_HEAD = {"hidden_size": 64, "depth": 2, "num_heads": 4, "mlp_ratio": 2.0, "dropout": 0.0,
             "action_embed_hidden": 32, "frequency_embedding_size": 64}
TINY_LORA = {"rank": 4, "alpha": 4}
TINY_VOCAB = 128  # > the local word-level tokenizer's vocabulary
TINY_PROMPT_TOKENS = 48  # the word-level tokenizer splits numbers into digits: ~42 tokens

# Florence-2-large (florence-community/Florence-2-large config.json; arXiv 2311.06242): DaViT vision tower
# and a BART-large-sized encoder-decoder.
FLORENCE2_LARGE_CONFIG = {
    "model_type": "florence2",
    "vision_config": {
        "model_type": "florence_vision",
        "depths": [1, 1, 9, 1],
        "embed_dim": [256, 512, 1024, 2048],
        "num_heads": [8, 16, 32, 64],
        "num_groups": [8, 16, 32, 64],
        "patch_size": [7, 3, 3, 3],
        "patch_stride": [4, 2, 2, 2],
        "patch_padding": [3, 1, 1, 1],
        "patch_prenorm": [False, True, True, True],
        "window_size": 12,
        "projection_dim": 1024,
        "drop_path_rate": 0.1,
        "max_position_embeddings": 50,
        "max_temporal_embeddings": 100,
    },
    "text_config": {
        "model_type": "bart",
        "vocab_size": 51289,
        "d_model": 1024,
        "encoder_layers": 12,
        "decoder_layers": 12,
        "encoder_attention_heads": 16,
        "decoder_attention_heads": 16,
        "encoder_ffn_dim": 4096,
        "decoder_ffn_dim": 4096,
        "max_position_embeddings": 1024,
    },
    "image_token_id": 51289,
}

# Qwen2.5-0.5B (Qwen/Qwen2.5-0.5B config.json).
QWEN25_05B_CONFIG = {
    "model_type": "qwen2",
    "vocab_size": 151936,
    "hidden_size": 896,
    "intermediate_size": 4864,
    "num_hidden_layers": 24,
    "num_attention_heads": 14,
    "num_key_value_heads": 2,
    "max_position_embeddings": 32768,
    "rope_theta": 1000000.0,
    "rms_norm_eps": 1e-6,
    "tie_word_embeddings": True,
}

# InternVL3-1B (OpenGVLab/InternVL3-1B-hf config.json): InternViT-300M (448 px, patch 14, pixel-shuffle 0.5)
# + Qwen2.5-0.5B-sized LM.
INTERNVL3_1B_CONFIG = {
    "model_type": "internvl",
    "vision_config": {
        "model_type": "internvl_vision",
        "hidden_size": 1024,
        "intermediate_size": 4096,
        "num_hidden_layers": 24,
        "num_attention_heads": 16,
        "image_size": [448, 448],
        "patch_size": [14, 14],
        "norm_type": "layer_norm",
        "use_qk_norm": False,
        "layer_scale_init_value": 0.1,
    },
    "text_config": {**QWEN25_05B_CONFIG, "vocab_size": 151674},
    "downsample_ratio": 0.5,
    "projector_hidden_act": "gelu",
    "vision_feature_layer": -1,
    "vision_feature_select_strategy": "default",
    "image_token_id": 151667,
}


def _tiny_florence2() -> dict:
    return {
        "backbone": {
            "type": "florence2",
            "model_config": {
                "model_type": "florence2",
                "vision_config": {
                    "model_type": "florence_vision",
                    "depths": [1, 1, 1, 1],
                    "embed_dim": [16, 24, 32, 48],
                    "num_heads": [2, 2, 2, 2],
                    "num_groups": [2, 2, 2, 2],
                    "window_size": 2,
                    "projection_dim": 32,
                    "drop_path_rate": 0.0,
                    "max_position_embeddings": 8,
                    "max_temporal_embeddings": 4,
                },
                "text_config": {
                    "model_type": "bart",
                    "vocab_size": TINY_VOCAB,
                    "d_model": 32,
                    "encoder_layers": 1,
                    "decoder_layers": 1,
                    "encoder_attention_heads": 2,
                    "decoder_attention_heads": 2,
                    "encoder_ffn_dim": 64,
                    "decoder_ffn_dim": 64,
                    "max_position_embeddings": 128,
                },
                "image_token_id": TINY_VOCAB - 1,
            },
        },
        "head": dict(TINY_HEAD),
        "lora": dict(TINY_LORA),
        "processor": {"image_size": [64, 64], "max_prompt_tokens": TINY_PROMPT_TOKENS},
    }


def _tiny_qwen2() -> dict:
    return {"model_type": "qwen2", "vocab_size": TINY_VOCAB, "hidden_size": 32, "intermediate_size": 64,
            "num_hidden_layers": 2, "num_attention_heads": 2, "num_key_value_heads": 1,
            "max_position_embeddings": 256}


def _tiny_hf_vlm() -> dict:
    return {
        "backbone": {
            "type": "hf_vlm",
            "model_config": {
                "model_type": "llava",
                "vision_config": {"model_type": "siglip_vision_model", "hidden_size": 32, "intermediate_size": 64,
                                  "num_hidden_layers": 1, "num_attention_heads": 2, "image_size": 32,
                                  "patch_size": 8},
                "text_config": _tiny_qwen2(),
                "image_token_id": TINY_VOCAB - 1,
                "vision_feature_layer": -1,
                "vision_feature_select_strategy": "full",
            },
        },
        "head": dict(TINY_HEAD),
        "lora": dict(TINY_LORA),
        "processor": {"image_size": [32, 32], "max_prompt_tokens": TINY_PROMPT_TOKENS},
    }


def _tiny_timm_lm() -> dict:
    return {
        "backbone": {
            "type": "timm_lm",
            "timm_model": "vit_tiny_patch16_224",
            "timm_kwargs": {"patch_size": 8, "embed_dim": 32, "depth": 1, "num_heads": 2},
            "model_config": _tiny_qwen2(),
            "projector_hidden": 32,
        },
        "head": dict(TINY_HEAD),
        "lora": dict(TINY_LORA),
        "processor": {"image_size": [32, 32], "max_prompt_tokens": TINY_PROMPT_TOKENS},
    }


def _florence2_large() -> dict:
    # The transformers-native Florence-2 weights; the original `microsoft/Florence-2-large` repository
    # ships remote code. A local path works too (backbone.pretrained / backbone.tokenizer).
    hub_id = "florence-community/Florence-2-large"
    return {"backbone": {"type": "florence2", "pretrained": hub_id, "tokenizer": hub_id,
                         "model_config": copy.deepcopy(FLORENCE2_LARGE_CONFIG), "freeze": False}}


def _internvl3_1b() -> dict:
    hub_id = "OpenGVLab/InternVL3-1B-hf"
    return {"backbone": {"type": "hf_vlm", "pretrained": hub_id, "tokenizer": hub_id,
                         "model_config": copy.deepcopy(INTERNVL3_1B_CONFIG)},
            "processor": {"image_size": [448, 448]}}


def _siglip_qwen25_05b() -> dict:
    hub_id = "Qwen/Qwen2.5-0.5B"
    return {"backbone": {"type": "timm_lm", "timm_model": "vit_so400m_patch14_siglip_384", "timm_pretrained": True,
                         "pretrained": hub_id, "tokenizer": hub_id, "model_config": copy.deepcopy(QWEN25_05B_CONFIG)},
            "processor": {"image_size": [384, 384], "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5]}}


PRESETS: dict[str, Callable[[], dict]] = {
    "tiny-florence2": _tiny_florence2,
    "tiny-hf-vlm": _tiny_hf_vlm,
    "tiny-timm-lm": _tiny_timm_lm,
    "florence2-large": _florence2_large,
    "internvl3-1b": _internvl3_1b,
    "siglip-qwen2.5-0.5b": _siglip_qwen25_05b,
}
TINY_PRESETS = ("tiny-florence2", "tiny-hf-vlm", "tiny-timm-lm")
REAL_PRESETS = ("florence2-large", "internvl3-1b", "siglip-qwen2.5-0.5b")


def list_presets() -> list[str]:
    return list(PRESETS)


def preset_dict(name: str) -> dict:
    """The preset's config sections as a plain dict (what its YAML holds)."""
    if name not in PRESETS:
        raise ModelConfigError("preset", f"unknown preset {name!r}; expected one of {list(PRESETS)}")
    return {"preset": name, **PRESETS[name]()}


def apply_overrides(values: dict, overrides: Sequence[str]) -> dict:
    """Apply ``section.key=value`` overrides (values parsed as YAML scalars)."""
    values = copy.deepcopy(values)
    for item in overrides:
        if "=" not in item:
            raise ModelConfigError(item, "override must look like section.key=value")
        key, raw = item.split("=", 1)
        parts = key.strip().split(".")
        node = values
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ModelConfigError(key, f"{part!r} is not a section")
        node[parts[-1]] = yaml.safe_load(raw)
    return values


def build_config(name_or_path: Union[str, Path], overrides: Optional[Sequence[str]] = None) -> DipoleVLAConfig:
    """DipoleVLAConfig from a preset name or a YAML file, with optional dotted overrides."""
    path = Path(str(name_or_path))
    if path.suffix in (".yaml", ".yml"):
        if not path.is_file():
            raise ModelConfigError("preset", f"config file {path} not found")
        values = yaml.safe_load(path.read_text()) or {}
    else:
        values = preset_dict(str(name_or_path))
    return DipoleVLAConfig(**apply_overrides(values, overrides or ()))


def write_preset_yamls(directory: Path = CONFIG_DIR) -> list[Path]:
    """Regenerate configs/model/<name>.yaml from the presets."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name in PRESETS:
        out = directory / f"{name}.yaml"
        out.write_text(f"# DIPOLE VLA model preset '{name}' (generated by vla.presets.write_preset_yamls)\n"
                       + yaml.safe_dump(preset_dict(name), sort_keys=False, default_flow_style=None))
        written.append(out)
    return written
