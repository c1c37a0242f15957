"""What a user types or points ``pyhbnode`` at, checked before a command runs.

:func:`check_arguments` covers the flags every subcommand shares by name (``--tol``,
``--threads``, ``--seed`` ...); :func:`check_run_dir` the files ``plot`` and ``report`` read.
Each failure is a ``ValueError`` whose message names the flag or the file."""
from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

from ..checks import check_device, regular_file

__all__ = ["check_arguments", "check_run_dir"]

# flag -> (kind, bound): "int" with a minimum, or "positive" (a finite number > 0)
_FLAGS: dict[str, tuple[str, float]] = {
    "iters": ("int", 1), "threads": ("int", 1), "seed": ("int", 0), "epochs": ("int", 1),
    "batch_size": ("int", 1), "max_batches": ("int", 1), "tol": ("positive", 0), "lr": ("positive", 0),
}


def check_arguments(args: argparse.Namespace) -> None:
    """Refuse out-of-range numbers, an unknown backend and an unusable device."""
    for name, (kind, bound) in _FLAGS.items():
        value = getattr(args, name, None)
        if value is None:
            continue
        flag = "--" + name.replace("_", "-")
        if kind == "int" and value < bound:
            raise ValueError(f"{flag} must be an integer >= {int(bound)}, got {value}")
        if kind == "positive" and not (math.isfinite(value) and value > 0):
            raise ValueError(f"{flag} must be a finite number > 0, got {value}")
    backend = getattr(args, "backend", None)
    if backend is not None:
        from ..solving import available_backends

        if backend not in available_backends():
            raise ValueError(f"--backend {backend!r} is not a backend; choose one of {available_backends()}")
    device = getattr(args, "device", None)
    if device is not None:
        check_device("--device", device)


def _json(path: Path) -> Any:
    try:
        return json.loads(regular_file(path, "file").read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise ValueError(f"{path} is not UTF-8 text") from None
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is not valid JSON ({err})") from None


def _records(path: Path, keys: tuple[str, ...]) -> None:
    try:
        lines = regular_file(path, "file").read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        raise ValueError(f"{path} is not UTF-8 text") from None
    count = 0
    for i, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            raise ValueError(f"{path} line {i} is not a JSON record ({err})") from None
        missing = [k for k in keys if not isinstance(record, dict) or k not in record]
        if missing:
            raise ValueError(f"{path} line {i} is not a pyhbnode record: it lacks {missing}")
        count += 1
    if count == 0:
        raise ValueError(f"{path} holds no records: nothing to plot")


def check_run_dir(run: str | Path, *, needs_history: bool) -> Path:
    """``run`` must be a directory whose result files are regular files of the right form."""
    run = Path(run)
    if not run.exists():
        raise ValueError(f"run directory {str(run)!r} not found")
    if not run.is_dir():
        raise ValueError(f"{str(run)!r} is not a directory; point the command at a run directory")
    config = run / "config.json"
    if config.exists() or config.is_symlink():
        if not isinstance(_json(config), dict):
            raise ValueError(f"{config} must hold a JSON object (a pyhbnode run's settings)")
    history = run / "history.jsonl"
    if history.exists() or history.is_symlink():
        _records(history, ("model", "iteration", "loss", "nfe_forward", "nfe_backward"))
    elif needs_history and not config.exists():
        raise ValueError(f"{run} holds no history.jsonl or config.json: is it a run directory written by pyhbnode?")
    epochs = run / "epochs.jsonl"
    if epochs.exists() or epochs.is_symlink():
        _records(epochs, ("model", "epoch"))
    separation = run / "separation.json"
    if separation.exists() or separation.is_symlink():
        saved = _json(separation)
        if not isinstance(saved, dict) or not all(isinstance(v, dict) and {"features", "labels"} <= set(v)
                                                  for v in saved.values()):
            raise ValueError(f"{separation} must map each model to its 'features' and 'labels'")
    return run
