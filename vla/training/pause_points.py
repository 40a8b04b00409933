"""Named pause points, so that a kill test can SIGKILL a training process inside a known phase.

``DIPOLE_PAUSE_AT=<point>`` or ``<point>#<n>`` makes the process stop the n-th time (default: the first) it
reaches ``<point>``: it prints ``[pause] <point>`` and sleeps until it is killed. Unset (every normal run),
:func:`pause_point` compares one module constant with None and returns.

Points: ``<stage>.step`` (inside an optimizer step: parameters updated, counters not yet advanced),
``rollout`` (candidates sampled, not yet scored), ``scoring`` (the reward has returned, its scores are not yet
used), ``checkpoint.write`` (the temporary folder holds the model state but not the manifest), ``<stage>.end``
(the stage's policy is saved, its final checkpoint not yet written), ``final_evaluation`` (the evaluation's rows
are written, results.md is not).
"""

from __future__ import annotations

import os
import time
from typing import Optional

PAUSE_ENV = "DIPOLE_PAUSE_AT"
PAUSE_MESSAGE = "[pause] "  # printed, followed by the point's name, when the process stops


def _parse(text: Optional[str]) -> Optional[tuple[str, int]]:
    if not text:
        return None
    name, _, count = text.partition("#")
    if not name or (count and not count.isdigit()) or (count and int(count) < 1):
        raise ValueError(f"{PAUSE_ENV}={text!r}: expected <point> or <point>#<n> with n >= 1")
    return name, int(count or 1)


_TARGET = _parse(os.environ.get(PAUSE_ENV))
_reached: dict[str, int] = {}


def pause_point(name: str) -> None:
    """Stop here (forever) when ``DIPOLE_PAUSE_AT`` names this point and this is its n-th visit."""
    if _TARGET is None or _TARGET[0] != name:
        return
    _reached[name] = _reached.get(name, 0) + 1
    if _reached[name] == _TARGET[1]:
        print(f"{PAUSE_MESSAGE}{name}", flush=True)
        while True:
            time.sleep(3600)
