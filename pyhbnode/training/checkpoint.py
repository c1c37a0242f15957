"""Checkpoints that lose nothing and never execute code from the file.

File format: ``ckpt-<iteration, 9 digits>.pt`` is a ``torch.save`` archive of tensors and plain
values only (dicts, lists, numbers, strings; RNG states as tensors and int lists, the history
as a JSON string), loaded with ``torch.load(weights_only=True)``.  Beside it,
``ckpt-<iteration>.json`` records the archive's size and SHA-256.  A write is all-or-nothing: both
go to temporary files (named after this host and pid), are flushed to disk, and are renamed into
place *record first, archive last*, so an archive is visible only once its record is: a kill at
any moment leaves the newest visible checkpoint complete (at worst an orphan record, which is
ignored and removed by the next save).  Rewriting an existing iteration (the final checkpoint of
an epoch-end save) records the archive it replaces too, so the old archive stays valid until the
new one is renamed over it.  Only regular files are read: a FIFO or device named like a
checkpoint is refused without being opened.

Reading verifies the record before unpickling anything:

* no record, fewer bytes than recorded, or a different SHA-256 -> :class:`CheckpointCorrupt`
  (resuming warns and falls back to the previous checkpoint; the file is never unpickled);
* the SHA-256 matches but the archive holds anything but tensors and plain values (e.g. a
  ``__reduce__`` payload) -> :class:`UnsafeCheckpoint`, refused outright: pyhbnode never
  writes such a file, so somebody rewrote the archive and its record together.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import re
import socket
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..checks import regular_file
from ..fields import dormant_names
from .errors import CheckpointCorrupt, CheckpointError, UnsafeCheckpoint
from .history import History
from .run_lock import process_alive

__all__ = [
    "FORMAT",
    "Position",
    "writable_dir",
    "checkpoint_path",
    "save_checkpoint",
    "load_checkpoint",
    "list_checkpoints",
    "latest_checkpoint",
    "remove_checkpoints",
    "training_state",
    "restore_training_state",
]

FORMAT = "pyhbnode-checkpoint/1"
_NAME = re.compile(r"^ckpt-(\d{9})\.pt$")


@dataclass(frozen=True)
class Position:
    """Where a run stands.

    Attributes:
        epoch: the epoch in progress, 0-based (``epochs`` when all are done).
        batch: batches of that epoch already trained.
        iteration: optimiser steps taken since the start of the run.
        completed: the run reached its end (``epochs`` or ``max_batches``).
    """

    epoch: int = 0
    batch: int = 0
    iteration: int = 0
    completed: bool = False


def writable_dir(directory: str | os.PathLike, what: str = "directory") -> Path:
    """Create ``directory`` if needed and check that files can be written there.

    Raises ``ValueError`` naming ``what`` (the argument, e.g. ``"checkpoint_dir"``), the directory
    and the reason otherwise."""
    path = Path(directory)
    if path.exists() and not path.is_dir():
        raise ValueError(f"{what} {str(path)!r} exists but is not a directory; choose another path")
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".write-test-{os.getpid()}"
        probe.write_bytes(b"ok")
        probe.unlink()
    except OSError as err:
        raise ValueError(f"{what} {str(path)!r} is not writable ({err.strerror or err}); choose another one") from None
    return path


def checkpoint_path(directory: str | os.PathLike, iteration: int) -> Path:
    return Path(directory) / f"ckpt-{iteration:09d}.pt"


def _record_path(path: Path) -> Path:
    return path.with_suffix(".json")


_TMP = re.compile(r"^\.(?P<name>.+)\.tmp-(?P<host>.+)-(?P<pid>\d+)$")


def _tmp_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp-{socket.gethostname()}-{os.getpid()}")


def _write_durably(path: Path, data: bytes) -> Path:
    """Write ``data`` to a temporary sibling of ``path``, flushed to disk; returns its name.
    On failure (disk full, read-only ...) the temporary file is removed and the error raised."""
    tmp = _tmp_path(path)
    try:
        with tmp.open("wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
    except OSError:
        tmp.unlink(missing_ok=True)
        raise
    return tmp


def _sync_dir(directory: Path) -> None:
    """Make renames in ``directory`` durable; not every platform can open a directory."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _remove_stale_temporaries(directory: Path) -> None:
    """Delete temporary files left by killed writers: only this host's, only of dead pids (a live
    process's half-written file is never touched)."""
    host = socket.gethostname()
    for p in directory.glob(".ckpt-*.tmp-*"):
        m = _TMP.match(p.name)
        if m and m.group("host") == host and not process_alive(int(m.group("pid"))):
            p.unlink(missing_ok=True)


