"""``pyhbnode train``: one zoo model on one task, from a config file and command-line overrides.

Writes into ``--out``: ``history.jsonl`` (one line per batch), ``epochs.jsonl`` (one line per
epoch), ``results.csv`` (one row), ``config.json`` (the resolved settings, seed, versions,
backend, device, wall time), the figures ``reproduce`` draws for a run (``nfe.png``,
``loss.png``, ``metrics.png`` when validated) and ``checkpoints/``.  Rerunning the same command
resumes.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import os
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

import torch

from .. import zoo
from ..experiments.runner import redraw_training
from ..layers import solver_layers
from ..solving import SolverError
from ..training.checkpoint import list_checkpoints, writable_dir
from ..training.distributed import is_main_process
from ..training.errors import RunLocked, TrainingDiverged, WriteFailed
from ..training.fit import fit
from ..training.metadata import run_metadata
from ..training.run_lock import RunLock
from .config import KEYS, SETTINGS, SOLVER_TABLE, TrainConfig, merge, parse_assignment, read_config_file
from .flags import add_solver_flags, solver_flags, typed
from .task_setups import first_items, task_setup

__all__ = ["add_parser", "run", "resolve_config", "train"]

T = TypeVar("T")

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 130


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``train`` subcommand to an ``argparse`` subparsers object."""
    p = subparsers.add_parser(
        "train",
        help="train one model on one task (config file + overrides; resumes when rerun)",
        description="Train one zoo model on one task. Settings come from the task's defaults, then --config "
        "(TOML, or YAML with PyYAML; solver options in a [solver] table), then the flags below, "
        "then --set key=value.",
    )
    p.add_argument("--task", help=f"one of {', '.join(zoo.TASKS)}")
    p.add_argument("--model", help=f"one of {', '.join(zoo.MODELS)} (see zoo.RUNS_ON for the later ones)")
    p.add_argument("--config", help="a .toml/.yaml file of settings (keys as for --set)")
    p.add_argument("--epochs", type=typed(SETTINGS["epochs"]))
    p.add_argument("--lr", type=typed(SETTINGS["lr"]))
    p.add_argument(
        "--batch-size", type=typed(SETTINGS["batch_size"]), help="the global batch (split across ranks under DDP)"
    )
    p.add_argument("--seed", type=typed(SETTINGS["seed"]))
    p.add_argument("--out", help="run directory (default runs/train-<task>-<model>)")
    p.add_argument("--data-dir", help="folder holding the data sets (default ./data)")
    p.add_argument(
        "--max-batches",
        type=typed(SETTINGS["max_batches"]),
        help="stop after this many optimiser steps; validation then runs on as many batches at most",
    )
    p.add_argument("--device")
    p.add_argument(
        "--preset",
        choices=list(zoo.PRESETS),
        help="zoo preset: 'paper' (Appendix E, the default) or 'authors' (the authors' code)",
    )
    p.add_argument("--strategy", choices=["ddp"], help="data-parallel training (under torchrun)")
    p.add_argument(
        "--resume",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="continue from the last checkpoint in OUT/checkpoints (default: yes)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="any setting, e.g. --set lr_schedule=cosine --set 'field_kwargs={\"xi\": 2}' --set tol=1e-5",
    )
    add_solver_flags(p)
    p.set_defaults(func=run)
    return p


def resolve_config(args: argparse.Namespace) -> TrainConfig:
    """The :class:`~pyhbnode.cli.config.TrainConfig` from ``args``: file, then flags,
    then ``--set``; task and model checked."""
    layers: list[tuple[str, dict]] = []
    if getattr(args, "config", None):
        layers.append((f"config file {args.config}", read_config_file(args.config)))
    flags = {k: getattr(args, k) for k in KEYS if k != SOLVER_TABLE and getattr(args, k, None) is not None}
    if getattr(args, "quiet", False):
        flags["progress"] = False
    layers.append(("the command line", {**flags, SOLVER_TABLE: solver_flags(args)}))
    layers.append(("--set", dict(parse_assignment(a) for a in getattr(args, "set", []) or [])))
    config = merge(layers)
    if config.task is None or config.model is None:
        raise ValueError("say which task and model to train: --task TASK --model MODEL (or task/model in --config)")
    zoo.task_spec(config.task)
    if config.model not in zoo.MODELS:
        raise ValueError(f"unknown model {config.model!r}; choose one of {list(zoo.MODELS)}")
    if not zoo.runs_on(config.task, config.model):  # refused here, before the data are loaded
        raise ValueError(
            f"--model {config.model} on --task {config.task}: its authors ran it on "
            f"{list(zoo.RUNS_ON[config.model])} only, so the zoo has no {config.task} architecture "
            f"for it; choose one of those tasks, or one of {list(zoo.models_for(config.task))}"
        )
    if config.preset is not None and config.preset not in zoo.PRESETS:
        raise ValueError(f"unknown preset {config.preset!r}; choose one of {list(zoo.PRESETS)}")
    if config.out is None:
        config = replace(config, out=f"runs/train-{config.task}-{config.model}")
    return config


