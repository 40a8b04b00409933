"""Pairs of consecutive scenes for v2 two-frame extended comfort (spec pdm_score.md §7.10).

One implementation serves the scoring service, the evaluation harness and the official backend. One-stage runs
pair the scenes of a log by start time (:func:`previous_scenes`); two-stage runs take the pairs of the split's
mapping (:func:`two_stage_pairs`): a stage-1 scene with its previous frame, and each stage-2 scene of the
stage-1 scene with the stage-2 scene of the previous frame made with the same perturbation. Both scenes of a
two-stage pair get the pair's EC (navsim@main ``SceneAggregator.aggregate_scores``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterable, Optional, Sequence

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


@dataclass
class ComfortPairs:
    """Which scenes' simulations each scene's EC compares.

    ``previous``: scene -> the earlier scene of its pair (EC is computed between the two). ``followers``:
    earlier scene of a two-stage pair -> the later scene whose EC it takes. ``invalid``: scene -> why its pair
    cannot give EC (an error of that scene's rows, never a silent default).
    """

    previous: dict[str, PreviousScene] = field(default_factory=dict)
    followers: dict[str, str] = field(default_factory=dict)
    invalid: dict[str, str] = field(default_factory=dict)

    def pair_of(self, token: str) -> Optional[tuple[str, PreviousScene]]:
        """(later scene, its PreviousScene) of the pair that gives ``token`` its EC; None: EC undefined."""
        if token in self.previous:
            return token, self.previous[token]
        if token in self.followers:
            later = self.followers[token]
            return later, self.previous[later]
        return None

    def partner(self, token: str) -> Optional[str]:
        """The other scene of ``token``'s pair, or None."""
        pair = self.pair_of(token)
        if pair is None:
            return None
        later, previous = pair
        return previous.token if later == token else later

    def update(self, other: "ComfortPairs") -> None:
        """Add ``other``'s pairs (two-stage pairs over one-stage ones): a scene paired in both takes ``other``'s."""
        for token in other.previous:
            self.followers.pop(token, None)
        self.previous.update(other.previous)
        for earlier, later in other.followers.items():
            self.previous.pop(earlier, None)
            self.followers[earlier] = later
        self.invalid.update(other.invalid)


def two_stage_pairs(links: Iterable, stage: int, start_us: Callable[[str], int],
                    scenes: Optional[Sequence[str]] = None) -> ComfortPairs:
    """The extended-comfort pairs of one stage of a two-stage split's links (``TwoStageLink``s).

    Stage 1: (stage-1 scene, its previous frame); stage 2: each ``second_stage_pairs`` entry (stage-2 scene of the
    stage-1 scene, stage-2 scene of the previous frame). The gap is the difference of the two scenes' start times
    ``start_us`` and must lie in (0, 0.55) s, as the devkit asserts; a pair outside it, or whose start time cannot
    be read, makes both scenes ``invalid``. A stage-2 entry with one token has no partner (EC undefined), as have
    links without a previous frame. ``scenes``: keep only pairs with a scene among them (this rank's share).
    """
    wanted = set(scenes) if scenes is not None else None
    candidates: list[tuple[str, str]] = []
    for link in links:
        if stage == 1:
            if link.previous_token is not None:
                candidates.append((link.first_stage_token, link.previous_token))
        else:
            candidates += [(pair[0], pair[1]) for pair in link.second_stage_pairs if len(pair) > 1]
    pairs = ComfortPairs()
    for later, earlier in candidates:
        if wanted is not None and later not in wanted and earlier not in wanted:
            continue
        try:
            gap_s = time_us_to_s(int(start_us(later))) - time_us_to_s(int(start_us(earlier)))
        except Exception as error:  # noqa: BLE001 - recorded as the pair's reason
            reason = f"start time of the pair ({later}, {earlier}) unreadable: {type(error).__name__}: {error}"
            pairs.invalid.update({later: reason, earlier: reason})
            continue
        if not 0.0 < gap_s < EC_MAX_PREVIOUS_GAP_S:
            reason = (f"extended comfort pair ({later}, {earlier}): start times {gap_s:.3f} s apart, outside "
                      f"(0, {EC_MAX_PREVIOUS_GAP_S}) s")
            pairs.invalid.update({later: reason, earlier: reason})
            continue
        pairs.previous[later] = PreviousScene(earlier, gap_s)
        pairs.followers[earlier] = later
    for later in pairs.previous:  # a scene that is a later scene of one pair keeps that pair
        pairs.followers.pop(later, None)
    return pairs


__all__ = ["ComfortPairs", "PreviousScene", "overlap_offset", "previous_scenes", "two_stage_pairs"]
