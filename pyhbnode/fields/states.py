"""Initial-state builders and the readout of ``h`` (the HBNODE paper, Appendix E).

One builder serves every model: the input ``x`` of shape ``(batch, C, *rest)`` is padded
along dim 1 to the state's channel count, either with zeros (NODE/ANODE, or a second-order
model without an initial-velocity network) or with the output of an "initial velocity"
network, and a second-order state is then viewed as ``(batch, 2, width, *rest)``.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["InitialState", "hidden"]


class InitialState(nn.Module):
    """Map an input ``x`` of shape ``(batch, C, *rest)`` to the state ``y(t0)``.

    Args:
        order: 1 (state ``(batch, width, *rest)``) or 2 (``(batch, 2, width, *rest)``).
        width: channels ``n`` of ``h`` (and of ``m``/``v``).
        net: optional initial-velocity network; its output ``(batch, order*width - C, *rest)``
            is concatenated after ``x``.  Without it the missing channels are zeros
            (``h = [x, 0]``, ``m = 0``).  For order 2 with ``C == width`` this gives
            ``h(t0) = x`` and ``m(t0) = net(x)``.
    """

    def __init__(self, order: int, width: int, net: nn.Module | None = None) -> None:
        super().__init__()
        if order not in (1, 2):
            raise ValueError(f"order must be 1 or 2, got {order}")
        self.order, self.width, self.net = order, int(width), net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        channels = self.order * self.width
        if x.dim() < 2:
            raise ValueError(f"x must be (batch, channels, ...), got shape {tuple(x.shape)}")
        missing = channels - x.shape[1]
        if self.net is not None:
            extra = self.net(x)
        elif missing >= 0:
            extra = x.new_zeros((x.shape[0], missing, *x.shape[2:]))
        else:
            extra = None
        if extra is None or extra.shape[1] != missing:
            got = x.shape[1] + (extra.shape[1] if extra is not None else 0)
            raise ValueError(
                f"initial state needs {channels} channels (order {self.order} x width "
                f"{self.width}) but x has {x.shape[1]} and the initial-velocity network "
                f"adds {got - x.shape[1]}; got {got}"
            )
        z = torch.cat([x, extra], dim=1) if missing else x
        if self.order == 2:
            z = z.unflatten(1, (2, self.width))
        return z


def hidden(y: torch.Tensor, order: int) -> torch.Tensor:
    """The ``h`` part of a state: ``y`` for order 1, ``y[:, 0]`` along the parts axis for
    order 2 (and AdamNODE's 3).  Works on a single state ``(batch, ...)`` and, with ``order``
    applied to dim 1, on states only (not time-first trajectories: index ``ys[i]`` first)."""
    return y[:, 0] if order >= 2 else y
