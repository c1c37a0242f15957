"""One seed of the point-cloud separation comparison (paper Sec. 5.1, Fig. 5): the package's
main job, run by :mod:`pyhbnode.experiments.pointcloud_seeds` (``pyhbnode reproduce
pointcloud`` and its alias ``pyhbnode compare pointcloud``).

Built in, no download: 40 points in the disk r < 0.5 (label -1) and 80 in the annulus
0.85 < r < 1 (label +1); batch size, learning rate, tolerance and length from the task's
:class:`~pyhbnode.zoo.TaskSpec`; integrate 0 → 1.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .. import zoo
from ..data import make_pointcloud
from ..training import accuracy
from .plots import plot_scatter_panels
from .runner import Comparison, run_comparison

__all__ = ["sign_accuracy", "comparison", "run", "redraw_separation"]


def sign_accuracy(out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The task's ``accuracy`` (the share of points on the right side of 0: labels ±1, tanh
    readout) under the name the results' columns have always had."""
    return accuracy(out, target)


def comparison(
    iters: int,
    *,
    tol: float,
    seed: int = 0,
    field_kwargs: dict[str, dict] | None = None,
    preset: str = zoo.DEFAULT_PRESET,
) -> Comparison:
    spec = zoo.task_spec("pointcloud")
    x, y = make_pointcloud(seed=seed)
    data = (torch.from_numpy(x), torch.from_numpy(y))
    batches_per_epoch = math.ceil(len(x) / spec.batch_size)
    return Comparison(
        task="pointcloud",
        train=data,
        loss=spec.loss,
        metrics=(sign_accuracy,),
        lr=spec.lr,
        batch_size=spec.batch_size,
        tol=tol,
        epochs=math.ceil(iters / batches_per_epoch),
        max_batches=iters,
        field_kwargs=dict(field_kwargs or {}),
        preset=preset,
    )


def _save_features(name: str, model: nn.Module, out: Path, data: tuple[torch.Tensor, torch.Tensor]) -> None:
    x, y = data
    assert isinstance(model, zoo.ContinuousModel)  # every pointcloud model of the zoo
    with torch.no_grad():
        h = model.features(x)
    path = out / "separation.json"
    saved = json.loads(path.read_text()) if path.exists() else {}
    saved[name] = {"features": h[:, :2].tolist(), "labels": y.view(-1).tolist()}
    path.write_text(json.dumps(saved))


def redraw_separation(run_dir: str | Path) -> Path | None:
    """Fig. 5's panel: where each trained model sends the two classes at t = 1."""
    path = Path(run_dir) / "separation.json"
    if not path.exists():
        return None
    saved = json.loads(path.read_text())
    panels = {m: (np.asarray(v["features"]), np.asarray(v["labels"])) for m, v in saved.items()}
    return plot_scatter_panels(
        panels, Path(run_dir) / "separation.png", title="learned features h(1) (first two coordinates)"
    )


def run(
    models: Sequence[str],
    out_dir: str | Path,
    *,
    iters: int,
    tol: float,
    seed: int = 0,
    solver: Mapping[str, Any] | None = None,
    progress: bool = True,
    field_kwargs: dict[str, dict] | None = None,
    preset: str = zoo.DEFAULT_PRESET,
    extra_config: Mapping[str, Any] | None = None,
) -> list[dict]:
    """Train ``models`` on the point cloud with the zoo's ``preset``; ``field_kwargs`` per
    model override single coefficients, e.g. ``{"ghbnode": {"xi": 2.0}}``; ``solver``
    (options by name: ``adjoint``, ``controller`` ...) goes to every model's solver."""
    spec = comparison(iters, tol=tol, seed=seed, field_kwargs=field_kwargs, preset=preset)
    out = Path(out_dir)
    if (out / "separation.json").exists():
        (out / "separation.json").unlink()
    rows = run_comparison(
        spec,
        models,
        out,
        seed=seed,
        solver=solver,
        progress=progress,
        after_model=lambda name, model, o: _save_features(name, model, o, spec.train),
        extra_config={**(extra_config or {}), "iterations": iters, "preset": preset},
    )
    redraw_separation(out)
    return rows
