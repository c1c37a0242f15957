"""``pyhbnode reproduce``, its alias ``pyhbnode compare`` and ``pyhbnode report``: argument
parsers and handlers, wired into :mod:`pyhbnode.cli.main`.

    pyhbnode reproduce --list
    pyhbnode reproduce EXPERIMENT [--quick | --standard | --tiny] [--preset paper|authors] [--out DIR]
                       [--data-dir DIR] [--seed S] [--models M ...] [--set KEY=VALUE ...] [--threads N]
                       [--redraw] [solver flags: --backend, --rtol, --adjoint, ...]
    pyhbnode compare pointcloud [--iters N] [...]   (= reproduce pointcloud with one seed, in --out itself)
    pyhbnode report RUN_DIR... [--out report.md] [--html]
"""

from __future__ import annotations

import argparse
import difflib
import os
import shlex
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .. import zoo
from ..checks import COUNT, INDEX
from ..experiments import registry
from ..solving import SolverOptions
from ..solving.options import TOL, option_names, parse_option
from .config import parse_assignment
from .flags import add_solver_flags, solver_flags, typed

__all__ = [
    "add_reproduce_parser",
    "add_compare_parser",
    "add_report_parser",
    "run_reproduce",
    "run_compare",
    "run_report",
    "redraw_run",
    "parse_overrides",
    "merge_settings",
    "default_data_dir",
    "EXIT_DATA_MISSING",
]

# Exit status when a data file is missing (after a message naming it and where to get it).
EXIT_DATA_MISSING = 3


def default_data_dir() -> str:
    """``$PYHBNODE_DATA`` if set, else ``./data``."""
    return os.environ.get("PYHBNODE_DATA", "data")


def _run_flags(p: argparse.ArgumentParser, *, threads: int | None, models_help: str) -> None:
    """The flags ``reproduce`` and ``compare`` share."""
    p.add_argument(
        "--seed", type=typed(INDEX), default=0, help="seed of initialisation, subsampling and batching (default 0)"
    )
    p.add_argument(
        "--preset",
        choices=list(zoo.PRESETS),
        default=zoo.DEFAULT_PRESET,
        help="zoo preset: 'paper' (Appendix E as written, the default) or 'authors' (the settings "
        "of the authors' code)",
    )
    p.add_argument(
        "--models",
        nargs="+",
        choices=[*zoo.MODELS, *registry.MODEL_GROUPS],
        help=f"{models_help}; 'all': every model the task runs, 'paper': the heavy-ball paper's five "
        "(from a default list or a group, a model the task does not run is skipped with a note; "
        "named on its own, it is refused)",
    )
    default = threads if threads else "torch's choice"
    p.add_argument("--threads", type=typed(COUNT), default=threads, help=f"torch CPU threads (default {default})")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    add_solver_flags(p, tol_help="the experiment's setting tol (rtol = atol), as --set tol=TOL")


def add_reproduce_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    listing = "; ".join(f"{e.name} ({e.figure})" for e in registry.EXPERIMENTS)
    p = subparsers.add_parser(
        "reproduce",
        help="run one of the paper's nine experiments (see --list)",
        description="Run one of the paper's experiments with all its models side by side, write results "
        "(CSV/JSONL), config.json and the figures (PNG), and print the table with the paper's claim "
        f"and a verdict. Experiments: {listing}.",
    )
    p.add_argument("experiment", nargs="?", help="experiment name (see --list)")
    p.add_argument("--list", action="store_true", help="list the nine experiments and exit")
    scale = p.add_mutually_exclusive_group()
    scale.add_argument(
        "--quick",
        dest="scale",
        action="store_const",
        const="quick",
        help="a few minutes on two CPU cores: real data, subsampled, few epochs",
    )
    scale.add_argument(
        "--standard",
        dest="scale",
        action="store_const",
        const="standard",
        help="real data at the paper's batch size and tolerance, long enough to test the claim "
        "(at most about an hour per experiment on two CPU cores)",
    )
    scale.add_argument(
        "--full",
        dest="scale",
        action="store_const",
        const="full",
        help="the paper's settings (the default; hours on CPU)",
    )
    scale.add_argument(
        "--tiny",
        dest="scale",
        action="store_const",
        const="tiny",
        help="seconds: a smoke test of the pipeline (used by the test suite)",
    )
    p.set_defaults(scale="full")
    p.add_argument("--out", help="run directory (default: runs/<experiment>[-quick|-tiny])")
    p.add_argument(
        "--data-dir",
        default=None,
        help="folder holding mnist/, cifar10/, pv.csv, sb.csv, walker/ (default: $PYHBNODE_DATA or ./data)",
    )
    p.add_argument("--device", default=None, help="torch device for training (default cpu)")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a setting, e.g. --set epochs=5 --set tols=[1e-3,1e-5] (values are JSON); "
        "solver options too, e.g. --set adjoint=backsolve",
    )
    p.add_argument("--redraw", action="store_true", help="only redraw the figures of an existing run in --out")
    _run_flags(p, threads=None, models_help="models to run (default: the experiment's)")
    p.set_defaults(func=run_reproduce)
    return p


