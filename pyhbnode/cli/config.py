"""The settings of ``pyhbnode train``: one flat table read from TOML or YAML, then overridden by
command-line flags and ``--set key=value``; an unknown key is an error that names it."""
from __future__ import annotations

import difflib
import json
import math
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Iterable, Mapping

from ..checks import regular_file

__all__ = ["TrainConfig", "read_config_file", "parse_assignment", "merge"]


@dataclass(frozen=True)
class TrainConfig:
    """Everything ``pyhbnode train`` needs; ``None`` means "the task's default".

    Attributes:
        task, model: a zoo task and model name.
        epochs, lr, batch_size: training length and the paper's settings (task defaults).
        tol / rtol / atol / backend / method / adjoint / controller: solver options (zoo
            defaults); ``adjoint`` as ``"checkpointed"``, ``"checkpointed:8"``, ``"backsolve"``,
            ``"direct"``; ``controller`` as ``"i"``, ``"pi"``, ``"hairer"`` (torch backend).
        seed: seeds the model's initial weights and training.
        out: the run directory (``runs/train-<task>-<model>`` by default).
        data_dir: the folder holding the downloaded data sets.
        resume: continue from the newest good checkpoint in ``out/checkpoints``.
        optimizer, lr_schedule, grad_clip, weight_decay, device, checkpoint_every,
        max_batches, strategy, progress: as :func:`pyhbnode.training.fit` takes them.
        limit: train (and validate) on the first ``limit`` items only, for quick runs.
        field_kwargs: heavy-ball coefficients for hbnode/ghbnode (``gamma``, ``xi``, ...).
        preset: the zoo preset, ``"paper"`` or ``"authors"`` (see :func:`pyhbnode.zoo.build`).
    """

    task: str | None = None
    model: str | None = None
    epochs: int | None = None
    lr: float | None = None
    batch_size: int | None = None
    tol: float | None = None
    rtol: float | None = None
    atol: float | None = None
    backend: str | None = None
    method: str | None = None
    adjoint: str | None = None
    controller: str | None = None
    seed: int = 0
    out: str | None = None
    data_dir: str = "data"
    resume: bool = True
    optimizer: str = "adam"
    lr_schedule: str | None = None
    grad_clip: float | None = None
    weight_decay: float = 0.0
    device: str = "cpu"
    checkpoint_every: int | None = None
    max_batches: int | None = None
    strategy: str | None = None
    progress: bool = True
    limit: int | None = None
    field_kwargs: dict = field(default_factory=dict)
    preset: str = "paper"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# The type each key takes; ints are accepted for floats, and ``None`` wherever the default is.
_TYPES: dict[str, type] = {
    "task": str, "model": str, "epochs": int, "lr": float, "batch_size": int, "tol": float, "rtol": float,
    "atol": float, "backend": str, "method": str, "adjoint": str, "controller": str, "seed": int, "out": str, "data_dir": str,
    "resume": bool, "optimizer": str, "lr_schedule": str, "grad_clip": float, "weight_decay": float,
    "device": str, "checkpoint_every": int, "max_batches": int, "strategy": str, "progress": bool,
    "limit": int, "field_kwargs": dict, "preset": str,
}
_NULLABLE = {f.name for f in fields(TrainConfig) if f.default is None}
KEYS = tuple(f.name for f in fields(TrainConfig))


def _check_key(key: str, source: str) -> str:
    name = key.replace("-", "_")
    if name not in _TYPES:
        close = difflib.get_close_matches(name, KEYS, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"unknown setting {key!r} in {source}{hint} Allowed: {', '.join(KEYS)}")
    return name


def _coerce(name: str, value: Any, source: str) -> Any:
    kind = _TYPES[name]
    if value is None and name in _NULLABLE:
        return None
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, kind) and not (kind is int and isinstance(value, bool)):
        _check_range(name, value, source)
        return dict(value) if kind is dict else value
    raise ValueError(f"setting {name!r} in {source} must be {'a' if kind is not int else 'an'} "
                     f"{kind.__name__}{' or none' if name in _NULLABLE else ''}, got {value!r}")


