"""Every entry point's --help lists every key of its config with type, default and a one-line help."""

from __future__ import annotations

import pytest

from data_pipelines.configuration import describe_keys
from tests.launch.conftest import load_launch_script


def _entry_points():
    from data_pipelines.synthetic import generate

    submission = load_launch_script("make_submission")
    return {
        "finetune": lambda argv: load_launch_script("finetune").parse_args(argv),
        "evaluate": lambda argv: load_launch_script("evaluate").parse_args(argv),
        "make_submission write": lambda argv: submission.parse_args(["write", *argv]),
        "make_submission merge": lambda argv: submission.parse_args(["merge", *argv]),
        "make_submission validate": lambda argv: submission.parse_args(["validate", *argv]),
        "synthetic generate": generate.main,
    }


@pytest.mark.parametrize("name", list(_entry_points()))
def test_help_documents_every_key(name, capsys):
    with pytest.raises(SystemExit) as done:
        _entry_points()[name](["--help"])
    assert done.value.code == 0
    text = capsys.readouterr().out
    keys = [line for line in text.split("keys (", 1)[1].splitlines()[1:] if line.startswith("  ")]
    assert len(keys) > 1
    undocumented = [line.split()[0] for line in keys if ") = " in line and len(line.split(") = ", 1)[1].split("  ", 1)) < 2]
    assert not undocumented, f"{name}: keys without help: {undocumented}"
    default_preset = {"finetune": "'demo'", "synthetic generate": "'default'"}.get(name)
    assert (f"default {default_preset}, which sets some keys" in text) if default_preset else ("default '" not in text)


def test_describe_keys_matches_the_help_listing(capsys):
    from navsim_eval.evaluation import EvaluationConfig

    with pytest.raises(SystemExit):
        load_launch_script("evaluate").parse_args(["--help"])
    assert describe_keys(EvaluationConfig) in capsys.readouterr().out
