"""Reading and writing run results: CSV tables, JSON-lines histories, run metadata."""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path

from ..training.checkpoint import writable_dir  # re-exported: one check for every output folder
from ..training.history import write_csv  # re-exported: one CSV writer for every table
from ..training.metadata import run_metadata  # re-exported: experiments record runs the same way

__all__ = ["write_csv", "read_csv", "write_jsonl", "read_jsonl", "run_metadata", "writable_dir"]


def _number(value: str):
    for cast in (int, float):
        try:
            return cast(value)
        except ValueError:
            pass
    return value


def read_csv(path: str | os.PathLike) -> list[dict]:
    with Path(path).open(newline="") as fh:
        return [{k: _number(v) for k, v in row.items()} for row in csv.DictReader(fh)]


def write_jsonl(rows: Iterable[Mapping], path: str | os.PathLike, append: bool = False) -> Path:
    path = Path(path)
    with path.open("a" if append else "w") as fh:
        for row in rows:
            fh.write(json.dumps(row) + "\n")
    return path


def read_jsonl(path: str | os.PathLike) -> list[dict]:
    with Path(path).open() as fh:
        return [json.loads(line) for line in fh if line.strip()]
