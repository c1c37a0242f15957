"""Walker2D kinematic data (ODE-LSTM benchmark), paper Sec. 5.4.

Procedure (that of the reference ``Walker2dImitationData``, reproduced so that the defaults give
its 9684 / 1272 / 1937 train / valid / test windows of 64 steps):

1. List ``rollout_*.npy`` (each float64 ``(T, 17)``), sort the names, shuffle them with
   ``np.random.RandomState(125487)``; test = first ``int(0.15 N)`` files, valid = up to
   ``int(0.25 N)``, train = the rest (60 / 40 / 300 of 400).
2. Per file, ``x = arr[:-1]``, ``y = arr[1:]`` (next-step prediction), float32.
3. Make it irregular: one generator ``np.random.RandomState(891374)`` visits the train files,
   then valid, then test (each in split order), and keeps every step with probability 0.9.
   ``dt`` of a kept step is the number of steps since the previous kept step of that file
   (the first kept step at index ``i`` gets ``i + 1``). ``y`` stays the regular next step of
   each kept ``x``, not the next kept one.
4. Windows of ``seq_len`` kept steps start every ``seq_len // 4`` steps; as in the reference a
   window ending exactly at a sequence's end is not taken.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .download import (
    Checksum,
    ChecksumError,
    DataNotFoundError,
    fetch_and_unpack,
    search_dirs,
    verify_checksum,
)
from .sequences import (
    SequenceSplit,
    SequenceSplits,
    bernoulli_keep,
    elapsed_steps,
    take_windows,
    window_starts,
)

__all__ = ["WALKER_URLS", "WALKER_FEATURES", "find_walker_files", "split_walker_files", "load_walker"]

# The zip unpacks to walker/rollout_*.npy. Hosts have moved before (IST Austria -> MIT CSAIL).
WALKER_URLS = (
    "https://people.csail.mit.edu/mlechner/datasets/walker.zip",
    "https://pub.ist.ac.at/~mlechner/datasets/walker.zip",
)
# sha256 of the 400 rollout files concatenated in sorted-name order: the zip itself has no
# published checksum, but its contents do.
WALKER_CONTENT_CHECKSUM = Checksum("sha256", "186b96c3df33917c29249235799c1ab7d51dcd69e2b891eff999f1b169ff4f60")
WALKER_FEATURES = 17
_PATTERN = "rollout_*.npy"
_SPLIT_SEED = 125487
_SAMPLING_SEED = 891374
_TEST_SHARE, _TEST_VALID_SHARE = 0.15, 0.25


def find_walker_files(data_dir: str | os.PathLike[str], *, download: bool = False) -> list[Path]:
    """Sorted ``rollout_*.npy`` paths from ``data_dir/walker/`` (or ``data_dir`` itself).

    With ``download=True`` and no files present, fetches ``walker.zip`` into ``data_dir``,
    extracts ``walker/*.npy``, checks the files' combined sha256 and removes the zip.
    """
    root = Path(data_dir)
    folders = search_dirs(root, ("walker", "."))
    for folder in folders:
        files = sorted(p for p in folder.glob(_PATTERN) if p.is_file())  # a FIFO would block np.load
        if files:
            return files
    if not download:
        raise DataNotFoundError(
            f"walker/{_PATTERN}",
            folders,
            WALKER_URLS,
            unpack_into=root,
            note="The zip holds walker/rollout_000.npy ... rollout_399.npy.",
        )
    fetch_and_unpack(WALKER_URLS, root, "walker.zip", keep=[".npy"])
    files = sorted(p for p in (root / "walker").glob(_PATTERN) if p.is_file())
    try:
        verify_checksum(files, WALKER_CONTENT_CHECKSUM, name="the extracted walker/*.npy files")
    except ChecksumError:
        # Left in place, unverified files would be picked up silently by the next call.
        for f in files:
            f.unlink()
        raise
    return files


def split_walker_files(files: list[Path], max_files: int | None = None) -> tuple[list[Path], list[Path], list[Path]]:
    """Reference file split: ``(train, valid, test)`` after the seeded shuffle of the sorted names.

    ``max_files`` keeps only the first files of the shuffle before cutting, for quick runs.
    """
    order = sorted(files, key=lambda p: p.name)
    # numpy shuffles any MutableSequence in place (documented); its stub lists array-likes only
    np.random.RandomState(_SPLIT_SEED).shuffle(order)  # type: ignore[arg-type]
    order = order[:max_files]
    n_test, n_test_valid = int(_TEST_SHARE * len(order)), int(_TEST_VALID_SHARE * len(order))
    return order[n_test_valid:], order[n_test:n_test_valid], order[:n_test]


def load_walker(
    data_dir: str | os.PathLike[str],
    *,
    seq_len: int = 64,
    keep_prob: float = 0.9,
    max_files: int | None = None,
    download: bool = False,
) -> SequenceSplits:
    """Irregularly sampled Walker2D windows, split train / valid / test.

    Args:
        data_dir: folder holding ``walker/rollout_*.npy`` (or the rollouts directly).
        seq_len: kept steps per window; windows start every ``seq_len // 4`` kept steps.
        keep_prob: probability of keeping each step.
        max_files: for quick runs, use only the first ``max_files`` rollouts of the seeded
            shuffle, split with the same 15% / 10% / 75% rule (windows then differ from the
            full data's).
        download: fetch ``walker.zip`` if no rollouts are found.

    Returns:
        :class:`SequenceSplits` with ``x, y`` float32 ``(seq_len, B, 17)`` and ``dt`` float32
        ``(seq_len, B)`` (steps since the previous kept step, >= 1).
    """
    splits = split_walker_files(find_walker_files(data_dir, download=download), max_files)
    rng = np.random.RandomState(_SAMPLING_SEED)
    # The generator is shared and advanced split after split, so the order matters.
    return SequenceSplits(*(_windows(group, rng, seq_len, keep_prob) for group in splits))


def _windows(files: list[Path], rng: np.random.RandomState, seq_len: int, keep_prob: float) -> SequenceSplit:
    xs, dts, ys = [], [], []
    for f in files:
        arr = np.load(f).astype(np.float32)
        kept = bernoulli_keep(rng, len(arr) - 1, keep_prob)
        x, y, dt = arr[:-1][kept], arr[1:][kept], elapsed_steps(kept).astype(np.float32)
        starts = window_starts(len(kept), seq_len, max(seq_len // 4, 1), allow_flush_end=False)
        xs.append(take_windows(x, starts, seq_len))
        ys.append(take_windows(y, starts, seq_len))
        dts.append(take_windows(dt, starts, seq_len))
    if not files:
        empty = np.zeros((seq_len, 0, WALKER_FEATURES), np.float32)
        return SequenceSplit(empty, empty[..., 0], empty)
    return SequenceSplit(x=np.concatenate(xs, axis=1), dt=np.concatenate(dts, axis=1), y=np.concatenate(ys, axis=1))
