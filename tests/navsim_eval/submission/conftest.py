"""Fixtures for submission tests: a fake devkit (navsim + nuplan classes) and a subprocess runner."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

FAKE_NUPLAN_SAMPLING = '''
from dataclasses import dataclass
from typing import Optional


@dataclass
class TrajectorySampling:
    num_poses: Optional[int] = None
    time_horizon: Optional[float] = None
    interval_length: Optional[float] = None
'''

FAKE_NAVSIM_DATACLASSES = '''
from dataclasses import dataclass, field

import numpy as np

from nuplan.planning.simulation.trajectory.trajectory_sampling import TrajectorySampling


@dataclass
class Trajectory:
    poses: np.ndarray
    trajectory_sampling: TrajectorySampling = field(default_factory=lambda: TrajectorySampling(8, 4.0, 0.5))
'''


@pytest.fixture()
def fake_devkit(tmp_path: Path) -> Path:
    """A folder with importable fake `navsim` and `nuplan` packages holding the two devkit classes."""
    root = tmp_path / "fake_devkit"
    packages = {
        "nuplan/planning/simulation/trajectory/trajectory_sampling.py": FAKE_NUPLAN_SAMPLING,
        "navsim/common/dataclasses.py": FAKE_NAVSIM_DATACLASSES,
    }
    for relative, source in packages.items():
        path = root / relative
        for parent in [p for p in path.relative_to(root).parents if str(p) != "."]:
            (root / parent).mkdir(parents=True, exist_ok=True)
            (root / parent / "__init__.py").touch()
        path.write_text(textwrap.dedent(source))
    return root


def _run_python(code: str, *, path_entries: list[Path] = (), cwd: Path | None = None) -> dict:
    """Run `code` in a fresh interpreter (path_entries first on sys.path); it must print one JSON line last."""
    prelude = "import sys\n" + "".join(f"sys.path.insert(0, {str(p)!r})\n" for p in reversed(list(path_entries)))
    result = subprocess.run(
        [sys.executable, "-c", prelude + textwrap.dedent(code)],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=120,
    )
    assert result.returncode == 0, f"subprocess failed:\n{result.stdout}\n{result.stderr}"
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.fixture()
def run_python():
    """Callable ``run_python(code, path_entries=[...])`` -> the JSON object the code printed last."""
    return _run_python
