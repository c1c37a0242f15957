"""What ran a result: recorded next to every training run and experiment."""

from __future__ import annotations

import json
import os
import platform
import time
from importlib import metadata
from pathlib import Path

import torch

__all__ = ["run_metadata", "with_wall_time"]


def _version() -> str:
    # read from the installed distribution: training is a floor below the package's __init__
    try:
        return metadata.version("pyhbnode")
    except metadata.PackageNotFoundError:
        return "unknown (not installed)"


def run_metadata(**extra) -> dict:
    """Machine, threads, versions and date, plus ``extra`` (config, seed, backend, ...)."""
    return {
        "pyhbnode": _version(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "torch_threads": torch.get_num_threads(),
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        **extra,
    }


# What makes a config.json the same run as an earlier one in its folder (a resumed run).
_RUN_IDENTITY = ("experiment", "scale", "preset", "experiment_settings", "settings", "models", "seed")


def with_wall_time(config: dict, path: Path, seconds: float) -> dict:
    """``config`` with ``wall_seconds`` (this invocation) and ``wall_seconds_total``: this one
    plus the total of the same run's earlier invocations, read from the ``config.json`` at
    ``path`` (a resumed or re-measured run keeps the time that produced its results)."""
    before = 0.0
    try:
        old = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        old = None
    new = json.loads(json.dumps(config, default=str))  # compared as it is stored
    if isinstance(old, dict) and all(old.get(k) == new.get(k) for k in _RUN_IDENTITY if k in new):
        prev = old.get("wall_seconds_total", old.get("wall_seconds"))
        before = float(prev) if isinstance(prev, (int, float)) else 0.0
    return {**config, "wall_seconds": round(seconds, 2), "wall_seconds_total": round(before + seconds, 2)}