def _metadata(config: TrainConfig, model: Any, wall_seconds: float) -> dict[str, Any]:
    layers = solver_layers(model)
    return run_metadata(
        config=config.as_dict(),
        seed=config.seed,
        world_size=int(os.environ.get("WORLD_SIZE", 1)),
        backend=layers[0].options.backend if layers else None,
        solver=layers[0].options.as_dict() if layers else None,
        device=config.device,
        wall_seconds=round(wall_seconds, 3),
    )


def _given(value: T | None, default: T) -> T:
    return default if value is None else value


def train(config: TrainConfig) -> dict[str, Any]:
    """Train as ``config`` says and write the run directory; returns the results row.

    The run directory is locked for the whole run (:class:`~pyhbnode.training.run_lock.RunLock`):
    a second ``pyhbnode train`` into it fails at once with :class:`RunLocked`."""
    assert config.out is not None  # resolve_config names the default run directory
    out = writable_dir(config.out, "--out")
    with RunLock(out) if is_main_process() else contextlib.nullcontext():
        return _train_locked(config, out)


def _train_locked(config: TrainConfig, out: Path) -> dict[str, Any]:
    task, model_name = config.task, config.model
    assert task is not None and model_name is not None  # resolve_config refuses a config without them
    spec = zoo.task_spec(task)
    setup = task_setup(task, config.data_dir, seed=config.seed, limit=config.limit)
    epochs, lr = _given(config.epochs, spec.epochs), _given(config.lr, spec.lr)
    batch_size, preset = _given(config.batch_size, spec.batch_size), _given(config.preset, spec.preset)
    config = replace(config, epochs=epochs, lr=lr, batch_size=batch_size, preset=preset)
    torch.manual_seed(config.seed)  # the model's initial weights
    model = zoo.build(task, model_name, preset=preset, field_kwargs=config.field_kwargs or None, **config.solver)
    # a quick run (--max-batches) validates as briefly as it trains, not on the whole test set
    val_items = None if config.max_batches is None else config.max_batches * batch_size
    started = time.time()
    history = fit(
        model,
        setup.train,
        val_data=first_items(setup.val, val_items),
        loss=setup.loss,
        metrics=setup.metrics,
        epochs=epochs,
        lr=lr,
        batch_size=batch_size,
        optimizer=config.optimizer,
        lr_schedule=config.lr_schedule,
        grad_clip=config.grad_clip,
        weight_decay=config.weight_decay,
        device=config.device,
        seed=config.seed,
        checkpoint_dir=out / "checkpoints",
        checkpoint_every=config.checkpoint_every,
        resume=config.resume,
        progress=config.progress,
        strategy=config.strategy,
        max_batches=config.max_batches,
    )
    wall = time.time() - started
    row = {
        "task": config.task,
        "model": config.model,
        "parameters": sum(p.numel() for p in model.parameters() if p.requires_grad),
        **history.summary(),
    }
    if is_main_process():
        tag = {"model": config.model}
        kept = latest_good(out / "checkpoints")
        with _writing(out / "history.jsonl", kept) as path:
            history.to_jsonl(path, kind="batch", extra=tag)
        with _writing(out / "epochs.jsonl", kept) as path:
            history.to_jsonl(path, kind="epoch", extra=tag)
        with _writing(out / "results.csv", kept) as path, path.open("w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(row))
            writer.writeheader()
            writer.writerow(row)
        with _writing(out / "config.json", kept) as path:
            path.write_text(json.dumps(_metadata(config, model, wall), indent=2, default=str))
        with _writing(out / "nfe.png", kept):
            redraw_training(out, title=config.task)
    return row


def latest_good(directory: Path) -> Path | None:
    """The newest checkpoint archive in ``directory`` (for messages), or ``None``."""
    found = list_checkpoints(directory)
    return found[0] if found else None


@contextlib.contextmanager
def _writing(path: Path, checkpoint: Path | None):
    """Turn an ``OSError`` while writing ``path`` into a :class:`WriteFailed` naming it."""
    try:
        yield path
    except OSError as err:
        raise WriteFailed(path, err, checkpoint=checkpoint) from err


def run(args: argparse.Namespace) -> int:
    """Run ``pyhbnode train``; returns the exit code.  User errors print one line, no traceback:
    2 for bad input (settings, data, checkpoints), 1 for a run that diverged or failed to solve."""

    def fail(err: BaseException, code: int) -> int:
        message = " ".join(str(err).split())  # one line, whatever the error's own layout
        print(f"pyhbnode train: error: {message}", file=sys.stderr)
        return code

    try:
        config = resolve_config(args)
        row = train(config)
    except (TrainingDiverged, SolverError, WriteFailed, RunLocked) as err:
        return fail(err, EXIT_FAILED)
    except (ValueError, TypeError, FileNotFoundError, ImportError) as err:
        return fail(err, EXIT_BAD_INPUT)
    except KeyboardInterrupt:
        print("pyhbnode train: interrupted; rerun the same command to resume from the last checkpoint", file=sys.stderr)
        return EXIT_INTERRUPTED
    if is_main_process():
        final = {
            k: row[k]
            for k in ("final_loss", "final_val_loss", "nfe_forward_mean", "nfe_backward_mean")
            if row.get(k) is not None
        }
        print(
            f"trained {config.model} on {config.task}: "
            + ", ".join(f"{k} {v:.4g}" for k, v in final.items())
            + f" -> {config.out}"
        )
    return EXIT_OK
