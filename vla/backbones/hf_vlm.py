"""Any HF vision-language model loadable with the Auto classes (LLaVA-style, InternVL, Qwen2.5-VL, SmolVLM /
Idefics3, LLaVA-OneVision, ...).

The VLM's own vision encoder + projector (``get_image_features``) embeds each camera. The sequence is built as
the VLM builds it: each camera's image placeholder tokens (between the family's marker tokens, if it has
them), then the prompt; the placeholders' embeddings are replaced by the image features, and families with
multimodal rotary positions (Qwen2-VL / Qwen2.5-VL) get them from the model's own ``get_rope_index``. The
context is the mean of the last ``context_layers`` hidden states of the language model; the LM head is not used.

Image inputs: :class:`~vla.processing_dipole.DipoleProcessor` delivers fixed-size, normalised images per
camera. Families whose vision tower takes more than a batch of such images (:data:`FAMILY_IMAGE_PROCESSORS`)
get them laid out by the family's own transformers image processor, built from the model config (resizing,
rescaling and normalisation off: the DipoleProcessor did those), and every output that ``get_image_features``
accepts is passed on (``image_grid_thw``, ``pixel_attention_mask``, ``image_sizes``, ...).
"""

from __future__ import annotations

import inspect
from typing import Callable, Optional

import torch
from transformers import (
    AutoConfig,
    AutoModel,
    Idefics3ImageProcessor,
    LlavaOnevisionImageProcessor,
    Qwen2VLImageProcessor,
)

from vla.backbones.base import (
    PRETRAINED_FIELD, Context, VisionLanguageBackbone, average_last_layers, image_features_tensor,
)
from vla.configuration_dipole import BackboneSettings, ProcessorSettings
from vla.errors import ModelConfigError, VLAInputError
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


def _require_square_size(config, image_size, family: str) -> int:
    size = config.vision_config.image_size
    size = size if isinstance(size, int) else size[0]
    if tuple(image_size) != (size, size):
        raise ModelConfigError("processor.image_size", f"{family} takes each camera at its vision tower's "
                                                       f"size: set it to [{size}, {size}], got {list(image_size)}")
    return size


def qwen_vl_image_processor(config, image_size):
    """Qwen2-VL / Qwen2.5-VL: each camera becomes its grid of flattened patches (the frame repeated over the
    temporal patch) + ``image_grid_thw``; (H / 28) x (W / 28) tokens after the 2 x 2 patch merge."""
    vision = config.vision_config
    step = vision.patch_size * vision.spatial_merge_size
    if image_size[0] % step or image_size[1] % step:
        raise ModelConfigError("processor.image_size", f"Qwen-VL needs multiples of patch x merge = {step} px, "
                                                       f"got {list(image_size)}")
    return Qwen2VLImageProcessor(patch_size=vision.patch_size, temporal_patch_size=vision.temporal_patch_size,
                                 merge_size=vision.spatial_merge_size)


def idefics3_image_processor(config, image_size):
    """Idefics3 / SmolVLM: each camera is one tile at the vision tower's size (no image splitting: the
    DipoleProcessor already resized it), 5-D pixels + ``pixel_attention_mask``; (size / patch)^2 /
    scale_factor^2 tokens."""
    size = _require_square_size(config, image_size, "Idefics3")
    return Idefics3ImageProcessor(do_image_splitting=False, size={"longest_edge": size},
                                  max_image_size={"longest_edge": size})


def llava_onevision_image_processor(config, image_size):
    """LLaVA-OneVision: anyres at the tower's size picks the 1 x 1 grid, so each camera is the base image +
    one tile (``image_sizes`` = its size); tokens = base + unpadded tile + one newline per row."""
    size = _require_square_size(config, image_size, "LLaVA-OneVision")
    return LlavaOnevisionImageProcessor(size={"height": size, "width": size},
                                        crop_size={"height": size, "width": size},
                                        image_grid_pinpoints=config.image_grid_pinpoints)


FAMILY_IMAGE_PROCESSORS: dict[str, Callable] = {
    "qwen2_vl": qwen_vl_image_processor,
    "qwen2_5_vl": qwen_vl_image_processor,
    "idefics3": idefics3_image_processor,
    "llava_onevision": llava_onevision_image_processor,
}
"""``model_type`` -> builder of the family's image processor (config, processor.image_size); the other
families take the batch of camera images as ``pixel_values`` directly."""
NESTED_IMAGE_FAMILIES = ("idefics3",)
"""Families whose processor takes one list of images per sample (each camera is its own sample here)."""
IMAGE_MARKER_TOKENS = {"qwen2_vl": ("vision_start_token_id", "vision_end_token_id"),
                       "qwen2_5_vl": ("vision_start_token_id", "vision_end_token_id")}
