"""The pieces of the ODE-RNN hybrids that Appendix E leaves out and the paper's parameter
counts require (the authors' plane-vibration and Walker2D code): the initial state read from
the input window, and a residual recurrent update.

Both act on the flattened layout :class:`~pyhbnode.layers.ODERNN` uses: a state of ``d``
parts (``h``, and ``m`` or ``v`` for a second-order model) of width ``n`` each, and ``k``
input features per stamp.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["WindowInitial", "PartwiseLinear", "Residual"]


class WindowInitial(nn.Module):
    """The initial state from one dense layer over the first ``stamps`` stamps of the input.

    ``x`` ``(T, batch, k)`` with ``T >= stamps`` -> the state ``(batch, n)`` (``d = 1``) or
    ``(batch, 2, n)`` (``d = 2``).  The layer maps the ``stamps * k`` inputs to ``out``
    channels; the remaining ``d * n - out`` channels are zeros (ANODE-RNN: its data channels
    come from the window, its augmented ones start at zero).

    Args:
        stamps: how many leading stamps the layer reads (plane vibration: the whole window;
            Walker2D ANODE-RNN: the first one).
        k: features per stamp.
        d, n: the state's parts and width.
        out: channels the layer produces (default all ``d * n``).
    """

    def __init__(self, stamps: int, k: int, d: int, n: int, out: int | None = None) -> None:
        super().__init__()
        out = d * n if out is None else int(out)
        if not 0 < out <= d * n:
            raise ValueError(f"out must be in 1..{d * n} (d*n), got {out}")
        self.stamps, self.k, self.d, self.n = int(stamps), int(k), int(d), int(n)
        self.dense = nn.Linear(self.stamps * self.k, out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 3 or x.shape[0] < self.stamps or x.shape[2] != self.k:
            raise ValueError(
                f"the initial state reads the first {self.stamps} stamps of x (time, batch, {self.k}); "
                f"got x of shape {tuple(x.shape)}"
            )
        window = x[: self.stamps].transpose(0, 1).reshape(x.shape[1], -1)  # (batch, stamps*k), time-major
        y = self.dense(window)
        missing = self.d * self.n - y.shape[1]
        if missing:
            y = torch.cat([y, y.new_zeros(y.shape[0], missing)], dim=1)
        return y if self.d == 1 else y.view(-1, self.d, self.n)


class PartwiseLinear(nn.Module):
    """``[y_1, ..., y_d, x] -> Σ_j W_j y_j + V x``: one dense layer (with its own bias) per
    state part and one for the input, each producing the whole state.

    Input ``(batch, d*n + k)`` (the layout :class:`~pyhbnode.layers.ODERNN` passes its cell),
    output ``(batch, d*n)``.
    """

    def __init__(self, d: int, n: int, k: int) -> None:
        super().__init__()
        self.d, self.n, self.k = int(d), int(n), int(k)
        self.parts = nn.ModuleList(nn.Linear(self.n, self.d * self.n) for _ in range(self.d))
        self.input = nn.Linear(self.k, self.d * self.n)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        parts = z[:, : self.d * self.n].split(self.n, dim=1)
        out = self.input(z[:, self.d * self.n :])
        for layer, part in zip(self.parts, parts, strict=True):
            out = out + layer(part)
        return out


class Residual(nn.Module):
    """``[y, x] -> y + net([y, x])``: a recurrent update that adds to the state instead of
    replacing it.  ``state`` is the flattened state's size ``d*n``; input ``(batch, state + k)``,
    output ``(batch, state)``."""

    def __init__(self, net: nn.Module, state: int) -> None:
        super().__init__()
        self.net, self.state = net, int(state)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return z[:, : self.state] + self.net(z)
