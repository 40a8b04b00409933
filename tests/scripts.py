"""Import a repository script (``launch/``, ``benchmarks/``: folders that are not packages) as a module."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

REPO = Path(__file__).resolve().parents[1]


def load_script(relative_path: str) -> ModuleType:
    """``load_script("launch/evaluate.py")``: a fresh module of that file, named after its path."""
    path = REPO / relative_path
    spec = importlib.util.spec_from_file_location(relative_path.removesuffix(".py").replace("/", "_"), path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
