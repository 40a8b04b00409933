"""vla.bev_decoder: the auxiliary BEV decoder's shapes, its class-balanced loss and the model's BEV settings."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from vla import DipoleVLAConfig
from vla.backbones.base import Context
from vla.bev_decoder import BevDecoder, BevGrid, PoseGridReader
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


def test_pose_grid_reader_reads_at_and_beside_each_pose_in_its_own_frame():
    settings = BevSettings(cells=4, cell_size_m=3.0, behind_m=8.0, channels=["drivable_area"])
    reader = PoseGridReader(settings, hidden_size=8)
    # cell centres: x -6.5 / -3.5 / -0.5 / 2.5 (rows), y -4.5 / -1.5 / 1.5 / 4.5 (columns); one hot cell at (-0.5, 1.5)
    hot = torch.zeros(2, 1, 4, 4)
    hot[0, 0, 2, 2] = 1.0
    identity = BevGrid(hot, torch.zeros(4), torch.ones(4))
    left = math.pi / 2
    poses = torch.tensor([[-0.5, 1.5, 0.0],  # on it: the pose's own point
                          [-3.5, 1.5, 0.0],  # one cell behind it, facing it: the point ahead
                          [-0.5, -1.5, left],  # to its right, facing left (+y): the point ahead
                          [-3.5, 1.5, -left],  # behind it, facing right (-y): the point to the left
                          [-0.5, 4.5, 0.0]]  # to its left, facing forward: the point to the right
                         + [[-0.5, 1.5, 0.0]] * 4 + [[60.0, 0.0, 0.0]])  # rows 5-9 read the empty second grid
    features = torch.stack([poses[:, 0], poses[:, 1], torch.cos(poses[:, 2]), torch.sin(poses[:, 2])], -1)
    read = reader.read(features[:, None], identity)[:, 0]  # (10 rows, 4 points): at, ahead, left, right
    expected = torch.zeros(10, 4)
    expected[0, 0] = expected[1, 1] = expected[2, 1] = expected[3, 2] = expected[4, 3] = 1.0
    assert torch.allclose(read, expected, atol=1e-5)
    # a head gains the reader without changing its output: the embedding starts at zero
    assert torch.equal(reader(features[:, None], identity), torch.zeros(10, 1, 8))
    with pytest.raises(ValueError, match="multiple"):
        reader.read(features[:3, None], identity)
