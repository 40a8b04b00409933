"""Florence-2 backbone (transformers' native Florence2 classes): DaViT per camera + BART encoder.

As in DP-VLA (specs/dipole.md §7): the vision tower runs on each view, the projected image tokens of all
views and the prompt token embeddings form one sequence for the language **encoder**; its last hidden state
is the context. The language decoder and LM head are dropped.
"""

from __future__ import annotations

import torch
from transformers import Florence2Config, Florence2ForConditionalGeneration
from transformers.models.florence2.modeling_florence2 import Florence2Model

from vla.backbones.base import PRETRAINED_FIELD, Context, VisionLanguageBackbone, image_features_tensor
from vla.configuration_dipole import BackboneSettings, ProcessorSettings
from vla.hub import resolve_pretrained

FLORENCE2_LARGE_ID = "microsoft/Florence-2-large"


class Florence2Backbone(VisionLanguageBackbone):
    def __init__(self, settings: BackboneSettings, processor: ProcessorSettings, load_pretrained: bool = False):
        super().__init__(settings, processor)
        if load_pretrained:
            full = Florence2ForConditionalGeneration.from_pretrained(
                resolve_pretrained(settings.pretrained, PRETRAINED_FIELD))
            model = full.model
            del full
        else:
            model = Florence2Model(Florence2Config.from_dict(dict(settings.model_config)))
        # Only the encoder produces the context: drop the decoder (and the LM head above). The encoder is fed
        # embeddings from the shared table, so its tied alias of that table goes too (no tied keys remain).
        language_model = model.language_model
        del language_model.decoder
        language_model.encoder.embed_tokens = None
        language_model._tied_weights_keys = {}
        model._tied_weights_keys = {}
        self.model = model
        self.hidden_size = model.config.text_config.d_model
        self.vocab_size = model.config.text_config.vocab_size

    def resolved_model_config(self) -> dict:
        return self.model.config.to_dict()

    def forward(self, pixel_values: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> Context:
        images, b, c = self._flatten_cameras(pixel_values)
        image_tokens = image_features_tensor(self.model.get_image_features(images))  # (B*C, N, D)
        image_tokens = image_tokens.reshape(b, c * image_tokens.shape[1], image_tokens.shape[2])
        text = self.model.get_input_embeddings()(input_ids)
        embeds = torch.cat([image_tokens.to(text.dtype), text], dim=1)
        mask = torch.cat([torch.ones(image_tokens.shape[:2], dtype=attention_mask.dtype, device=attention_mask.device),
                          attention_mask], dim=1)
        hidden = self.model.language_model.get_encoder()(inputs_embeds=embeds, attention_mask=mask).last_hidden_state
        return Context(hidden, mask.bool())
