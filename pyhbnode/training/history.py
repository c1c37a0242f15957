"""``History``: what a training run measured, per batch and per epoch."""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

__all__ = ["History", "BATCH_KEYS", "EPOCH_KEYS"]

# Keys every batch record carries; training metrics add one key per metric name.
BATCH_KEYS = (
    "epoch",
    "batch",
    "iteration",
    "size",
    "loss",
    "nfe_forward",
    "nfe_backward",
    "grad_norm",
    "seconds",
    "lr",
)
# Keys every epoch record carries; metrics add ``train_<name>``, validation ``val_loss``,
# ``val_<name>`` and ``val_nfe_forward``.
EPOCH_KEYS = ("epoch", "batches", "iteration", "train_loss", "nfe_forward", "nfe_backward", "seconds", "lr")


class History:
    """Per-batch and per-epoch records of a run.

    Batch records (one per optimiser step; all counters 1-based):
        ``epoch``, ``batch`` (within the epoch), ``iteration`` (global step), ``size``
        (samples in the global batch), ``loss`` (batch mean), ``nfe_forward`` and
        ``nfe_backward`` (vector-field evaluations of this step's forward and backward pass,
        summed over the model's solving layers; averaged over ranks under DDP),
        ``grad_norm`` (before clipping), ``seconds`` (wall time of the step), ``lr``, and
        the value of each training metric on this batch.

    Epoch records:
        ``epoch``, ``batches``, ``iteration`` (global step at the epoch's end), ``train_loss``
        and ``train_<metric>`` (sample-weighted means over the epoch's batches, i.e. running
        values measured while the weights changed), ``nfe_forward``/``nfe_backward`` (means
        per batch), ``seconds`` (wall time of the epoch, validation included), ``lr`` (at the
        epoch's end, before the scheduler steps) and, with validation data, ``val_loss``,
        ``val_<metric>`` and ``val_nfe_forward`` (mean forward NFE per validation batch).
    """

    def __init__(self, batches: Iterable[Mapping[str, Any]] = (), epochs: Iterable[Mapping[str, Any]] = ()) -> None:
        self.batches: list[dict[str, Any]] = [dict(r) for r in batches]
        self.epochs: list[dict[str, Any]] = [dict(r) for r in epochs]

    def __repr__(self) -> str:
        return f"History({len(self.batches)} batches, {len(self.epochs)} epochs)"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, History) and (self.batches, self.epochs) == (other.batches, other.epochs)

    # --- building -------------------------------------------------------------------------
    def add_batch(self, record: Mapping[str, Any]) -> None:
        self.batches.append(dict(record))

    def add_epoch(self, record: Mapping[str, Any]) -> None:
        """Append an epoch record, replacing an earlier one of the same epoch (a partial epoch
        cut short by ``max_batches`` and later continued)."""
        self.epochs = [e for e in self.epochs if e["epoch"] != record["epoch"]]
        self.epochs.append(dict(record))

    def epoch_batches(self, epoch: int) -> list[dict[str, Any]]:
        """The batch records of ``epoch`` (1-based)."""
        return [b for b in self.batches if b["epoch"] == epoch]

    # --- reading --------------------------------------------------------------------------
    def batch_records(self) -> list[dict[str, Any]]:
        return [dict(r) for r in self.batches]

    def epoch_records(self) -> list[dict[str, Any]]:
        return [dict(r) for r in self.epochs]

    def column(self, key: str, kind: str = "batch") -> list[Any]:
        """One key's values over the batch (or ``kind="epoch"``) records, skipping records without it."""
        records = self.batches if kind == "batch" else self.epochs
        return [r[key] for r in records if key in r]

    @property
    def last_epoch(self) -> dict[str, Any] | None:
        return dict(self.epochs[-1]) if self.epochs else None

    def summary(self) -> dict[str, Any]:
        """One results row: iterations, mean forward/backward NFE per iteration, seconds per
        iteration, the mean loss over the last tenth of the iterations (``final_loss``) and
        every ``train_``/``val_`` value of the last epoch as ``final_<key>``."""
        b = self.batches
        tail = b[-max(1, len(b) // 10) :] if b else []

        def mean(values: list[float]) -> float | None:
            return float(sum(values) / len(values)) if values else None

        row: dict[str, Any] = {
            "epochs": len(self.epochs),
            "iterations": len(b),
            "nfe_forward_mean": mean([r["nfe_forward"] for r in b]),
            "nfe_backward_mean": mean([r["nfe_backward"] for r in b]),
            "seconds_per_iter": mean([r["seconds"] for r in b]),
            "seconds_total": float(sum(e["seconds"] for e in self.epochs)),
            "final_loss": mean([r["loss"] for r in tail]),
        }
        for key, value in self.epochs[-1].items() if self.epochs else ():
            if key.startswith(("train_", "val_")) and isinstance(value, (int, float)):
                row["final_" + key] = value
        return row

    # --- serialising ----------------------------------------------------------------------
    def to_dict(self) -> dict[str, list[dict[str, Any]]]:
        return {"batches": self.batch_records(), "epochs": self.epoch_records()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> History:
        return cls(data.get("batches", ()), data.get("epochs", ()))

    def to_json(self) -> str:
        """A JSON string (how checkpoints store the history: text, never pickled objects)."""
        return json.dumps(self.to_dict())

    @classmethod
    def from_json(cls, text: str) -> History:
        return cls.from_dict(json.loads(text))

    def to_jsonl(
        self, path: str | os.PathLike, *, kind: str | None = None, extra: Mapping[str, Any] | None = None
    ) -> Path:
        """Write one JSON line per record, each with ``"kind": "batch"`` or ``"epoch"``.

        Args:
            kind: ``"batch"`` or ``"epoch"`` to write only those records; all by default.
            extra: fields added to every line (e.g. ``{"model": "hbnode"}``).
        """
        if kind not in (None, "batch", "epoch"):
            raise ValueError(f"kind must be None, 'batch' or 'epoch', got {kind!r}")
        path = Path(path)
        with path.open("w") as fh:
            for k, records in (("batch", self.batches), ("epoch", self.epochs)):
                if kind in (None, k):
                    for r in records:
                        fh.write(json.dumps({"kind": k, **(extra or {}), **r}) + "\n")
        return path

    @classmethod
    def from_jsonl(cls, *paths: str | os.PathLike) -> History:
        """Read records written by :meth:`to_jsonl` (one or several files); lines without a
        ``kind`` are taken as batch records.  Fields given as ``extra`` stay in the records."""
        history = cls()
        for path in paths:
            with Path(path).open() as fh:
                for line in fh:
                    if line.strip():
                        record = json.loads(line)
                        kind = record.pop("kind", "batch")
                        (history.epochs if kind == "epoch" else history.batches).append(record)
        return history

    def to_csv(self, path: str | os.PathLike, *, kind: str = "epoch") -> Path:
        """Write the epoch records (or ``kind="batch"``) as CSV; columns are the union of keys."""
        if kind not in ("batch", "epoch"):
            raise ValueError(f"kind must be 'batch' or 'epoch', got {kind!r}")
        return write_csv(self.batches if kind == "batch" else self.epochs, path)


def write_csv(rows: Iterable[Mapping[str, Any]], path: str | os.PathLike) -> Path:
    """Write dict rows as CSV; the columns are the union of their keys, in first-seen order."""
    rows = list(rows)
    columns: list[str] = []
    for row in rows:
        columns += [k for k in row if k not in columns]
    path = Path(path)
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    return path
