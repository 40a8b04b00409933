"""Vision-language backbones behind one interface (context tokens + padding mask)."""

from vla.backbones.base import Context, VisionLanguageBackbone
from vla.backbones.registry import BACKBONES, build_backbone

__all__ = ["Context", "VisionLanguageBackbone", "BACKBONES", "build_backbone"]
