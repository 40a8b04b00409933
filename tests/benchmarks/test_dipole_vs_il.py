"""benchmarks/dipole_vs_il.py: every run trains on the --data-root world; the cameras_shuffled ablation takes each
scene's cameras from another log; the command-response figure (final heading towards the command)."""

from __future__ import annotations

import numpy as np
import pytest

from tests.scripts import load_script
from tests.vla.training.helpers import generate_tiny_world, split_items


def _benchmark():
    return load_script("benchmarks/dipole_vs_il.py")


@pytest.fixture(scope="module")
def loader(tmp_path_factory):
    world = generate_tiny_world(tmp_path_factory.mktemp("tiny_world"))
    return split_items(world, "synthetic_train")[2].loader


def test_every_scene_gets_the_cameras_of_a_scene_of_another_log(loader):
    donors = _benchmark().camera_donors(loader)
    assert sorted(donors) == sorted(loader.tokens)
    for token, donor in donors.items():
        assert donor in loader and loader.get_log_name(donor) != loader.get_log_name(token)
    assert len(set(donors.values())) > len(donors) // 2  # spread over the split, not one donor for all


def test_one_log_cannot_be_shuffled(loader):
    class OneLog:
        def get_tokens_list_per_log(self):
            return {"log": list(loader.tokens)}

    with pytest.raises(ValueError, match="two logs"):
        _benchmark().camera_donors(OneLog())


def _row(token: str, planner: str, end_heading_rad: float, score: float = 0.5) -> dict:
    bench = _benchmark()
    poses = [[2.0 * (i + 1), 0.0, end_heading_rad * (i + 1) / 8] for i in range(8)]
    row = {"token": token, "planner": planner, "omega": None, "metric": bench.METRIC_VERSION, "stage": 1,
           "error": "", "poses": poses}
    row.update({column: score for _, column in bench.TABLE})
    return row


def test_heading_toward_the_command_is_signed_by_the_command():
    """A plan that turns left scores + on a left-command scene and - on a right-command scene; straight plans 0."""
    bench = _benchmark()
    quarter = float(np.pi / 2)
    rows = [_row("left_scene", "IL", quarter), _row("right_scene", "IL", quarter),
            _row("left_scene", "IL", 0.0), _row("other", "IL", -quarter)]
    table = bench.per_scene(rows)
    headings = table["IL"][bench.END_HEADING]
    assert headings["left_scene"] == pytest.approx(45.0) and headings["other"] == pytest.approx(-90.0)
    assert table["IL"]["PDMS"]["left_scene"] == pytest.approx(50.0)
    signs = {"left_scene": 1, "right_scene": -1}
    assert bench.heading_toward_command(headings, signs) == pytest.approx((45.0 - 90.0) / 2)
    assert np.isnan(bench.heading_toward_command({"other": 10.0}, signs))  # no turning scene: undefined, not 0


def test_the_gain_is_split_by_the_scene_command():
    """DIPOLE - IL per command group: scenes turning left, scenes without a turn command, scenes turning right."""
    bench = _benchmark()
    gains = {"l1": 10.0, "l2": 30.0, "f1": 0.0, "f2": 2.0, "f3": 4.0, "r1": -5.0, "r2": -15.0}
    table = {"IL": {"PDMS": {t: 50.0 for t in gains}}, "dipole": {"PDMS": {t: 50.0 + g for t, g in gains.items()}}}
    signs = {"l1": 1, "l2": 1, "r1": -1, "r2": -1}
    text = bench.gain_by_command(table, "dipole", "IL", signs)
    assert text.startswith("left (2 scenes) +20.0 [") and "no turn (3 scenes) +2.0 [" in text
    assert "right (2 scenes) -10.0 [" in text
    assert bench.split_by_direction(signs) == {"left": {"l1": 1, "l2": 1}, "right": {"r1": -1, "r2": -1}}


def test_every_run_trains_on_the_world_it_is_evaluated_on(tmp_path, monkeypatch):
    """--data-root reaches every training run as an absolute data.data_root (training runs in the repository
    root), and a data.data_root override that could disagree with it is refused."""
    benchmark = _benchmark()
    commands = []
    monkeypatch.setattr(benchmark, "train", commands.append)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("sys.argv", ["dipole_vs_il.py", "--seeds", "3", "--ewr-betas", "2", "--train-only",
                                     "--data-root", "my_world", "--out", "bench"])
    benchmark.main()
    assert len(commands) == 4  # il, dipole, control, ewr_beta2
    for command in commands:
        assert f"data.data_root={tmp_path / 'my_world'}" in command
        assert any(arg.startswith(f"output_dir={tmp_path / 'bench' / 'seed3'}") for arg in command)
    monkeypatch.setattr("sys.argv", ["dipole_vs_il.py", "--train-only", "data.data_root=elsewhere"])
    with pytest.raises(SystemExit, match="2"):
        benchmark.main()
