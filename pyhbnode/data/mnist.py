"""MNIST from its IDX files (paper Sec. 5.2), read with numpy; no torchvision needed.

Files are looked for in ``data_dir/mnist/``, ``data_dir/MNIST/raw/`` (torchvision's layout) and
``data_dir`` itself, gzipped (``train-images-idx3-ubyte.gz``) or not.
"""

from __future__ import annotations

import os
from typing import Literal

import numpy as np

from .download import Checksum, DataFormatError, locate_or_download, read_data_bytes
from .images import NormalizedImageDataset

__all__ = ["MNIST_MIRRORS", "MNIST_MEAN", "MNIST_STD", "read_idx", "load_mnist", "MNISTDataset"]

# Official locations, tried in order (torchvision uses the same two).
MNIST_MIRRORS = ("https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/")
# md5 of the *uncompressed* IDX files: re-gzipped copies differ only in their container.
_FILES = {
    ("train", "images"): ("train-images-idx3-ubyte", "6bbc9ace898e44ae57da46a324031adb"),
    ("train", "labels"): ("train-labels-idx1-ubyte", "a25bea736e30d166cdddb491f175f624"),
    ("test", "images"): ("t10k-images-idx3-ubyte", "2646ac647ad5339dbf082846283269ea"),
    ("test", "labels"): ("t10k-labels-idx1-ubyte", "27ae3e4e09519cfbb04c329615203637"),
}
_SUBDIRS = ("mnist", "MNIST/raw", ".")
IMAGES_MAGIC, LABELS_MAGIC = 2051, 2049
# Training-set pixel statistics on the 0-1 scale (33.318 / 78.567 on 0-255).
MNIST_MEAN, MNIST_STD = 0.1307, 0.3081


def read_idx(path: str | os.PathLike[str], expected_magic: int | None = None) -> np.ndarray:
    """An IDX file of unsigned bytes (gzipped or not) as a uint8 array of the header's shape.

    IDX layout (big-endian): magic ``0x0000 08 nd`` (type 0x08 = ubyte, ``nd`` dimensions),
    then ``nd`` int32 sizes, then the data. MNIST images have magic 2051 (3 dims), labels 2049.

    Raises:
        DataFormatError: wrong magic, unsupported type, or a size that disagrees with the header.
    """
    raw = read_data_bytes(path)
    if len(raw) < 4:
        raise DataFormatError(f"{path}: {len(raw)} bytes, too short for an IDX header")
    magic = int.from_bytes(raw[:4], "big")
    if expected_magic is not None and magic != expected_magic:
        raise DataFormatError(
            f"{path}: bad magic number {magic} (expected {expected_magic}); not the expected IDX file"
        )
    if raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise DataFormatError(f"{path}: bad magic number {magic}; not an unsigned-byte IDX file")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataFormatError(f"{path}: truncated IDX header ({len(raw)} bytes)")
    shape = tuple(int(v) for v in np.frombuffer(raw, ">u4", count=ndim, offset=4))
    expected = header + int(np.prod(shape))
    if len(raw) != expected:
        what = "truncated" if len(raw) < expected else "has trailing bytes"
        raise DataFormatError(f"{path}: {what}: header {shape} needs {expected} bytes, file has {len(raw)}")
    return np.frombuffer(raw, np.uint8, offset=header).reshape(shape).copy()


def load_mnist(
    data_dir: str | os.PathLike[str], split: Literal["train", "test"] = "train", download: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """MNIST images and labels.

    Args:
        data_dir: data root (see the module docstring for where files are looked for).
        split: ``"train"`` (60000) or ``"test"`` (10000).
        download: fetch missing files (gzipped) into ``data_dir/mnist/``.

    Returns:
        ``(images, labels)``: uint8 ``(N, 28, 28)`` pixels 0-255, int64 ``(N,)`` classes 0-9.
    """
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    arrays = {}
    for kind, magic in (("images", IMAGES_MAGIC), ("labels", LABELS_MAGIC)):
        stem, md5 = _FILES[split, kind]
        path = locate_or_download(
            data_dir,
            [stem + ".gz", stem],
            subdirs=_SUBDIRS,
            urls=[m + stem + ".gz" for m in MNIST_MIRRORS],
            checksum=Checksum("md5", md5),
            download=download,
        )
        arrays[kind] = read_idx(path, magic)
    images, labels = arrays["images"], arrays["labels"].astype(np.int64)
    if images.ndim != 3 or images.shape[1:] != (28, 28) or labels.ndim != 1 or len(images) != len(labels):
        raise DataFormatError(f"MNIST {split}: images {images.shape} and labels {labels.shape} do not match")
    if labels.size and labels.max() > 9:
        raise DataFormatError(f"MNIST {split}: label {labels.max()} out of range 0-9")
    return images, labels


class MNISTDataset(NormalizedImageDataset):
    """MNIST as ``(float32 (1, 28, 28) normalised with mean 0.1307 / std 0.3081, int64 label)``.

    Args:
        data_dir, split, download: as :func:`load_mnist`.
        limit: keep only the first ``limit`` images.
    """

    def __init__(
        self,
        data_dir: str | os.PathLike[str],
        split: Literal["train", "test"] = "train",
        *,
        limit: int | None = None,
        download: bool = False,
    ) -> None:
        images, labels = load_mnist(data_dir, split, download=download)
        super().__init__(images[:, None], labels, (MNIST_MEAN,), (MNIST_STD,), limit)
