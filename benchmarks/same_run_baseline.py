"""Measure a benchmark on the working tree and on a git reference in the same session, interleaved.

On a shared machine absolute timings drift with the load, so speed-ups are judged on pairs of measurements
taken back to back: round r runs the measurement of the reference's packages, then the working tree's, each in
a fresh process (same script, same arguments; only `PYTHONPATH` differs). The measurement writes a JSON dict of
figures (`--measure-json FILE`); the caller compares the rounds.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Optional, Sequence

REPOSITORY = Path(__file__).resolve().parents[1]
# Packages a scoring benchmark imports; the reference's copies replace the working tree's.
MEASURED_PACKAGES = ("navsim_eval", "data_pipelines")
MEASURE_FLAG = "--measure-json"


def export_packages(ref: str, directory: Path, packages: Sequence[str] = MEASURED_PACKAGES) -> Path:
    """Extract the packages as committed at `ref` into `directory` (a `git archive` of those paths)."""
    archive = directory / "packages.tar"
    with open(archive, "wb") as handle:
        subprocess.run(["git", "archive", "--format=tar", ref, *packages], cwd=REPOSITORY, stdout=handle, check=True)
    with tarfile.open(archive) as tar:
        tar.extractall(directory, filter="data")
    archive.unlink()
    return directory


def run_measurement(script: Path, arguments: Sequence[str], packages_root: Optional[Path]) -> dict:
    """Run `script arguments --measure-json FILE` in a fresh interpreter; `packages_root` (or the working tree)
    comes first on the import path. Returns the JSON figures."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(packages_root or REPOSITORY)
    with tempfile.TemporaryDirectory() as directory:
        output = Path(directory) / "figures.json"
        subprocess.run([sys.executable, str(script), *arguments, MEASURE_FLAG, str(output)], env=env, check=True,
                       cwd=REPOSITORY)
        return json.loads(output.read_text())


def interleaved_rounds(script: Path, arguments: Sequence[str], baseline_ref: Optional[str],
                       rounds: int) -> tuple[list[dict], list[dict]]:
    """(current figures per round, baseline figures per round; empty without a reference)."""
    current, baseline = [], []
    with tempfile.TemporaryDirectory() as directory:
        root = export_packages(baseline_ref, Path(directory)) if baseline_ref else None
        for round_index in range(rounds):
            if root is not None:
                print(f"round {round_index + 1}/{rounds}: baseline {baseline_ref}", file=sys.stderr, flush=True)
                baseline.append(run_measurement(script, arguments, root))
            print(f"round {round_index + 1}/{rounds}: working tree", file=sys.stderr, flush=True)
            current.append(run_measurement(script, arguments, None))
    return current, baseline


def load_average() -> str:
    """The 1, 5 and 15 minute load averages and the CPU count, for the record."""
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.1f} / {five:.1f} / {fifteen:.1f} on {os.cpu_count()} CPUs"
