"""Audit: time arithmetic of the tracker input and of history comfort (spec §4 step 3-4, §7.8).

The devkit converts the start time with ``time_us * 1e-6`` (TimePoint.time_s), adds float offsets and truncates
``int(t * 1e6)``. For real log timestamps (~1.6e15 µs) dividing by 1e6 instead moves about a third of the
10 Hz samples by 1 µs. The reference grids below are written from that description, one value at a time.
"""

from __future__ import annotations

import numpy as np
import pytest

from navsim_eval.pdm.comfort import interpolate_past_states
from navsim_eval.pdm.trajectory import sample_time_us, submission_time_us

REAL_TIMESTAMPS = [1_624_000_000_123_457, 1_631_234_567_890_123, 1_617_955_678_901_234, 1_620_054_001_500_000,
                   1_600_000_000_000_001, 1_634_567_890_000_999]


def _devkit_sample_times(t_us: int) -> list[int]:
    times_s = np.arange(0.0, 4.0 + 0.1, 0.1) + t_us * 1e-6
    return [int(t * 1e6) for t in times_s]


def _devkit_submission_times(t_us: int) -> list[int]:
    offsets = np.arange(0.0, 4.0, 0.5) + 0.5
    return [t_us] + [int(t * 1e6) for t in (offsets + t_us * 1e-6)]


@pytest.mark.parametrize("t_us", REAL_TIMESTAMPS)
def test_sample_and_submission_times_follow_the_devkit(t_us):
    assert sample_time_us(t_us).tolist() == _devkit_sample_times(t_us)
    assert submission_time_us(t_us).tolist() == _devkit_submission_times(t_us)


def test_some_real_timestamps_differ_between_division_and_multiplication():
    """Guards the premise of the test above: the two conversions are not interchangeable."""
    rng = np.random.default_rng(0)
    stamps = rng.integers(1_500_000_000_000_000, 1_700_000_000_000_000, 200)
    differ = [t for t in stamps if [int(x * 1e6) for x in np.arange(41) * 0.1 + int(t) / 1e6]
              != _devkit_sample_times(int(t))]
    assert differ
    for t in differ[:20]:
        assert sample_time_us(int(t)).tolist() == _devkit_sample_times(int(t))


@pytest.mark.parametrize("span_us, expected", [(1_500_000, 14), (1_499_990, 14), (1_500_010, 15), (1_400_000, 13)])
def test_history_grid_is_integer_microseconds(span_us, expected):
    """Samples every 100,000 µs from the first logged state, the last one dropped (§7.8)."""
    times = np.array([-span_us, -span_us * 2 // 3, -span_us // 3, 0], dtype=np.int64)
    states = np.zeros((4, 11))
    states[:, 0] = times * 1e-5  # x grows 10 m/s
    states[:, 2] = np.array([3.1, -3.1, 3.0, -3.05])  # headings crossing ±pi
    past = interpolate_past_states(states, times)
    assert len(past) == expected
    grid = np.arange(times[0], times[-1], 100_000, dtype=np.int64)[:-1]
    np.testing.assert_allclose(past[:, 0], grid * 1e-5, atol=1e-9)
    assert np.all(np.abs(past[:, 2]) <= np.pi)
    assert np.all(np.abs(np.angle(np.exp(1j * (past[:, 2] - np.pi)))) < 0.2)  # stays near ±pi, no 2pi sweep
