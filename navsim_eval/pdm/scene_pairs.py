"""Pairs of consecutive scenes for v2 two-frame extended comfort (spec pdm_score.md §7.10).

One implementation serves the scoring service, the evaluation harness and the official backend: each passes
(token, log name, start time [µs]) triples of the scenes it scored.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from navsim_eval.pdm.constants import EC_MAX_PREVIOUS_GAP_S, SIM_DT, is_synthetic_token
from navsim_eval.pdm.trajectory import time_us_to_s


@dataclass(frozen=True)
class PreviousScene:
    """The scene scored just before another one of the same log, and the gap between their start times."""

    token: str
    gap_s: float

    @property
    def overlap_offset(self) -> int:
        """Steps of the previous scene's simulation before the current one starts: round(Δt / 0.1) (§7.10)."""
        return overlap_offset(self.gap_s)


def overlap_offset(gap_s: float) -> int:
    """Index in the previous scene's 10 Hz simulation where the current scene's starts (§7.10)."""
    return int(round(gap_s / SIM_DT))


def previous_scenes(scenes: Iterable[tuple[str, str, int]]) -> dict[str, PreviousScene]:
    """token -> its predecessor among `scenes` (token, log name, start time µs): the adjacent earlier scene of the
    same log when 0 < Δt ≤ 0.55 s (§7.10).

    Scenes of a log are sorted by (start time, token). Synthetic (second-stage) scenes are neither paired nor
    predecessors. The gap is taken between start times in seconds as the devkit's rows hold them
    (``time_us * 1e-6``).
    """
    by_log: dict[str, list[tuple[int, str]]] = {}
    for token, log_name, start_us in scenes:
        if not is_synthetic_token(token):
            by_log.setdefault(str(log_name), []).append((int(start_us), str(token)))
    previous: dict[str, PreviousScene] = {}
    for members in by_log.values():
        members.sort()
        for (t_earlier, earlier), (t_later, later) in zip(members, members[1:]):
            gap_s = time_us_to_s(t_later) - time_us_to_s(t_earlier)
            if 0.0 < gap_s <= EC_MAX_PREVIOUS_GAP_S:
                previous[later] = PreviousScene(earlier, gap_s)
    return previous


__all__ = ["PreviousScene", "overlap_offset", "previous_scenes"]
