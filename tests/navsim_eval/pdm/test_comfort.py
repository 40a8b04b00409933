"""Comfort metrics C, HC, EC (spec §7.7-7.11) and Savitzky-Golay semantics."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.signal import savgol_filter

from navsim_eval.pdm.comfort import comfort, extended_comfort, history_comfort, savgol
from tests.navsim_eval.pdm.scorer_golden import golden_rows, intermediates, scenes_info


@pytest.mark.parametrize("window, polyorder, deriv", [(8, 2, 0), (8, 2, 1), (15, 2, 1), (41, 2, 0), (5, 3, 2),
                                                      (5, 2, 1), (5, 2, 2), (7, 2, 0)])
@pytest.mark.parametrize("length", [36, 41, 55])
def test_savgol_equals_scipy_interp_mode(window, polyorder, deriv, length):
    rng = np.random.default_rng(window * 100 + length)
    series = rng.normal(size=(4, length)).cumsum(axis=1)
    expected = savgol_filter(series, min(window, length), polyorder, deriv=deriv, delta=0.1, axis=-1, mode="interp")
    np.testing.assert_allclose(savgol(series, window, polyorder, deriv, 0.1), expected, atol=1e-9)


def test_even_window_is_evaluated_half_a_sample_later():
    """A linear ramp filtered with an even window is shifted by half a sample in the interior (spec §7.11)."""
    ramp = np.arange(20, dtype=float)
    filtered = savgol(ramp, 8, 2)
    np.testing.assert_allclose(filtered[4:-4], ramp[4:-4] + 0.5, atol=1e-9)
    np.testing.assert_allclose(filtered[:4], ramp[:4], atol=1e-9)


def test_comfort_metrics_match_golden(golden_dir):
    v1 = golden_rows(golden_dir, "v1")
    v2 = golden_rows(golden_dir, "v2")
    checked = 0
    for log in scenes_info(golden_dir)["logs"].values():
        previous = None
        for token in log["tokens"]:
            data = intermediates(golden_dir, token)
            names = list(data["trajectory_names"])
            c = comfort(data["v1_sim_states"])
            hc = history_comfort(data["v2_sim_states"], data["v2_past_human_states"], data["v2_past_human_time_us"])
            ec = None if previous is None else extended_comfort(data["v2_sim_states"], previous, 5)
            for i, name in enumerate(names):
                assert c[i] == float(v1[(token, name)]["comfort"]), (token, name)
                assert hc[i] == float(v2[(token, name)]["raw_history_comfort"]), (token, name)
                golden_ec = v2[(token, name)]["two_frame_extended_comfort"]
                if ec is None:
                    assert golden_ec == ""
                else:
                    assert ec[i] == float(golden_ec), (token, name)
                checked += 1
            previous = data["v2_sim_states"]
    assert checked == len(v1)


def test_history_comfort_without_past_is_one():
    states = np.zeros((3, 41, 11))
    states[:, :, 5] = np.array([[3.0], [-5.0], [0.0]])  # above 2.40, below -4.05, calm
    np.testing.assert_array_equal(history_comfort(states, None, None), np.ones(3))
    np.testing.assert_array_equal(comfort(states), [0.0, 0.0, 1.0])


def test_identical_overlap_is_extended_comfortable():
    t = np.arange(46) * 0.1
    states = np.zeros((1, 46, 11))
    states[0, :, 2] = 0.05 * t
    states[0, :, 5] = np.sin(t)
    # the previous scene started 0.5 s (5 steps) earlier: previous[5:41] overlaps current[0:36]
    assert extended_comfort(states[:, 5:46], states[:, :41], 5)[0] == 1.0
    shaken = states.copy()
    shaken[0, :, 2] += 0.3 * np.sin(20 * t)
    assert extended_comfort(states[:, 5:46], shaken[:, :41], 5)[0] == 0.0