# Allowed ranges: ("int", minimum) or ("positive",) (a finite number > 0) or ("non-negative",).
_RANGES: dict[str, tuple] = {
    "epochs": ("int", 1), "batch_size": ("int", 1), "checkpoint_every": ("int", 1), "max_batches": ("int", 1),
    "limit": ("int", 1), "seed": ("int", 0), "lr": ("positive",), "tol": ("positive",), "rtol": ("positive",),
    "atol": ("positive",), "grad_clip": ("positive",), "weight_decay": ("non-negative",),
}


def _check_range(name: str, value: Any, source: str) -> None:
    rule = _RANGES.get(name)
    if rule is None:
        return
    if rule[0] == "int":
        if value < rule[1]:
            raise ValueError(f"setting {name!r} in {source} must be an integer >= {rule[1]}, got {value!r}")
    elif not math.isfinite(value) or (value <= 0 if rule[0] == "positive" else value < 0):
        raise ValueError(f"setting {name!r} in {source} must be a finite number {'> 0' if rule[0] == 'positive' else '>= 0'}, "
                         f"got {value!r}")


def _text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ValueError(f"config file {path} is not UTF-8 text") from None
    except OSError as err:
        raise ValueError(f"config file {path} cannot be read ({err.strerror or err})") from None


def read_config_file(path: str | os.PathLike) -> dict[str, Any]:
    """The table in a ``.toml``, ``.yaml`` or ``.yml`` file (YAML needs PyYAML)."""
    path = Path(path)
    try:
        regular_file(path, "config file")
    except FileNotFoundError as err:
        raise ValueError(str(err)) from None
    suffix = path.suffix.lower()
    if suffix == ".toml":
        try:
            import tomllib
        except ModuleNotFoundError:  # Python 3.10
            import tomli as tomllib  # type: ignore[no-redef]
        try:
            data = tomllib.loads(_text(path))
        except tomllib.TOMLDecodeError as err:
            raise ValueError(f"config file {path} is not valid TOML: {err}") from None
    elif suffix in (".yaml", ".yml"):
        try:
            import yaml
        except ModuleNotFoundError:
            raise ValueError(f"reading {path} needs PyYAML (pip install 'pyhbnode[yaml]'); or write the config as TOML") from None
        try:
            data = yaml.safe_load(_text(path))
        except yaml.YAMLError as err:
            raise ValueError(f"config file {path} is not valid YAML: {str(err).splitlines()[0]}") from None
        data = {} if data is None else data
    else:
        raise ValueError(f"config file {path} must end in .toml, .yaml or .yml")
    if not isinstance(data, dict):
        raise ValueError(f"config file {path} must hold a table of settings, got a {type(data).__name__}")
    return data


def parse_assignment(text: str) -> tuple[str, Any]:
    """``"KEY=VALUE"`` -> ``(key, value)``; the value is read as JSON where it parses (numbers,
    ``true``/``false``/``null``, ``{"xi": 2}``), ``none`` is ``None``, anything else a string."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ValueError(f"--set expects KEY=VALUE, got {text!r}")
    raw = raw.strip()
    if raw.lower() in ("none", "null"):
        return key.strip(), None
    try:
        return key.strip(), json.loads(raw)
    except json.JSONDecodeError:
        return key.strip(), raw


def merge(layers: Iterable[tuple[str, Mapping[str, Any]]]) -> TrainConfig:
    """A :class:`TrainConfig` from ``(source name, settings)`` layers, later ones winning.
    Raises ``ValueError`` on an unknown key (suggesting the closest) or a value of the wrong type."""
    values: dict[str, Any] = {}
    for source, settings in layers:
        for key, value in settings.items():
            name = _check_key(key, source)
            values[name] = _coerce(name, value, source)
    return TrainConfig(**values)
