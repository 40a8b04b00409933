"""Visual report: per-scene BEV + front-camera PNGs (worst and sampled scenes) and the omega-sweep plot.

The BEV reuses ``data_pipelines.visualize.plot_bev``; trajectories are projected into CAM_F0 with
``data_pipelines.camera_geometry``. Every trajectory is coloured by its score (red 0 -> green 1).
"""

from __future__ import annotations

import logging
import math
import random
from pathlib import Path
from typing import Any, Iterable, Optional, Sequence, Union

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
from matplotlib import colormaps  # noqa: E402
from matplotlib.colors import Normalize  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from data_pipelines.camera_geometry import PinholeCamera, project_trajectory  # noqa: E402
from data_pipelines.scene import SensorConfig  # noqa: E402
from data_pipelines.visualize import SCORE_CMAP, plot_bev  # noqa: E402
from navsim_eval.evaluation.metrics import SCORE, SCORE_NAME, TABLE_LAYOUT  # noqa: E402
from navsim_eval.evaluation.results import format_omega  # noqa: E402
from navsim_eval.evaluation.summary import summarize  # noqa: E402

PathLike = Union[str, Path]
logger = logging.getLogger(__name__)

FRONT_CAMERA = "CAM_F0"
TRAJECTORY_HEIGHT_M = 0.0
"""Trajectories are drawn on the ground plane in the camera view."""
BEV_RADIUS_M = 40.0
DPI = 80
BASELINE_COLORS = ("#7f7f7f", "#d62728", "#9467bd", "#8c564b", "#17becf")


def _label(row: dict[str, Any]) -> str:
    omega = format_omega(row.get("omega"))
    label = row["planner"] + (f" w={omega}" if omega else "")
    if int(row.get("seed", 0)) or int(row.get("sample", 0)):
        label += f" s{row['seed']}#{row['sample']}"
    return label


def token_scores(rows: Iterable[dict[str, Any]], metric: str, planner: Optional[str] = None) -> dict[str, float]:
    """Mean score per stage-1 token (over the planner's variants); failed rows count as 0."""
    per_token: dict[str, list[float]] = {}
    for row in rows:
        if row["metric"] != metric or int(row["stage"]) != 1 or (planner and row["planner"] != planner):
            continue
        value = 0.0 if row.get("error") or math.isnan(row[SCORE]) else float(row[SCORE])
        per_token.setdefault(row["token"], []).append(value)
    return {token: float(np.mean(values)) for token, values in per_token.items()}


def select_tokens(scores: dict[str, float], num_worst: int, num_sample: int, seed: int = 0) -> list[tuple[str, str]]:
    """(kind, token): the num_worst lowest-scoring tokens, then num_sample others drawn at random."""
    ranked = sorted(scores, key=lambda t: (scores[t], t))
    worst = ranked[:num_worst]
    rest = sorted(set(ranked) - set(worst))
    sample = random.Random(seed).sample(rest, min(num_sample, len(rest)))
    return [("worst", t) for t in worst] + [("sample", t) for t in sorted(sample)]


def _draw_camera(ax: Any, image: Optional[np.ndarray], camera: Optional[PinholeCamera],
                 trajectories: dict[str, np.ndarray], scores: dict[str, float]) -> None:
    cmap, norm = colormaps[SCORE_CMAP], Normalize(0.0, 1.0)
    if image is None:
        ax.text(0.5, 0.5, f"{FRONT_CAMERA}\n(no image)", ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
        return
    ax.imshow(image)
    if camera is not None:
        camera.width, camera.height = image.shape[1], image.shape[0]
        for name, poses in trajectories.items():
            pixels, valid = project_trajectory(np.vstack([np.zeros((1, 3)), poses]), camera, TRAJECTORY_HEIGHT_M)
            if valid.sum() >= 2:
                color = cmap(norm(scores.get(name, 0.5)))
                ax.plot(pixels[valid, 0], pixels[valid, 1], "-o", color=color, markersize=2.5, linewidth=1.8)
    ax.set_title(FRONT_CAMERA, fontsize=8)
    ax.set_axis_off()


def render_token(
    source: Any, token: str, rows: Sequence[dict[str, Any]], metric: str, out_png: PathLike, title: str = ""
) -> Path:
    """BEV (map, boxes, route, trajectories coloured by score) above the front camera with projections."""
    chosen = [r for r in rows if r["metric"] == metric and r.get("poses") is not None and not r.get("error")]
    trajectories = {_label(r): np.asarray(r["poses"]) for r in chosen}
    scores = {_label(r): float(r[SCORE]) for r in chosen if not math.isnan(r[SCORE])}
    history = getattr(getattr(source, "loader", None), "scene_filter", None)
    current = (history.num_history_frames - 1) if history is not None else 3
    scene = source.scene(token, sensor_config=SensorConfig(cam_f0=[current]))
    image = scene.current_frame.cameras.get(FRONT_CAMERA).image
    camera = None
    frame_dicts = getattr(source, "frame_dicts", None)
    if frame_dicts is not None and image is not None:
        try:
            camera = PinholeCamera.from_frame(frame_dicts(token)[current], FRONT_CAMERA)
        except (KeyError, IndexError, ValueError) as error:
            logger.warning("token %s: no camera geometry (%s)", token, error)
    figure = Figure(figsize=(9, 12), layout="constrained")
    grid = figure.add_gridspec(2, 1, height_ratios=[3, 2])
    bev_ax, cam_ax = figure.add_subplot(grid[0]), figure.add_subplot(grid[1])
    mappable = plot_bev(bev_ax, scene, None, trajectories, scores, radius=BEV_RADIUS_M)
    if mappable is not None:
        figure.colorbar(mappable, ax=bev_ax, label=f"{SCORE_NAME[metric]} (per trajectory)", shrink=0.6)
    if title:
        bev_ax.set_title(f"{title}\n{bev_ax.get_title()}", fontsize=8)
    _draw_camera(cam_ax, image, camera, trajectories, scores)
    return _save(figure, out_png)


def _save(figure: Figure, out_png: PathLike) -> Path:
    out_png = Path(out_png)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out_png, dpi=DPI)
    return out_png


