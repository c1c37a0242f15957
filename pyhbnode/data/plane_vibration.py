"""Plane vibration (F-16 ground vibration test) forecasting task, paper Sec. 5.3.

Procedure (the HBNODE reference code's, reproduced step for step so that ``seed=1`` gives the
authors' exact kept stamps and splits):

1. Read ``pv.csv`` -> float64 ``(73728, 5)`` (force, voltage, three accelerations, sampled at
   400 Hz) and z-score each channel (population std).
2. ``rng = np.random.RandomState(seed)``; draw ``rng.randn(73728, 5)`` and add
   ``noise_std`` times it (the draw happens even when ``noise_std == 0`` because the reference
   does so, and skipping it would change every later draw).
3. Keep ``int(0.9 * (73728 - 100))`` of the first ``73728 - 100`` stamps, chosen uniformly
   without replacement (10% dropped). The last 100 stamps are never kept so that a forecast
   running past a segment's last stamp stays inside the recording.
4. Split the *kept* stamps in time order: first 50% train, next 25% valid, rest test
   (``int`` of each share, the remainder to test).
5. Cut each split's kept stamps into non-overlapping segments of ``seq_len + 1 = 65``
   consecutive kept stamps (a leftover shorter than 65 is dropped).

Per segment with kept stamps ``s_0 < ... < s_64`` (all arrays time-first, batch = segments):

* ``x[i] = data[s_i]`` for ``i < 64`` -- the 64 input stamps;
* ``y[i] = data[s_{i+1}]`` -- the next *kept* stamp's values (the target "shifted by one");
* ``dt[i] = s_{i+1} - s_i`` -- elapsed sample periods from input ``i`` to target ``i``
  (>= 1; 1 sample = 1/400 s);
* ``forecast[k] = data[s_64 + k]`` for ``k < forecast_len`` (8) -- the paper's "forecast 8
  stamps": the regular-grid values starting at the segment's last stamp (so ``forecast[0]``
  equals ``y[-1]``), the target of the reference's 8-point multi-step forecast;
* ``stamps`` = ``(65, B)`` int64, the ``s_i`` themselves.

So ``dt[i]`` is the gap *after* input ``i``: the reference ODE-RNN updates its state with
``x[i]``, integrates over ``dt[i]`` and reads out the prediction of ``y[i]``. (Walker2D's ``dt``
is the gap *before* its input.) A model that integrates before reading each input can take
``np.diff(stamps[:-1], axis=0)`` for the gaps between inputs.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from .download import Checksum, locate_or_download
from .sequences import (
    SequenceSplit,
    SequenceSplits,
    read_csv_columns,
    subset_keep,
    take_windows,
    window_starts,
)

__all__ = ["PV_URLS", "PV_SAMPLE_RATE_HZ", "PV_CHANNELS", "read_plane_vibration_csv", "load_plane_vibration"]

# Pinned to the commit the paper's authors used; the repository may move or rename files.
PV_URLS = (
    "https://raw.githubusercontent.com/hedixia/HeavyBallNODE/cd1065febea8ebf51eda954734e1cbe1fd565ae9/data/pv.csv",
)
PV_CHECKSUM = Checksum("sha256", "b72a9d063e392570bb20c26f4763232e30262e5914d946e475e67df40880db6d")
PV_SAMPLE_RATE_HZ = 400.0
PV_CHANNELS = ("Force", "Voltage", "Acceleration1", "Acceleration2", "Acceleration3")
# Stamps at the end never used as segment stamps, so forecasts of up to this many fit.
_FORECAST_RESERVE = 100


def read_plane_vibration_csv(path: str | os.PathLike[str]) -> np.ndarray:
    """Raw ``pv.csv`` values: float64 ``(73728, 5)``, columns :data:`PV_CHANNELS`, unscaled."""
    return read_csv_columns(path, len(PV_CHANNELS))


def load_plane_vibration(
    data_dir: str | os.PathLike[str],
    *,
    seq_len: int = 64,
    forecast_len: int = 8,
    drop_frac: float = 0.1,
    ratios: Sequence[float] = (2, 1, 1),
    seed: int = 1,
    noise_std: float = 0.0,
    download: bool = False,
) -> SequenceSplits:
    """Irregularly sampled plane-vibration segments, split train / valid / test.

    Args:
        data_dir: folder holding ``pv.csv``.
        seq_len: input stamps per segment (segments hold ``seq_len + 1`` kept stamps).
        forecast_len: regular-grid stamps in ``forecast`` (at most 100).
        drop_frac: share of stamps dropped at random.
        ratios: train / valid / test shares of the kept stamps (normalised by their sum).
        seed: seed of the :class:`numpy.random.RandomState` driving noise and dropping;
            ``1`` reproduces the reference.
        noise_std: std of Gaussian noise added to the z-scored data.
        download: fetch ``pv.csv`` if missing.

    Returns:
        :class:`SequenceSplits` whose splits have ``x, y`` float32 ``(seq_len, B, 5)``,
        ``dt`` float32 ``(seq_len, B)``, ``forecast`` float32 ``(forecast_len, B, 5)`` and
        ``stamps`` int64 ``(seq_len + 1, B)`` (see the module docstring for their meaning).
    """
    if not 0 < forecast_len <= _FORECAST_RESERVE:
        raise ValueError(f"forecast_len must be in 1..{_FORECAST_RESERVE}, got {forecast_len}")
    path = locate_or_download(data_dir, ["pv.csv"], urls=PV_URLS, checksum=PV_CHECKSUM, download=download)
    data = read_plane_vibration_csv(path)
    data = (data - data.mean(axis=0)) / data.std(axis=0)
    rng = np.random.RandomState(seed)
    data = data + noise_std * rng.randn(*data.shape)

    n_pool = len(data) - _FORECAST_RESERVE
    kept = subset_keep(rng, n_pool, int(n_pool * (1 - drop_frac)))
    shares = np.asarray(ratios, dtype=np.float64) / np.sum(ratios)
    n_train, n_valid = (shares[:2] * len(kept)).astype(int)
    parts = np.split(kept, [n_train, n_train + n_valid])

    def segments(split_kept: np.ndarray) -> SequenceSplit:
        starts = window_starts(len(split_kept), seq_len + 1, seq_len + 1)
        stamps = take_windows(split_kept, starts, seq_len + 1)
        fore = stamps[-1][None, :] + np.arange(forecast_len)[:, None]
        return SequenceSplit(
            x=data[stamps[:-1]].astype(np.float32),
            dt=np.diff(stamps, axis=0).astype(np.float32),
            y=data[stamps[1:]].astype(np.float32),
            forecast=data[fore].astype(np.float32),
            stamps=stamps,
        )

    return SequenceSplits(*(segments(p) for p in parts))
