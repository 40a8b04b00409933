"""Does the backbone see the road? IoU of the auxiliary BEV decoder's grid on a split, with each scene's own
cameras, with the cameras of a scene of another log, and for the per-cell prior.

    python benchmarks/bev_iou.py --data-root data/synthetic --split synthetic_test MODEL_DIR [MODEL_DIR ...]

MODEL_DIR: a ``from_pretrained`` folder of a model with a BEV decoder (``bev.cells`` > 0; e.g. ``il_model`` of
a run with ``il.bev_loss_weight`` > 0). Cells count as occupied above probability ``THRESHOLD``; the per-cell
prior marks the cells occupied in more than half of the split's targets (the best the decoder can do without
looking). The donors are the benchmark's (``dipole_vs_il.camera_donors``): same prompt and ego state, another
log's images. Prints one row per model and channel.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "launch"))

from dipole_vs_il import camera_donors  # noqa: E402
from finetune import load_items  # noqa: E402

from data_pipelines.paths import DataPaths  # noqa: E402
from vla import DipoleVLA  # noqa: E402
from vla.modeling_dipole import BEV_TARGET_KEY  # noqa: E402
from vla.training.bev_targets import BevTargetItems  # noqa: E402
from vla.training.config import TrainConfig  # noqa: E402
from vla.training.data import SceneBatcher  # noqa: E402

THRESHOLD = 0.5  # a cell is predicted occupied above this probability
BATCH = 32  # scenes per forward


def iou(predicted: np.ndarray, target: np.ndarray) -> float:
    union = (predicted | target).sum()
    return float((predicted & target).sum() / max(union, 1))


def predictions(model: DipoleVLA, batcher: SceneBatcher, donors: list[int]) -> tuple[np.ndarray, ...]:
    """(targets, own-camera predictions, donor-camera predictions), each (N, channels, cells, cells) bool."""
    targets, own, other = [], [], []
    for start in range(0, len(batcher), BATCH):
        indices = list(range(start, min(len(batcher), start + BATCH)))
        batch = batcher.batch(indices, with_targets=False)
        swapped = dict(batch, pixel_values=batcher.batch([donors[i] for i in indices], with_targets=False)["pixel_values"])
        with torch.no_grad():
            for inputs, out in ((batch, own), (swapped, other)):
                logits = model.bev_decoder.predict(model.encode(inputs))
                out.append(torch.sigmoid(logits).numpy() > THRESHOLD)
        targets.append(batch[BEV_TARGET_KEY].numpy() > 0.5)
    return np.concatenate(targets), np.concatenate(own), np.concatenate(other)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="+", type=Path)
    parser.add_argument("--data-root", type=Path, default=Path("data/synthetic"))
    parser.add_argument("--split", default="synthetic_test")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    base = TrainConfig()
    cfg = replace(base, data=replace(base.data, data_root=str(args.data_root)))
    paths = DataPaths.from_env(openscene_data_root=cfg.data.data_root, maps_root=cfg.data.maps_root)
    _, items = load_items(cfg, paths, args.split, None)
    position = {token: i for i, token in enumerate(items.tokens)}
    donor_of = camera_donors(items.loader)
    donors = [position[donor_of[token]] for token in items.tokens]
    print(f"{args.split}: {len(items)} scenes\n")
    print("| model | channel | own cameras | another log's cameras | per-cell prior |\n|---|---|---|---|---|")
    for model_dir in args.models:
        model = DipoleVLA.from_pretrained(str(model_dir)).eval()
        if model.bev_decoder is None:
            raise SystemExit(f"{model_dir}: the model has no BEV decoder (bev.cells = 0)")
        settings = model.config.bev_settings
        batcher = SceneBatcher(BevTargetItems(items, settings, paths), model.processor, torch.device("cpu"), 0,
                               name=args.split)
        targets, own, other = predictions(model, batcher, donors)
        prior = np.broadcast_to(targets.mean(axis=0, keepdims=True) > 0.5, targets.shape)
        for c, channel in enumerate(settings.channels):
            print(f"| {model_dir} | {channel} | {iou(own[:, c], targets[:, c]):.3f} | "
                  f"{iou(other[:, c], targets[:, c]):.3f} | {iou(prior[:, c], targets[:, c]):.3f} |")


if __name__ == "__main__":
    main()
