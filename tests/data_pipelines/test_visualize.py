"""BEV / camera figures and the render_scene CLI write PNGs (golden logs and maps)."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib.figure import Figure
from PIL import Image

from data_pipelines import render_scene as render_cli
from data_pipelines.maps import load_map
from data_pipelines.scene import SensorConfig
from data_pipelines.scene_filter import SceneFilter
from data_pipelines.scene_loader import SceneLoader
from data_pipelines.visualize import plot_bev, render_scene
from tests.data_pipelines.data_helpers import write_camera_images

JUNCTION_LOCATION = "us-ma-boston"  # golden layout B_junction4: intersection, crosswalks, connectors


@pytest.fixture(scope="module")
def junction_scene(golden_logs_dir, golden_scenes, golden_maps_root):
    log_name = next(n for n, e in golden_scenes["logs"].items() if e["location"] == JUNCTION_LOCATION)
    loader = SceneLoader(golden_logs_dir, None, SceneFilter(log_names=[log_name]))
    return loader.get_scene_from_token(loader.tokens[0], map_api=load_map(golden_maps_root, JUNCTION_LOCATION))


def _is_png(path):
    with Image.open(path) as image:
        return image.format == "PNG" and image.size[0] > 100 and image.size[1] > 100


def test_plot_bev_draws_map_boxes_and_trajectories(junction_scene):
    figure = Figure()
    ax = figure.add_subplot()
    human = junction_scene.get_future_trajectory().poses
    trajectories = {"human": human, "stop": np.zeros((8, 3))}
    mappable = plot_bev(ax, junction_scene, trajectories=trajectories, scores={"human": 0.9, "stop": 0.1})
    assert mappable is not None
    np.testing.assert_allclose(mappable.to_rgba(0.9), ax.get_lines()[-2].get_color())
    assert len(ax.patches) > len(junction_scene.current_frame.annotations.names) + 1  # map areas drawn too
    # the human trajectory is drawn in screen coordinates (-y, x) starting at the origin
    line = next(l for l in ax.get_lines() if l.get_label().startswith("human"))
    np.testing.assert_allclose(line.get_xdata()[1:], -human[:, 1])
    np.testing.assert_allclose(line.get_ydata()[1:], human[:, 0])
    assert plot_bev(figure.add_subplot(2, 1, 1), junction_scene, trajectories=trajectories) is None
    with pytest.raises(ValueError, match="bad"):
        plot_bev(figure.add_subplot(2, 1, 2), junction_scene, trajectories={"bad": np.zeros(8)})


def test_render_scene_with_cameras_and_map(junction_scene, golden_logs_dir, golden_maps_root, tmp_path):
    frames_loader = SceneLoader(golden_logs_dir, tmp_path, SceneFilter(tokens=[junction_scene.token]),
                                SensorConfig.front_three_current())
    frames = frames_loader.get_scene_frame_dicts(junction_scene.token)
    write_camera_images(tmp_path, [frames[3]], ["CAM_F0", "CAM_L0", "CAM_R0"])
    scene = frames_loader.get_scene_from_token(junction_scene.token)
    out = render_scene(scene, junction_scene.map_api, tmp_path / "out" / "scene.png",
                       trajectories={"human": scene.get_future_trajectory().poses}, scores={"human": 0.5})
    assert out.stat().st_size > 10_000 and _is_png(out)


def test_render_scene_cli(golden_dir, golden_logs_dir, tmp_path, monkeypatch, capsys):
    loader = SceneLoader(golden_logs_dir, None, SceneFilter(max_scenes=1))
    token = loader.tokens[0]
    monkeypatch.setenv("OPENSCENE_DATA_ROOT", str(golden_dir))  # data root and maps from the env
    monkeypatch.delenv("NUPLAN_MAPS_ROOT", raising=False)
    out = tmp_path / "cli.png"
    code = render_cli.main(["--split", "synthetic_public", "--token", token, "--out", str(out), "--no-cameras"])
    assert code == 0 and _is_png(out)
    code = render_cli.main(["--split", "synthetic_public", "--token", "0" * 16, "--out", str(tmp_path / "x.png")])
    assert code == render_cli.EXIT_DATA_ERROR and "unknown token" in capsys.readouterr().err
    code = render_cli.main(["--split", "synthetic_public", "--token", token, "--out", str(tmp_path / "y.png")])
    assert code == render_cli.EXIT_DATA_ERROR and "camera image does not exist" in capsys.readouterr().err
