"""Fig. 8: plane vibration (F-16 ground vibration test).  The five ODE-RNN hybrids of the zoo
(the HBNODE paper: batch 64, Adam lr 1e-4, tolerance 1e-7) on irregular windows of 64 kept stamps
(10% of the stamps dropped), trained to predict the next kept stamp; train/test MSE per epoch.

After training, each model's one-step predictions on the first ``curve_windows`` test windows
are saved next to the truth and drawn channel by channel ("learned curves vs truth").

Files: those of :func:`~pyhbnode.experiments.runner.run_comparison` plus ``curves.json`` and
``curves.png``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from .common import (
    Assessment,
    RunContext,
    existing,
    read_json,
    sequence_comparison,
    subset,
    train_comparison,
    training_assessment,
    write_json,
)

__all__ = ["MSE_SLACK", "CHANNELS", "run", "redraw", "assess", "save_curves"]

# (G)HBNODE's test MSE counts as comparable within this fraction of the best baseline's.
MSE_SLACK = 0.10
CHANNELS = ("force", "voltage", "acceleration 1", "acceleration 2", "acceleration 3")


def _load(ctx: RunContext):
    from ..data import load_plane_vibration

    splits = load_plane_vibration(ctx.data_dir, seq_len=int(ctx.get("seq_len", 64)))
    return subset(splits.train, ctx.get("train_limit")), subset(splits.test, ctx.get("test_limit"))


def save_curves(name: str, model: nn.Module, out: Path, test, windows: int) -> None:
    """Append ``name``'s one-step predictions on the first ``windows`` test windows to ``curves.json``."""
    path = out / "curves.json"
    saved = read_json(path) if path.exists() else {}
    w = min(windows, test.n_windows)
    if "truth" not in saved:
        stamps = test.stamps[1:, :w] if test.stamps is not None else np.arange(test.x.shape[0])[:, None].repeat(w, 1)
        saved["truth"] = np.round(test.y[:, :w], 5).tolist()
        saved["stamps"] = stamps.tolist()
    model.eval()
    with torch.no_grad():
        pred = model(torch.from_numpy(test.x[:, :w]), torch.from_numpy(test.dt[:, :w]))
    model.train()
    saved.setdefault("models", {})[name] = np.round(pred.numpy(), 5).tolist()
    write_json(path, saved)


def run(ctx: RunContext) -> None:
    train, test = _load(ctx)
    curves = ctx.out_dir() / "curves.json"
    if curves.exists():
        curves.unlink()
    windows = int(ctx.get("curve_windows", 3))
    train_comparison(
        ctx,
        sequence_comparison(ctx, "plane_vibration", train, test),
        after_model=lambda name, model, out: save_curves(name, model, out, test, windows),
    )
    redraw(ctx.out)


def redraw(run_dir: str | Path) -> list[Path]:
    from .runner import redraw_training

    run = Path(run_dir)
    paths = redraw_training(run, title="plane vibration")
    if (run / "curves.json").exists():
        paths.append(
            plot_learned_curves(
                read_json(run / "curves.json"),
                run / "curves.png",
                title="plane vibration: one-step predictions on test windows",
            )
        )
    return paths


def plot_learned_curves(saved: dict, path: Path, *, title: str = "", channels=CHANNELS) -> Path:
    """One panel per channel: the truth (black) and each model's prediction over the saved
    windows, placed at their stamps in the recording."""
    from .plots import MODEL_STYLE, plt, save_figure

    truth = np.asarray(saved["truth"])  # (T, W, F)
    stamps = np.asarray(saved["stamps"])  # (T, W)
    n_ch = truth.shape[2]
    fig, axes = plt.subplots(n_ch, 1, figsize=(10, 1.7 * n_ch + 0.8), sharex=True, squeeze=False)
    for c in range(n_ch):
        ax = axes[c][0]
        for w in range(truth.shape[1]):
            ax.plot(stamps[:, w], truth[:, w, c], color="k", lw=1.6, label="truth" if w == 0 else None)
            for m, pred in saved.get("models", {}).items():
                label, color = MODEL_STYLE.get(m, (m, None))
                ax.plot(
                    stamps[:, w],
                    np.asarray(pred)[:, w, c],
                    color=color,
                    lw=1.0,
                    alpha=0.85,
                    label=label if w == 0 else None,
                )
        ax.set_ylabel(channels[c] if c < len(channels) else f"ch {c}", fontsize=8)
        ax.grid(alpha=0.3)
    axes[0][0].legend(frameon=False, fontsize=7, ncol=6)
    axes[-1][0].set_xlabel("stamp (samples at 400 Hz)")
    if title:
        fig.suptitle(title)
    return save_figure(fig, path, dpi=110)


def assess(run_dir: str | Path) -> Assessment:
    a = training_assessment(
        run_dir, metric="final_val_loss", metric_label="test MSE", higher_is_better=False, rel_tol=MSE_SLACK
    )
    a.columns.insert(-1, ("final_train_loss", "train MSE"))
    a.figures += existing(run_dir, ["curves.png"])
    return a
