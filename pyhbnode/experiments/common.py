"""What every ``pyhbnode reproduce`` experiment shares: the run context, the records written
next to the results, the (G)HBNODE-versus-baselines verdict, and small data adapters.

An experiment module (``hbode_vs_ode``, ``mnist``, ...) exposes three functions that
:mod:`pyhbnode.experiments.registry` points at:

* ``run(ctx: RunContext) -> None``: do the experiment, write its files into ``ctx.out``;
* ``redraw(run_dir) -> list[Path]``: redraw its figures from the saved files only;
* ``assess(run_dir) -> Assessment``: the report's table, ratios and verdict.
"""

from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .. import zoo
from ..solving import SolverOptions
from ..training.metadata import with_wall_time
from .records import read_csv, run_metadata, writable_dir

__all__ = [
    "HB_MODELS",
    "BASELINES",
    "MODEL_NAMES",
    "RunContext",
    "Claim",
    "Assessment",
    "read_json",
    "write_json",
    "load_config",
    "number",
    "nfe_verdict",
    "metric_verdict",
    "combine_verdicts",
    "training_assessment",
    "ratio",
    "existing",
    "fmt",
    "complete_row",
    "train_comparison",
    "image_comparison",
    "subset",
    "sequence_data",
    "sequence_comparison",
]

HB_MODELS = ("hbnode", "ghbnode")
BASELINES = ("node", "anode", "sonode")
MODEL_NAMES = zoo.NAMES

HELD, PARTLY, NOT_HELD, NOT_ASSESSED = "held", "partly held", "not held", "not assessed"


@dataclass(frozen=True)
class RunContext:
    """One ``reproduce`` run: where it writes, with which settings and models.

    Attributes:
        experiment: the registry name (``"mnist"``, ``"hbode-vs-ode"``, ...).
        out: the run directory (created on first write).
        settings: the scale's settings (``quick``/``full``/``tiny``) after ``--set`` overrides.
        scale: ``"quick"``, ``"full"`` or ``"tiny"``.
        seed: the seed of model initialisation, data subsampling and batching.
        solver: solver options by name (``backend``, ``adjoint``, ``rtol`` ...) over every
            solve's; the tolerance is the setting ``tol``.
        models: the models to run.
        skipped: the models of the default list or a ``--models`` group left out, each with why
            (the task does not run it); recorded in ``config.json``.
        data_dir: the data root holding ``mnist/``, ``cifar10/``, ``pv.csv``, ``sb.csv``, ``walker/``.
        progress: show progress bars.
        command: the command line that started the run (recorded in ``config.json``).
        preset: the zoo preset, ``"paper"`` (Appendix E as written) or ``"authors"`` (the
            settings of the authors' code); see :func:`pyhbnode.zoo.build`.
    """

    experiment: str
    out: Path
    settings: Mapping[str, Any]
    scale: str = "quick"
    seed: int = 0
    solver: Mapping[str, Any] = field(default_factory=dict)
    models: tuple[str, ...] = zoo.PAPER_MODELS
    skipped: Mapping[str, str] = field(default_factory=dict)
    data_dir: Path = Path("data")
    progress: bool = True
    command: str = ""
    preset: str = "paper"

    def __getitem__(self, key: str) -> Any:
        try:
            return self.settings[key]
        except KeyError:
            raise KeyError(
                f"experiment {self.experiment!r} has no setting {key!r}; its settings are {sorted(self.settings)}"
            ) from None

    def get(self, key: str, default: Any = None) -> Any:
        return self.settings.get(key, default)

    def out_dir(self) -> Path:
        return writable_dir(self.out)

    def identity(self) -> dict:
        """What identifies the run in ``config.json`` (besides the runner's own keys)."""
        return {
            "experiment": self.experiment,
            "scale": self.scale,
            "preset": self.preset,
            "experiment_settings": dict(self.settings),
            "data_dir": str(self.data_dir),
            "command": self.command or " ".join(sys.argv),
            "skipped_models": dict(self.skipped),
        }

    def solver_keywords(self, **defaults: Any) -> dict[str, Any]:
        """The experiment's solver ``defaults`` (``tol``, ``max_steps`` ...) with the run's
        options on top: keywords for ``zoo.build`` or ``odeint``."""
        return {**defaults, **self.solver}

    def write_config(self, started: float, **extra) -> Path:
        """Write ``config.json``: settings, seed, versions, machine, backend, device, wall time."""
        config = run_metadata(
            **self.identity(),
            models=list(self.models),
            seed=self.seed,
            backend=SolverOptions.from_kwargs(**self.solver).backend,
            device="cpu",
            solver_options={k: str(v) for k, v in self.solver.items()},
            **extra,
        )
        path = self.out_dir() / "config.json"
        write_json(path, with_wall_time(config, path, time.time() - started))
        return path


