"""The one way this project reads a pickle: a restricted unpickler with a per-format allow-list of globals.

A pickle names the functions and classes that rebuild its objects, and plain ``pickle.load`` imports and calls
whatever it names (``os.system`` included). Every reader of a pickle that may come from someone else (logs,
stage-2 scene pickles, metric caches, trajectory files, submissions) loads it through :func:`restricted_loads`
with a :class:`PickleFormat` that lists the globals the format needs; any other global is refused with an
:class:`UnsafePickleError` naming the file, the global and the format, before anything is called.
"""

from __future__ import annotations

import _compat_pickle
import importlib
import io
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Optional, Union

from data_pipelines.errors import DataError

PathLike = Union[str, Path]
Global = tuple[str, str]

_NUMPY_MODULE_ALIASES = {"numpy._core": "numpy.core", "numpy.core": "numpy._core"}
"""NumPy 2 moved ``numpy.core`` to ``numpy._core``; a pickle written under one names the other's modules."""

NUMPY_GLOBALS: frozenset[Global] = frozenset(
    [("numpy", "array"), ("numpy", "ndarray"), ("numpy", "dtype")]
    + [(f"{core}.multiarray", name) for core in ("numpy.core", "numpy._core") for name in ("_reconstruct", "scalar")]
    + [(f"{core}.numeric", "_frombuffer") for core in ("numpy.core", "numpy._core")]
)
"""Globals of pickled ndarrays, dtypes and numpy scalars (NumPy 1.x and 2.x names, protocols 2 to 5)."""

PLAIN_GLOBALS: frozenset[Global] = frozenset(
    [("builtins", name) for name in ("int", "float", "bool", "str", "bytes", "complex", "set", "frozenset")]
    + [("_codecs", "encode"), ("collections", "OrderedDict")]
)
"""Globals of plain Python values (``_codecs.encode`` rebuilds bytes in protocol-2 pickles)."""


@dataclass(frozen=True)
class PickleFormat:
    """A pickle format: its name (for messages) and the globals it may reference.

    ``substitutes`` maps globals to the objects to use instead of importing them (e.g. stand-ins for classes
    of a package that is not installed); they are allowed too.
    """

    name: str
    allowed: frozenset[Global]
    substitutes: Mapping[Global, Any] = field(default_factory=dict)

    def resolve(self, module: str, name: str) -> Any:
        if (module, name) in self.substitutes:
            return self.substitutes[(module, name)]
        if (module, name) not in self.allowed:
            raise KeyError((module, name))
        return _import_global(module, name)


LOG_PICKLE = PickleFormat("OpenScene log", NUMPY_GLOBALS | PLAIN_GLOBALS)
"""Log pickles and stage-2 scene pickles: lists/dicts of numbers, strings and numpy arrays."""


class UnsafePickleError(DataError):
    """A pickle references a global its format never contains; nothing of it was executed."""

    def __init__(self, path: Optional[PathLike], module: str, name: str, format_name: str):
        self.path = Path(path) if path is not None else None
        self.module = module
        self.name = name
        self.format_name = format_name
        self.reason = (
            f"references {module}.{name}, which the {format_name} format never contains "
            "(refusing to load it: a pickle can run code while loading)"
        )
        where = f"file {self.path}" if self.path is not None else "pickle"
        super().__init__(f"{where}: {self.reason}")


def _import_global(module: str, name: str) -> Any:
    candidates = [module]
    for prefix, alias in _NUMPY_MODULE_ALIASES.items():
        if module == prefix or module.startswith(prefix + "."):
            candidates.append(alias + module[len(prefix):])
    candidates.sort(key=lambda candidate: not candidate.startswith("numpy._core"))  # NumPy 2 warns on numpy.core
    for candidate in candidates:
        try:
            return getattr(importlib.import_module(candidate), name)
        except (ImportError, AttributeError):
            continue
    raise pickle.UnpicklingError(f"global {module}.{name} cannot be imported")


def _python3_name(module: str, name: str) -> Global:
    """Python 2 names that protocol 0-2 pickles written by Python 3 still use (``__builtin__.set``)."""
    if (module, name) in _compat_pickle.NAME_MAPPING:
        return _compat_pickle.NAME_MAPPING[(module, name)]
    return _compat_pickle.IMPORT_MAPPING.get(module, module), name


class RestrictedUnpickler(pickle.Unpickler):
    """Resolves only the globals of one :class:`PickleFormat`; records every global it was asked for."""

    def __init__(self, file: io.BufferedIOBase, pickle_format: PickleFormat, path: Optional[PathLike] = None):
        super().__init__(file)
        self.pickle_format = pickle_format
        self.path = path
        self.globals_seen: set[Global] = set()

    def find_class(self, module: str, name: str) -> Any:
        self.globals_seen.add((module, name))
        module, name = _python3_name(module, name)
        try:
            return self.pickle_format.resolve(module, name)
        except KeyError:
            raise UnsafePickleError(self.path, module, name, self.pickle_format.name) from None


def restricted_loads(data: bytes, pickle_format: PickleFormat, path: Optional[PathLike] = None) -> tuple[Any, set[Global]]:
    """Unpickle `data` allowing only `pickle_format`'s globals. Returns (object, globals seen).

    Raises :class:`UnsafePickleError` for any other global; a damaged stream raises what ``pickle`` raises
    (callers wrap it in their format's error, naming the file).
    """
    unpickler = RestrictedUnpickler(io.BytesIO(data), pickle_format, path)
    return unpickler.load(), unpickler.globals_seen


def restricted_load(path: PathLike, pickle_format: PickleFormat) -> Any:
    """Read and unpickle the file at `path` with :func:`restricted_loads`; returns the object."""
    return restricted_loads(Path(path).read_bytes(), pickle_format, path)[0]
