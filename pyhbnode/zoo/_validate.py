"""The arguments of :func:`pyhbnode.zoo.build`, checked before anything is built."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import nn

from ..checks import check_choice, check_real, describe
from ..fields.nets import _ACTIVATIONS

__all__ = ["check_build_args", "FIELD_KWARGS"]

# The heavy-ball coefficients each second-order model takes (see HBNODE/GHBNODE).
FIELD_KWARGS: dict[str, tuple[str, ...]] = {
    "hbnode": ("gamma", "omega", "eps"),
    "ghbnode": ("gamma", "omega", "eps", "xi", "chi", "sigma"),
}


def _check_coefficient(name: str, value: Any) -> None:
    where = f"field_kwargs[{name!r}]"
    if name in ("gamma", "xi"):  # a fixed value >= 0, or None for the learnable form
        check_real(where, value, low=0.0, allow_none=True)
    elif name in ("omega", "chi"):  # initial value of an unconstrained parameter
        check_real(where, value)
    elif name == "eps":  # the scale of the learnable damping
        check_real(where, value, low=0.0, open_low=True)
    elif name == "sigma" and not isinstance(value, nn.Module):
        if not isinstance(value, str) or value.lower() not in _ACTIVATIONS:
            raise ValueError(
                f"{where} must be an activation name {sorted(_ACTIVATIONS)} or an nn.Module, got {describe(value)}"
            )


def check_build_args(task: Any, model: Any, field_kwargs: Any, tasks: tuple[str, ...], models: tuple[str, ...]) -> None:
    """Refuse an unknown task/model and field coefficients the model does not take or of the
    wrong type/range — each named, with what is allowed."""
    check_choice("task", task, tasks)
    check_choice("model", model, models)
    if field_kwargs is not None:
        if not isinstance(field_kwargs, Mapping):
            raise TypeError(
                f"field_kwargs must be a dict of heavy-ball coefficients or None, got {describe(field_kwargs)}"
            )
        allowed = FIELD_KWARGS.get(model, ())
        if field_kwargs and not allowed:
            raise ValueError(f"field_kwargs {sorted(field_kwargs)} apply only to hbnode/ghbnode, not {model!r}")
        unknown = sorted(str(k) for k in field_kwargs if k not in allowed)
        if unknown:
            raise ValueError(f"field_kwargs {unknown} are not coefficients of {model!r}; it takes {list(allowed)}")
        for name, value in field_kwargs.items():
            _check_coefficient(name, value)