@dataclass(frozen=True)
class Claim:
    """One claim of another paper than the experiment's own (the momentum family's), judged on one run.

    Attributes:
        paper: who claims it (e.g. :data:`~pyhbnode.experiments.family.NESTEROV_PAPER`).
        claim: the claim, as measured here.
        verdict: ``"held"``, ``"partly held"``, ``"not held"`` or ``"not assessed"``.
        reasons: one sentence per check behind the verdict.
    """

    paper: str
    claim: str
    verdict: str
    reasons: tuple[str, ...]


@dataclass
class Assessment:
    """What the report shows for one run: a table, the NFE ratios and the verdict.

    Attributes:
        columns: ``(key, header)`` pairs of the table, in order.
        rows: one dict per table row.
        ratios: named ratios, e.g. ``"HBNODE/NODE forward NFE": 0.71`` (``None`` if unknown).
        verdict: ``"held"``, ``"partly held"``, ``"not held"`` or ``"not assessed"``.
        reasons: one sentence per check behind the verdict.
        figures: the run's PNGs, in display order.
        claims: the momentum family's claims judged on the same results
            (:mod:`pyhbnode.experiments.family`), each with its own verdict.
    """

    columns: list[tuple[str, str]]
    rows: list[dict]
    ratios: dict[str, float | None] = field(default_factory=dict)
    verdict: str = NOT_ASSESSED
    reasons: list[str] = field(default_factory=list)
    figures: list[Path] = field(default_factory=list)
    claims: list[Claim] = field(default_factory=list)


def write_json(path: str | Path, obj: Any) -> Path:
    path = Path(path)
    path.write_text(json.dumps(obj, indent=2, default=_jsonable))
    return path


def _jsonable(value: Any) -> Any:
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    return str(value)


def read_json(path: str | Path) -> Any:
    return json.loads(Path(path).read_text())


def load_config(run_dir: str | Path) -> dict:
    """A run directory's ``config.json`` (``{}`` if it has none)."""
    path = Path(run_dir) / "config.json"
    return read_json(path) if path.exists() else {}


def existing(run_dir: str | Path, names: Iterable[str]) -> list[Path]:
    """Those of ``names`` that exist in ``run_dir``, in order."""
    return [Path(run_dir) / n for n in names if (Path(run_dir) / n).exists()]


def fmt(value: Any, digits: int = 4) -> str:
    """A table cell: floats to ``digits`` significant digits, ``None``/NaN as ``-``."""
    if value is None or value == "":
        return "-"
    if isinstance(value, float):
        if math.isnan(value):
            return "-"
        return f"{value:.{digits}g}"
    return str(value)


def ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or not isinstance(a, (int, float)) or not isinstance(b, (int, float)) or b == 0:
        return None
    return round(float(a) / float(b), 3)


def number(row: Mapping, key: str) -> float | None:
    """``row[key]`` as a float, ``None`` when it is missing, not a number or NaN."""
    v = row.get(key)
    if isinstance(v, (int, float)) and not (isinstance(v, float) and math.isnan(v)):
        return float(v)
    return None


