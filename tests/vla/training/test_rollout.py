"""Failed scores are masked (never 0); the rollout buffer round-trips through a checkpoint file."""

from __future__ import annotations

import numpy as np
import pytest

from vla.training.evaluation import format_table
from vla.training.metrics import finalize, kinematic_flags, rollout_statistics
from vla.training.rewards import call_reward
from vla.training.errors import RewardError
from vla.training.rollout import RolloutBuffer, score_candidates

from tests.vla.training.helpers import DistanceReward, make_items


def _buffer(items, reward, k=4, seed=0):
    rng = np.random.default_rng(seed)
    targets = np.stack([it["target_poses"] for it in items])
    poses = (targets[:, None] + rng.normal(0, 2.0, size=(len(items), k, 8, 3))).astype(np.float32)
    tokens = [it["token"] for it in items]
    scored, human, human_valid = score_candidates(reward, tokens, poses, targets)
    buf = RolloutBuffer(0, tokens, np.arange(len(items)), poses, scored.scores, scored.valid, scored.sub_metrics,
                        human, human_valid, errors=scored.errors)
    return buf


def test_failed_scenes_are_masked_not_zero(tmp_path):
    items = make_items(5)
    bad = items[1]["token"]
    buf = _buffer(items, DistanceReward(items, fail=[bad]))
    buf.compute_advantages("G1")
    assert not buf.valid[1].any() and np.isnan(buf.rewards[1]).all()
    assert not buf.usable[1].any() and (buf.advantages[1] == 0).all()
    assert 1 not in buf.trainable_rows()
    assert bad in buf.errors
    stats = finalize(rollout_statistics(buf.rewards, buf.valid, buf.sub_metrics, buf.poses, buf.advantages,
                                        buf.usable, beta=1.0))
    assert stats["rollout/masked_frac"] == pytest.approx(0.2)
    # the group means ignore the failed scene instead of counting it as 0
    assert stats["rollout/PDMS"] == pytest.approx(np.nanmean(buf.rewards))
    buf.compute_advantages("G4")  # the logged trajectory was scored alongside
    assert buf.usable[0].all() and not buf.usable[1].any()


def test_buffer_round_trip(tmp_path):
    items = make_items(3)
    buf = _buffer(items, DistanceReward(items))
    buf.compute_advantages("G3")
    path = tmp_path / "buf.npz"
    buf.save(path)
    back = RolloutBuffer.load(path)
    assert back.tokens == buf.tokens
    for name in ("poses", "rewards", "valid", "advantages", "usable", "human_rewards"):
        np.testing.assert_array_equal(getattr(back, name), getattr(buf, name))
    assert back.sub_metrics.keys() == buf.sub_metrics.keys()


def test_reward_shape_errors():
    items = make_items(2)
    with pytest.raises(RewardError, match="poses"):
        call_reward(DistanceReward(items), [items[0]["token"]], np.zeros((2, 3, 8, 3)))


def test_kinematic_flags_and_table():
    poses = np.zeros((1, 2, 8, 3))
    poses[0, 0, :, 0] = np.arange(1, 9)
    poses[0, 1, :, 0] = np.arange(1, 9)
    poses[0, 1, -1, 0] = 5.0  # jumps back at the final waypoint
    flags = kinematic_flags(poses)
    assert flags["final_backward"].tolist() == [[False, True]]
    table = format_table({"IL": {"NC": 1.0, "PDMS": 0.5, "failed": 0.0}},
                         columns=("NC", "DAC", "DDC", "TTC", "C", "EP", "PDMS"))
    assert "| IL | 100.0 | - |" in table and "50.0" in table
