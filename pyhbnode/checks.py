"""Generic argument checks shared by every floor of pyhbnode (data, training, solving, the app).

Each refuses a bad argument with a message that names it, says what was given and what is
allowed.  Only torch is imported: any module may use these.
"""

from __future__ import annotations

import math
import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, overload

import torch

__all__ = [
    "Setting",
    "COUNT",
    "INDEX",
    "POSITIVE",
    "NON_NEGATIVE",
    "describe",
    "check_real",
    "check_int",
    "check_bool",
    "check_choice",
    "check_callable",
    "check_device",
    "regular_file",
]


def describe(value: Any) -> str:
    """A short description of ``value`` for an error message: its type and a clipped repr."""
    if isinstance(value, torch.Tensor):
        return f"a tensor of shape {tuple(value.shape)}, dtype {value.dtype}, on {value.device}"
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{text} ({type(value).__name__})"


@dataclass(frozen=True)
class Setting:
    """What one setting takes: its type and, for a number, its range ``[low, high]``
    (``(low, high]`` with ``open_low``).  Declared once per setting and checked wherever the
    setting is read: a config file, a flag, ``--set``.

    Ints are accepted for floats and whole floats for ints (``5.0`` from JSON); bools are
    neither; ``None`` only when ``nullable``."""

    type: type
    low: float | None = None
    high: float | None = None
    open_low: bool = False
    nullable: bool = False

    def with_none(self) -> Setting:
        return Setting(self.type, self.low, self.high, self.open_low, nullable=True)

    def __str__(self) -> str:
        words = {
            int: "an int",
            float: "a float",
            str: "a str",
            bool: "a bool (true or false)",
            list: "a list",
            dict: "a table",
        }.get(self.type, f"a {self.type.__name__}")
        if self.low is not None and self.high is not None:
            bounds = f"in {'(' if self.open_low else '['}{self.low:g}, {self.high:g}]"
        elif self.low is not None:
            bounds = f"{'>' if self.open_low else '>='} {self.low:g}"
        elif self.high is not None:
            bounds = f"<= {self.high:g}"
        else:
            bounds = ""
        if self.nullable:
            return f"{words} or none" + (f", {bounds}" if bounds else "")
        return f"{words} {bounds}".strip()

    def check(self, name: str, value: Any) -> Any:
        """``value`` as this setting takes it, or ``ValueError``: "``name`` must be ..., got ..."."""
        if value is None and self.nullable:
            return None
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if self.type is int and number and float(value).is_integer():
            value = int(value)
        elif self.type is float and number:
            value = float(value)
        if not isinstance(value, self.type) or (self.type is not bool and isinstance(value, bool)):
            raise ValueError(f"{name} must be {self}, got {value!r}")
        # isinstance against a runtime type narrows ``value`` to object; it is one of self.type's
        checked: Any = value
        if self.type in (int, float):
            inside = (
                (self.low is None or (checked > self.low if self.open_low else checked >= self.low))
                and (self.high is None or checked <= self.high)
                and math.isfinite(checked)
            )
            if not inside:
                raise ValueError(f"{name} must be {self}, got {value!r}")
        return type(checked)(checked) if self.type in (list, dict) else checked

    def parse(self, text: str) -> Any:
        """A command-line word as this setting takes it (for ``argparse``'s ``type=``)."""
        if self.nullable and text.strip().lower() in ("none", "null"):
            return None
        if self.type in (int, float):
            try:
                value: Any = float(text) if self.type is float else int(text)
            except ValueError:
                raise ValueError(f"expected {self}, got {text!r}") from None
            return self.check("the value", value)
        return self.check("the value", text)


# The ranges our settings take, each a name for the reader.
COUNT = Setting(int, low=1)  # epochs, iterations, batch sizes, seeds to run
INDEX = Setting(int, low=0)  # a seed, a limit that may be 0
POSITIVE = Setting(float, low=0, open_low=True)  # learning rates, tolerances, clip norms
NON_NEGATIVE = Setting(float, low=0)  # weight decay


