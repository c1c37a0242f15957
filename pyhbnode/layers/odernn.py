"""The ODE-RNN hybrid (spec §3): ODE-RNN, ANODE-RNN, SONODE-RNN, HBNODE-RNN, GHBNODE-RNN."""
from __future__ import annotations

import torch
from torch import nn

from ..fields import hidden
from ..solving import SolverOptions, SolverStats, odeint
from .stats_log import StatsLog

__all__ = ["ODERNN", "ElapsedTime"]


class ElapsedTime(nn.Module):
    """``field`` slowed or sped up per sample: ``dy/ds = Δt · field(s, y)`` for ``s ∈ [0, 1]``.

    Integrating it over ``[0, 1]`` equals integrating ``field`` over each sample's own
    elapsed time ``Δt`` (the reference code's trick), so one batched solve serves a batch
    of irregular gaps.  ``dt``: ``(batch,)``.
    """

    def __init__(self, field: nn.Module, dt: torch.Tensor) -> None:
        super().__init__()
        self.field = field
        self.order = getattr(field, "order", 1)
        self.dt = dt

    def forward(self, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        dy = self.field(t, y)
        return self.dt.view(-1, *([1] * (dy.dim() - 1))) * dy


class ODERNN(nn.Module):
    """ODE between observations, RNN cell at observations, dense readout of ``h``.

    The state is ``(batch, n)`` for a first-order field and ``(batch, 2, n)`` for a
    second-order one (``d`` = ``field.order`` channels of width ``n``).

    Args:
        field: a vector field on that state (NODE/ANODE/SONODE/HBNODE/GHBNODE).
        cell: maps ``(batch, d*n + k)`` (flattened state, then the observation) to
            ``(batch, d*n)``, the updated state.
        readout: maps ``h`` ``(batch, n)`` to the output ``(batch, out)``.
        width: ``n``.
        cell_first: ``False`` (default, ODE-LSTM style): evolve over ``dt[i]``, the gap
            *before* ``x[i]``, then read ``x[i]``, then read out.  ``True`` (the paper's
            plane-vibration code): read ``x[i]``, evolve over ``dt[i]``, the gap *after*
            it, then read out — the output forecasts the next stamp.
        options / solver keywords: as :class:`~pyhbnode.layers.ODEBlock`.

    ``forward(x, dt, y0=None)``:
        x: ``(T, batch, k)`` observations; dt: ``(T, batch)`` or ``(T,)`` time elapsed since
        the previous observation (``dt[0]`` before the first one; 0 skips the solve);
        y0: initial state (zeros by default).  Returns ``(T, batch, out)``, the readout after
        each observation.  ``stats`` sums the solves of every call since :meth:`reset_stats`
        (``T`` per call, fewer where ``dt`` is 0; see also ``pyhbnode.record()``); ``last_state``
        holds the final state.  With ``keep_states = True``, ``states`` lists the state after
        each observation, still attached to the graph (for ``∂L/∂h_t``, Fig. 4).
    """

    def __init__(
        self, field: nn.Module, cell: nn.Module, readout: nn.Module, width: int, *,
        cell_first: bool = False, options: SolverOptions | None = None, **solver_kwargs,
    ) -> None:
        super().__init__()
        self.cell_first = cell_first
        self.field, self.cell, self.readout = field, cell, readout
        self.order = getattr(field, "order", 1)
        self.width = int(width)
        self.options = SolverOptions.from_kwargs(options, **solver_kwargs)
        self._log = StatsLog()
        self.last_state: torch.Tensor | None = None
        self.keep_states = False
        self.states: list[torch.Tensor] = []

    @property
    def stats(self) -> SolverStats:
        return self._log.total

    def reset_stats(self) -> None:
        """Forget the statistics of the calls so far."""
        self._log.reset()

    def state_shape(self, batch: int) -> tuple[int, ...]:
        return (batch, self.width) if self.order == 1 else (batch, 2, self.width)

    def evolve(self, y: torch.Tensor, dt: torch.Tensor) -> torch.Tensor:
        """Evolve the state ``y`` over the elapsed times ``dt`` ``(batch,)``."""
        if not bool((dt > 0).any()):
            return y
        s = torch.tensor([0.0, 1.0], dtype=y.dtype, device=y.device)
        sol = odeint(ElapsedTime(self.field, dt), y, s, options=self.options)
        self._log.add(sol.stats)
        return sol.y1

    def forward(
        self, x: torch.Tensor, dt: torch.Tensor, y0: torch.Tensor | None = None
    ) -> torch.Tensor:
        if x.dim() != 3:
            raise ValueError(f"x must be (time, batch, features), got shape {tuple(x.shape)}")
        steps, batch = x.shape[:2]
        if dt.dim() == 1:
            dt = dt[:, None].expand(steps, batch)
        if dt.shape != (steps, batch):
            raise ValueError(f"dt must be (time, batch) = {(steps, batch)} or (time,), got {tuple(dt.shape)}")
        if bool((dt < 0).any()) or not bool(torch.isfinite(dt).all()):
            raise ValueError("dt (elapsed times) must be finite and >= 0")
        dt = dt.to(x.dtype)
        y = x.new_zeros(self.state_shape(batch)) if y0 is None else y0
        self.states = []
        outputs = []
        for i in range(steps):
            if not self.cell_first:
                y = self.evolve(y, dt[i])
            y = self.cell(torch.cat([y.flatten(1), x[i]], dim=1)).view_as(y)
            if self.keep_states:
                self.states.append(y)
            if self.cell_first:
                y = self.evolve(y, dt[i])
            outputs.append(self.readout(hidden(y, self.order)))
        self.last_state = y
        return torch.stack(outputs)