def _names(models: Sequence[str]) -> str:
    return "/".join(MODEL_NAMES.get(m, m) for m in models)


def nfe_verdict(
    rows: Sequence[Mapping],
    fwd: str = "nfe_forward_mean",
    bwd: str = "nfe_backward_mean",
    *,
    subjects: Sequence[str] = HB_MODELS,
    baselines: Sequence[str] = BASELINES,
) -> tuple[str, list[str], dict[str, float | None]]:
    """The NFE half of a claim: each of ``subjects`` (the heavy-ball paper's: HBNODE/GHBNODE)
    needs fewer forward and fewer backward NFEs than every one of ``baselines``
    (NODE/ANODE/SONODE) in ``rows``.

    Every subject is compared with every baseline, forward and backward: ``held`` if it has
    strictly fewer NFEs in every comparison, ``not held`` if in none, ``partly held`` otherwise.
    Returns ``(verdict, reasons, ratios)``; ratios are subject/NODE for forward and backward
    (when NODE is a baseline)."""
    by = {r["model"]: r for r in rows}
    ratios: dict[str, float | None] = {}
    for hb in subjects:
        if hb in by and "node" in by and "node" in baselines:
            for key, what in ((fwd, "forward"), (bwd, "backward")):
                ratios[f"{MODEL_NAMES[hb]}/NODE {what} NFE"] = ratio(number(by[hb], key), number(by["node"], key))
    hbs = [m for m in subjects if m in by and by[m].get("status", "ok") == "ok"]
    bases = [m for m in baselines if m in by and by[m].get("status", "ok") == "ok"]
    if not hbs or not bases:
        return (
            NOT_ASSESSED,
            [f"the NFE claim needs at least one of {_names(subjects)} and one of {_names(baselines)} run"],
            ratios,
        )
    wins, checks, reasons = 0, 0, []
    for key, what in ((fwd, "forward"), (bwd, "backward")):
        base_vals = {m: val for m in bases if (val := number(by[m], key)) is not None}
        if not base_vals:
            continue
        for hb in hbs:
            v = number(by[hb], key)
            if v is None:
                continue
            beaten = [m for m, b in base_vals.items() if v < b]
            checks += len(base_vals)
            wins += len(beaten)
            others = [m for m in base_vals if m not in beaten]
            reasons.append(
                f"{MODEL_NAMES[hb]} {what} NFE {v:.4g}: fewer than "
                + (", ".join(f"{MODEL_NAMES[m]} ({base_vals[m]:.4g})" for m in beaten) or "no baseline")
                + (
                    ""
                    if not others
                    else "; not fewer than " + ", ".join(f"{MODEL_NAMES[m]} ({base_vals[m]:.4g})" for m in others)
                )
            )
    if checks == 0:
        return NOT_ASSESSED, ["no NFE numbers in the results"], ratios
    return (HELD if wins == checks else NOT_HELD if wins == 0 else PARTLY), reasons, ratios


def metric_verdict(
    rows: Sequence[Mapping],
    key: str,
    *,
    higher_is_better: bool,
    label: str,
    abs_tol: float = 0.0,
    rel_tol: float = 0.0,
    subjects: Sequence[str] = HB_MODELS,
    baselines: Sequence[str] = BASELINES,
) -> tuple[str, list[str]]:
    """The accuracy half: each of ``subjects``' ``key`` is as good as the best of ``baselines``',
    within ``abs_tol`` (absolute) or ``rel_tol`` (relative to the baseline's value)."""
    by = {r["model"]: r for r in rows}
    base = {m: val for m in baselines if m in by and (val := number(by[m], key)) is not None}
    hbs = {m: val for m in subjects if m in by and (val := number(by[m], key)) is not None}
    if not base or not hbs:
        return NOT_ASSESSED, [f"no {label} for both one of {_names(subjects)} and one of {_names(baselines)}"]
    pick = max if higher_is_better else min
    best = pick(base, key=base.__getitem__)
    slack = max(abs_tol, rel_tol * abs(base[best]))
    reasons, wins = [], 0
    for hb, v in hbs.items():
        ok = v >= base[best] - slack if higher_is_better else v <= base[best] + slack
        wins += ok
        reasons.append(
            f"{MODEL_NAMES[hb]} {label} {v:.4g} vs best baseline {MODEL_NAMES[best]} {base[best]:.4g}: "
            f"{'comparable or better' if ok else 'worse'} (slack {slack:.3g})"
        )
    return (HELD if wins == len(hbs) else NOT_HELD if wins == 0 else PARTLY), reasons