_PLAIN = (str, int, float, bool, type(None), torch.Tensor, torch.dtype)


def _check_storable(obj: Any, where: str) -> None:
    """Refuse to write what ``weights_only`` loading would later reject (so a legitimate
    checkpoint can never look tampered with)."""
    if isinstance(obj, _PLAIN):
        return
    if isinstance(obj, dict):
        for k, v in obj.items():
            if not isinstance(k, (str, int)):
                raise ValueError(f"cannot store {where}: key {k!r} is a {type(k).__name__}, not str/int")
            _check_storable(v, f"{where}[{k!r}]")
        return
    if isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            _check_storable(v, f"{where}[{i}]")
        return
    raise ValueError(
        f"cannot store {where} in a checkpoint: it is a {type(obj).__name__}; checkpoints "
        "hold tensors and plain values only (a custom scheduler's state_dict must too)"
    )


def save_checkpoint(directory: str | os.PathLike, iteration: int, state: dict[str, Any], *, keep: int = 2) -> Path:
    """Write ``state`` as the checkpoint of ``iteration`` and delete all but the ``keep`` newest.

    ``state`` may hold tensors and plain values only (``ValueError`` otherwise)."""
    _check_storable(state, "the state")
    buffer = io.BytesIO()
    torch.save(state, buffer)
    data = buffer.getvalue()
    directory = Path(directory)
    path = checkpoint_path(directory, iteration)
    record = {
        "format": FORMAT,
        "file": path.name,
        "bytes": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
        "iteration": iteration,
    }
    replaced = _verified_digest(path)
    if replaced is not None:  # the old archive stays valid until the new one is renamed over it
        record["replaces"] = replaced
    archive_tmp = _write_durably(path, data)
    try:
        record_tmp = _write_durably(_record_path(path), json.dumps(record).encode())
    except OSError:
        archive_tmp.unlink(missing_ok=True)
        raise
    os.replace(record_tmp, _record_path(path))
    os.replace(archive_tmp, path)
    _sync_dir(directory)
    for old in list_checkpoints(directory)[keep:]:
        _remove(old)
    for orphan in directory.glob("ckpt-*.json"):  # records whose archive a kill never renamed
        if not orphan.with_suffix(".pt").exists() and orphan != _record_path(path):
            orphan.unlink(missing_ok=True)
    _remove_stale_temporaries(directory)
    return path


