"""vla.bev_decoder: the auxiliary BEV decoder's shapes, its class-balanced loss and the model's BEV settings."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vla import DipoleVLAConfig
from vla.backbones.base import Context
from vla.bev_decoder import BevDecoder
from vla.configuration_dipole import BevSettings
from vla.errors import ModelConfigError


def test_decoder_maps_context_to_one_logit_per_cell_and_channel():
    decoder = BevDecoder(BevSettings(cells=5, hidden_size=16), context_size=12)
    tokens, mask = torch.randn(3, 7, 12), torch.ones(3, 7, dtype=torch.bool)
    mask[0, 4:] = False
    assert decoder(tokens, mask).shape == (3, 2, 5, 5)
    with pytest.raises(ValueError, match="bev_target"):
        decoder.loss(Context(tokens, mask), torch.zeros(3, 1, 5, 5))


def test_loss_weighs_occupied_and_free_cells_half_each():
    decoder = BevDecoder(BevSettings(cells=4, hidden_size=8, channels=["objects"]), context_size=6)
    tokens, mask = torch.randn(2, 3, 6), torch.ones(2, 3, dtype=torch.bool)
    target = torch.zeros(2, 1, 4, 4)
    target[0, 0, 0, 0] = 1  # one occupied cell out of 32
    logits = decoder(tokens, mask)
    bce = torch.nn.functional.binary_cross_entropy_with_logits(logits, target, reduction="none")
    expected = 0.5 * bce[target == 1].mean() + 0.5 * bce[target == 0].mean()
    assert torch.allclose(decoder.loss(Context(tokens, mask), target), expected)
    assert not torch.allclose(expected, bce.mean())  # a plain mean would let the one occupied cell vanish


def test_cell_centres_cover_the_grid_row_major_from_behind():
    centers = BevSettings(cells=4, cell_size_m=2.0, behind_m=2.0).cell_centers()
    np.testing.assert_allclose(centers[:4], [[-1, -3], [-1, -1], [-1, 1], [-1, 3]])
    np.testing.assert_allclose(centers[-1], [5, 3])


@pytest.mark.parametrize("bev, field", [({"cells": -1}, "bev.cells"), ({"cells": 4, "channels": ["lanes"]}, "bev.channels"),
                                        ({"cells": 4, "channels": []}, "bev.channels")])
def test_bad_bev_settings_name_the_field(bev, field):
    from vla.presets import build_config

    base = build_config("tiny-florence2").to_dict()
    base["bev"] = bev
    with pytest.raises(ModelConfigError, match=field):
        DipoleVLAConfig.from_dict(base)


def test_extend_context_appends_one_valid_token_per_cell():
    decoder = BevDecoder(BevSettings(cells=3, hidden_size=8, feed_head=True), context_size=6)
    tokens, mask = torch.randn(2, 5, 6), torch.ones(2, 5, dtype=torch.bool)
    mask[1, 3:] = False
    extended = decoder.extend_context(Context(tokens, mask))
    assert extended.tokens.shape == (2, 14, 6) and torch.equal(extended.tokens[:, :5], tokens)
    assert torch.equal(extended.mask[:, :5], mask) and extended.mask[:, 5:].all()
    assert torch.allclose(decoder.loss(Context(tokens, mask), torch.ones(2, 2, 3, 3)),
                          decoder.loss(extended, torch.ones(2, 2, 3, 3)))
    with pytest.raises(ValueError, match="feed_head"):
        BevDecoder(BevSettings(cells=3, hidden_size=8), context_size=6).extend_context(Context(tokens, mask))
