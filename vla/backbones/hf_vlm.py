"""Any HF vision-language model loadable with the Auto classes (LLaVA-style, InternVL, ...).

The VLM's own vision encoder + projector (``get_image_features``) embeds each camera; the image tokens of
all views are placed before the prompt embeddings and run through the VLM's language model. The context
is the mean of the last ``context_layers`` hidden states. The LM head is not used.
"""

from __future__ import annotations

import torch
from transformers import AutoConfig, AutoModel

from vla.backbones.base import (
    PRETRAINED_FIELD, Context, VisionLanguageBackbone, average_last_layers, image_features_tensor,
)
from vla.configuration_dipole import BackboneSettings, ProcessorSettings
from vla.hub import resolve_pretrained


def config_from_dict(config_dict: dict):
    """Rebuild a transformers config from its dict (needs the ``model_type`` key)."""
    values = dict(config_dict)
    model_type = values.pop("model_type")
    return AutoConfig.for_model(model_type, **values)


def _reads_vision_hidden_states(config) -> bool:
    """LLaVA-family models take image features from ``hidden_states[vision_feature_layer]`` of the tower."""
    return isinstance(getattr(config, "vision_feature_layer", None), int)


def without_unused_vision_parts(config) -> None:
    """Configure the vision tower so that nothing is built that never reaches the context.

    SigLIP towers build an attention-pool head (``vision_use_head``) that VLMs never call; LLaVA-family
    models read ``hidden_states[vision_feature_layer]``, so encoder layers after that one are never run
    into the output. Unused weights get no gradient (DDP refuses them) and cost memory and optimizer state.
    """
    vision = getattr(config, "vision_config", None)
    if vision is None:
        return
    if getattr(vision, "vision_use_head", False):
        vision.vision_use_head = False
    layer = getattr(config, "vision_feature_layer", None)
    layers = getattr(vision, "num_hidden_layers", None)
    if _reads_vision_hidden_states(config) and layers is not None and -layers <= layer < -1:
        vision.num_hidden_layers = layers + 1 + layer  # hidden_states[0] is the embedding output
        config.vision_feature_layer = -1


def drop_unused_post_layernorm(model) -> None:
    """LLaVA-family models read the tower's hidden states, never its ``post_layernorm`` output: drop it."""
    if not _reads_vision_hidden_states(model.config):
        return
    tower = getattr(model, "vision_tower", None)
    for owner in (tower, getattr(tower, "vision_model", None)):
        if owner is not None and isinstance(getattr(owner, "post_layernorm", None), torch.nn.Module):
            owner.post_layernorm = torch.nn.Identity()


class HFVLMBackbone(VisionLanguageBackbone):
    def __init__(self, settings: BackboneSettings, processor: ProcessorSettings, load_pretrained: bool = False):
        super().__init__(settings, processor)
        pretrained = resolve_pretrained(settings.pretrained, PRETRAINED_FIELD) if load_pretrained else None
        config = AutoConfig.from_pretrained(pretrained) if load_pretrained else config_from_dict(settings.model_config)
        without_unused_vision_parts(config)
        if load_pretrained:
            model = AutoModel.from_pretrained(pretrained, config=config)
        else:
            model = AutoModel.from_config(config)
        drop_unused_post_layernorm(model)
        self.model = model
        text_config = model.config.get_text_config()
        self.hidden_size = text_config.hidden_size
        self.vocab_size = text_config.vocab_size

    def resolved_model_config(self) -> dict:
        return self.model.config.to_dict()

    def language_model(self):
        lm = getattr(self.model, "language_model", None)
        return lm if lm is not None else self.model.get_decoder()

    def forward(self, pixel_values: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> Context:
        images, b, c = self._flatten_cameras(pixel_values)
        image_tokens = image_features_tensor(self.model.get_image_features(pixel_values=images))
        image_tokens = image_tokens.reshape(b, c * image_tokens.shape[1], image_tokens.shape[2])
        text = self.model.get_input_embeddings()(input_ids)
        embeds = torch.cat([image_tokens.to(text.dtype), text], dim=1)
        mask = torch.cat([torch.ones(image_tokens.shape[:2], dtype=attention_mask.dtype, device=attention_mask.device),
                          attention_mask], dim=1)
        out = self.language_model()(inputs_embeds=embeds, attention_mask=mask, output_hidden_states=True)
        return Context(average_last_layers(out.hidden_states, self.settings.context_layers), mask.bool())
