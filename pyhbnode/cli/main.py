"""The ``pyhbnode`` command: ``compare``, ``train``, ``reproduce``, ``report``, ``plot``."""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Sequence

__all__ = ["main"]


def _print_table(rows: list[dict], columns: Sequence[tuple[str, str]]) -> None:
    cells = [[h for _, h in columns]]
    for row in rows:
        line = []
        for key, _ in columns:
            v = row.get(key)
            line.append(f"{v:.4g}" if isinstance(v, float) else ("-" if v is None else str(v)))
        cells.append(line)
    widths = [max(len(r[i]) for r in cells) for i in range(len(columns))]
    for j, r in enumerate(cells):
        print("  ".join(c.rjust(w) for c, w in zip(r, widths)))
        if j == 0:
            print("  ".join("-" * w for w in widths))


RESULT_COLUMNS = (
    ("model", "model"), ("parameters", "params"), ("nfe_forward_mean", "fwd NFE"),
    ("nfe_backward_mean", "bwd NFE"), ("seconds_per_iter", "s/iter"), ("final_loss", "final loss"),
    ("final_train_sign_accuracy", "accuracy"),
)


def _cmd_compare(args: argparse.Namespace) -> int:
    import torch

    from .. import zoo
    from ..experiments import pointcloud

    torch.set_num_threads(args.threads)
    # The heavy-ball five by default: the later models (zoo.RUNS_ON) are selectable but not yet wired into
    # the experiments' tables.
    models = args.models or [m for m in zoo.MODELS if m not in zoo.RUNS_ON]
    print(f"pyhbnode compare pointcloud: {', '.join(models)}; {args.iters} iterations, tol {args.tol:g}, "
          f"preset {args.preset}, seed {args.seed} -> {args.out}")
    rows = pointcloud.run(models, args.out, iters=args.iters, tol=args.tol, seed=args.seed,
                          backend=args.backend, progress=not args.quiet, preset=args.preset,
                          solver_options=dict(adjoint=args.adjoint, controller=args.controller))
    print()
    _print_table(rows, RESULT_COLUMNS)
    print(f"\nwrote {args.out}/results.csv, history.jsonl, nfe.png, loss.png, separation.png")
    return 0


def _cmd_plot(args: argparse.Namespace) -> int:
    from .checks import check_run_dir
    from .reproduce import redraw_run
    from ..experiments.pointcloud import redraw_separation
    from ..experiments.runner import redraw_training

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
    from .. import __version__, zoo
    from ..experiments.pointcloud import DEFAULT_ITERS

    parser = argparse.ArgumentParser(prog="pyhbnode", description="Heavy-ball neural ODEs: train, compare, reproduce.")
    parser.add_argument("--version", action="version", version=f"pyhbnode {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("compare", help="train NODE, ANODE, SONODE, HBNODE, GHBNODE side by side on a built-in task")
    p.add_argument("task", choices=["pointcloud"])
    p.add_argument("--iters", type=int, default=DEFAULT_ITERS, help=f"training iterations per model (default {DEFAULT_ITERS})")
    p.add_argument("--models", nargs="+", choices=list(zoo.MODELS), help="models to compare (default: all five)")
    p.add_argument("--tol", type=float, default=1e-7, help="solver rtol = atol (paper: 1e-7)")
    p.add_argument("--backend", default=None, help="solver backend (default: the package default)")
    p.add_argument("--adjoint", default=None,
                   help="gradient mode: checkpointed (default), checkpointed:<max_checkpoints>, backsolve, direct")
    p.add_argument("--controller", default=None, help="step-size controller (torch backend): i (default), pi, hairer")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--preset", choices=list(zoo.PRESETS), default="paper",
                   help="zoo preset: 'paper' (Appendix E, the default) or 'authors' (the authors' code)")
    p.add_argument("--out", default="runs/compare-pointcloud", help="output directory")
    p.add_argument("--threads", type=int, default=1,
                   help="torch intra-op threads (default 1: these small solves run fastest on one)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=_cmd_compare)

    p = sub.add_parser("plot", help="redraw a run's figures from its saved results")
    p.add_argument("run_dir")
    p.set_defaults(func=_cmd_plot)

    from .reproduce import add_report_parser, add_reproduce_parser
    from .train import add_parser as add_train_parser

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
    from .checks import check_arguments, check_run_dir
    from ..solving import SolverError
    from ..training import TrainingDiverged
    from ..training.errors import RunLocked, WriteFailed

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
    except (SolverError, TrainingDiverged, WriteFailed, RunLocked, ValueError, TypeError, FileNotFoundError,
            ImportError) as err:
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
        return fail(f"unexpected {type(err).__name__}: {err} (this is a bug in pyhbnode; "
                    "PYHBNODE_TRACEBACK=1 shows the traceback)", 1)


if __name__ == "__main__":
    sys.exit(main())
