"""Split YAMLs of the synthetic dataset in the devkit's format (scene filter + data_split folder)."""

from __future__ import annotations

from pathlib import Path

from data_pipelines.scene_filter import SceneFilter, TwoStageLink, write_split_yaml

TRAINVAL_FOLDER = "synthetic_trainval"  # navsim_logs/ and sensor_blobs/ folder of train + val logs
TEST_FOLDER = "synthetic_test"
SPLIT_FOLDERS = {"synthetic_train": TRAINVAL_FOLDER, "synthetic_val": TRAINVAL_FOLDER, "synthetic_test": TEST_FOLDER,
                 "synthetic_val_maps": TRAINVAL_FOLDER}
"""Split -> log folder. synthetic_val: held-out drives on the training maps; synthetic_val_maps (with
``held_out_val_instances``): drives on map instances seen neither in training nor in test."""
FRAME_INTERVAL = 1  # every frame with enough history and future is a scene (as navtrain / navtest)
TWO_STAGE_SPLIT = "synthetic_test_two_stage"
"""The two-stage split; like the devkit's navhard_two_stage, its stage-2 data folder has the split's name."""


def write_splits(splits_dir: Path, tokens_by_split: dict[str, dict[str, list[str]]], num_history: int,
                 num_future: int) -> dict[str, Path]:
    """One split per entry of `tokens_by_split` ({split: {log_name: [scene tokens]}}); logs are sorted."""
    out = {}
    for name, per_log in tokens_by_split.items():
        logs = sorted(per_log)
        tokens = [t for log in logs for t in per_log[log]]
        scene_filter = SceneFilter(num_history_frames=num_history, num_future_frames=num_future,
                                   frame_interval=FRAME_INTERVAL, has_route=True, max_scenes=None,
                                   log_names=logs, tokens=tokens)
        out[name] = write_split_yaml(splits_dir, name, scene_filter, SPLIT_FOLDERS[name])
    return out


def write_two_stage_split(splits_dir: Path, links_by_log: dict[str, list[TwoStageLink]], num_history: int,
                          plan_horizon_frames: int) -> Path:
    """The devkit-shaped two-stage split (as navhard_two_stage): stage-1 scenes of 4 + 8 frames (so the last
    window frame is where stage 2 starts), include_synthetic_scenes, the reactive stage-2 tokens and the split-level
    reactive_all_mapping."""
    logs = sorted(log for log, links in links_by_log.items() if links)
    links = [link for log in logs for link in links_by_log[log]]
    first_tokens = [t for link in links for t in (link.first_stage_token, link.previous_token)]
    second_tokens = [t for link in links for pair in link.second_stage_pairs for t in pair]
    scene_filter = SceneFilter(num_history_frames=num_history, num_future_frames=plan_horizon_frames,
                               frame_interval=FRAME_INTERVAL, has_route=True, max_scenes=None, log_names=logs,
                               tokens=first_tokens, include_synthetic_scenes=True,
                               reactive_synthetic_initial_tokens=second_tokens)
    return write_split_yaml(splits_dir, TWO_STAGE_SPLIT, scene_filter, TEST_FOLDER, reactive_all_mapping=links)
