"""benchmarks/bev_iou.py: the IoU of predicted and target grids, and one run over a tiny world's split."""

from __future__ import annotations

import sys

import numpy as np

from tests.scripts import load_script
from tests.vla.training.helpers import generate_tiny_world


def _script():
    return load_script("benchmarks/bev_iou.py")


def test_iou_counts_overlap_over_union():
    predicted = np.array([[True, True, False, False]])
    target = np.array([[True, False, True, False]])
    assert _script().iou(predicted, target) == 1 / 3
    assert _script().iou(np.zeros(4, bool), np.zeros(4, bool)) == 0.0  # empty union: 0, not a division error


def test_one_row_per_channel_for_a_model_with_a_bev_decoder(tmp_path, monkeypatch, capsys):
    import torch

    from vla.testing import tiny_model

    world = generate_tiny_world(tmp_path / "world")
    torch.manual_seed(0)
    tiny_model("tiny-florence2", overrides=["bev.cells=4"]).save_pretrained(tmp_path / "model")
    monkeypatch.setattr(sys, "argv", ["bev_iou.py", "--data-root", str(world), "--split", "synthetic_train",
                                      "--threads", "1", str(tmp_path / "model")])
    _script().main()
    rows = [line.split("|") for line in capsys.readouterr().out.splitlines() if str(tmp_path / "model") in line]
    assert [row[2].strip() for row in rows] == ["drivable_area", "objects"]
    assert all(0.0 <= float(value) <= 1.0 for row in rows for value in row[3:6])
