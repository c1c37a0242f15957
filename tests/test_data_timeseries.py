"""Plane vibration, Silverbox and Walker2D loaders and the shared sequence helpers.

Fixtures are written in the real formats: CSVs with a quoted header, a comma closing every
line, ``Fs`` only in the first pv row and a blank last line (pv) or no final newline (sb), and
a ``walker/`` folder of ``rollout_*.npy`` float64 ``(T, 17)`` arrays.
"""
from __future__ import annotations

import hashlib
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from pyhbnode.data import (
    DataNotFoundError, SequenceDataset, collate_time_first, load_plane_vibration, load_silverbox, load_walker,
    read_plane_vibration_csv, read_silverbox_csv, split_walker_files,
)
from pyhbnode.data import walker as walker_module
from pyhbnode.data.download import Checksum, ChecksumError
from pyhbnode.data.sequences import bernoulli_keep, elapsed_steps, subset_keep, take_windows, window_starts

REAL = Path(os.environ.get("PYHBNODE_REAL_DATA", "/work/shared/data"))


def _real(sub: str) -> Path:
    if not (REAL / sub).exists():
        pytest.skip(f"real data {REAL / sub} not present (set PYHBNODE_REAL_DATA to its folder)")
    return REAL


# ---------------------------------------------------------------- fixtures


