"""Figures in the paper's layout, drawn from saved results so that ``pyhbnode plot`` can
redraw any run without retraining."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from ..zoo import NAMES, PAPER_MODELS  # noqa: E402

__all__ = [
    "MODEL_STYLE",
    "linestyle",
    "save_figure",
    "smooth",
    "plot_curves",
    "plot_nfe",
    "plot_scatter_panels",
    "plot_trajectories",
]

# One colour per model across every figure, as in the paper (HB variants in warm colours); the
# momentum family's three in colours none of the five uses.
_COLOURS = {
    "node": "tab:blue",
    "anode": "tab:green",
    "sonode": "tab:purple",
    "hbnode": "tab:red",
    "ghbnode": "tab:orange",
    "nesterovnode": "tab:brown",
    "gnesterovnode": "tab:pink",
    "adamnode": "tab:cyan",
}
MODEL_STYLE = {m: (NAMES[m], colour) for m, colour in _COLOURS.items()}


def linestyle(model: str) -> str:
    """Dashed for the momentum family: models with equal integer NFEs draw the same line, and
    a dashed one over a solid one keeps both visible."""
    return "-" if model in PAPER_MODELS else "--"


def _label(model: str) -> tuple[str, str | None]:
    return MODEL_STYLE.get(model, (model, None))


def save_figure(fig, path: Path, dpi: int = 120) -> Path:
    """Lay out, write and close ``fig``; returns ``path``.  Every figure goes through here."""
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path


def _smoothed(label: str, window: int) -> str:
    """An axis label that says when its curve is a moving average."""
    return label if window <= 1 else f"{label} (mean of {window} iterations)"


def smooth(values: Sequence[float], window: int) -> np.ndarray:
    """Moving average over ``window`` points (shorter at the start), for noisy per-batch curves."""
    v = np.asarray(values, dtype=float)
    if window <= 1 or v.size == 0:
        return v
    c = np.cumsum(np.insert(v, 0, 0.0))
    out = np.empty_like(v)
    for i in range(v.size):
        lo = max(0, i + 1 - window)
        out[i] = (c[i + 1] - c[lo]) / (i + 1 - lo)
    return out


def plot_curves(
    series: Mapping[str, tuple[Sequence[float], Sequence[float]]],
    path: Path,
    *,
    xlabel: str,
    ylabel: str,
    title: str = "",
    logy: bool = False,
    window: int = 1,
    band: Mapping[str, Sequence[float]] | None = None,
) -> Path:
    """One line per model: ``series[model] = (x, y)``; ``band[model]`` an optional ± band."""
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for model, (x, y) in series.items():
        name, color = _label(model)
        ys = smooth(y, window)
        ax.plot(x, ys, label=name, color=color, ls=linestyle(model), lw=1.6)
        if band and model in band:
            b = np.asarray(band[model], dtype=float)
            ax.fill_between(x, ys - b, ys + b, color=color, alpha=0.18, lw=0)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(_smoothed(ylabel, window))
    if logy:
        ax.set_yscale("log")
    if title:
        ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(frameon=False)
    return save_figure(fig, path)


def plot_nfe(
    series: Mapping[str, tuple[Sequence[float], Sequence[float], Sequence[float]]],
    path: Path,
    *,
    xlabel: str = "iteration",
    title: str = "",
    window: int = 1,
) -> Path:
    """Forward and backward NFE side by side: ``series[model] = (x, nfe_fwd, nfe_bwd)``."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.0), sharex=True)
    for model, (x, fwd, bwd) in series.items():
        name, color = _label(model)
        axes[0].plot(x, smooth(fwd, window), label=name, color=color, ls=linestyle(model), lw=1.6)
        axes[1].plot(x, smooth(bwd, window), label=name, color=color, ls=linestyle(model), lw=1.6)
    for ax, what in zip(axes, ("forward NFE", "backward NFE"), strict=True):
        ax.set_xlabel(xlabel)
        ax.set_ylabel(_smoothed(what, window))
        ax.grid(alpha=0.3)
    axes[0].legend(frameon=False)
    if title:
        fig.suptitle(title)
    return save_figure(fig, path)


def plot_scatter_panels(
    panels: Mapping[str, tuple[np.ndarray, np.ndarray]],
    path: Path,
    *,
    title: str = "",
) -> Path:
    """One panel per model: points ``(N, 2)`` coloured by label ``(N,)`` (Fig. 5's layout)."""
    fig, axes = plt.subplots(1, len(panels), figsize=(3.1 * len(panels), 3.2), squeeze=False)
    for ax, (model, (points, labels)) in zip(axes[0], panels.items(), strict=True):
        points, labels = np.asarray(points), np.asarray(labels).reshape(-1)
        inner = labels < 0
        ax.scatter(points[inner, 0], points[inner, 1], s=9, c="tab:blue", label="inner")
        ax.scatter(points[~inner, 0], points[~inner, 1], s=9, c="tab:red", label="outer")
        ax.set_title(_label(model)[0])
        ax.set_xticks([])
        ax.set_yticks([])
    axes[0][0].legend(frameon=False, fontsize=8)
    if title:
        fig.suptitle(title)
    return save_figure(fig, path)


def plot_trajectories(
    panels: Iterable[tuple[str, Mapping[str, np.ndarray]]],
    path: Path,
    *,
    contours: Iterable[tuple[np.ndarray, np.ndarray, np.ndarray]] | None = None,
    title: str = "",
) -> Path:
    """2-D paths, one panel per entry: ``(panel title, {label: (N, 2) path})``; optional
    contour data ``(X, Y, Z)`` per panel (e.g. the objective of Fig. 2)."""
    panels = list(panels)
    per_panel: list[tuple[np.ndarray, np.ndarray, np.ndarray] | None] = (
        list(contours) if contours is not None else [None] * len(panels)
    )
    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 4.4), squeeze=False)
    for ax, (name, paths), cont in zip(axes[0], panels, per_panel, strict=True):
        if cont is not None:
            X, Y, Z = cont
            ax.contour(X, Y, Z, levels=30, cmap="Greys", linewidths=0.6)
        for label, p in paths.items():
            p = np.asarray(p)
            ax.plot(p[:, 0], p[:, 1], lw=1.8, label=label)
            ax.plot(p[-1, 0], p[-1, 1], "o", ms=4)
        ax.set_title(name)
        ax.legend(frameon=False, fontsize=8)
    if title:
        fig.suptitle(title)
    return save_figure(fig, path)
