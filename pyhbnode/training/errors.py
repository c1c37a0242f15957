"""Error types of the training floor."""

from __future__ import annotations

from pathlib import Path

__all__ = ["TrainingDiverged", "CheckpointError", "CheckpointCorrupt", "UnsafeCheckpoint", "RunLocked", "WriteFailed"]


class TrainingDiverged(RuntimeError):
    """Training stopped because the loss or the gradient became NaN/Inf, or a solve failed.

    Attributes:
        epoch, batch: where it happened, both 1-based (``batch`` counts within the epoch).
        iteration: the global optimiser step that failed, 1-based.
        cause: what went wrong, in words; ``__cause__`` holds the original exception if any
            (e.g. a :class:`~pyhbnode.SolverError`).
        checkpoint: the last good checkpoint kept on disk, or ``None`` if none was written.
    """

    def __init__(self, cause: str, *, epoch: int, batch: int, iteration: int, checkpoint: Path | None = None) -> None:
        self.cause, self.epoch, self.batch, self.iteration = cause, epoch, batch, iteration
        self.checkpoint = checkpoint
        kept = (
            f"the last good checkpoint is kept at {checkpoint}"
            if checkpoint is not None
            else "no checkpoint was written before it"
        )
        super().__init__(
            f"training diverged at epoch {epoch}, batch {batch} (iteration {iteration}): {cause}; {kept}. "
            "Try a lower learning rate, grad_clip, a looser or tighter solver tolerance, or a bounded "
            "field (e.g. GHBNODE)."
        )


class CheckpointError(ValueError):
    """A checkpoint file cannot be used."""


class CheckpointCorrupt(CheckpointError):
    """A checkpoint is truncated, incomplete (no checksum record) or differs from its checksum.

    Resuming skips it with a warning and falls back to the previous good checkpoint."""


class UnsafeCheckpoint(CheckpointError):
    """A checkpoint matches its checksum record but holds objects other than tensors and plain
    values (for example a pickled ``__reduce__`` payload).  pyhbnode never writes such a file,
    so it is refused outright instead of being skipped."""


class RunLocked(RuntimeError):
    """Another live process is training into the same directory (it holds the lock file)."""


class WriteFailed(OSError):
    """A file of the run could not be written (disk full, read-only file system, ...).

    Attributes:
        path: the file that could not be written.
        checkpoint: the last good checkpoint kept on disk, or ``None``.
    """

    def __init__(self, path: Path, err: OSError, *, checkpoint: Path | None = None) -> None:
        self.path, self.checkpoint = Path(path), checkpoint
        kept = (
            f"the last good checkpoint {checkpoint} is kept; rerun the same command to resume from it"
            if checkpoint is not None
            else "no checkpoint had been written yet"
        )
        reason = err.strerror or str(err)
        super().__init__(err.errno, f"cannot write {self.path}: {reason}; {kept}")

    def __str__(self) -> str:
        return self.strerror or super().__str__()
