"""Composed backbone: a timm vision encoder + an HF language model with a Prismatic-style MLP projector.

Patch tokens of each camera (prefix/class tokens dropped) -> Linear-GELU-Linear projector into the LM's
embedding space -> [image tokens of all views, prompt embeddings] -> LM -> mean of the last
``context_layers`` hidden states.
"""

from __future__ import annotations

import timm
import torch
from torch import nn
from transformers import AutoModel

from vla.backbones.base import (
    PRETRAINED_FIELD, Context, VisionLanguageBackbone, average_last_layers, enable_hf_checkpointing,
)
from vla.backbones.hf_vlm import config_from_dict
from vla.configuration_dipole import BackboneSettings, ProcessorSettings
from vla.hub import resolve_pretrained


def drop_classifier_pooling(vision: nn.Module) -> None:
    """Remove the pooling that only the classifier uses (SigLIP's attention pool, an avg-pool fc_norm).

    ``forward_features`` never reaches them, so they would hold weights without gradients (DDP refuses
    those) and optimizer state for nothing. The model is built first so that pretrained weights load
    strictly; then timm's own ``reset_classifier`` removes the pool.
    """
    if hasattr(vision, "reset_classifier"):
        vision.reset_classifier(0, global_pool="")
    if isinstance(getattr(vision, "fc_norm", None), nn.Module) and any(True for _ in vision.fc_norm.parameters()):
        vision.fc_norm = nn.Identity()


class TimmLMBackbone(VisionLanguageBackbone):
    def __init__(self, settings: BackboneSettings, processor: ProcessorSettings, load_pretrained: bool = False):
        super().__init__(settings, processor)
        self.vision = timm.create_model(
            settings.timm_model,
            pretrained=load_pretrained and settings.timm_pretrained,
            num_classes=0,
            img_size=tuple(processor.image_size),
            **settings.timm_kwargs,
        )
        drop_classifier_pooling(self.vision)
        if load_pretrained and settings.pretrained:
            self.lm = AutoModel.from_pretrained(resolve_pretrained(settings.pretrained, PRETRAINED_FIELD))
        else:
            self.lm = AutoModel.from_config(config_from_dict(settings.model_config))
        self.hidden_size = self.lm.config.hidden_size
        self.vocab_size = self.lm.config.vocab_size
        vision_dim = self.vision.num_features
        projector_hidden = settings.projector_hidden or self.hidden_size
        self.projector = nn.Sequential(
            nn.Linear(vision_dim, projector_hidden), nn.GELU(), nn.Linear(projector_hidden, self.hidden_size)
        )

    def resolved_model_config(self) -> dict:
        return self.lm.config.to_dict()

    def enable_gradient_checkpointing(self) -> None:
        if hasattr(self.vision, "set_grad_checkpointing"):
            self.vision.set_grad_checkpointing(True)
        enable_hf_checkpointing(self.lm)

    def forward(self, pixel_values: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> Context:
        images, b, c = self._flatten_cameras(pixel_values)
        features = self.vision.forward_features(images)  # (B*C, prefix + patches, Cv)
        features = features[:, getattr(self.vision, "num_prefix_tokens", 0):]
        image_tokens = self.projector(features)
        image_tokens = image_tokens.reshape(b, c * image_tokens.shape[1], image_tokens.shape[2])
        text = self.lm.get_input_embeddings()(input_ids)
        embeds = torch.cat([image_tokens.to(text.dtype), text], dim=1)
        mask = torch.cat([torch.ones(image_tokens.shape[:2], dtype=attention_mask.dtype, device=attention_mask.device),
                          attention_mask], dim=1)
        out = self.lm(inputs_embeds=embeds, attention_mask=mask, output_hidden_states=True)
        return Context(average_last_layers(out.hidden_states, self.settings.context_layers), mask.bool())
