"""Submission pickles: devkit class paths on load, NumPy 1.x compatibility, restricted reading."""

from __future__ import annotations

import pickle
import sys

import numpy as np
import pytest

from navsim_eval.submission import (
    SubmissionMetadata,
    UnsafePickleError,
    build_v1_submission,
    build_v2_submission,
    dumps_submission,
    load_submission,
    loads_submission,
    write_submission,
)

TOKENS = ["0123456789abcdef", "fedcba9876543210", "00112233445566aa"]


def _metadata() -> SubmissionMetadata:
    return SubmissionMetadata.linked(
        "DIPOLE", "https://example.org/repo", authors="A. Author", email="a@example.org",
        institution="Inst", country_region="Nowhere",
    )


def _poses(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    poses = rng.normal(size=(8, 3)).astype(np.float32)
    poses[:, 2] = np.clip(poses[:, 2], -3.0, 3.0)
    return poses


@pytest.fixture()
def v1_file(tmp_path):
    predictions = {token: _poses(i) for i, token in enumerate(TOKENS)}
    path = write_submission(build_v1_submission([predictions], _metadata()), tmp_path / "submission.pkl")
    return path, predictions


def test_unpickles_as_devkit_classes_where_the_devkit_is_installed(v1_file, fake_devkit, run_python):
    path, predictions = v1_file
    result = run_python(
        f"""
        import json, pickle
        import numpy as np
        from navsim.common.dataclasses import Trajectory
        from nuplan.planning.simulation.trajectory.trajectory_sampling import TrajectorySampling
        with open({str(path)!r}, "rb") as f:
            sub = pickle.load(f)
        out = {{"keys": sorted(sub), "tokens": {{}}}}
        for token, traj in sub["predictions"][0].items():
            s = traj.trajectory_sampling
            out["tokens"][token] = dict(
                is_trajectory=isinstance(traj, Trajectory), is_sampling=isinstance(s, TrajectorySampling),
                traj_path=type(traj).__module__ + "." + type(traj).__qualname__,
                poses_type=type(traj.poses).__name__, dtype=str(traj.poses.dtype), shape=list(traj.poses.shape),
                poses=traj.poses.tolist(), num_poses=s.num_poses, num_poses_type=type(s.num_poses).__name__,
                time_horizon=s.time_horizon, interval_length=s.interval_length, fields=sorted(vars(traj)),
            )
        print(json.dumps(out))
        """,
        path_entries=[fake_devkit],
    )
    assert result["keys"] == sorted(["team_name", "authors", "email", "institution", "country / region", "predictions"])
    assert set(result["tokens"]) == set(TOKENS)
    for token, info in result["tokens"].items():
        assert info["is_trajectory"] and info["is_sampling"]
        assert info["traj_path"] == "navsim.common.dataclasses.Trajectory"
        assert info["poses_type"] == "ndarray" and info["dtype"] == "float32" and info["shape"] == [8, 3]
        np.testing.assert_array_equal(np.array(info["poses"], dtype=np.float32), predictions[token])
        assert info["num_poses"] == 8 and info["num_poses_type"] == "int"
        assert info["time_horizon"] == 4.0 and info["interval_length"] == 0.5
        assert info["fields"] == ["poses", "trajectory_sampling"]


BLOCK_NUMPY_CORE = """
import importlib.abc, json, pickle, sys
import numpy as np
class BlockNumpyCore(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "numpy._core" or name.startswith("numpy._core."):
            raise ModuleNotFoundError(f"No module named {name!r} (blocked: NumPy 1.x has no numpy._core)")
        return None
for name in [m for m in sys.modules if m == "numpy._core" or m.startswith("numpy._core.")]:
    del sys.modules[name]
sys.meta_path.insert(0, BlockNumpyCore())
"""


def test_loads_when_numpy_core_is_unavailable(v1_file, fake_devkit, run_python):
    path, predictions = v1_file
    result = run_python(
        BLOCK_NUMPY_CORE
        + f"""
try:
    pickle.loads(pickle.dumps(np.arange(3.0)))
    control = "loaded"
except ModuleNotFoundError as error:
    control = str(error)
with open({str(path)!r}, "rb") as f:
    sub = pickle.load(f)
poses = {{t: v.poses.tolist() for t, v in sub["predictions"][0].items()}}
print(json.dumps({{"control": control, "poses": poses}}))
""",
        path_entries=[fake_devkit],
    )
    assert "numpy._core" in result["control"], "the blocker must make a plain NumPy-2 pickle fail"
    for token, poses in result["poses"].items():
        np.testing.assert_array_equal(np.array(poses, dtype=np.float32), predictions[token])


def test_raw_bytes_reference_only_portable_globals(v1_file):
    path, _ = v1_file
    data = path.read_bytes()
    assert b"numpy._core" not in data
    _, globals_seen = loads_submission(data)
    assert globals_seen == {
        ("numpy", "array"),
        ("navsim.common.dataclasses", "Trajectory"),
        ("nuplan.planning.simulation.trajectory.trajectory_sampling", "TrajectorySampling"),
    }


def test_round_trip_in_process_without_devkit(tmp_path):
    first = {TOKENS[0]: _poses(0)}
    second = {TOKENS[1] + "x": _poses(1), TOKENS[2] + "y": _poses(2)}
    path = write_submission(build_v2_submission(first, second, _metadata()), tmp_path)
    assert path.name == "submission.pkl"
    loaded, _ = load_submission(path)
    assert loaded["country / region"] == "Nowhere"
    assert len(loaded["first_stage_predictions"]) == 1 and len(loaded["second_stage_predictions"]) == 1
    for token, poses in second.items():
        np.testing.assert_array_equal(loaded["second_stage_predictions"][0][token].poses, poses)
    assert not [m for m in sys.modules if m.startswith(("navsim.", "nuplan.")) or m in ("navsim", "nuplan")]


def test_written_with_real_classes_when_the_devkit_is_imported(fake_devkit, run_python, tmp_path):
    out = tmp_path / "submission.pkl"
    result = run_python(
        f"""
        import json, pickle
        import numpy as np
        import navsim.common.dataclasses as devkit
        from navsim_eval.submission import SubmissionMetadata, build_v1_submission, write_submission
        meta = SubmissionMetadata("t", "a", "e", "i", "c")
        write_submission(build_v1_submission([{{"tok": np.zeros((8, 3))}}], meta), {str(out)!r})
        with open({str(out)!r}, "rb") as f:
            traj = pickle.load(f)["predictions"][0]["tok"]
        print(json.dumps({{"real": type(traj) is devkit.Trajectory, "n": traj.trajectory_sampling.num_poses}}))
        """,
        path_entries=[fake_devkit],
    )
    assert result == {"real": True, "n": 8}


class _Evil:
    def __reduce__(self):
        return (print, ("pwned",))


def test_restricted_loader_refuses_foreign_globals(tmp_path):
    path = tmp_path / "submission.pkl"
    path.write_bytes(pickle.dumps({"predictions": [_Evil()]}))
    with pytest.raises(UnsafePickleError, match=r"submission\.pkl.*builtins\.print"):
        load_submission(path)


def test_numpy_scalars_in_payload_are_written_as_python_numbers():
    data = dumps_submission({"value": np.float32(1.5), "count": np.int64(3)})
    loaded, globals_seen = loads_submission(data)
    assert loaded == {"value": 1.5, "count": 3}
    assert all(module == "builtins" for module, _ in globals_seen)
