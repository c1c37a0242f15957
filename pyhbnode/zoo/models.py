"""The end-to-end models the zoo assembles: a continuous classifier, a sequence model and
the Silverbox driven oscillator."""

from __future__ import annotations

import torch
from torch import nn

from ..contracts import Arg, InputSpec
from ..fields import TimeModule, hidden
from ..layers import ODERNN, ODEBlock

__all__ = ["ContinuousModel", "SequenceModel", "DrivenLinear", "DrivenModel"]


class ContinuousModel(nn.Module):
    """``x -> head(h(t1))`` with ``y(t0) = initial(x)`` and the ODE block in between.

    ``x``: ``(batch, *sample)`` with ``sample`` the per-sample shape (``(2,)`` for 2-D points,
    ``(C, H, W)`` for images; ``labels`` names its axes), of the model's dtype and device;
    :attr:`input_spec` refuses anything else before a layer runs.  Returns the head's output
    ``(batch, out)``.  ``name`` is how errors name the model."""

    def __init__(
        self,
        initial: nn.Module,
        block: ODEBlock,
        head: nn.Module,
        *,
        sample: tuple[int, ...],
        labels: tuple[str, ...],
        name: str,
    ) -> None:
        super().__init__()
        self.initial, self.block, self.head = initial, block, head
        self.input_spec = InputSpec(name, (Arg("x", ("B", *sample), ("batch", *labels)),))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """``h(t1)``: the learned representation before the head."""
        self.input_spec.check(self, x)
        return hidden(self.block(self.initial(x)), self.block.order)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class SequenceModel(nn.Module):
    """An ODE-RNN hybrid: ``forward(x (T, B, k), dt (T, B)) -> (T, B, out)``.

    ``initial`` maps the whole input ``x`` to the initial state (e.g.
    :class:`~pyhbnode.zoo.cells.WindowInitial`); without it the state starts at zero; one
    with a ``stamps`` attribute needs ``T >= stamps``.  ``features`` is ``k``.
    ``time_scale`` multiplies the elapsed times ``dt`` (a change of time unit).  ``dt`` may
    also be ``(T,)`` (shared by the batch); :attr:`input_spec` refuses other shapes, another
    dtype or device, negative or non-finite ``dt`` before a layer runs."""

    def __init__(
        self, rnn: ODERNN, initial: nn.Module | None = None, time_scale: float = 1.0, *, features: int, name: str
    ) -> None:
        super().__init__()
        self.rnn, self.initial, self.time_scale = rnn, initial, float(time_scale)
        stamps = getattr(initial, "stamps", 1)
        self.input_spec = InputSpec(
            name,
            (
                Arg("x", ("T", "B", features), ("time", "batch", "features")),
                Arg("dt", ("T", "B"), ("time", "batch"), alternatives=(("T",),), nonnegative=True),
            ),
            at_least={
                "T": (
                    stamps,
                    f"the initial state reads the first {stamps} stamps (the window); pass a "
                    f"longer sequence, or build the model with window=<T>",
                )
            }
            if stamps > 1
            else {},
        )

    def forward(self, x: torch.Tensor, dt: torch.Tensor) -> torch.Tensor:
        self.input_spec.check(self, x, dt)
        dt = dt if self.time_scale == 1.0 else dt * self.time_scale
        return self.rnn(x, dt, None if self.initial is None else self.initial(x))


class DrivenLinear(TimeModule):
    """``f(t, h) = W [h, u(t)^3] + b``: one dense layer with an external input ``u`` (the
    Silverbox voltage V1), linearly interpolated between samples.

    ``drive(ts, u)`` sets the signal before a solve: ``ts`` ``(S,)`` increasing,
    ``u`` ``(batch, S)``.  ``h``: ``(batch, n_in)``; output ``(batch, n_out)``."""

    def __init__(self, n_in: int, n_out: int) -> None:
        super().__init__()
        self.linear = nn.Linear(n_in + 1, n_out)
        self.ts: torch.Tensor | None = None
        self.u: torch.Tensor | None = None

    def drive(self, ts: torch.Tensor, u: torch.Tensor) -> None:
        self.ts, self.u = ts, u

    def signal(self, t: torch.Tensor) -> torch.Tensor:
        if self.ts is None or self.u is None:
            raise RuntimeError("DrivenLinear needs drive(ts, u) before it is evaluated")
        i = torch.searchsorted(self.ts, t.detach().reshape(1)).clamp(1, self.ts.numel() - 1)
        t0, t1 = self.ts[i - 1], self.ts[i]
        w = ((t - t0) / (t1 - t0)).clamp(0, 1)
        return torch.lerp(self.u[:, i - 1], self.u[:, i], w)  # (batch, 1)

    def forward(self, t: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        return self.linear(torch.cat([h, self.signal(t) ** 3], dim=1))


class DrivenModel(nn.Module):
    """The Silverbox model: predict V2 from V1 (the HBNODE paper, Fig. 3).

    ``forward(v1 (batch, S), v2_0 (batch, 1), ts (S,)) -> h (S, batch, n)``: the hidden
    trajectory; ``h[..., 0]`` is the V2 prediction.  ``time_offset`` is added to ``ts`` for the
    solve and the drive: NesterovNODE's clock must start after 0 (its authors integrate
    Silverbox from t = 1).

    ``ts`` must be strictly increasing: the drive interpolates V1 between samples along a clock
    that moves forward, and a reversed grid would integrate the circuit backward in time
    (a different problem, not a prediction); flip the series instead.  :attr:`input_spec`
    refuses that, ``v1`` with another number of samples than ``ts``, and ``v2_0`` of another
    width than ``observed``, before a layer runs."""

    def __init__(
        self,
        initial: nn.Module,
        block: ODEBlock,
        drive: DrivenLinear,
        time_offset: float = 0.0,
        *,
        observed: int,
        name: str,
    ) -> None:
        super().__init__()
        self.initial, self.block, self.drive = initial, block, drive
        self.time_offset = float(time_offset)
        self.input_spec = InputSpec(
            name,
            (
                Arg("v1", ("B", "S"), ("batch", "samples")),
                Arg("v2_0", ("B", observed), ("batch", "observed")),
                Arg("ts", ("S",), ("samples",), increasing=True),
            ),
            at_least={"S": (2, "a trajectory needs at least two times")},
        )

    def forward(self, v1: torch.Tensor, v2_0: torch.Tensor, ts: torch.Tensor) -> torch.Tensor:
        return self.hidden(self.trajectory(v1, v2_0, ts))

    def trajectory(self, v1: torch.Tensor, v2_0: torch.Tensor, ts: torch.Tensor) -> torch.Tensor:
        """The whole state along ``ts``: ``(S, batch, [parts,] n)`` (one solve)."""
        self.input_spec.check(self, v1, v2_0, ts)
        ts = ts + self.time_offset if self.time_offset else ts
        self.drive.drive(ts, v1)
        return self.block.solve(self.initial(v2_0), ts).ys

    def hidden(self, ys: torch.Tensor) -> torch.Tensor:
        """``h (S, batch, n)`` of a :meth:`trajectory`."""
        return ys[:, :, 0] if self.block.order >= 2 else ys