def _verified_digest(path: Path) -> dict[str, Any] | None:
    """``{"bytes", "sha256"}`` of the archive at ``path`` if it exists and matches its record."""
    try:
        record = json.loads(regular_file(_record_path(path), "checksum record").read_text())
        data = regular_file(path, "checkpoint").read_bytes()
    except (OSError, ValueError):
        return None
    digest = {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    accepted = [record] + ([record["replaces"]] if isinstance(record.get("replaces"), dict) else [])
    if any(isinstance(r, dict) and r.get("sha256") == digest["sha256"] for r in accepted):
        return digest
    return None


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Verify and load one checkpoint (tensors on the CPU).

    Raises:
        CheckpointCorrupt: missing/unreadable checksum record, truncated, or checksum mismatch.
        UnsafeCheckpoint: checksum matches but the archive holds objects that are not plain data.
        CheckpointError: a well-formed archive that is not a pyhbnode checkpoint.
    """
    path = Path(path)
    try:
        record = json.loads(regular_file(_record_path(path), "checksum record").read_text())
        expected_bytes, expected_sha = int(record["bytes"]), str(record["sha256"])
    except FileNotFoundError:
        raise CheckpointCorrupt(
            f"{path} has no checksum record {_record_path(path).name} (the run was probably killed while writing it)"
        ) from None
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise CheckpointCorrupt(f"the checksum record of {path} is unreadable ({err})") from None
    try:
        data = regular_file(path, "checkpoint").read_bytes()
    except (OSError, ValueError) as err:
        raise CheckpointCorrupt(f"{path} cannot be read ({getattr(err, 'strerror', None) or err})") from None
    digest = hashlib.sha256(data).hexdigest()
    replaces = record.get("replaces")
    if isinstance(replaces, dict) and digest == replaces.get("sha256") and digest != expected_sha:
        expected_bytes, expected_sha = len(data), digest  # the archive a kill kept from being replaced
    if len(data) < expected_bytes:
        raise CheckpointCorrupt(f"{path} is truncated: {len(data)} of {expected_bytes} bytes")
    if digest != expected_sha:
        raise CheckpointCorrupt(
            f"{path} differs from its recorded SHA-256 (modified or damaged after it was written); it was not loaded"
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch's notes on pickle protocols are noise here
            state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise UnsafeCheckpoint(
            f"refusing to load {path}: it holds objects other than tensors and plain values, which "
            f"pyhbnode never writes, so the file was probably tampered with ({first[:200]}). Delete it "
            "or move it away to resume from an older checkpoint."
        ) from None
    except Exception as err:  # torch raises RuntimeError/EOFError/... for damaged archives
        raise CheckpointCorrupt(
            f"{path} cannot be read as a checkpoint ({type(err).__name__}: "
            f"{str(err).splitlines()[0] if str(err) else ''})"
        ) from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a pyhbnode checkpoint (format {FORMAT!r} expected)")
    return state


def list_checkpoints(directory: str | os.PathLike) -> list[Path]:
    """The checkpoint archives in ``directory``, newest (highest iteration) first."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in directory.iterdir() if (m := _NAME.match(p.name))]
    return [p for _, p in sorted(found, key=lambda found: found[0], reverse=True)]


def latest_checkpoint(directory: str | os.PathLike, *, quarantine: bool = False) -> tuple[Path, dict] | None:
    """The newest checkpoint in ``directory`` that verifies, or ``None``.

    A corrupt one is skipped with a warning (and, with ``quarantine``, renamed to
    ``*.corrupt`` so later saves and pruning ignore it); an unsafe one raises
    :class:`UnsafeCheckpoint`."""
    for path in list_checkpoints(directory):
        try:
            return path, load_checkpoint(path)
        except CheckpointCorrupt as err:
            warnings.warn(f"skipping checkpoint: {err}; falling back to the previous one", stacklevel=2)
            if quarantine:
                for p in (path, _record_path(path)):
                    if p.exists():
                        os.replace(p, p.with_name(p.name + ".corrupt"))
    return None


def _remove(path: Path) -> None:
    for p in (path, _record_path(path)):
        try:
            p.unlink()
        except FileNotFoundError:
            pass


def remove_checkpoints(directory: str | os.PathLike) -> int:
    """Delete every checkpoint (archive and record) in ``directory``; returns how many."""
    found = list_checkpoints(directory)
    for path in found:
        _remove(path)
    return len(found)


def training_state(
    *,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    position: Position,
    history: History,
    rng: dict[str, Any],
    rng_epoch_start: dict[str, Any],
    signature: dict[str, Any],
) -> dict[str, Any]:
    """Everything a run needs to continue exactly, as plain data.

    ``rng`` is the generators' state now; ``rng_epoch_start`` their state when the current
    epoch's DataLoader iterator was created, from which a resumed run rebuilds the same
    shuffled order before skipping the batches already trained."""
    return {
        "format": FORMAT,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "position": asdict(position),
        "history": history.to_json(),
        "rng": rng,
        "rng_epoch_start": rng_epoch_start,
        "signature": json.dumps(signature, sort_keys=True),
    }


def restore_training_state(
    state: dict[str, Any],
    *,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
) -> tuple[Position, History]:
    """Load model, optimiser and scheduler from ``state`` (from :func:`training_state`);
    returns the position and history.  The RNG states are left to the caller, who restores
    them at the right moment of the loop.  A checkpoint from before the model carried its
    :class:`~pyhbnode.fields.Dormant` scalars loads without them (they are never read)."""
    missing, unexpected = model.load_state_dict(state["model"], strict=False)
    dormant = dormant_names(model)
    missing = [k for k in missing if k not in dormant]
    if missing or unexpected:
        raise ValueError(
            "its model weights are not this model's: "
            + "; ".join(
                f"{what} {', '.join(keys[:5])}{' ...' if len(keys) > 5 else ''}"
                for what, keys in (("missing", missing), ("unexpected", unexpected))
                if keys
            )
        )
    optimizer.load_state_dict(_with_kernels_of(optimizer, state["optimizer"]))
    if scheduler is not None and state["scheduler"] is not None:
        scheduler.load_state_dict(state["scheduler"])
    return Position(**state["position"]), History.from_json(state["history"])


def _with_kernels_of(optimizer: torch.optim.Optimizer, saved: dict) -> dict:
    """``saved`` (an optimiser's state dict) with ``optimizer``'s kernel choices (``fused``,
    ``foreach``): they say how this process steps, not where training is, so a checkpoint
    written by another torch, device or pyhbnode version resumes on the kernels that run here."""
    groups = [
        {**group, **{k: now[k] for k in ("fused", "foreach") if k in now}}
        # unequal group counts: load_state_dict names the mismatch itself
        for group, now in zip(saved.get("param_groups", []), optimizer.param_groups, strict=False)
    ]
    return {**saved, "param_groups": groups + saved.get("param_groups", [])[len(groups) :]}
