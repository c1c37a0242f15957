"""One runner for every training comparison: build each model from the zoo, train it with
``fit``, and write ``results.csv``, ``history.jsonl``, ``config.json`` and the NFE/loss
figures.  Task specifics (data, loss, settings) arrive as a :class:`Comparison` value."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .. import zoo
from ..layers import solver_layers
from ..solving import SolverOptions
from ..training.metadata import with_wall_time
from .plots import plot_curves, plot_nfe
from .records import read_jsonl, run_metadata, writable_dir, write_csv, write_jsonl

__all__ = ["Comparison", "run_comparison", "redraw_training"]


@dataclass
class Comparison:
    """What to train and how (the experiment's settings for a zoo task).

    Attributes:
        task: a zoo task name.
        train, val: training and validation data for ``fit``.
        loss, metrics: as ``fit`` takes them.
        lr, batch_size, tol: the run's settings (the task's TaskSpec at the paper's scale).
        epochs: passes over ``train``; ``max_batches`` caps the total iterations instead.
        field_kwargs: per-model overrides of the heavy-ball coefficients.
        fit_kwargs: anything else for ``fit`` (e.g. ``device``).
        preset: the zoo preset (``"paper"`` or ``"authors"``, see :func:`pyhbnode.zoo.build`).
        build_kwargs: task-specific architecture arguments of ``zoo.build`` (``window``).
    """

    task: str
    train: Any
    lr: float
    batch_size: int
    tol: float
    loss: Any
    val: Any = None
    metrics: Sequence[Any] = ()
    epochs: int = 1
    max_batches: int | None = None
    field_kwargs: dict[str, dict] = field(default_factory=dict)
    fit_kwargs: dict[str, Any] = field(default_factory=dict)
    preset: str = "paper"
    build_kwargs: dict[str, Any] = field(default_factory=dict)

    def settings(self) -> dict:
        keep = ("task", "lr", "batch_size", "tol", "epochs", "max_batches", "field_kwargs", "preset", "build_kwargs")
        d = {k: v for k, v in asdict(self).items() if k in keep}
        d["loss"] = self.loss if isinstance(self.loss, str) else getattr(self.loss, "__name__", "custom")
        return d


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def run_comparison(
    spec: Comparison,
    models: Sequence[str],
    out_dir: str | Path,
    *,
    seed: int = 0,
    solver: Mapping[str, Any] | None = None,
    progress: bool = True,
    resume: bool = True,
    after_model: Callable[[str, nn.Module, Path], None] | None = None,
    extra_config: dict | None = None,
) -> list[dict]:
    """Train each of ``models`` on ``spec`` and write the run to ``out_dir``.

    Files: ``results.csv`` (one row per model), ``history.jsonl`` (one line per batch, with
    the model's name), ``epochs.jsonl``, ``config.json`` (settings, seed, versions, machine,
    wall time), ``nfe.png`` and ``loss.png``; checkpoints under ``checkpoints/<model>/`` so an
    interrupted run resumes.  ``after_model(name, trained_model, out_dir)`` may add
    experiment-specific artefacts.  ``solver`` (options by name: ``backend``, ``adjoint``,
    ``rtol`` ...) goes to ``zoo.build`` for every model, over ``spec.tol``.  Returns the
    results rows.
    """
    from ..solving import SolverError
    from ..solving.backends.native.compiled import compile_times
    from ..training import TrainingDiverged, fit  # training is a floor above the zoo; import on use

    unknown = [m for m in models if m not in zoo.MODELS]
    if unknown:
        raise ValueError(f"unknown model(s) {unknown}; choose from {list(zoo.MODELS)}")
    solver = {"tol": spec.tol, **(solver or {})}
    out = writable_dir(out_dir)
    started = time.time()
    rows, batch_lines, epoch_lines = [], [], []
    compiling: dict[str, dict] = {}  # per model: fit's compile decision and the compile time it cost
    for name in models:
        torch.manual_seed(seed)
        model = zoo.build(
            spec.task, name, preset=spec.preset, field_kwargs=spec.field_kwargs.get(name), **spec.build_kwargs, **solver
        )
        n_compiled = len(compile_times())
        try:
            history = fit(
                model,
                spec.train,
                val_data=spec.val,
                loss=spec.loss,
                metrics=tuple(spec.metrics),
                epochs=spec.epochs,
                lr=spec.lr,
                batch_size=spec.batch_size,
                seed=seed,
                checkpoint_dir=out / "checkpoints" / name,
                resume=resume,
                progress=progress,
                max_batches=spec.max_batches,
                **spec.fit_kwargs,
            )
        except (TrainingDiverged, SolverError) as err:
            # One model blowing up (SONODE on Walker2D, say) is a result, not the end of the run.
            rows.append({"model": name, "parameters": count_parameters(model), "status": f"failed: {err}"})
            continue
        compiling[name] = {
            "compile": sorted({str(layer.options.compile) for layer in solver_layers(model)}),
            "compile_seconds": round(sum(t for _, _, t in compile_times()[n_compiled:]), 2),
        }
        batches, epochs = history.batch_records(), history.epoch_records()
        rows.append({"model": name, "parameters": count_parameters(model), "status": "ok", **history.summary()})
        batch_lines += [{"model": name, "iteration": i, **b} for i, b in enumerate(batches)]
        epoch_lines += [{"model": name, **e} for e in epochs]
        if after_model is not None:
            after_model(name, model, out)
    write_csv(rows, out / "results.csv")
    write_jsonl(batch_lines, out / "history.jsonl")
    write_jsonl(epoch_lines, out / "epochs.jsonl")
    config = run_metadata(
        settings=spec.settings(),
        models=list(models),
        seed=seed,
        backend=SolverOptions.from_kwargs(zoo.task_spec(spec.task).solver, **solver).backend,
        device=str(spec.fit_kwargs.get("device", "cpu")),
        solver_options={k: str(v) for k, v in solver.items()},
        compiled=compiling,
        **(extra_config or {}),
    )
    config = with_wall_time(config, out / "config.json", time.time() - started)
    (out / "config.json").write_text(json.dumps(config, indent=2, default=str))
    redraw_training(out)
    return rows


def redraw_training(run_dir: str | Path, title: str | None = None) -> list[Path]:
    """Redraw ``nfe.png`` and ``loss.png`` (and ``metrics.png`` when epochs carry
    validation metrics) from a run directory's saved histories."""
    run = Path(run_dir)
    lines = read_jsonl(run / "history.jsonl")
    if title is None and (run / "config.json").exists():
        title = json.loads((run / "config.json").read_text()).get("settings", {}).get("task", "")
    models = list(dict.fromkeys(line["model"] for line in lines))
    by_model = {m: [line for line in lines if line["model"] == m] for m in models}
    window = max(1, max((len(v) for v in by_model.values()), default=1) // 30)
    paths = [
        plot_nfe(
            {
                m: ([r["iteration"] for r in v], [r["nfe_forward"] for r in v], [r["nfe_backward"] for r in v])
                for m, v in by_model.items()
            },
            run / "nfe.png",
            title=title or "",
            window=window,
        ),
        plot_curves(
            {m: ([r["iteration"] for r in v], [r["loss"] for r in v]) for m, v in by_model.items()},
            run / "loss.png",
            xlabel="iteration",
            ylabel="training loss",
            title=title or "",
            logy=True,
            window=window,
        ),
    ]
    epochs_file = run / "epochs.jsonl"
    if epochs_file.exists():
        epochs = read_jsonl(epochs_file)
        keys = sorted(
            {k for e in epochs for k in e if k.startswith(("val_", "test_")) and isinstance(e[k], (int, float))}
        )
        for key in keys[:1]:
            series = {
                m: (
                    [e["epoch"] for e in epochs if e["model"] == m and key in e],
                    [e[key] for e in epochs if e["model"] == m and key in e],
                )
                for m in models
            }
            paths.append(plot_curves(series, run / "metrics.png", xlabel="epoch", ylabel=key, title=title or ""))
    return paths
