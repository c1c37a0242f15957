"""``pyhbnode reproduce`` and ``pyhbnode report``: argument parsers and handlers, wired into
:mod:`pyhbnode.cli` through ``add_reproduce_parser``/``add_report_parser``.

    pyhbnode reproduce --list
    pyhbnode reproduce EXPERIMENT [--quick | --standard | --tiny] [--preset paper|authors] [--out DIR]
                       [--data-dir DIR] [--seed S]
                       [--backend B] [--models M ...] [--set KEY=VALUE ...] [--threads N] [--redraw]
    pyhbnode report RUN_DIR... [--out report.md] [--html]
"""
from __future__ import annotations

import argparse
import os
import shlex
import sys
import time
from pathlib import Path
from typing import Any, Sequence

from .config import parse_assignment
from ..experiments import registry

__all__ = ["add_reproduce_parser", "run_reproduce", "add_report_parser", "run_report", "redraw_run",
           "parse_overrides", "merge_settings", "default_data_dir", "EXIT_DATA_MISSING"]

# Exit status when a data file is missing (after a message naming it and where to get it).
EXIT_DATA_MISSING = 3


def default_data_dir() -> str:
    """``$PYHBNODE_DATA`` if set, else ``./data``."""
    return os.environ.get("PYHBNODE_DATA", "data")


def add_reproduce_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    from .. import zoo

    listing = "; ".join(f"{e.name} ({e.figure})" for e in registry.EXPERIMENTS)
    p = subparsers.add_parser(
        "reproduce", help="run one of the paper's nine experiments (see --list)",
        description="Run one of the paper's experiments with all its models side by side, write results "
                    "(CSV/JSONL), config.json and the figures (PNG), and print the table with the paper's claim "
                    f"and a verdict. Experiments: {listing}.",
    )
    p.add_argument("experiment", nargs="?", help="experiment name (see --list)")
    p.add_argument("--list", action="store_true", help="list the nine experiments and exit")
    scale = p.add_mutually_exclusive_group()
    scale.add_argument("--quick", dest="scale", action="store_const", const="quick",
                       help="a few minutes on two CPU cores: real data, subsampled, few epochs")
    scale.add_argument("--standard", dest="scale", action="store_const", const="standard",
                       help="real data at the paper's batch size and tolerance, long enough to test the claim "
                            "(at most about an hour per experiment on two CPU cores)")
    scale.add_argument("--full", dest="scale", action="store_const", const="full",
                       help="the paper's settings (the default; hours on CPU)")
    scale.add_argument("--tiny", dest="scale", action="store_const", const="tiny",
                       help="seconds: a smoke test of the pipeline (used by the test suite)")
    p.set_defaults(scale="full")
    p.add_argument("--out", help="run directory (default: runs/<experiment>[-quick|-tiny])")
    p.add_argument("--data-dir", default=None,
                   help="folder holding mnist/, cifar10/, pv.csv, sb.csv, walker/ (default: $PYHBNODE_DATA or ./data)")
    p.add_argument("--seed", type=int, default=0, help="seed of initialisation, subsampling and batching (default 0)")
    p.add_argument("--preset", choices=list(zoo.PRESETS), default="paper",
                   help="zoo preset: 'paper' (Appendix E as written, the default) or 'authors' (the settings "
                        "of the authors' code, spec §5)")
    p.add_argument("--backend", default=None, help="solver backend (default: the package default)")
    p.add_argument("--device", default=None, help="torch device for training (default cpu)")
    p.add_argument("--models", nargs="+", choices=list(zoo.MODELS), help="models to run (default: the experiment's)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a setting, e.g. --set epochs=5 --set tols=[1e-3,1e-5] (values are JSON)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--redraw", action="store_true", help="only redraw the figures of an existing run in --out")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=run_reproduce)
    return p


def add_report_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "report", help="collect reproduce runs into one Markdown/HTML page with tables and verdicts",
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


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number" if isinstance(value, float) else "int"
    return type(value).__name__


