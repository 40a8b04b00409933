"""Pickle a submission so it loads under the devkit's NumPy 1.x and under NumPy 2, without the devkit.

Two problems are solved here (navsim_data.md §9):

* NumPy >= 2 pickles an ndarray through ``numpy._core.multiarray._reconstruct``, a module NumPy 1.x lacks.
  Arrays are therefore written as ``numpy.array(<nested list>, <dtype name>)``: the only global is
  ``numpy.array``, which every NumPy version provides, and the values round-trip exactly.
* The devkit classes are referenced by path. While pickling, modules named like the devkit's are made
  visible to pickle with the stand-in classes (only for names not already imported); when the real devkit
  modules are already imported, instances are written as calls of the real classes' constructors.

Reading uses the project's restricted unpickler (``data_pipelines.safe_pickle``) with the submission format:
it resolves only the globals a submission may contain, maps the devkit paths to the stand-ins, and reports
every global it saw (the validator checks them).
"""

from __future__ import annotations

import contextlib
import io
import os
import pickle
import sys
import threading
import types
from pathlib import Path
from typing import Any, Iterator, Union

import numpy as np

from data_pipelines.safe_pickle import NUMPY_GLOBALS, PickleFormat, restricted_loads
from data_pipelines.safe_pickle import UnsafePickleError as RestrictedGlobalError
from navsim_eval.submission.devkit_types import STANDIN_CLASSES, Trajectory
from navsim_eval.submission.errors import SubmissionError, UnsafePickleError

PathLike = Union[str, Path]

PICKLE_PROTOCOL = 4
"""Readable by the devkit's Python 3.9 and by any later Python."""

NUMPY_CORE_MARKER = b"numpy._core"
"""Module prefix that exists only in NumPy >= 2; a submission must not reference it."""

SUPPORTED_ARRAY_KINDS = "biuf"
"""dtype kinds written as nested lists: bool, signed/unsigned int, float."""

_MODULE_LOCK = threading.Lock()


class _CompatPickler(pickle.Pickler):
    """Writes ndarrays as ``numpy.array(list, dtype)`` and numpy scalars as Python numbers."""

    def __init__(self, file: io.BufferedIOBase, real_classes: dict[type, type]):
        super().__init__(file, protocol=PICKLE_PROTOCOL)
        self._real_classes = real_classes

    def reducer_override(self, obj: Any) -> Any:
        if isinstance(obj, np.ndarray):
            if obj.dtype.kind not in SUPPORTED_ARRAY_KINDS:
                raise SubmissionError(f"cannot write an array of dtype {obj.dtype} (only numeric arrays)")
            return np.array, (obj.tolist(), obj.dtype.name)
        if isinstance(obj, np.generic):
            return type(obj.item()), (obj.item(),)
        real = self._real_classes.get(type(obj))
        if real is not None:  # constructor call: the devkit class rebuilds (and checks) itself on load
            if isinstance(obj, Trajectory):
                return real, (obj.poses, obj.trajectory_sampling)
            return real, (obj.num_poses, obj.time_horizon, obj.interval_length)
        return NotImplemented


def _imported_real_classes() -> dict[type, type]:
    """Stand-in -> real devkit class, for devkit modules that are already imported in this process."""
    mapping = {}
    for (module_name, class_name), standin in STANDIN_CLASSES.items():
        module = sys.modules.get(module_name)
        real = getattr(module, class_name, None) if module is not None else None
        if real is not None and real is not standin:
            mapping[standin] = real
    return mapping


@contextlib.contextmanager
def _standin_modules_visible() -> Iterator[None]:
    """Temporarily register modules named like the devkit's (only those not imported) holding the stand-ins."""
    with _MODULE_LOCK:
        added: list[str] = []
        try:
            for (module_name, class_name), standin in STANDIN_CLASSES.items():
                if module_name in sys.modules:
                    continue
                parts = module_name.split(".")
                for depth in range(1, len(parts) + 1):
                    name = ".".join(parts[:depth])
                    if name not in sys.modules:
                        sys.modules[name] = types.ModuleType(name)
                        added.append(name)
                        if depth > 1 and ".".join(parts[: depth - 1]) in added:
                            setattr(sys.modules[".".join(parts[: depth - 1])], parts[depth - 1], sys.modules[name])
                setattr(sys.modules[module_name], class_name, standin)
            yield
        finally:
            for name in reversed(added):
                sys.modules.pop(name, None)


def dumps_submission(obj: Any) -> bytes:
    """Pickle bytes of a submission object (stand-in classes allowed), loadable under NumPy 1.x and 2.x."""
    buffer = io.BytesIO()
    real_classes = _imported_real_classes()
    with _standin_modules_visible():
        try:
            _CompatPickler(buffer, real_classes).dump(obj)
        except pickle.PicklingError as error:
            raise SubmissionError(f"cannot pickle submission: {error}") from error
    data = buffer.getvalue()
    if NUMPY_CORE_MARKER in data:  # guard: nothing above may reference NumPy-2-only modules
        raise SubmissionError("pickled submission references numpy._core (would not load under NumPy 1.x)")
    return data


def dump_submission(obj: Any, path: PathLike) -> Path:
    """Write a submission pickle atomically (temporary file, then rename); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = dumps_submission(obj)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
    return path


SUBMISSION_PICKLE = PickleFormat(
    "submission",
    NUMPY_GLOBALS | frozenset(("builtins", name) for name in ("int", "float", "bool", "str")),
    substitutes=STANDIN_CLASSES,
)
"""Globals a submission (or a trajectory file of the same shape) may reference; devkit classes map to stand-ins."""


def loads_submission(data: bytes, path: PathLike | None = None) -> tuple[Any, set[tuple[str, str]]]:
    """Load submission bytes without the devkit. Returns (object, set of (module, name) globals used)."""
    source = Path(path) if path is not None else None
    try:
        return restricted_loads(data, SUBMISSION_PICKLE, source)
    except RestrictedGlobalError as error:
        raise UnsafePickleError(error.reason, path=source) from error
    except Exception as error:  # any corruption: truncated stream, bad opcode, failed reconstruction
        raise SubmissionError(f"not a readable pickle ({type(error).__name__}: {error})", path=source) from error


def load_submission(path: PathLike) -> tuple[Any, set[tuple[str, str]]]:
    """Read a submission file with :func:`loads_submission`."""
    path = Path(path)
    if not path.is_file():
        raise SubmissionError("file not found", path=path)
    return loads_submission(path.read_bytes(), path)
