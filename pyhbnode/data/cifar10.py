"""CIFAR-10 from its binary batches (paper Sec. 5.2), read with numpy; no torchvision needed.

Each record is 3073 bytes: a label byte (0-9), then 1024 red, 1024 green and 1024 blue bytes,
each a row-major 32x32 plane. Whatever batch files are present are used, so a partial copy works:

* train: ``data_batch_1.bin`` ... ``data_batch_5.bin``;
* test: ``test_batch.bin``;
* any of them gzipped (``.bin.gz``), or a leading subset named ``<batch>_first<N>.bin[.gz]``
  (e.g. ``data_batch_1_first4000.bin.gz``).

If both a full batch and a subset (or a plain and a gzipped copy) of the same batch are present,
the full / plain one is used, so no record is read twice. Folders searched, first with matching
files wins: ``data_dir/cifar-10-batches-bin/`` (the official archive's folder, where a download
goes), ``data_dir/cifar10/``, ``data_dir``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Literal

import numpy as np

from .download import (
    Checksum,
    DataFormatError,
    DataNotFoundError,
    fetch_and_unpack,
    read_data_bytes,
    search_dirs,
)
from .images import NormalizedImageDataset

__all__ = [
    "CIFAR10_URL",
    "CIFAR10_MEAN",
    "CIFAR10_STD",
    "CIFAR10_CLASSES",
    "read_cifar10_batch",
    "find_cifar10_files",
    "load_cifar10",
    "CIFAR10Dataset",
]

CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz"
# The published md5 is of the archive itself, hence decompressed=False.
CIFAR10_CHECKSUM = Checksum("md5", "c32a1d4ab5d03f1284b67883e8d87530", decompressed=False)
# Per-channel pixel mean and std of the 50000 training images, 0-1 scale.
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
RECORD_BYTES = 1 + 3 * 32 * 32
_SUBDIRS = ("cifar-10-batches-bin", "cifar10", ".")
_NAME = re.compile(r"^(?P<batch>data_batch_[1-5]|test_batch)(?P<subset>_first\d+)?\.bin(?P<gz>\.gz)?$")


def read_cifar10_batch(path: str | os.PathLike[str]) -> tuple[np.ndarray, np.ndarray]:
    """One binary batch file (gzipped or not) -> uint8 ``(N, 3, 32, 32)``, int64 ``(N,)``.

    Raises:
        DataFormatError: empty, not a whole number of 3073-byte records, or a label above 9.
    """
    raw = read_data_bytes(path)
    if not raw or len(raw) % RECORD_BYTES:
        raise DataFormatError(
            f"{path}: {len(raw)} bytes is not a whole number of {RECORD_BYTES}-byte "
            "CIFAR-10 records; the file is truncated or not a binary batch"
        )
    records = np.frombuffer(raw, np.uint8).reshape(-1, RECORD_BYTES)
    labels = records[:, 0].astype(np.int64)
    if labels.max() > 9:
        raise DataFormatError(f"{path}: label {labels.max()} out of range 0-9; not a CIFAR-10 binary batch")
    return records[:, 1:].reshape(-1, 3, 32, 32).copy(), labels


def find_cifar10_files(data_dir: str | os.PathLike[str], split: Literal["train", "test"] = "train") -> list[Path]:
    """The batch files used for ``split``, in batch order (see the module docstring for the rules)."""
    pattern = "data_batch_*" if split == "train" else "test_batch*"
    for folder in search_dirs(data_dir, _SUBDIRS):
        best: dict[str, tuple[tuple[bool, bool], Path]] = {}
        for path in folder.glob(pattern):
            m = _NAME.match(path.name)
            if m is None or not path.is_file():
                continue
            rank = (m["subset"] is not None, m["gz"] is not None)  # lower is better: full, then plain
            if m["batch"] not in best or rank < best[m["batch"]][0]:
                best[m["batch"]] = (rank, path)
        if best:
            return [best[k][1] for k in sorted(best)]
    return []


def load_cifar10(
    data_dir: str | os.PathLike[str], split: Literal["train", "test"] = "train", download: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """CIFAR-10 images and labels from whichever batch files are present.

    Args:
        data_dir: data root (see the module docstring for where files are looked for).
        split: ``"train"`` or ``"test"``.
        download: if no batch of the split is present, fetch the official binary archive
            (162 MB, md5-checked) and extract it to ``data_dir/cifar-10-batches-bin/``.

    Returns:
        ``(images, labels)``: uint8 ``(N, 3, 32, 32)`` RGB pixels 0-255, int64 ``(N,)``.
    """
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    files = find_cifar10_files(data_dir, split)
    if not files:
        wanted = "data_batch_1.bin ... data_batch_5.bin" if split == "train" else "test_batch.bin"
        if not download:
            raise DataNotFoundError(
                wanted,
                search_dirs(data_dir, _SUBDIRS),
                [CIFAR10_URL],
                unpack_into=Path(data_dir),
                note="The archive holds cifar-10-batches-bin/*.bin.",
            )
        fetch_and_unpack(CIFAR10_URL, data_dir, "cifar-10-binary.tar.gz", checksum=CIFAR10_CHECKSUM, keep=[".bin"])
        files = find_cifar10_files(data_dir, split)
    parts = [read_cifar10_batch(f) for f in files]
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


class CIFAR10Dataset(NormalizedImageDataset):
    """CIFAR-10 as ``(float32 (3, 32, 32) normalised per channel, int64 label)``.

    Args:
        data_dir, split, download: as :func:`load_cifar10`.
        limit: keep only the first ``limit`` images.
        mean, std: per-channel statistics (0-1 scale); pass ``(0, 0, 0)`` / ``(1, 1, 1)`` for
            plain 0-1 pixels.
    """

    def __init__(
        self,
        data_dir: str | os.PathLike[str],
        split: Literal["train", "test"] = "train",
        *,
        limit: int | None = None,
        mean: tuple[float, float, float] = CIFAR10_MEAN,
        std: tuple[float, float, float] = CIFAR10_STD,
        download: bool = False,
    ) -> None:
        images, labels = load_cifar10(data_dir, split, download=download)
        super().__init__(images, labels, mean, std, limit)