def merge_settings(defaults: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """``defaults`` with ``overrides`` applied; a value of another kind than the default's (an
    int for an int, a number for a float, a list for a list ...) raises ``ValueError`` naming
    the key, the value given and what is allowed.  A key without a default is one of the
    optional settings some experiments read (``train_limit``, ``max_batches``, ``seq_len`` ...):
    it is taken as given, with a note on stderr."""
    out = dict(defaults)
    for key, value in overrides.items():
        if key not in defaults:
            print(f"pyhbnode reproduce: note: --set {key} is not among this scale's settings "
                  f"{sorted(defaults)}; it is used only if the experiment reads it", file=sys.stderr)
            out[key] = value
            continue
        want, default = _kind(defaults[key]), defaults[key]
        got = _kind(value)
        ok = (default is None or got == want or (want == "number" and got == "int")
              or (want == "int" and got == "number" and float(value).is_integer()))
        if not ok:
            raise ValueError(f"--set {key}={value!r}: {key} takes a value like its default {default!r} "
                             f"({want}), got {got}")
        out[key] = int(value) if want == "int" else value
    return out


def print_list(file=None) -> None:
    file = file or sys.stdout
    rows = [("experiment", "paper", "data", "what")] + [
        (e.name, e.figure, e.data if len(e.data) < 40 else e.data[:37] + "...", e.title) for e in registry.EXPERIMENTS]
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    for j, r in enumerate(rows):
        print("  ".join(c.ljust(w) for c, w in zip(r[:3], widths)) + "  " + r[3], file=file)
        if j == 0:
            print("  ".join("-" * w for w in widths) + "  " + "-" * 4, file=file)
    print(f"\n{len(registry.EXPERIMENTS)} experiments. Run one with `pyhbnode reproduce NAME --quick` "
          "(minutes) or without --quick (the paper's settings).", file=file)


def _print_assessment(exp: registry.Experiment, run_dir: Path) -> None:
    from ..experiments.common import fmt

    a = exp.assess(run_dir)
    cells = [[h for _, h in a.columns]] + [[fmt(r.get(k)) for k, _ in a.columns] for r in a.rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(a.columns))]
    print()
    for j, r in enumerate(cells):
        print("  ".join(c.rjust(w) for c, w in zip(r, widths)))
        if j == 0:
            print("  ".join("-" * w for w in widths))
    if a.ratios:
        print("\n" + "; ".join(f"{k} = {fmt(v, 3)}" for k, v in a.ratios.items()))
    print(f"\npaper's claim: {exp.claim}\nverdict: {a.verdict.upper()}")
    for reason in a.reasons:
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
        settings = merge_settings(exp.settings(args.scale), parse_overrides(args.overrides))
    except ValueError as err:
        print(f"pyhbnode reproduce: error: {err}", file=sys.stderr)
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
        experiment=exp.name, out=out, settings=settings, scale=args.scale, seed=args.seed, backend=args.backend,
        models=tuple(args.models or exp.models), data_dir=data_dir, progress=not args.quiet,
        command=_command(args, out, data_dir), preset=args.preset,
    )
    print(f"pyhbnode reproduce {exp.name} ({exp.figure}, {args.scale}, preset {args.preset}): models {', '.join(ctx.models)}; "
          f"seed {args.seed}; data {data_dir} -> {out}")
    started = time.time()
    try:
        exp.run(ctx)
    except DataNotFoundError as err:
        print(f"pyhbnode reproduce {exp.name}: missing data: {err}\n"
              f"This experiment needs: {exp.data}. Point --data-dir (or $PYHBNODE_DATA) at the folder holding it.",
              file=sys.stderr)
        return EXIT_DATA_MISSING
    _print_assessment(exp, out)
    print(f"\nwall time {time.time() - started:.1f} s; results, config.json and figures in {out}")
    return 0


def _command(args: argparse.Namespace, out: Path, data_dir: Path) -> str:
    """The command line that reproduces this run (recorded in config.json)."""
    parts = ["pyhbnode", "reproduce", args.experiment]
    if args.scale != "full":
        parts.append(f"--{args.scale}")
    parts += ["--preset", args.preset, "--out", str(out), "--data-dir", str(data_dir), "--seed", str(args.seed)]
    for flag, value in (("--backend", args.backend), ("--device", args.device), ("--threads", args.threads)):
        if value:
            parts += [flag, str(value)]
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