"""Config fields of the tokens that open / close each image in the family's chat template."""
IMAGE_TOKEN_TYPE = 1  # mm_token_type_ids: 0 text, 1 image (transformers' multimodal rotary positions)


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
        model_type = model.config.model_type
        builder = FAMILY_IMAGE_PROCESSORS.get(model_type)
        self.image_processor = None if builder is None else builder(model.config, processor.image_size)
        self._nested_images = model_type in NESTED_IMAGE_FAMILIES
        self._feature_kwargs = set(inspect.signature(model.get_image_features).parameters)
        self.image_token_id = getattr(model.config, "image_token_id", None)
        if self.image_token_id is None:
            raise ModelConfigError("backbone.model_config", f"{model_type} config has no image_token_id")
        self.image_markers = tuple(getattr(model.config, field) for field in IMAGE_MARKER_TOKENS.get(model_type, ()))

    def resolved_model_config(self) -> dict:
        return self.model.config.to_dict()

    def language_model(self):
        lm = getattr(self.model, "language_model", None)
        return lm if lm is not None else self.model.get_decoder()

    def image_inputs(self, images: torch.Tensor) -> dict:
        """``get_image_features`` keyword arguments for a batch (N, 3, H, W) of normalised camera images."""
        if self.image_processor is None:
            return {"pixel_values": images}
        frames = [image[None] if self._nested_images else image for image in images]
        out = self.image_processor(images=frames, do_resize=False, do_rescale=False, do_normalize=False,
                                   return_tensors="pt")
        inputs = {}
        for key, value in out.items():
            if key in self._feature_kwargs and torch.is_tensor(value):
                value = value.to(images.device)
                inputs[key] = value.to(images.dtype) if value.is_floating_point() else value
        return inputs

    def image_token_row(self, num_features: int, device) -> torch.Tensor:
        """Token ids of one camera: [open marker] + image placeholder x num_features + [close marker]."""
        opening, closing = (self.image_markers[:1], self.image_markers[1:]) if self.image_markers else ((), ())
        ids = list(opening) + [self.image_token_id] * num_features + list(closing)
        return torch.tensor(ids, dtype=torch.long, device=device)

    def forward(self, pixel_values: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> Context:
        images, b, c = self._flatten_cameras(pixel_values)
        image_inputs = self.image_inputs(images)
        features = image_features_tensor(self.model.get_image_features(**image_inputs))  # (B*C, N, D)
        if features.shape[0] != b * c:
            raise VLAInputError("pixel_values", f"{b * c} camera images gave {features.shape[0]} feature sets "
                                                "(an all-zero image counts as padding in some VLMs)")
        camera_ids = self.image_token_row(features.shape[1], input_ids.device).repeat(c)
        ids = torch.cat([camera_ids.expand(b, -1), input_ids], dim=1)
        is_image = ids == self.image_token_id
        if (input_ids == self.image_token_id).any():
            raise VLAInputError("input_ids", f"the prompt holds the image token id {self.image_token_id}")
        embeds = self.model.get_input_embeddings()(ids)
        embeds = embeds.masked_scatter(is_image[..., None], features.to(embeds.dtype))
        mask = torch.cat([torch.ones(camera_ids.shape, dtype=attention_mask.dtype,
                                     device=attention_mask.device).expand(b, -1), attention_mask], dim=1)
        out = self.language_model()(inputs_embeds=embeds, attention_mask=mask,
                                    position_ids=self.position_ids(ids, is_image, mask, image_inputs),
                                    output_hidden_states=True)
        return Context(average_last_layers(out.hidden_states, self.settings.context_layers), mask.bool())

    def position_ids(self, ids: torch.Tensor, is_image: torch.Tensor, mask: torch.Tensor,
                     image_inputs: dict) -> Optional[torch.Tensor]:
        """The model's own multimodal rotary positions (Qwen-VL: 3 x (B, L)); None = the LM's 1-D positions."""
        if not hasattr(self.model, "get_rope_index"):
            return None
        positions, _ = self.model.get_rope_index(input_ids=ids, mm_token_type_ids=is_image.int() * IMAGE_TOKEN_TYPE,
                                                 image_grid_thw=image_inputs.get("image_grid_thw"),
                                                 attention_mask=mask)
        return positions
