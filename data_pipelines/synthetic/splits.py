"""Split YAMLs of the synthetic dataset in the devkit's format (scene filter + data_split folder)."""

from __future__ import annotations

from pathlib import Path

from data_pipelines.scene_filter import SceneFilter, write_split_yaml

TRAINVAL_FOLDER = "synthetic_trainval"  # navsim_logs/ and sensor_blobs/ folder of train + val logs
TEST_FOLDER = "synthetic_test"
SPLIT_FOLDERS = {"synthetic_train": TRAINVAL_FOLDER, "synthetic_val": TRAINVAL_FOLDER, "synthetic_test": TEST_FOLDER}
FRAME_INTERVAL = 1  # every frame with enough history and future is a scene (as navtrain / navtest)


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
