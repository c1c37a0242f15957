"""MNIST (IDX) and CIFAR-10 (binary batch) readers on fixtures in the real formats, plus real-data checks.

The fixtures are written here byte by byte from the published format descriptions, not with
the package's own code, so a reader bug cannot cancel out against a writer bug.
"""
from __future__ import annotations

import gzip
import hashlib
import io
import os
import struct
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from pyhbnode.data import (
    CIFAR10_MEAN, CIFAR10_STD, CIFAR10Dataset, DataFormatError, DataNotFoundError, MNISTDataset, load_cifar10,
    load_mnist, read_cifar10_batch, read_idx, verify_checksum,
)
from pyhbnode.data import cifar10 as cifar_module
from pyhbnode.data import mnist as mnist_module
from pyhbnode.data.cifar10 import find_cifar10_files
from pyhbnode.data.download import Checksum, ChecksumError

REAL = Path(os.environ.get("PYHBNODE_REAL_DATA", "/work/shared/data"))


def _write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.name.endswith(".gz"):
        with gzip.open(path, "wb") as f:
            f.write(data)
    else:
        path.write_bytes(data)
    return path


def write_mnist(folder: Path, prefix: str, n: int, seed: int, gz: bool = True,
                blank_first: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """IDX image + label files ``<prefix>-{images-idx3,labels-idx1}-ubyte[.gz]`` of random digits."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
    if blank_first:
        images[0] = 0
    labels = rng.integers(0, 10, n, dtype=np.uint8)
    ext = ".gz" if gz else ""
    header = struct.pack(">IIII", 2051, n, 28, 28)
    _write(folder / f"{prefix}-images-idx3-ubyte{ext}", header + images.tobytes())
    _write(folder / f"{prefix}-labels-idx1-ubyte{ext}", struct.pack(">II", 2049, n) + labels.tobytes())
    return images, labels


def cifar_records(n: int, seed: int) -> tuple[bytes, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8)  # R, G, B planes, row-major
    labels = rng.integers(0, 10, n, dtype=np.uint8)
    data = b"".join(bytes([lab]) + img.tobytes() for lab, img in zip(labels, images))
    return data, images, labels


# ---------------------------------------------------------------- MNIST


@pytest.mark.parametrize("gz", [True, False])
def test_mnist_fixture_roundtrip(tmp_path: Path, gz: bool) -> None:
    images, labels = write_mnist(tmp_path / "mnist", "train", 7, seed=1, gz=gz)
    t_images, t_labels = write_mnist(tmp_path / "mnist", "t10k", 3, seed=2, gz=gz)
    x, y = load_mnist(tmp_path, "train")
    assert x.dtype == np.uint8 and x.shape == (7, 28, 28) and y.dtype == np.int64 and y.shape == (7,)
    np.testing.assert_array_equal(x, images)
    np.testing.assert_array_equal(y, labels)
    x, y = load_mnist(tmp_path, "test")
    np.testing.assert_array_equal(x, t_images)
    np.testing.assert_array_equal(y, t_labels)


def test_mnist_found_in_data_dir_itself(tmp_path: Path) -> None:
    write_mnist(tmp_path, "t10k", 2, seed=0)
    assert load_mnist(tmp_path, "test")[0].shape == (2, 28, 28)


def test_mnist_dataset_normalises(tmp_path: Path) -> None:
    images, labels = write_mnist(tmp_path / "mnist", "train", 10, seed=3, blank_first=True)
    ds = MNISTDataset(tmp_path, "train", limit=4)
    assert len(ds) == 4
    img, lab = ds[1]
    assert img.dtype == torch.float32 and img.shape == (1, 28, 28) and lab.dtype == torch.int64
    expected = (torch.from_numpy(images[1]).float() / 255 - 0.1307) / 0.3081
    torch.testing.assert_close(img[0], expected)
    assert int(lab) == labels[1]
    torch.testing.assert_close(ds[0][0], torch.full((1, 28, 28), -0.1307 / 0.3081))
    xb, yb = next(iter(DataLoader(ds, batch_size=4)))
    assert xb.shape == (4, 1, 28, 28) and yb.dtype == torch.int64


def test_mnist_bad_magic(tmp_path: Path) -> None:
    write_mnist(tmp_path, "train", 2, seed=0)
    _write(tmp_path / "train-labels-idx1-ubyte.gz", struct.pack(">II", 2051, 2) + b"\x01\x02")
    with pytest.raises(DataFormatError, match=r"bad magic number 2051 \(expected 2049\)"):
        load_mnist(tmp_path, "train")


def test_idx_truncated_and_trailing(tmp_path: Path) -> None:
    short = _write(tmp_path / "short", struct.pack(">IIII", 2051, 3, 28, 28) + bytes(2 * 784))
    with pytest.raises(DataFormatError, match="truncated"):
        read_idx(short, 2051)
    long = _write(tmp_path / "long", struct.pack(">II", 2049, 2) + bytes(3))
    with pytest.raises(DataFormatError, match="trailing"):
        read_idx(long, 2049)
    with pytest.raises(DataFormatError, match="too short"):
        read_idx(_write(tmp_path / "tiny", b"\x00\x00"))


def test_idx_truncated_gzip_stream(tmp_path: Path) -> None:
    good = _write(tmp_path / "x.gz", struct.pack(">IIII", 2051, 50, 28, 28) + bytes(range(256)) * 50 * 3)
    cut = tmp_path / "cut.gz"
    cut.write_bytes(good.read_bytes()[:200])
    with pytest.raises(DataFormatError, match="truncated gzip"):
        read_idx(cut)


def test_mnist_missing_names_file_and_url(tmp_path: Path) -> None:
    with pytest.raises(DataNotFoundError) as info:
        load_mnist(tmp_path, "test")
    msg = str(info.value)
    assert "t10k-images-idx3-ubyte.gz" in msg and str(tmp_path / "mnist") in msg
    assert "https://ossci-datasets.s3.amazonaws.com/mnist/t10k-images-idx3-ubyte.gz" in msg
    assert "download=True" in msg


def test_mnist_download_checks_decompressed_md5(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A fixture served from a file:// mirror is fetched, but it is not the official file, so the
    # md5 check must refuse it and leave nothing behind.
    write_mnist(tmp_path / "mirror", "t10k", 2, seed=0)
    monkeypatch.setattr(mnist_module, "MNIST_MIRRORS", ((tmp_path / "mirror").as_uri() + "/",))
    with pytest.raises(ChecksumError, match="md5"):
        load_mnist(tmp_path / "data", "test", download=True)
    assert not any((tmp_path / "data").rglob("*.gz"))


def test_mnist_bad_split(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="split"):
        load_mnist(tmp_path, "valid")  # type: ignore[arg-type]


# ---------------------------------------------------------------- CIFAR-10


def test_cifar_record_layout(tmp_path: Path) -> None:
    data, images, labels = cifar_records(5, seed=0)
    x, y = read_cifar10_batch(_write(tmp_path / "data_batch_1.bin", data))
    assert x.dtype == np.uint8 and x.shape == (5, 3, 32, 32) and y.dtype == np.int64
    np.testing.assert_array_equal(x, images)
    np.testing.assert_array_equal(y, labels)
    # Byte 1 of a record is the top-left red pixel, byte 1 + 1024 the top-left green one.
    assert x[0, 0, 0, 0] == data[1] and x[0, 1, 0, 0] == data[1 + 1024] and x[0, 0, 0, 1] == data[2]


def test_cifar_any_subset_of_files(tmp_path: Path) -> None:
    folder = tmp_path / "cifar10"
    parts = {k: cifar_records(n, seed=k) for k, n in [(1, 3), (2, 2), (4, 4)]}
    _write(folder / "data_batch_2.bin.gz", parts[2][0])
    _write(folder / "data_batch_1_first3.bin.gz", parts[1][0])
    _write(folder / "data_batch_4.bin", parts[4][0])
    test_data, test_images, test_labels = cifar_records(6, seed=9)
    _write(folder / "test_batch_first6.bin.gz", test_data)
    x, y = load_cifar10(tmp_path, "train")
    np.testing.assert_array_equal(x, np.concatenate([parts[k][1] for k in (1, 2, 4)]))
    np.testing.assert_array_equal(y, np.concatenate([parts[k][2] for k in (1, 2, 4)]))
    x, y = load_cifar10(tmp_path, "test")
    np.testing.assert_array_equal(x, test_images)
    np.testing.assert_array_equal(y, test_labels)


def test_cifar_full_and_plain_files_win_over_duplicates(tmp_path: Path) -> None:
    full, _, full_labels = cifar_records(4, seed=1)
    _write(tmp_path / "cifar-10-batches-bin/data_batch_1.bin", full)
    _write(tmp_path / "cifar-10-batches-bin/data_batch_1.bin.gz", full)
    _write(tmp_path / "cifar-10-batches-bin/data_batch_1_first2.bin.gz", full[: 2 * 3073])
    assert [p.name for p in find_cifar10_files(tmp_path)] == ["data_batch_1.bin"]
    np.testing.assert_array_equal(load_cifar10(tmp_path)[1], full_labels)


def test_cifar_truncated_and_bad_label(tmp_path: Path) -> None:
    data, _, _ = cifar_records(2, seed=0)
    with pytest.raises(DataFormatError, match="3073"):
        read_cifar10_batch(_write(tmp_path / "cut/test_batch.bin", data[:-10]))
    bad = bytes([12]) + data[1:]
    with pytest.raises(DataFormatError, match="label 12"):
        read_cifar10_batch(_write(tmp_path / "bad/test_batch.bin", bad))


def test_cifar_missing_names_file_and_url(tmp_path: Path) -> None:
    with pytest.raises(DataNotFoundError) as info:
        load_cifar10(tmp_path, "test")
    msg = str(info.value)
    assert "test_batch.bin" in msg and "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz" in msg
    assert "download=True" in msg and str(tmp_path / "cifar10") in msg


def test_cifar_download_unpacks_official_layout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A stand-in for cifar-10-binary.tar.gz served from a file:// URL, with its own md5.
    data, images, labels = cifar_records(3, seed=5)
    archive = tmp_path / "served.tar.gz"
    with tarfile.open(archive, "w:gz") as tf:
        for name, payload in [("cifar-10-batches-bin/test_batch.bin", data),
                              ("cifar-10-batches-bin/batches.meta.txt", b"airplane\n")]:
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            tf.addfile(info, io.BytesIO(payload))
    md5 = hashlib.md5(archive.read_bytes()).hexdigest()
    monkeypatch.setattr(cifar_module, "CIFAR10_URL", archive.as_uri())
    monkeypatch.setattr(cifar_module, "CIFAR10_CHECKSUM", Checksum("md5", md5, decompressed=False))
    root = tmp_path / "data"
    x, y = load_cifar10(root, "test", download=True)
    np.testing.assert_array_equal(x, images)
    np.testing.assert_array_equal(y, labels)
    assert sorted(p.name for p in root.rglob("*")) == ["cifar-10-batches-bin", "test_batch.bin"]
    monkeypatch.setattr(cifar_module, "CIFAR10_CHECKSUM", Checksum("md5", "0" * 32, decompressed=False))
    with pytest.raises(ChecksumError):
        load_cifar10(tmp_path / "other", "test", download=True)
    assert not any((tmp_path / "other").rglob("*.bin"))


def test_cifar_dataset_normalises_per_channel(tmp_path: Path) -> None:
    data, images, labels = cifar_records(6, seed=4)
    _write(tmp_path / "test_batch.bin", data)
    ds = CIFAR10Dataset(tmp_path, "test", limit=5)
    assert len(ds) == 5
    img, lab = ds[2]
    assert img.dtype == torch.float32 and img.shape == (3, 32, 32) and int(lab) == labels[2]
    for c in range(3):
        expected = (torch.from_numpy(images[2, c]).float() / 255 - CIFAR10_MEAN[c]) / CIFAR10_STD[c]
        torch.testing.assert_close(img[c], expected)
    raw = CIFAR10Dataset(tmp_path, "test", mean=(0, 0, 0), std=(1, 1, 1))
    torch.testing.assert_close(raw[0][0], torch.from_numpy(images[0]).float() / 255)


# ---------------------------------------------------------------- real data


def _real(sub: str) -> Path:
    if not (REAL / sub).exists():
        pytest.skip(f"real data {REAL / sub} not present (set PYHBNODE_REAL_DATA to its folder)")
    return REAL


def test_real_mnist_counts_and_pixel_stats() -> None:
    root = _real("mnist")
    x, y = load_mnist(root, "train")
    assert x.shape == (60000, 28, 28)
    assert np.bincount(y).tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    assert x.mean(dtype=np.float64) == pytest.approx(33.318421449829934, rel=1e-12)
    assert x.mean(dtype=np.float64) / 255 == pytest.approx(0.1307, abs=1e-4)
    x, y = load_mnist(root, "test")
    assert x.shape == (10000, 28, 28)
    assert np.bincount(y).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def test_real_mnist_decompressed_md5_matches_official() -> None:
    root = _real("mnist")
    # The re-gzipped training images differ from the official .gz but not in content.
    for name, md5 in mnist_module._FILES.values():
        verify_checksum(root / "mnist" / f"{name}.gz", Checksum("md5", md5))


def test_real_cifar_subset() -> None:
    root = _real("cifar10")
    x, y = load_cifar10(root, "train")
    assert x.shape == (4000, 3, 32, 32)
    assert y[:10].tolist() == [6, 9, 9, 4, 1, 1, 2, 7, 8, 3]
    assert np.bincount(y).tolist() == [396, 366, 420, 384, 422, 393, 414, 385, 407, 413]
    flat = x.reshape(len(x), -1)
    assert flat[0, :3].tolist() == [59, 43, 50] and flat[0, -3:].tolist() == [140, 84, 72]
    x, y = load_cifar10(root, "test")
    assert x.shape == (1000, 3, 32, 32) and y[:3].tolist() == [3, 8, 8]
    assert x.reshape(len(x), -1)[0, :4].tolist() == [158, 159, 165, 166]
