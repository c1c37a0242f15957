"""What a user types or points ``pyhbnode`` at, checked before a command runs.

Numeric flags are bounded where they are declared (:func:`pyhbnode.cli.flags.typed`);
:func:`check_arguments` checks what only makes sense together: the solver flags as one
:class:`~pyhbnode.SolverOptions`, and the device.  :func:`check_run_dir` checks the files
``plot`` and ``report`` read.  Each failure is a ``ValueError`` whose message names the flag
or the file."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from ..checks import check_device, regular_file
from ..solving import SolverOptions
from .flags import solver_flags

__all__ = ["check_arguments", "check_run_dir"]


def check_arguments(args: argparse.Namespace) -> None:
    """Refuse solver flags that make no :class:`SolverOptions` and an unusable device."""
    flags = solver_flags(args)
    try:
        SolverOptions.from_kwargs(**flags)
    except (TypeError, ValueError) as err:
        given = " ".join(f"--{k.replace('_', '-')} {v}" for k, v in flags.items())
        raise ValueError(f"solver flags {given}: {err}") from None
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
        if not isinstance(saved, dict) or not all(
            isinstance(v, dict) and {"features", "labels"} <= set(v) for v in saved.values()
        ):
            raise ValueError(f"{separation} must map each model to its 'features' and 'labels'")
    return run