def plot_omega_sweep(rows: Iterable[dict[str, Any]], metric: str, out_png: PathLike,
                     model_planners: Sequence[str] = ("dipole",), stage: int = 1) -> Optional[Path]:
    """Score and sub-metrics against omega for the model planner(s); other planners as dashed lines."""
    lines = summarize(rows, metric, stage=stage)
    swept = [line for line in lines if line.planner in model_planners and line.omega is not None]
    if not swept:
        return None
    layout = TABLE_LAYOUT[metric]
    columns = [c for c in layout if not all(math.isnan(line.means[c[1]]) for line in swept)]
    figure = Figure(figsize=(4 * min(len(columns), 4), 3.2 * math.ceil(len(columns) / 4)), layout="constrained")
    axes = figure.subplots(math.ceil(len(columns) / 4), min(len(columns), 4), squeeze=False).ravel()
    for ax, (name, column) in zip(axes, columns):
        for planner in sorted({line.planner for line in swept}):
            points = sorted((line.omega, line.means[column]) for line in swept if line.planner == planner)
            ax.plot([p[0] for p in points], [100 * p[1] for p in points], "-o", label=planner)
        references = [line for line in lines if line.omega is None]
        for index, line in enumerate(references):
            if not math.isnan(line.means[column]):
                ax.axhline(100 * line.means[column], linestyle="--", linewidth=1,
                           color=BASELINE_COLORS[index % len(BASELINE_COLORS)], label=line.planner)
        ax.set_title(name)
        ax.set_xlabel("omega")
        ax.grid(alpha=0.3)
    for ax in axes[len(columns):]:
        ax.set_axis_off()
    axes[0].legend(fontsize=7)
    figure.suptitle(f"{SCORE_NAME[metric]} and sub-metrics [%] against omega (stage {stage})")
    return _save(figure, out_png)


def write_visual_report(rows: Sequence[dict[str, Any]], source: Any, out_dir: PathLike, metric: str, *,
                        num_worst: int = 3, num_sample: int = 3, seed: int = 0,
                        rank_planner: Optional[str] = None, model_planners: Sequence[str] = ("dipole",)) -> list[Path]:
    """Omega plot and scene PNGs for the worst and a random sample of stage-1 tokens; returns the files."""
    out_dir = Path(out_dir)
    written = []
    sweep = plot_omega_sweep(rows, metric, out_dir / f"omega_sweep_{metric}.png", model_planners)
    if sweep is not None:
        written.append(sweep)
    scores = token_scores(rows, metric, rank_planner)
    by_token: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        if int(row["stage"]) == 1:
            by_token.setdefault(row["token"], []).append(row)
    available = set(getattr(source, "tokens", by_token))
    for rank, (kind, token) in enumerate(select_tokens({t: s for t, s in scores.items() if t in available},
                                                       num_worst, num_sample, seed)):
        out_png = out_dir / "scenes" / f"{kind}_{rank:02d}_{token}.png"
        try:
            written.append(render_token(source, token, by_token[token], metric, out_png,
                                        title=f"{kind}: mean {SCORE_NAME[metric]} {100 * scores[token]:.1f}"))
        except Exception as error:  # noqa: BLE001 - a plot must not stop the report
            logger.warning("token %s: cannot render report PNG: %s: %s", token, type(error).__name__, error)
    return written
