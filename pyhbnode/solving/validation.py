"""Up-front checks of ``odeint``'s arguments: each failure names the argument and what was
expected, before any solver work is done."""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

__all__ = ["check_problem"]


def check_problem(
    field: nn.Module, y0: torch.Tensor, t: torch.Tensor | Sequence[float]
) -> torch.Tensor:
    """Validate ``field``, ``y0`` and ``t``; return ``t`` as a tensor on ``y0``'s device."""
    if not callable(field):
        raise TypeError(f"field must be callable as field(t, y), got {type(field).__name__}")
    if not isinstance(y0, torch.Tensor):
        raise TypeError(f"y0 must be a torch.Tensor, got {type(y0).__name__}")
    if not y0.is_floating_point():
        raise TypeError(f"y0 must be a floating-point tensor, got dtype {y0.dtype}")
    if y0.numel() == 0:
        raise ValueError(f"y0 is empty (shape {tuple(y0.shape)})")
    if not bool(torch.isfinite(y0).all()):
        raise ValueError("y0 contains NaN or Inf; check the input data and the initial-state network")

    if not isinstance(t, torch.Tensor):
        t = torch.as_tensor(t, dtype=y0.dtype, device=y0.device)
    if not t.is_floating_point():
        raise TypeError(f"t must be a floating-point tensor, got dtype {t.dtype}")
    if t.dtype != y0.dtype:
        raise TypeError(f"t has dtype {t.dtype} but y0 has {y0.dtype}; use the same dtype for both")
    if t.device != y0.device:
        raise ValueError(f"t is on {t.device} but y0 is on {y0.device}; move both to one device")
    if t.dim() != 1 or t.numel() < 2:
        raise ValueError(f"t must be a 1-D time grid with at least 2 points, got shape {tuple(t.shape)}")
    if not bool(torch.isfinite(t).all()):
        raise ValueError("t contains NaN or Inf")
    if not (bool((t[1:] > t[:-1]).all()) or bool((t[1:] < t[:-1]).all())):
        raise ValueError(f"t must be strictly increasing or strictly decreasing, got "
                         f"{t.tolist()[:8]}{'...' if t.numel() > 8 else ''}")

    if isinstance(field, nn.Module):
        for name, p in field.named_parameters():
            if p.is_floating_point() and p.dtype != y0.dtype:
                raise TypeError(
                    f"field parameter {name!r} has dtype {p.dtype} but y0 has {y0.dtype}; "
                    f"convert the model with .to({y0.dtype})"
                )
            if p.device != y0.device:
                raise ValueError(
                    f"field parameter {name!r} is on {p.device} but y0 is on {y0.device}; "
                    "move the model and the data to one device"
                )
    return t
