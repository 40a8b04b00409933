"""Where a ``from_pretrained`` argument points: a local folder or a Hugging Face hub repository id.

A hub id has the form ``name`` or ``org/name`` (letters, digits, ``-``, ``_``, ``.``). An argument that does not
exist on disk but reads as a path (absolute, ``./``/``../``/``~``, more than one ``/``, a trailing ``/``, or a
first component that is a local folder, e.g. ``outputs/model``) is a local "not found" error instead of a hub
download that would retry over the network.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Union

from vla.errors import CheckpointError

HUB_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)?$")
"""``name`` or ``org/name`` (the hub's repository id form)."""


def looks_like_local_path(text: str) -> bool:
    """True when ``text`` can only mean a path on this machine (see the module docstring)."""
    if not HUB_ID_PATTERN.match(text):
        return True  # absolute, ./, ../, ~, backslashes, spaces, two or more slashes, a trailing slash
    return "/" in text and Path(text.split("/", 1)[0]).is_dir()


def resolve_pretrained(name_or_path: Union[str, Path], what: str = "checkpoint") -> str:
    """``name_or_path`` unchanged when it is an existing local path or a hub id; a path-like argument that does
    not exist raises :class:`CheckpointError` (``what`` names the thing in the message)."""
    text = str(name_or_path)
    path = Path(text).expanduser()
    if path.exists():
        return str(path)
    if isinstance(name_or_path, Path) or looks_like_local_path(text):
        where = path if path.is_absolute() else Path.cwd() / path
        raise CheckpointError(text, f"{what} not found: no local folder {where} (a hub repository id has the form "
                                    "org/name)")
    return text
