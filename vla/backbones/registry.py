"""Backbone registry: ``backbone.type`` -> class."""

from __future__ import annotations

from vla.backbones.base import VisionLanguageBackbone
from vla.backbones.florence2 import Florence2Backbone
from vla.backbones.hf_vlm import HFVLMBackbone
from vla.backbones.timm_lm import TimmLMBackbone
from vla.configuration_dipole import BackboneSettings, ProcessorSettings
from vla.errors import ModelConfigError

BACKBONES: dict[str, type[VisionLanguageBackbone]] = {
    "florence2": Florence2Backbone,
    "hf_vlm": HFVLMBackbone,
    "timm_lm": TimmLMBackbone,
}


def build_backbone(settings: BackboneSettings, processor: ProcessorSettings,
                   load_pretrained: bool = False) -> VisionLanguageBackbone:
    """Instantiate the configured backbone (random init from `model_config`, or pretrained weights)."""
    if settings.type not in BACKBONES:
        raise ModelConfigError("backbone.type",
                               f"unknown backbone {settings.type!r}; expected one of {sorted(BACKBONES)}")
    if load_pretrained and not settings.pretrained and not (settings.type == "timm_lm" and settings.timm_pretrained):
        raise ModelConfigError("backbone.pretrained", "no hub id or local path to load pretrained weights from")
    if not load_pretrained and settings.model_config is None:
        raise ModelConfigError("backbone.model_config", "needed to build the backbone without downloading weights")
    return BACKBONES[settings.type](settings, processor, load_pretrained=load_pretrained)
