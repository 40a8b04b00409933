"""Error classes name what is wrong and where."""

from __future__ import annotations

import pytest

from data_pipelines.errors import (
    DataError,
    LogFileError,
    MapError,
    SensorFileError,
    SplitError,
    UnknownTokenError,
)


def test_every_error_is_a_data_error():
    errors = [
        LogFileError("a/b.pkl", "broken"),
        SensorFileError("x.jpg", "missing"),
        UnknownTokenError("abc"),
        MapError("bad"),
        SplitError("empty"),
    ]
    assert all(isinstance(e, DataError) for e in errors)


def test_log_file_error_names_file_frame_and_key():
    error = LogFileError("logs/x.pkl", "required key is missing", key="token", frame_index=3)
    message = str(error)
    assert "logs/x.pkl" in message and "frame 3" in message and "'token'" in message
    assert error.key == "token" and error.frame_index == 3


def test_sensor_file_error_names_file_camera_and_token():
    message = str(SensorFileError("blobs/CAM_F0/1.jpg", "does not exist", token="t0", sensor="CAM_F0"))
    assert "blobs/CAM_F0/1.jpg" in message and "CAM_F0" in message and "t0" in message


def test_unknown_token_error_is_a_key_error_with_readable_message():
    with pytest.raises(KeyError) as info:
        raise UnknownTokenError("deadbeef", "split navtest")
    assert str(info.value) == "unknown token 'deadbeef' (not in split navtest)"
    assert info.value.token == "deadbeef"


def test_map_and_split_errors_name_their_context():
    assert "layer 'lanes'" in str(MapError("bad", location="sg-one-north", layer="lanes"))
    error = SplitError("expected a list", path="s.yaml", field="tokens")
    assert "s.yaml" in str(error) and "'tokens'" in str(error) and error.reason == "expected a list"