def write_pv(path: Path, n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    data = rng.normal(size=(n, 5)) * [12.0, 0.025, 0.24, 0.39, 0.36] + [0.5, 0.0, 0.1, -0.2, 0.0]
    data = np.round(data, 5)
    lines = ['"Force","Voltage","Acceleration1","Acceleration2","Acceleration3","Fs",']
    for i, row in enumerate(data):
        lines.append(",".join(f"{v:.5f}" for v in row) + (",400," if i == 0 else ",,"))
    path.write_text("\n".join(lines) + "\n\n")
    return data


def write_sb(path: Path, n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    data = np.round(rng.normal(size=(n, 2)) * [0.02, 0.05] + [0.006, 0.0008], 7)
    lines = ['"V1","V2",'] + [f"{a:.7f},{b:.7f}," for a, b in data]
    path.write_text("\n".join(lines))  # the real file has no final newline
    return data


def write_walker(folder: Path, lengths: list[int], seed: int = 0) -> None:
    """Rollouts whose column 0 is the step index and column 1 the file number, so windows can be traced."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for k, T in enumerate(lengths):
        arr = rng.normal(size=(T, 17))
        arr[:, 0], arr[:, 1] = np.arange(T), k
        np.save(folder / f"rollout_{k:03d}.npy", arr)


def reference_walker(folder: Path, seq_len: int) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """The README's Walker2D procedure written out step by step (per-step loop, per-window lists)."""
    files = sorted(str(folder / f) for f in os.listdir(folder) if f.endswith(".npy"))
    rng = np.random.RandomState(891374)
    np.random.RandomState(125487).shuffle(files)
    n_test, n_valid_end = int(0.15 * len(files)), int(0.25 * len(files))
    out = []
    for group in (files[n_valid_end:], files[n_test:n_valid_end], files[:n_test]):
        xs, ts, ys = [], [], []
        for f in group:
            arr = np.load(f)
            x, y = arr[:-1].astype(np.float32), arr[1:].astype(np.float32)
            kx, kt, ky, skip = [], [], [], 0
            for t in range(len(y)):
                skip += 1
                if rng.rand() < 0.9:
                    kx.append(x[t]), kt.append(skip), ky.append(y[t])
                    skip = 0
            for s in range(0, len(ky) - seq_len, seq_len // 4):
                xs.append(kx[s:s + seq_len]), ts.append(kt[s:s + seq_len]), ys.append(ky[s:s + seq_len])
        out.append(tuple(np.swapaxes(np.asarray(a, np.float32), 0, 1) for a in (xs, ts, ys)))
    return out


@pytest.fixture
def pv_dir(tmp_path: Path) -> Path:
    write_pv(tmp_path / "pv.csv", 1500)
    return tmp_path


@pytest.fixture
def walker_dir(tmp_path: Path) -> Path:
    rng = np.random.default_rng(7)
    write_walker(tmp_path / "walker", rng.integers(30, 160, 20).tolist())
    return tmp_path


# ---------------------------------------------------------------- shared helpers


def test_bernoulli_keep_consumes_stream_like_a_per_step_loop() -> None:
    a, b = np.random.RandomState(5), np.random.RandomState(5)
    loop = [t for t in range(50) if a.rand() < 0.9] + [t for t in range(30) if a.rand() < 0.9]
    fast = list(bernoulli_keep(b, 50, 0.9)) + list(bernoulli_keep(b, 30, 0.9))
    assert loop == fast


def test_subset_keep_exact_count_sorted_unique() -> None:
    kept = subset_keep(np.random.RandomState(0), 100, 90)
    assert len(kept) == 90 and np.all(np.diff(kept) > 0) and 0 <= kept.min() and kept.max() < 100


def test_elapsed_steps() -> None:
    assert elapsed_steps(np.array([0, 1, 3, 7])).tolist() == [1, 1, 2, 4]
    assert elapsed_steps(np.array([2, 3])).tolist() == [3, 1]
    assert elapsed_steps(np.array([5, 6]), previous=4).tolist() == [1, 1]


def test_window_starts_and_take_windows() -> None:
    assert window_starts(10, 4, 2).tolist() == [0, 2, 4, 6]
    assert window_starts(10, 4, 2, allow_flush_end=False).tolist() == [0, 2, 4]
    assert window_starts(130, 65, 65).tolist() == [0, 65]
    assert window_starts(3, 4, 1).tolist() == []
    assert window_starts(4, 4, 1, allow_flush_end=False).tolist() == []
    arr = np.arange(20).reshape(10, 2)
    w = take_windows(arr, np.array([0, 3]), 4)
    assert w.shape == (4, 2, 2) and w[:, 1, 0].tolist() == [6, 8, 10, 12]


def test_sequence_dataset_time_first_batches() -> None:
    x, dt, y = torch.randn(6, 10, 3), torch.ones(6, 10), torch.randn(6, 10, 2)
    ds = SequenceDataset(x, dt, y)
    assert len(ds) == 10 and [t.shape for t in ds[4]] == [(6, 3), (6,), (6, 2)]
    xb, dtb, yb = next(iter(DataLoader(ds, batch_size=4, collate_fn=collate_time_first)))
    assert xb.shape == (6, 4, 3) and dtb.shape == (6, 4) and yb.shape == (6, 4, 2)
    torch.testing.assert_close(xb, x[:, :4])
    with pytest.raises(ValueError, match="batch size"):
        SequenceDataset(x, dt[:, :3], y)


# ---------------------------------------------------------------- plane vibration


def test_pv_reader_handles_header_trailing_comma_and_fs(tmp_path: Path) -> None:
    data = write_pv(tmp_path / "pv.csv", 40)
    raw = read_plane_vibration_csv(tmp_path / "pv.csv")
    assert raw.shape == (40, 5) and raw.dtype == np.float64
    np.testing.assert_allclose(raw, data)


def test_pv_splits_windows_and_elapsed_times(pv_dir: Path) -> None:
    raw = read_plane_vibration_csv(pv_dir / "pv.csv")
    z = (raw - raw.mean(0)) / raw.std(0)
    splits = load_plane_vibration(pv_dir)
    n_keep = int(0.9 * (1500 - 100))  # 10% of the usable stamps dropped
    n_train, n_valid = int(0.5 * n_keep), int(0.25 * n_keep)
    expect = [n_train // 65, n_valid // 65, (n_keep - n_train - n_valid) // 65]
    assert [s.n_windows for s in splits] == expect
    previous_end = -1
    for s in splits:
        B = s.n_windows
        assert s.x.shape == s.y.shape == (64, B, 5) and s.dt.shape == (64, B)
        assert s.forecast.shape == (8, B, 5)
        assert s.x.dtype == s.dt.dtype == s.forecast.dtype == np.float32 and s.stamps.shape == (65, B)
        np.testing.assert_array_equal(s.dt, np.diff(s.stamps, axis=0))
        assert s.dt.min() >= 1 and np.all(s.dt == np.round(s.dt))
        np.testing.assert_allclose(s.x, z[s.stamps[:-1]], rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(s.y, z[s.stamps[1:]], rtol=1e-6, atol=1e-6)  # next kept stamp
        np.testing.assert_allclose(s.forecast, z[s.stamps[-1] + np.arange(8)[:, None]], rtol=1e-6, atol=1e-6)
        np.testing.assert_array_equal(s.forecast[0], s.y[-1])
        # segments are consecutive, non-overlapping, and the splits come one after another in time
        flat = s.stamps.T.ravel()
        assert np.all(np.diff(flat) > 0) and flat[0] > previous_end
        previous_end = flat[-1]
    assert previous_end < 1500 - 100


def test_pv_drops_ten_percent_of_stamps(pv_dir: Path) -> None:
    splits = load_plane_vibration(pv_dir, seq_len=4)  # short segments leave few stamps unused
    used = np.concatenate([s.stamps.ravel() for s in splits])
    gaps = np.concatenate([s.dt.ravel() for s in splits])
    assert 0.85 < len(np.unique(used)) / (1500 - 100) <= 0.9
    assert 1.05 < gaps.mean() < 1.2  # ~1/0.9 expected with 10% dropped


def test_pv_seeded(pv_dir: Path) -> None:
    a, b, c = (load_plane_vibration(pv_dir, seed=s) for s in (1, 1, 2))
    np.testing.assert_array_equal(a.train.stamps, b.train.stamps)
    np.testing.assert_array_equal(a.test.x, b.test.x)
    assert not np.array_equal(a.train.stamps, c.train.stamps)
    noisy = load_plane_vibration(pv_dir, noise_std=0.1)
    np.testing.assert_array_equal(noisy.train.stamps, a.train.stamps)  # noise does not move stamps
    assert 0.05 < np.std(noisy.train.x - a.train.x) < 0.15


def test_pv_missing_names_file_and_url(tmp_path: Path) -> None:
    with pytest.raises(DataNotFoundError, match=r"'pv\.csv'.*githubusercontent\.com/hedixia/HeavyBallNODE"):
        load_plane_vibration(tmp_path)


# ---------------------------------------------------------------- silverbox


def test_silverbox_fixture(tmp_path: Path) -> None:
    data = write_sb(tmp_path / "sb.csv", 300)
    raw = read_silverbox_csv(tmp_path / "sb.csv")
    assert raw.shape == (300, 2)
    np.testing.assert_allclose(raw, data)
    train, test = load_silverbox(tmp_path, n_train=100, n_test=150)
    expected = 100 * (data - data.mean(0))
    np.testing.assert_allclose(train.v1, expected[:100, 0], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(test.v2, expected[100:250, 1], rtol=1e-5, atol=1e-5)
    assert train.v1.dtype == np.float32 and train.t.tolist() == list(range(100)) and test.t[0] == 0
    with pytest.raises(ValueError, match="fewer than"):
        load_silverbox(tmp_path, n_train=200, n_test=150)


# ---------------------------------------------------------------- walker


def test_walker_file_split_rule(walker_dir: Path) -> None:
    files = sorted((walker_dir / "walker").glob("*.npy"))
    train, valid, test = split_walker_files(files)
    assert (len(train), len(valid), len(test)) == (15, 2, 3)  # int(.15*20)=3 test, int(.25*20)-3=2 valid
    assert sorted(train + valid + test) == files
    assert split_walker_files(list(reversed(files))) == (train, valid, test)  # depends on names only


def test_walker_matches_readme_procedure(walker_dir: Path) -> None:
    splits = load_walker(walker_dir, seq_len=16)
    for split, (x, t, y) in zip(splits, reference_walker(walker_dir / "walker", 16)):
        np.testing.assert_array_equal(split.x, x)
        np.testing.assert_array_equal(split.dt, t)
        np.testing.assert_array_equal(split.y, y)


def test_walker_windows_trace_back(walker_dir: Path) -> None:
    splits = load_walker(walker_dir, seq_len=16)
    for s in splits:
        assert s.x.shape[0] == 16 and s.x.shape[2] == 17 and s.dt.shape == s.x.shape[:2]
        assert s.x.dtype == s.y.dtype == s.dt.dtype == np.float32
        step = s.x[..., 0]
        np.testing.assert_array_equal(s.y[..., 0], step + 1)  # y is the regular next step of x
        np.testing.assert_array_equal(s.dt[1:], np.diff(step, axis=0))  # dt = steps since last kept
        assert s.dt.min() >= 1 and np.all(s.x[..., 1] == s.x[:1, :, 1])  # one file per window
        # a file's earliest window starts at its first kept step, whose dt counts from the file start
        for k in np.unique(s.x[0, :, 1]):
            w = np.flatnonzero(s.x[0, :, 1] == k)
            w = w[np.argmin(s.x[0, w, 0])]
            assert s.dt[0, w] == s.x[0, w, 0] + 1


def test_walker_keeps_about_90_percent(tmp_path: Path) -> None:
    write_walker(tmp_path / "walker", [400] * 20)
    splits = load_walker(tmp_path, seq_len=8)
    dt = np.concatenate([s.dt.ravel() for s in splits])
    assert 1.0 / dt.mean() == pytest.approx(0.9, abs=0.02)


def test_walker_seeded_and_max_files(walker_dir: Path) -> None:
    a, b = load_walker(walker_dir, seq_len=16), load_walker(walker_dir, seq_len=16)
    for s, t in zip(a, b):
        np.testing.assert_array_equal(s.x, t.x)
        np.testing.assert_array_equal(s.dt, t.dt)
    small = load_walker(walker_dir, seq_len=16, max_files=8)
    files = {int(v) for s in small for v in np.unique(s.x[..., 1])}
    assert len(files) <= 8 and small.test.n_windows > 0
    ds = small.train.dataset()
    assert len(ds) == small.train.n_windows and ds[0][0].shape == (16, 17)


def test_walker_download_checks_contents(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_walker(tmp_path / "src" / "walker", [60] * 10)
    files = sorted((tmp_path / "src" / "walker").glob("*.npy"))
    with zipfile.ZipFile(tmp_path / "walker.zip", "w") as zf:
        for f in files:
            zf.write(f, f"walker/{f.name}")
    digest = hashlib.sha256(b"".join(f.read_bytes() for f in files)).hexdigest()
    monkeypatch.setattr(walker_module, "WALKER_URLS", ((tmp_path / "walker.zip").as_uri(),))
    monkeypatch.setattr(walker_module, "WALKER_CONTENT_CHECKSUM", Checksum("sha256", digest))
    got = load_walker(tmp_path / "data", seq_len=8, download=True)
    expect = load_walker(tmp_path / "src", seq_len=8)
    np.testing.assert_array_equal(got.train.x, expect.train.x)
    assert not (tmp_path / "data" / "walker.zip").exists()
    monkeypatch.setattr(walker_module, "WALKER_CONTENT_CHECKSUM", Checksum("sha256", "0" * 64))
    with pytest.raises(ChecksumError):
        load_walker(tmp_path / "bad", download=True)
    assert not any((tmp_path / "bad").rglob("*.npy"))  # unverified files are not left behind


def test_walker_missing_names_pattern_and_url(tmp_path: Path) -> None:
    with pytest.raises(DataNotFoundError) as info:
        load_walker(tmp_path)
    msg = str(info.value)
    assert "rollout_*.npy" in msg and "walker.zip" in msg and str(tmp_path / "walker") in msg


# ---------------------------------------------------------------- real data


def test_real_pv() -> None:
    root = _real("pv.csv")
    raw = read_plane_vibration_csv(root / "pv.csv")
    assert raw.shape == (73728, 5) and np.isfinite(raw).all()
    np.testing.assert_allclose(raw.std(0), [12.365, 0.0250, 0.2437, 0.3870, 0.3596], rtol=2e-3)
    splits = load_plane_vibration(root)
    assert [s.n_windows for s in splits] == [509, 254, 254]
    # Pinned from the reference procedure (seed 1, noise draw, 100-stamp reserve).
    assert [int(s.stamps.sum()) for s in splits] == [609472864, 760675140, 1063316164]
    assert splits.valid.stamps[0, 0] == 36892 and splits.test.stamps[-1, -1] == 73563


def test_real_sb() -> None:
    root = _real("sb.csv")
    raw = read_silverbox_csv(root / "sb.csv")
    assert raw.shape == (131072, 2)
    np.testing.assert_allclose(raw.mean(0), [0.00618, 0.00082], atol=1e-5)
    train, test = load_silverbox(root)
    assert train.v1.shape == (1000,) and test.v2.shape == (4000,)


def test_real_walker_window_counts() -> None:
    root = _real("walker")
    splits = load_walker(root)
    assert [s.n_windows for s in splits] == [9684, 1272, 1937]
    assert splits.train.x.shape == (64, 9684, 17) and splits.test.dt.shape == (64, 1937)
    assert [float(s.dt.sum()) for s in splits] == [689148.0, 90842.0, 137806.0]
