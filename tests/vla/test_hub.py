"""A from_pretrained argument that reads as a missing local path fails locally instead of going to the hub."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from vla import DipoleVLA
from vla.errors import CheckpointError
from vla.hub import looks_like_local_path, resolve_pretrained


@pytest.mark.parametrize("text", ["outputs/run/model", "./model", "../model", "/abs/model", "~/model", "model/",
                                  "a b", "C:\\ckpt"])
def test_path_like_arguments(text):
    assert looks_like_local_path(text)


def test_hub_ids_and_a_first_component_that_is_a_local_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert not looks_like_local_path("florence-community/Florence-2-large")
    assert not looks_like_local_path("gpt2")
    (tmp_path / "outputs").mkdir()
    assert looks_like_local_path("outputs/model")  # 'outputs' is a folder here: a path, not an org
    assert resolve_pretrained("org/name") == "org/name"
    (tmp_path / "outputs" / "model").mkdir()
    assert resolve_pretrained("outputs/model") == "outputs/model"


def test_missing_checkpoint_path_is_a_local_not_found_error(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # without the check the hub would be asked (and retried)
    start = time.perf_counter()
    with pytest.raises(CheckpointError, match="not found: no local folder .*outputs/finetune-demo/model"):
        DipoleVLA.from_pretrained("outputs/finetune-demo/model")
    with pytest.raises(CheckpointError, match="not found"):
        DipoleVLA.from_pretrained(Path("model"))
    assert time.perf_counter() - start < 5.0
