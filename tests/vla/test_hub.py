"""A from_pretrained argument that reads as a missing local path fails locally instead of going to the hub."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from vla import DipoleVLA
from vla.backbones import build_backbone
from vla.errors import CheckpointError
from vla.hub import looks_like_local_path, resolve_pretrained
from vla.presets import TINY_PRESETS, build_config


@pytest.mark.parametrize("text", ["outputs/run/model", "./model", "../model", "/abs/model", "~/model", "model/",
                                  "a b", "C:\\ckpt"])
def test_path_like_arguments(text):
    assert looks_like_local_path(text)


def test_hub_ids_and_a_first_component_that_is_a_local_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert not looks_like_local_path("florence-community/Florence-2-large")
    assert not looks_like_local_path("gpt2")
    (tmp_path / "outputs").mkdir()
    assert looks_like_local_path("outputs/model")  # 'outputs' is a folder here: a path, not an org
    assert resolve_pretrained("org/name") == "org/name"
    (tmp_path / "outputs" / "model").mkdir()
    assert resolve_pretrained("outputs/model") == "outputs/model"


def test_missing_checkpoint_path_is_a_local_not_found_error(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # without the check the hub would be asked (and retried)
    start = time.perf_counter()
    with pytest.raises(CheckpointError, match="not found: no local folder .*outputs/finetune-demo/model"):
        DipoleVLA.from_pretrained("outputs/finetune-demo/model")
    with pytest.raises(CheckpointError, match="not found"):
        DipoleVLA.from_pretrained(Path("model"))
    assert time.perf_counter() - start < 5.0


@pytest.mark.parametrize("preset", TINY_PRESETS)
def test_backbone_pretrained_path_that_does_not_exist_is_a_local_error(preset, tmp_path, monkeypatch):
    """Each backbone's own from_pretrained goes through resolve_pretrained (florence2, hf_vlm, timm_lm)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    config = build_config(preset)
    config.backbone["pretrained"] = "./weights/no-such-backbone"
    with pytest.raises(CheckpointError, match="backbone.pretrained not found: no local folder .*weights/no-such-backb"):
        build_backbone(config.backbone_settings, config.processor_settings, load_pretrained=True)
    config.backbone["model_config"] = None  # from_backbone_pretrained first resolves the backbone's config
    with pytest.raises(CheckpointError, match="backbone.pretrained not found"):
        DipoleVLA.from_backbone_pretrained(config)