# Overloads: the result is None only where allow_none lets it be.
@overload
def check_real(
    name: str,
    value: Any,
    *,
    low: float | None = ...,
    high: float | None = ...,
    open_low: bool = ...,
    allow_none: Literal[False] = ...,
    finite: bool = ...,
) -> float: ...
@overload
def check_real(
    name: str,
    value: Any,
    *,
    low: float | None = ...,
    high: float | None = ...,
    open_low: bool = ...,
    allow_none: bool,
    finite: bool = ...,
) -> float | None: ...
def check_real(
    name: str,
    value: Any,
    *,
    low: float | None = None,
    high: float | None = None,
    open_low: bool = False,
    allow_none: bool = False,
    finite: bool = True,
) -> float | None:
    """``value`` as a float, or ``ValueError``/``TypeError`` naming ``name``.

    Refuses bools, strings, NaN, ±Inf (unless ``finite=False``) and values outside
    ``[low, high]`` (``(low, high]`` with ``open_low``)."""
    if value is None and allow_none:
        return None
    if isinstance(value, torch.Tensor) and value.numel() == 1 and not value.is_complex():
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a real number{' or None' if allow_none else ''}, got {describe(value)}")
    value = float(value)
    if math.isnan(value) or (finite and math.isinf(value)):
        raise ValueError(f"{name} must be a finite number, got {value}")
    if low is not None and (value <= low if open_low else value < low):
        raise ValueError(f"{name} must be {'>' if open_low else '>='} {low:g}, got {value:g}")
    if high is not None and value > high:
        raise ValueError(f"{name} must be <= {high:g}, got {value:g}")
    return value


@overload
def check_int(name: str, value: Any, *, minimum: int | None = ..., allow_none: Literal[False] = ...) -> int: ...
@overload
def check_int(name: str, value: Any, *, minimum: int | None = ..., allow_none: bool) -> int | None: ...
def check_int(name: str, value: Any, *, minimum: int | None = None, allow_none: bool = False) -> int | None:
    """``value`` as an int (no bools, no floats), at least ``minimum``."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an integer{' or None' if allow_none else ''}, got {describe(value)}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value}")
    return int(value)


def check_device(name: str, value: Any) -> torch.device:
    """``value`` (a string or ``torch.device``) as a device this machine has, or ``ValueError``."""
    try:
        dev = torch.device(value)
    except (RuntimeError, TypeError):
        raise ValueError(f"unknown {name} {value!r}; use 'cpu', 'cuda' or 'cuda:<index>'") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"{name} {value!r} was asked for, but CUDA is not available here")
    return dev


def check_bool(name: str, value: Any, *, allow_none: bool = False) -> bool | None:
    if value is None and allow_none:
        return None
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False{' or None' if allow_none else ''}, got {describe(value)}")
    return value


def check_choice(name: str, value: Any, choices: Iterable[str], *, allow_none: bool = False) -> str | None:
    choices = list(choices)
    if value is None and allow_none:
        return None
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"unknown {name} {value!r}; choose one of {choices}")
    return value


def check_callable(name: str, value: Any, *, allow_none: bool = False, what: str = "a callable") -> Any:
    if value is None and allow_none:
        return None
    if not callable(value):
        raise TypeError(f"{name} must be {what}{' or None' if allow_none else ''}, got {describe(value)}")
    return value


def regular_file(path: str | os.PathLike, what: str) -> Path:
    """``path`` if it names an existing regular file; ``ValueError`` otherwise.

    A FIFO, device or directory is refused *without opening it* (opening a FIFO for reading
    blocks until somebody writes to it)."""
    path = Path(path)
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise FileNotFoundError(f"{what} {str(path)!r} not found") from None
    except OSError as err:
        raise ValueError(f"{what} {str(path)!r} cannot be examined ({err.strerror or err})") from None
    if not stat.S_ISREG(mode):
        kind = (
            "a directory"
            if stat.S_ISDIR(mode)
            else "a FIFO (named pipe)"
            if stat.S_ISFIFO(mode)
            else "a device"
            if stat.S_ISCHR(mode) or stat.S_ISBLK(mode)
            else "a socket"
            if stat.S_ISSOCK(mode)
            else "not a regular file"
        )
        raise ValueError(f"{what} {str(path)!r} is {kind}, not a regular file; it was not opened")
    return path