def combine_verdicts(*verdicts: str) -> str:
    """``held`` only if every assessed part held; ``not held`` if none did."""
    parts = [v for v in verdicts if v != NOT_ASSESSED]
    if not parts:
        return NOT_ASSESSED
    if all(v == HELD for v in parts):
        return HELD
    if all(v == NOT_HELD for v in parts):
        return NOT_HELD
    return PARTLY


def complete_row(row: dict) -> dict:
    """Fill ``status`` (``ok`` unless the runner recorded a failure) and ``seconds_per_epoch``
    (from ``seconds_total``/``epochs`` when the runner gives only those)."""
    if row.get("status") in ("", None):
        row["status"] = "ok"
    if not isinstance(row.get("seconds_per_epoch"), (int, float)):
        total, epochs = row.get("seconds_total"), row.get("epochs")
        if isinstance(total, (int, float)) and isinstance(epochs, (int, float)) and epochs > 0:
            row["seconds_per_epoch"] = total / epochs
    return row


TRAINING_COLUMNS = [
    ("model", "model"),
    ("parameters", "params"),
    ("iterations", "iters"),
    ("nfe_forward_mean", "mean fwd NFE"),
    ("nfe_backward_mean", "mean bwd NFE"),
    ("seconds_per_epoch", "s/epoch"),
]


def training_assessment(
    run_dir: str | Path,
    *,
    metric: str,
    metric_label: str,
    higher_is_better: bool,
    abs_tol: float = 0.0,
    rel_tol: float = 0.0,
    figures: Sequence[str] = ("nfe.png", "loss.png", "metrics.png"),
    extra_checks: Callable[[list[dict]], tuple[str, list[str]]] | None = None,
) -> Assessment:
    """The report of a training comparison written by :func:`~pyhbnode.experiments.runner.run_comparison`."""
    run = Path(run_dir)
    rows = read_csv(run / "results.csv") if (run / "results.csv").exists() else []
    for r in rows:
        complete_row(r)
    columns = TRAINING_COLUMNS + [(metric, metric_label)]
    if any(r.get("status") != "ok" for r in rows):
        columns = columns + [("status", "status")]
    nfe, nfe_reasons, ratios = nfe_verdict(rows)
    acc, acc_reasons = metric_verdict(
        rows, metric, higher_is_better=higher_is_better, label=metric_label, abs_tol=abs_tol, rel_tol=rel_tol
    )
    verdicts, reasons = [nfe, acc], nfe_reasons + acc_reasons
    if extra_checks is not None:
        extra, extra_reasons = extra_checks(rows)
        verdicts.append(extra)
        reasons += extra_reasons
    return Assessment(
        columns=columns,
        rows=rows,
        ratios=ratios,
        verdict=combine_verdicts(*verdicts),
        reasons=[f"NFE: {nfe}; {metric_label}: {acc}"] + reasons,
        figures=existing(run, figures),
    )


# --- training comparisons over the runner ------------------------------------------------


