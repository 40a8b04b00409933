"""Any HF vision-language model loadable with the Auto classes (LLaVA-style, InternVL, ...).

The VLM's own vision encoder + projector (``get_image_features``) embeds each camera; the image tokens of
all views are placed before the prompt embeddings and run through the VLM's language model. The context
is the mean of the last ``context_layers`` hidden states. The LM head is not used.
"""

from __future__ import annotations

import torch
from transformers import AutoConfig, AutoModel

from vla.backbones.base import Context, VisionLanguageBackbone, average_last_layers, image_features_tensor
from vla.configuration_dipole import BackboneSettings, ProcessorSettings


def config_from_dict(config_dict: dict):
    """Rebuild a transformers config from its dict (needs the ``model_type`` key)."""
    values = dict(config_dict)
    model_type = values.pop("model_type")
    return AutoConfig.for_model(model_type, **values)


class HFVLMBackbone(VisionLanguageBackbone):
    def __init__(self, settings: BackboneSettings, processor: ProcessorSettings, load_pretrained: bool = False):
        super().__init__(settings, processor)
        if load_pretrained:
            model = AutoModel.from_pretrained(settings.pretrained)
        else:
            model = AutoModel.from_config(config_from_dict(settings.model_config))
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
