"""The interface every vision-language backbone implements: context tokens + padding mask per scene."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Optional

import torch
from torch import nn
from transformers import PreTrainedModel

from vla.configuration_dipole import BackboneSettings, ProcessorSettings

PRETRAINED_FIELD = "backbone.pretrained"
"""The config field named when ``settings.pretrained`` is a path that does not exist (every backbone passes it
through :func:`vla.hub.resolve_pretrained` before ``from_pretrained``)."""


@dataclass
class Context:
    """Backbone output for B scenes: tokens (B, T, D) and mask (B, T) bool, True = valid token.

    ``bev_features`` (B, cells * cells, width): the BEV decoder's cell features when the head reads them (with
    ``bev.feed_head`` their projections are the last tokens, :meth:`vla.bev_decoder.BevDecoder.extend_context`);
    the BEV loss then reuses them.
    ``bev_probabilities`` (B, channels, cells, cells): the decoder's probabilities, detached, when the head's pose
    tokens look them up (``bev.head_lookup``, :class:`vla.bev_decoder.PoseGridReader`)."""

    tokens: torch.Tensor
    mask: torch.Tensor
    bev_features: Optional[torch.Tensor] = None
    bev_probabilities: Optional[torch.Tensor] = None

    @property
    def batch_size(self) -> int:
        return self.tokens.shape[0]

    def detach(self) -> "Context":
        features = None if self.bev_features is None else self.bev_features.detach()
        probabilities = None if self.bev_probabilities is None else self.bev_probabilities.detach()
        return Context(self.tokens.detach(), self.mask, features, probabilities)


class VisionLanguageBackbone(nn.Module, ABC):
    """Maps camera images and a tokenised prompt to context tokens.

    Subclasses build their network from ``settings.model_config`` (random init, no download) or, with
    ``load_pretrained=True``, from ``settings.pretrained`` (hub id or local path).
    """

    hidden_size: int
    vocab_size: int

    def __init__(self, settings: BackboneSettings, processor: ProcessorSettings):
        super().__init__()
        self.settings = settings
        self.processor_settings = processor

    @abstractmethod
    def forward(self, pixel_values: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> Context:
        """pixel_values (B, n_cams, 3, H, W), input_ids / attention_mask (B, L) -> Context."""

    @abstractmethod
    def resolved_model_config(self) -> dict:
        """The HF config dict that rebuilds this backbone without downloads (stored in the checkpoint)."""

    def enable_gradient_checkpointing(self) -> None:
        for module in self.modules():
            if module is not self and isinstance(module, PreTrainedModel):
                enable_hf_checkpointing(module)
                return

    @staticmethod
    def _flatten_cameras(pixel_values: torch.Tensor) -> tuple[torch.Tensor, int, int]:
        b, c = pixel_values.shape[:2]
        return pixel_values.reshape(b * c, *pixel_values.shape[2:]), b, c


def enable_hf_checkpointing(model: nn.Module) -> None:
    """Activation checkpointing of a transformers model (non-reentrant), across transformers versions."""
    options = {"use_reentrant": False}
    if hasattr(model, "activation_checkpointing_enable"):
        model.activation_checkpointing_enable(activation_checkpointing_kwargs=options)
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=options)


def average_last_layers(hidden_states: tuple, num_layers: int) -> torch.Tensor:
    """Mean of the last `num_layers` hidden-state tensors (1 = last layer)."""
    return torch.stack(hidden_states[-num_layers:], dim=0).mean(dim=0)


def image_features_tensor(output) -> torch.Tensor:
    """Normalise the many shapes of HF `get_image_features` outputs into (N_images, T, D)."""
    value: Optional[object] = output
    if hasattr(output, "pooler_output") and output.pooler_output is not None:
        value = output.pooler_output
    elif hasattr(output, "last_hidden_state"):
        value = output.last_hidden_state
    if isinstance(value, (list, tuple)):
        value = torch.stack(list(value), dim=0)
    if not torch.is_tensor(value) or value.dim() != 3:
        raise TypeError(f"unsupported image feature output {type(output).__name__}")
    return value