def train_comparison(
    ctx: RunContext, spec, *, after_model=None, out: Path | None = None, extra: Mapping[str, Any] | None = None
) -> list[dict]:
    """Train ``ctx.models`` on ``spec`` (a :class:`~pyhbnode.experiments.runner.Comparison`)
    with :func:`~pyhbnode.experiments.runner.run_comparison`, recording the run's identity
    (experiment, scale, settings, command) in its ``config.json``.  Checkpoints go to
    ``<out>/checkpoints/<model>/``, so rerunning the same command resumes."""
    from .runner import run_comparison

    return run_comparison(
        spec,
        list(ctx.models),
        out or ctx.out,
        seed=ctx.seed,
        solver=ctx.solver,
        progress=ctx.progress,
        after_model=after_model,
        extra_config={**ctx.identity(), **(extra or {})},
    )


def image_comparison(
    ctx: RunContext, task: str, *, tol: float | None = None, max_batches: int | None = None, epochs: int | None = None
):
    """MNIST or CIFAR-10 as a :class:`~pyhbnode.experiments.runner.Comparison`: the first
    ``train_limit``/``test_limit`` images (all when ``None``), the task's loss and metrics
    (cross-entropy, accuracy), per epoch on the test split (``val``, as in the paper's plots)."""
    from ..data import CIFAR10Dataset, MNISTDataset
    from .runner import Comparison

    dataset = {"mnist": MNISTDataset, "cifar10": CIFAR10Dataset}[task]
    train = dataset(ctx.data_dir, "train", limit=ctx.get("train_limit"))
    test = dataset(ctx.data_dir, "test", limit=ctx.get("test_limit")) if ctx.get("test_limit", 1) != 0 else None
    return Comparison(
        task=task,
        train=train,
        val=test,
        loss=zoo.task_spec(task).loss,
        metrics=zoo.task_spec(task).metrics,
        lr=float(ctx["lr"]),
        batch_size=int(ctx["batch_size"]),
        tol=float(tol if tol is not None else ctx["tol"]),
        epochs=int(epochs if epochs is not None else ctx.get("epochs", 1)),
        max_batches=max_batches if max_batches is not None else ctx.get("max_batches"),
        fit_kwargs=_fit_extras(ctx),
        preset=ctx.preset,
    )


def _fit_extras(ctx: RunContext) -> dict:
    extras = {}
    if ctx.get("device"):
        extras["device"] = ctx["device"]
    return extras


def subset(split, limit: int | None):
    """The first ``limit`` windows of a time-first :class:`~pyhbnode.data.SequenceSplit`."""
    from ..data import SequenceSplit

    if limit is None or limit >= split.n_windows:
        return split
    cut = slice(0, int(limit))
    return SequenceSplit(
        x=split.x[:, cut],
        dt=split.dt[:, cut],
        y=split.y[:, cut],
        forecast=None if split.forecast is None else split.forecast[:, cut],
        stamps=None if split.stamps is None else split.stamps[:, cut],
    )


def sequence_data(split):
    """A split as ``fit`` data: windows ``(x, dt) -> y``, batched time-first."""
    from ..data import SequenceDataset

    return SequenceDataset(split.x, split.dt, split.y)


def sequence_comparison(ctx: RunContext, task: str, train, test):
    """An ODE-RNN task (``plane_vibration``/``walker2d``) as a
    :class:`~pyhbnode.experiments.runner.Comparison`: the task's loss (MSE on every step), the
    test split as ``val`` (so ``val_loss`` is the test MSE per epoch)."""
    from .runner import Comparison

    return Comparison(
        task=task,
        train=sequence_data(train),
        val=sequence_data(test) if test is not None and test.n_windows else None,
        loss=zoo.task_spec(task).loss,
        metrics=zoo.task_spec(task).metrics,
        lr=float(ctx["lr"]),
        batch_size=int(ctx["batch_size"]),
        tol=float(ctx["tol"]),
        epochs=int(ctx.get("epochs", 1)),
        max_batches=ctx.get("max_batches"),
        fit_kwargs=_fit_extras(ctx),
        preset=ctx.preset,
        build_kwargs={"window": int(ctx.get("seq_len", 64))},
    )
