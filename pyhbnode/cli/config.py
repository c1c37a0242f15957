"""The settings of ``pyhbnode train``: a table read from TOML or YAML, then overridden by
command-line flags and ``--set key=value``.  The solver options sit in a ``[solver]`` table
whose keys and values are :class:`~pyhbnode.SolverOptions`'s; a solver key given at the top
level (``--set tol=1e-5``) lands there too.  An unknown key is an error that names it and the
closest valid one; every value is checked by its type and range."""

from __future__ import annotations

import difflib
import json
import os
import sys
import types
import typing
from collections.abc import Iterable, Mapping
from dataclasses import Field, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from ..checks import COUNT, INDEX, NON_NEGATIVE, POSITIVE, Setting, regular_file
from ..solving.options import SolverOptions, option_names, parse_option

__all__ = ["TrainConfig", "SOLVER_TABLE", "read_config_file", "parse_assignment", "merge", "check_solver_table"]

SOLVER_TABLE = "solver"


def _setting(default: Any, bounds: Setting | None = None) -> Any:
    if isinstance(default, (dict, list)):
        return field(default_factory=type(default), metadata={"bounds": bounds})
    return field(default=default, metadata={"bounds": bounds})


@dataclass(frozen=True)
class TrainConfig:
    """Everything ``pyhbnode train`` needs; ``None`` means "the task's default"
    (:data:`pyhbnode.zoo.TASK_SPECS`).

    Attributes:
        task, model: a zoo task and model name.
        epochs, lr, batch_size: training length and the paper's settings.
        solver: solver options by name (``{"tol": 1e-5, "adjoint": "backsolve"}``), applied
            over the task's; the ``[solver]`` table of a config file.
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

    task: str | None = _setting(None)
    model: str | None = _setting(None)
    epochs: int | None = _setting(None, COUNT)
    lr: float | None = _setting(None, POSITIVE)
    batch_size: int | None = _setting(None, COUNT)
    solver: dict = _setting({})
    seed: int = _setting(0, INDEX)
    out: str | None = _setting(None)
    data_dir: str = _setting("data")
    resume: bool = _setting(True)
    optimizer: str = _setting("adam")
    lr_schedule: str | None = _setting(None)
    grad_clip: float | None = _setting(None, POSITIVE)
    weight_decay: float = _setting(0.0, NON_NEGATIVE)
    device: str = _setting("cpu")
    checkpoint_every: int | None = _setting(None, COUNT)
    max_batches: int | None = _setting(None, COUNT)
    strategy: str | None = _setting(None)
    progress: bool = _setting(True)
    limit: int | None = _setting(None, COUNT)
    field_kwargs: dict = _setting({})
    preset: str | None = _setting(None)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _declared(f: Field, hint: Any) -> Setting:
    """The field's setting: its type from the annotation (``X | None`` is nullable), its
    range from the field's ``bounds``."""
    args = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
    kind = next(a for a in args if a is not type(None))
    bounds = f.metadata["bounds"]
    low, high, open_low = (bounds.low, bounds.high, bounds.open_low) if bounds else (None, None, False)
    return Setting(kind, low, high, open_low, nullable=type(None) in args)


_HINTS = typing.get_type_hints(TrainConfig)
SETTINGS: dict[str, Setting] = {f.name: _declared(f, _HINTS[f.name]) for f in fields(TrainConfig)}
KEYS = tuple(SETTINGS)


def _unknown(key: str, source: str, valid: Iterable[str], what: str = "setting") -> ValueError:
    valid = list(valid)
    close = difflib.get_close_matches(key, valid, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else "."
    return ValueError(f"unknown {what} {key!r} in {source}{hint} Allowed: {', '.join(valid)}")


def check_solver_table(table: Any, source: str) -> dict[str, Any]:
    """``table`` as solver options by name, each value read by its option's parser; the whole
    checked by building the :class:`SolverOptions` it describes."""
    if not isinstance(table, Mapping):
        raise ValueError(f"the [{SOLVER_TABLE}] table in {source} must map solver options to values, got {table!r}")
    parsed = {}
    for key, value in table.items():
        name = str(key).replace("-", "_")
        if name not in option_names():
            raise _unknown(name, source, option_names(), "solver option")
        try:
            parsed[name] = parse_option(name, value)
        except ValueError as err:
            raise ValueError(f"solver option {name!r} in {source}: {err}") from None
    try:
        SolverOptions.from_kwargs(**parsed)
    except (TypeError, ValueError) as err:
        raise ValueError(f"solver options in {source}: {err}") from None
    return parsed


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
        if sys.version_info >= (3, 11):
            import tomllib
        else:
            import tomli as tomllib
        try:
            data = tomllib.loads(_text(path))
        except tomllib.TOMLDecodeError as err:
            raise ValueError(f"config file {path} is not valid TOML: {err}") from None
    elif suffix in (".yaml", ".yml"):
        try:
            import yaml
        except ModuleNotFoundError:
            raise ValueError(
                f"reading {path} needs PyYAML (pip install 'pyhbnode[yaml]'); or write the config as TOML"
            ) from None
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
    """A :class:`TrainConfig` from ``(source name, settings)`` layers, later ones winning (the
    solver table option by option).  Raises ``ValueError`` on an unknown key (suggesting the
    closest) or a value of the wrong type or range."""
    values: dict[str, Any] = {}
    solver: dict[str, Any] = {}
    for source, settings in layers:
        for key, value in settings.items():
            name = key.replace("-", "_")
            if name == SOLVER_TABLE:
                solver.update(check_solver_table(value, source))
            elif name in option_names():
                solver.update(check_solver_table({name: value}, source))
            elif name in SETTINGS:
                values[name] = SETTINGS[name].check(f"setting {name!r} in {source}", value)
            else:
                raise _unknown(key, source, [*KEYS, *option_names()])
    return TrainConfig(**values, solver=check_solver_table(solver, "the merged settings"))
