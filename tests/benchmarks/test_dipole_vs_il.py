"""benchmarks/dipole_vs_il.py: the cameras_shuffled ablation takes each scene's cameras from another log."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from tests.vla.training.helpers import generate_tiny_world, split_items

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "dipole_vs_il.py"


def _benchmark():
    spec = importlib.util.spec_from_file_location("dipole_vs_il", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


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
