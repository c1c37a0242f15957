"""Silverbox (Duffing-like electronic oscillator) series for the initialisation test, paper Fig. 3.

``sb.csv`` holds 131072 samples of the input voltage V1 and output voltage V2. As in the HBNODE
reference, each column has its mean (over the whole file) removed and is multiplied by 100;
the first 1000 samples are the training series and the next 4000 the test series.
"""

from __future__ import annotations

import os
from typing import NamedTuple

import numpy as np

from .download import Checksum, locate_or_download
from .sequences import read_csv_columns

__all__ = ["SB_URLS", "SilverboxSeries", "SilverboxSplits", "read_silverbox_csv", "load_silverbox"]

# Pinned to the commit the paper's authors used; the repository may move or rename files.
SB_URLS = (
    "https://raw.githubusercontent.com/hedixia/HeavyBallNODE/cd1065febea8ebf51eda954734e1cbe1fd565ae9/data/sb.csv",
)
SB_CHECKSUM = Checksum("sha256", "e7076735427b0b9bbc18a2a43b78022219a76623b15b494be559dc58b0224279")


class SilverboxSeries(NamedTuple):
    """One contiguous Silverbox series; all arrays float32 ``(N,)``.

    Attributes:
        v1: input voltage, mean-removed, x ``scale`` (volts x 100 by default).
        v2: output voltage, same treatment.
        t: time in samples from the series' first sample (0, 1, ..., N - 1), the time axis
            the reference interpolates V1 on.
    """

    v1: np.ndarray
    v2: np.ndarray
    t: np.ndarray


class SilverboxSplits(NamedTuple):
    train: SilverboxSeries
    test: SilverboxSeries


def read_silverbox_csv(path: str | os.PathLike[str]) -> np.ndarray:
    """Raw ``sb.csv`` values: float64 ``(131072, 2)``, columns V1, V2 in volts."""
    return read_csv_columns(path, 2)


def load_silverbox(
    data_dir: str | os.PathLike[str],
    *,
    n_train: int = 1000,
    n_test: int = 4000,
    scale: float = 100.0,
    download: bool = False,
) -> SilverboxSplits:
    """Train series = samples ``[0, n_train)``, test series = ``[n_train, n_train + n_test)``.

    Args:
        data_dir: folder holding ``sb.csv``.
        n_train, n_test: series lengths in samples.
        scale: factor applied after removing each column's mean.
        download: fetch ``sb.csv`` if missing.
    """
    path = locate_or_download(data_dir, ["sb.csv"], urls=SB_URLS, checksum=SB_CHECKSUM, download=download)
    raw = read_silverbox_csv(path)
    if n_train + n_test > len(raw):
        raise ValueError(f"{path} has {len(raw)} samples, fewer than n_train + n_test = {n_train + n_test}")
    data = (scale * (raw - raw.mean(axis=0))).astype(np.float32)

    def series(lo: int, hi: int) -> SilverboxSeries:
        return SilverboxSeries(data[lo:hi, 0].copy(), data[lo:hi, 1].copy(), np.arange(hi - lo, dtype=np.float32))

    return SilverboxSplits(series(0, n_train), series(n_train, n_train + n_test))