def add_compare_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    pointcloud = zoo.task_spec("pointcloud")
    p = subparsers.add_parser(
        "compare",
        help="train the zoo's models side by side on a built-in task",
        description="`reproduce pointcloud` with one seed, written into --out itself: results.csv, history.jsonl, "
        "config.json, nfe.png, loss.png, separation.png.",
    )
    p.add_argument("task", choices=["pointcloud"])
    p.add_argument(
        "--iters",
        type=typed(registry.SETTINGS["iters"]),
        default=None,
        help=f"training iterations per model (default {pointcloud.iterations})",
    )
    p.add_argument("--out", default="runs/compare-pointcloud", help="output directory")
    _run_flags(p, threads=1, models_help=f"models to compare (default: {' '.join(zoo.models_for('pointcloud'))})")
    p.set_defaults(func=run_compare)
    return p


def add_report_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "report",
        help="collect reproduce runs into one Markdown/HTML page with tables and verdicts",
        description="Build one page over reproduce runs: per experiment the figures, a table (model, parameters, "
        "mean forward/backward NFE, time per epoch, final metric), the paper's claim, the "
        "(G)HBNODE/NODE NFE ratios and a verdict.",
    )
    p.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="run directories, or folders holding them")
    p.add_argument("--out", default="report.md", help="the Markdown file to write (default report.md)")
    p.add_argument("--html", action="store_true", help="also write an HTML page next to it")
    p.set_defaults(func=run_report)
    return p


def parse_overrides(items: Sequence[str]) -> dict[str, Any]:
    """``["epochs=5", "tols=[1e-3,1e-4]", "dataset=mnist"]`` -> a dict, read as ``pyhbnode train
    --set`` reads its values (JSON where they parse, ``none`` for ``None``, strings otherwise)."""
    return dict(parse_assignment(item) for item in items)


