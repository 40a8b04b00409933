from __future__ import annotations

import pickle

import numpy as np
import pytest

from data_pipelines.errors import LogFileError
from data_pipelines.log_reader import load_log
from data_pipelines.safe_pickle import LOG_PICKLE, UnsafePickleError, restricted_loads
from data_pipelines.two_stage import SCENE_PICKLE_DIR, StageTwoScene, TwoStageData, TwoStageDataError
from tests.data_pipelines.data_helpers import code_running_pickle


def test_plain_pickle_would_run_the_payload(tmp_path):
    """The crafted pickle is a real attack: plain pickle runs it (the guard below is not vacuous)."""
    marker = tmp_path / "ran"
    pickle.loads(code_running_pickle(marker))
    assert marker.exists()


def test_restricted_unpickler_refuses_unlisted_globals_before_running_them(tmp_path):
    marker = tmp_path / "ran"
    with pytest.raises(UnsafePickleError, match=r"file .*evil\.pkl: references (posix|os)\.system, which the "
                                                 r"OpenScene log format never contains"):
        restricted_loads(code_running_pickle(marker), LOG_PICKLE, tmp_path / "evil.pkl")
    assert not marker.exists()


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_numpy_values_load_under_every_protocol(protocol):
    value = [{"a": np.arange(6, dtype=np.float32).reshape(2, 3), "b": np.float64(1.5), "c": {1, 2}, "d": b"x"}]
    loaded, seen = restricted_loads(pickle.dumps(value, protocol=protocol), LOG_PICKLE)
    np.testing.assert_array_equal(loaded[0]["a"], value[0]["a"])
    assert loaded[0]["b"] == 1.5 and loaded[0]["c"] == {1, 2} and loaded[0]["d"] == b"x"
    assert seen  # numpy arrays always reference at least one global


def test_log_reader_refuses_a_code_running_log(tmp_path):
    marker = tmp_path / "ran"
    path = tmp_path / "logs" / "evil.pkl"
    path.parent.mkdir()
    path.write_bytes(code_running_pickle(marker))
    with pytest.raises(LogFileError, match=r"log file .*evil\.pkl: references .*system.*refusing"):
        load_log(path)
    assert not marker.exists()


def test_stage_two_reader_refuses_a_code_running_scene_pickle(tmp_path):
    marker = tmp_path / "ran"
    token = "abc"
    (tmp_path / SCENE_PICKLE_DIR).mkdir()
    (tmp_path / SCENE_PICKLE_DIR / f"{token}.pkl").write_bytes(
        code_running_pickle(marker, wrap=lambda payload: {"scene_metadata": {}, "frames": [payload]}))
    scene = StageTwoScene(token, "first", "log", "map", np.zeros(3), (0.0, 0.0, 0.0))
    data = TwoStageData(tmp_path, {token: scene}, ["first"], {"first": [token]})
    with pytest.raises(TwoStageDataError, match=r"abc\.pkl \(scene abc\): references .*system"):
        data.frame_dicts(token)
    assert not marker.exists()
