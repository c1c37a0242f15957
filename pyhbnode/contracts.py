"""Input contracts: what a model's ``forward`` takes, checked before any layer runs.

A model declares an :class:`InputSpec` (one :class:`Arg` per positional argument) derived from
what it already knows (its sizes, channels, window) and calls ``spec.check(self, *inputs)`` at
the top of ``forward``.  A bad input is refused with an error that names the argument, says what
was expected and what was received, and what to do — instead of a matrix-multiply error deep in
a layer, an ``IndexError`` in an interpolation, or a silent broadcast.

Sizes in a shape are ints (fixed), strings (a size named and shared between arguments: ``"B"``
in ``x`` and ``dt`` must agree) or ``None`` (any).  Only torch is imported: any floor may use it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from .checks import describe

__all__ = ["Dim", "Arg", "InputSpec"]

Dim = int | str | None

# What a named size means, for the messages.
_SIZE_WORDS = {"B": "batch", "T": "time steps", "S": "samples"}


def _layout(shape: tuple[Dim, ...], labels: Mapping[int | str, str]) -> str:
    """``(batch, channels=1, height=28, width=28)``: ``labels`` maps an axis index or a size's
    name to its word."""
    parts = []
    for axis, dim in enumerate(shape):
        label = labels.get(dim, "") if isinstance(dim, str) else labels.get(axis, "")
        if isinstance(dim, int):
            parts.append(f"{label}={dim}" if label else str(dim))
        else:
            parts.append(label or _SIZE_WORDS.get(dim or "", dim or "any"))
    return "(" + ", ".join(parts) + (",)" if len(parts) == 1 else ")")


@dataclasses.dataclass(frozen=True)
class Arg:
    """One positional argument of a model's ``forward``.

    Args:
        name: the argument's name in ``forward``'s signature.
        shape: its sizes (see the module docstring); ``labels`` name each axis for messages.
        labels: one word per axis (``"batch"``, ``"channels"``, ...); empty for a named size.
        alternatives: other shapes that are also accepted (``dt``: ``(T, B)`` or ``(T,)``).
        increasing: the values must be strictly increasing along the last axis (a time grid).
        nonnegative: the values must be ``>= 0`` (elapsed times).
        optional: ``None`` is accepted (the model supplies a default).
    """

    name: str
    shape: tuple[Dim, ...]
    labels: tuple[str, ...] = ()
    alternatives: tuple[tuple[Dim, ...], ...] = ()
    increasing: bool = False
    nonnegative: bool = False
    optional: bool = False

    def layout(self) -> str:
        by_axis: dict[int | str, str] = dict(enumerate(self.labels))
        by_name: dict[int | str, str] = {
            dim: label for dim, label in zip(self.shape, self.labels, strict=False) if isinstance(dim, str)
        }
        return " or ".join(
            _layout(shape, {**by_axis, **by_name} if shape is self.shape else by_name)
            for shape in (self.shape, *self.alternatives)
        )


@dataclasses.dataclass(frozen=True)
class InputSpec:
    """The inputs of a model's ``forward``: dtype and device are the model's parameters'.

    Args:
        model: how messages name the model (``"zoo.build('mnist', 'hbnode')"``).
        args: the positional arguments, in order.
        at_least: a named size's minimum and why (plane vibration: ``{"T": (64, "...")}``).
    """

    model: str
    args: tuple[Arg, ...]
    at_least: Mapping[str, tuple[int, str]] = dataclasses.field(default_factory=dict)

    def check(self, module: nn.Module, *values: Any) -> None:
        """Refuse ``values`` unless they fit; ``module`` gives the expected dtype and device."""
        if len(values) != len(self.args):
            names = ", ".join(a.name for a in self.args)
            raise TypeError(f"{self.model} takes {len(self.args)} input(s) ({names}), got {len(values)}")
        reference = next((p for p in module.parameters() if p.is_floating_point()), None)
        sizes: dict[str, tuple[int, str]] = {}
        for arg, value in zip(self.args, values, strict=True):
            if value is None and arg.optional:
                continue
            self._check_tensor(arg, value, reference)
            shape = self._matching_shape(arg, value)
            for axis, dim in enumerate(shape):
                if isinstance(dim, str):
                    self._bind(sizes, dim, int(value.shape[axis]), f"{arg.name}.shape[{axis}]")
            self._check_values(arg, value)
        for size, (minimum, why) in self.at_least.items():
            if size in sizes and sizes[size][0] < minimum:
                got, where = sizes[size]
                raise ValueError(
                    f"{self.model}: {where} = {got} {_SIZE_WORDS.get(size, size)}, but at least "
                    f"{minimum} are needed: {why}"
                )

    def _check_tensor(self, arg: Arg, value: Any, reference: torch.Tensor | None) -> None:
        what = f"{self.model}: {arg.name} {arg.layout()}"
        if not isinstance(value, torch.Tensor):
            raise TypeError(f"{what} must be a tensor, got {describe(value)}")
        if reference is None:
            if not value.is_floating_point():
                raise TypeError(
                    f"{what} must be a floating-point tensor, got dtype {value.dtype}; "
                    f"convert it with {arg.name}.float()"
                )
            return
        dtype, device = reference.dtype, reference.device
        if value.dtype != dtype:
            kind = "a floating-point" if value.is_floating_point() else "an integer/bool/complex"
            raise TypeError(
                f"{what} has {kind} dtype {value.dtype}, but the model's parameters are {dtype}: "
                f"convert the input with {arg.name}.to({dtype})"
                + (f" or the model with model.to({value.dtype})" if value.is_floating_point() else "")
            )
        if value.device != device:
            raise ValueError(
                f"{what} is on {value.device}, but the model is on {device}: move the input with "
                f"{arg.name}.to({str(device)!r}) or the model with model.to({str(value.device)!r})"
            )

    def _matching_shape(self, arg: Arg, value: torch.Tensor) -> tuple[Dim, ...]:
        got = tuple(value.shape)
        for shape in (arg.shape, *arg.alternatives):
            if len(shape) == len(got) and all(
                not isinstance(d, int) or d == g for d, g in zip(shape, got, strict=True)
            ):
                if 0 in got:
                    raise ValueError(
                        f"{self.model}: {arg.name} is empty (shape {got}); it needs at least "
                        f"one element along every axis of {arg.layout()}"
                    )
                return shape
        hint = _missing_axis_hint(arg.name, arg.shape, got)
        raise ValueError(
            f"{self.model}: {arg.name} must be {arg.layout()}, got shape {got}; "
            + (hint or f"reshape or resize {arg.name} to {arg.layout()}")
        )

    def _bind(self, sizes: dict[str, tuple[int, str]], size: str, value: int, where: str) -> None:
        if size not in sizes:
            sizes[size] = (value, where)
            return
        first, first_where = sizes[size]
        if first != value:
            word = _SIZE_WORDS.get(size, size)
            raise ValueError(
                f"{self.model}: {where} = {value} but {first_where} = {first}; both are the "
                f"{word} ({size}) and must agree"
            )

    def _check_values(self, arg: Arg, value: torch.Tensor) -> None:
        if not bool(torch.isfinite(value).all()):
            raise ValueError(f"{self.model}: {arg.name} contains NaN or Inf; check the data")
        if arg.nonnegative and bool((value < 0).any()):
            raise ValueError(
                f"{self.model}: {arg.name} must be >= 0 (elapsed times), got a minimum of {float(value.min()):g}"
            )
        if arg.increasing and value.shape[-1] > 1 and not bool((value[..., 1:] > value[..., :-1]).all()):
            raise ValueError(
                f"{self.model}: {arg.name} must be strictly increasing (the times must move "
                f"forward: elapsed times are >= 0), got {value.flatten()[:8].tolist()}"
                f"{'...' if value.numel() > 8 else ''}; sort it, or flip the whole series"
            )


def _missing_axis_hint(name: str, shape: tuple[Dim, ...], got: tuple[int, ...]) -> str | None:
    """``"add the missing axis with x.unsqueeze(1)"`` when inserting a size-1 axis fits."""
    if len(got) + 1 != len(shape):
        return None
    for axis, dim in enumerate(shape):
        if dim == 1:
            rest = shape[:axis] + shape[axis + 1 :]
            if all(not isinstance(d, int) or d == g for d, g in zip(rest, got, strict=True)):
                return f"it lacks an axis: add it with {name}.unsqueeze({axis})"
    return None