def merge_settings(
    defaults: dict[str, Any], overrides: dict[str, Any], *, valid: Sequence[str] | None = None
) -> dict[str, Any]:
    """``defaults`` with ``overrides`` applied.  Each key must be one of ``valid`` (default: the
    keys of ``defaults``) and each value of the type and range :data:`registry.SETTINGS`
    declares for it; otherwise ``ValueError`` naming the ``--set`` item, what is allowed and
    the closest valid key."""
    valid = list(defaults) if valid is None else list(valid)
    out = dict(defaults)
    for key, value in overrides.items():
        if key not in valid:
            close = difflib.get_close_matches(key, valid + list(option_names()), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else "."
            raise ValueError(
                f"--set {key}: unknown setting{hint} This experiment's settings: {', '.join(valid)}; "
                f"solver options: {', '.join(o for o in option_names() if o != TOL)}"
            )
        out[key] = registry.SETTINGS[key].check(f"--set {key}={value!r}: {key}", value)
    return out


def _solver_overrides(overrides: dict[str, Any], valid: Sequence[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``overrides`` split into experiment settings and solver options (``tol`` is the
    experiment's setting wherever it has one)."""
    settings, solver = {}, {}
    for key, value in overrides.items():
        if key in option_names() and key not in valid:
            try:
                solver[key] = parse_option(key, value)
            except ValueError as err:
                raise ValueError(f"--set {key}={value!r}: {err}") from None
        else:
            settings[key] = value
    return settings, solver


def print_list(file=None) -> None:
    file = file or sys.stdout
    rows = [("experiment", "paper", "data", "what")] + [
        (e.name, e.figure, e.data if len(e.data) < 40 else e.data[:37] + "...", e.title) for e in registry.EXPERIMENTS
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    for j, r in enumerate(rows):
        print("  ".join(c.ljust(w) for c, w in zip(r[:3], widths, strict=True)) + "  " + r[3], file=file)
        if j == 0:
            print("  ".join("-" * w for w in widths) + "  " + "-" * 4, file=file)
    print(
        f"\n{len(registry.EXPERIMENTS)} experiments. Run one with `pyhbnode reproduce NAME --quick` "
        "(minutes) or without --quick (the paper's settings).",
        file=file,
    )


def _print_assessment(exp: registry.Experiment, run_dir: Path) -> None:
    from ..experiments.common import fmt

    a = exp.assess(run_dir)
    cells = [[h for _, h in a.columns]] + [[fmt(r.get(k)) for k, _ in a.columns] for r in a.rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(a.columns))]
    print()
    for j, r in enumerate(cells):
        print("  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)))
        if j == 0:
            print("  ".join("-" * w for w in widths))
    if a.ratios:
        print("\n" + "; ".join(f"{k} = {fmt(v, 3)}" for k, v in a.ratios.items()))
    print(f"\npaper's claim: {exp.claim}\nverdict: {a.verdict.upper()}")
    for reason in a.reasons:
        print(f"  - {reason}")
    for claim in a.claims:
        print(f"\n{claim.paper}: {claim.claim}\nverdict: {claim.verdict.upper()}")
        for reason in claim.reasons:
            print(f"  - {reason}")


def run_reproduce(args: argparse.Namespace) -> int:
    from ..data import DataNotFoundError
    from ..experiments.common import RunContext

    if args.list:
        print_list()
        return 0
    if not args.experiment:
        print("pyhbnode reproduce: error: name an experiment, or use --list to see the nine", file=sys.stderr)
        return 2
    try:
        exp = registry.get(args.experiment)
        flags = solver_flags(args)
        overrides = parse_overrides(args.overrides)
        if TOL in flags:
            overrides = {TOL: flags.pop(TOL), **overrides}
        overrides, set_solver = _solver_overrides(overrides, exp.keys())
        settings = merge_settings(exp.settings(args.scale), overrides, valid=exp.keys())
        solver = {**flags, **set_solver}
        try:
            SolverOptions.from_kwargs(**solver)
        except (ValueError, TypeError) as err:
            raise ValueError(f"solver options {solver} (flags and --set): {err}") from None
        models, skipped = exp.select_models(args.models, settings)
    except (ValueError, TypeError) as err:
        print(f"pyhbnode {args.command}: error: {err}", file=sys.stderr)
        return 2
    if args.device:
        settings["device"] = args.device
    suffix = ("" if args.scale == "full" else f"-{args.scale}") + ("" if args.preset == "paper" else f"-{args.preset}")
    out = Path(args.out or f"runs/{exp.name}{suffix}")
    if args.redraw:
        if not (out / "config.json").exists():
            print(f"pyhbnode reproduce: error: {out} holds no run to redraw (no config.json)", file=sys.stderr)
            return 2
        for p in exp.redraw(out):
            print(p)
        return 0
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    data_dir = Path(args.data_dir or default_data_dir())
    ctx = RunContext(
        experiment=exp.name,
        out=out,
        settings=settings,
        scale=args.scale,
        seed=args.seed,
        solver=solver,
        models=models,
        skipped=skipped,
        data_dir=data_dir,
        progress=not args.quiet,
        command=_command(args, out, data_dir),
        preset=args.preset,
    )
    print(
        f"pyhbnode {args.command} {exp.name} ({exp.figure}, {args.scale}, preset {args.preset}): "
        f"models {', '.join(ctx.models)}; seed {args.seed}; data {data_dir} -> {out}"
    )
    for model, why in skipped.items():
        print(f"note: {model} skipped: {why}")
    started = time.time()
    try:
        exp.run(ctx)
    except DataNotFoundError as err:
        print(
            f"pyhbnode reproduce {exp.name}: missing data: {err}\n"
            f"This experiment needs: {exp.data}. Point --data-dir (or $PYHBNODE_DATA) at the folder holding it.",
            file=sys.stderr,
        )
        return EXIT_DATA_MISSING
    _print_assessment(exp, out)
    print(f"\nwall time {time.time() - started:.1f} s; results, config.json and figures in {out}")
    return 0


def run_compare(args: argparse.Namespace) -> int:
    """``compare pointcloud`` is ``reproduce pointcloud`` at the paper's settings with one seed,
    written into ``--out`` itself (the setting ``seeds`` none)."""
    overrides = ["seeds=none"] + ([] if args.iters is None else [f"iters={args.iters}"])
    reproduce = argparse.Namespace(
        **vars(args),
        experiment=args.task,
        scale="full",
        overrides=overrides,
        list=False,
        redraw=False,
        data_dir=None,
        device=None,
    )
    return run_reproduce(reproduce)


def _command(args: argparse.Namespace, out: Path, data_dir: Path) -> str:
    """The ``reproduce`` command line that reproduces this run (recorded in config.json)."""
    parts = ["pyhbnode", "reproduce", args.experiment]
    if args.scale != "full":
        parts.append(f"--{args.scale}")
    parts += ["--preset", args.preset, "--out", str(out), "--data-dir", str(data_dir), "--seed", str(args.seed)]
    for flag, value in (("--device", args.device), ("--threads", args.threads)):
        if value:
            parts += [flag, str(value)]
    for name, value in solver_flags(args).items():
        parts += ["--" + name.replace("_", "-"), str(value)]
    if args.models:
        parts += ["--models", *args.models]
    for item in args.overrides:
        parts += ["--set", item]
    return " ".join(shlex.quote(p) for p in parts)


def run_report(args: argparse.Namespace) -> int:
    from ..experiments.report import build_report

    try:
        paths = build_report(args.run_dirs, args.out, html=args.html)
    except ValueError as err:
        print(f"pyhbnode report: error: {err}", file=sys.stderr)
        return 2
    for p in paths:
        print(p)
    return 0


def redraw_run(run_dir: str | Path) -> list[Path] | None:
    """Redraw a reproduce run's figures (for ``pyhbnode plot``); ``None`` if ``run_dir`` is
    not a reproduce run."""
    from ..experiments.common import load_config

    name = load_config(run_dir).get("experiment")
    if not name:
        return None
    return registry.get(name).redraw(Path(run_dir))
