"""The ``pyhbnode`` command: ``compare``, ``train``, ``reproduce``, ``report``, ``plot``."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

__all__ = ["main"]


def _cmd_plot(args: argparse.Namespace) -> int:
    from ..experiments.pointcloud import redraw_separation
    from ..experiments.runner import redraw_training
    from .checks import check_run_dir
    from .reproduce import redraw_run

    run = check_run_dir(args.run_dir, needs_history=True)
    paths = redraw_run(run)  # a `reproduce` run knows its own figures
    if paths is None:
        if not (run / "history.jsonl").exists():
            raise ValueError(f"{run} holds no history.jsonl: is it a run directory written by pyhbnode?")
        paths = redraw_training(run)
        sep = redraw_separation(run)
        paths += [sep] if sep else []
    for p in paths:
        print(p)
    return 0


def build_parser() -> argparse.ArgumentParser:
    from .. import __version__
    from .reproduce import add_compare_parser, add_report_parser, add_reproduce_parser
    from .train import add_parser as add_train_parser

    parser = argparse.ArgumentParser(prog="pyhbnode", description="Heavy-ball neural ODEs: train, compare, reproduce.")
    parser.add_argument("--version", action="version", version=f"pyhbnode {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    add_compare_parser(sub)
    p = sub.add_parser("plot", help="redraw a run's figures from its saved results")
    p.add_argument("run_dir")
    p.set_defaults(func=_cmd_plot)

    add_train_parser(sub)
    add_reproduce_parser(sub)
    add_report_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; every failure a user can cause ends in one line on stderr, no traceback
    (``PYHBNODE_TRACEBACK=1`` shows it for an unexpected error).  Exit status: 2 for a flag out of
    range (as argparse), else 1 for a failure (``train`` keeps its own 2 for bad settings), 130
    interrupted."""
    args = build_parser().parse_args(argv)
    from ..solving import SolverError
    from ..training import TrainingDiverged
    from ..training.errors import RunLocked, WriteFailed
    from .checks import check_arguments, check_run_dir

    def fail(err: BaseException | str, code: int) -> int:
        print(f"pyhbnode {args.command}: error: {' '.join(str(err).split())}", file=sys.stderr)
        return code

    try:
        check_arguments(args)
        if args.command == "report":
            for run in args.run_dirs:
                if (Path(run) / "config.json").exists():
                    check_run_dir(run, needs_history=False)
    except ValueError as err:
        return fail(err, 2)
    try:
        return int(args.func(args) or 0)
    except (
        SolverError,
        TrainingDiverged,
        WriteFailed,
        RunLocked,
        ValueError,
        TypeError,
        FileNotFoundError,
        ImportError,
    ) as err:
        return fail(err, 1)
    except OSError as err:  # disk full, read-only, permissions: name the file
        where = f"{err.filename}: " if err.filename else ""
        return fail(f"{where}{err.strerror or err}", 1)
    except KeyboardInterrupt:
        print("interrupted; rerun the same command to resume from the last checkpoint", file=sys.stderr)
        return 130
    except Exception as err:  # a bug: still one line, the traceback on request
        if os.environ.get("PYHBNODE_TRACEBACK"):
            raise
        return fail(
            f"unexpected {type(err).__name__}: {err} (this is a bug in pyhbnode; "
            "PYHBNODE_TRACEBACK=1 shows the traceback)",
            1,
        )
