"""The ODE-RNN hybrid (the HBNODE paper's ODE-RNN hybrids): ODE-RNN, ANODE-RNN, SONODE-RNN, HBNODE-RNN, GHBNODE-RNN."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..checks import check_bool, check_callable, check_int, check_real, describe
from ..contracts import Arg, InputSpec
from ..fields import hidden
from ..solving import SolverOptions, odeint
from ..solving.options import solver_argument
from ..solving.validation import reraise_field_failure
from .odeblock import check_start

__all__ = ["ODERNN", "ElapsedTime"]


class ElapsedTime(nn.Module):
    """``field`` slowed or sped up per sample: ``dy/ds = Δt · field(s, y)`` for ``s ∈ [t0, t0 + 1]``.

    Integrating it over a unit interval equals integrating ``field`` over each sample's own
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

    The state is ``(batch, n)`` for a first-order field and ``(batch, d, n)`` otherwise
    (``d`` = ``field.order`` parts of width ``n``: 2 for (G)HBNODE/SONODE/(G)NesterovNODE, 3 for
    AdamNODE).

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
        t0: each gap is integrated over ``s ∈ [t0, t0 + 1]`` with the field scaled by the gap
            (default 0; NesterovNODE needs ``t0 > 0``: its authors use 1).  A field's
            ``readout(ts, ys)`` is applied to the state at ``t0 + 1`` after each solve.
        solver, **solver_options: as :class:`~pyhbnode.layers.ODEBlock`.

    ``forward(x, dt, y0=None)``:
        x: ``(T, batch, k)`` observations; dt: ``(T, batch)`` or ``(T,)`` time elapsed since
        the previous observation (``dt[0]`` before the first one; 0 skips the solve);
        y0: initial state (zeros by default).  All three in the model's dtype and on its device;
        :attr:`input_spec` refuses other shapes, dtypes or devices, and NaN/Inf or negative
        ``dt``, before any layer runs.  A model whose initial state reads a window of ``x``
        needs at least that many stamps: the zoo's plane-vibration models (the authors'
        window-initial ODE-RNNs) need ``T >= window`` (64 by default) and refuse shorter
        sequences (build them with ``window=`` to change it).  Returns ``(T, batch, out)``, the readout after
        each observation.  It solves ``T`` times per call (fewer where ``dt`` is 0); measure
        them with ``pyhbnode.record()``.  ``last_state``
        holds the final state.  With ``keep_states = True``, ``states`` lists the state after
        each observation, still attached to the graph (for ``∂L/∂h_t``, Fig. 4).
    """

    def __init__(
        self,
        field: nn.Module,
        cell: nn.Module,
        readout: nn.Module,
        width: int,
        *,
        cell_first: bool = False,
        t0: float = 0.0,
        solver: SolverOptions | None = None,
        **solver_options: Any,
    ) -> None:
        super().__init__()
        check_callable("field", field, what="a vector field (an nn.Module with forward(t, y))")
        check_callable("cell", cell, what="a module mapping (batch, d*n + k) to (batch, d*n)")
        check_callable("readout", readout, what="a module mapping (batch, n) to the output")
        check_int("width", width, minimum=1)
        check_bool("cell_first", cell_first)
        self.options = solver_argument(solver, solver_options, where="ODERNN")
        t0 = check_real("t0", t0)
        check_start(field, t0, "t0")
        self.t0 = t0
        self.cell_first = cell_first
        self.field, self.cell, self.readout = field, cell, readout
        self.order = getattr(field, "order", 1)
        self.width = width
        self.last_state: torch.Tensor | None = None
        self.keep_states = False
        self.states: list[torch.Tensor] = []
        state = ("B", width) if self.order == 1 else ("B", self.order, width)
        # x's feature count is the cell's business (any module): the cell names a misfit.
        self.input_spec = InputSpec(
            "ODERNN",
            (
                Arg("x", ("T", "B", None), ("time", "batch", "features")),
                Arg("dt", ("T", "B"), ("time", "batch"), alternatives=(("T",),), nonnegative=True),
                Arg("y0", state, ("batch", *(("parts",) if self.order > 1 else ()), "width"), optional=True),
            ),
        )

    def state_shape(self, batch: int) -> tuple[int, ...]:
        return (batch, self.width) if self.order == 1 else (batch, self.order, self.width)

    def evolve(self, y: torch.Tensor, dt: torch.Tensor) -> torch.Tensor:
        """Evolve the state ``y`` over the elapsed times ``dt`` ``(batch,)``."""
        if not bool((dt > 0).any()):
            return y
        s = torch.tensor([self.t0, self.t0 + 1.0], dtype=y.dtype, device=y.device)
        field = ElapsedTime(self.field, dt)
        try:
            sol = odeint(field, y, s, solver=self.options)
        except Exception as err:
            reraise_field_failure(self.field, s[0], y, err)  # the user's field, not the wrapper
        readout = getattr(self.field, "readout", None)
        return sol.y_final if readout is None else readout(s[1:], sol.y_final[None])[0]

    def forward(self, x: torch.Tensor, dt: torch.Tensor, y0: torch.Tensor | None = None) -> torch.Tensor:
        self.input_spec.check(self, x, dt, y0)
        steps, batch = x.shape[:2]
        if dt.dim() == 1:
            dt = dt[:, None].expand(steps, batch)
        y = x.new_zeros(self.state_shape(batch)) if y0 is None else y0
        self.states = []
        outputs = []
        for i in range(steps):
            if not self.cell_first:
                y = self.evolve(y, dt[i])
            y = self._cell(y, x[i])
            if self.keep_states:
                self.states.append(y)
            if self.cell_first:
                y = self.evolve(y, dt[i])
            outputs.append(self._readout(y))
        self.last_state = y
        return torch.stack(outputs)

    def _cell(self, y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """The RNN update at one observation; a cell that does not fit the sizes is named."""
        inputs = torch.cat([y.flatten(1), x], dim=1)
        expected = tuple(y.flatten(1).shape)
        try:
            out = self.cell(inputs)
        except (RuntimeError, TypeError) as err:
            raise ValueError(
                f"the ODERNN cell cannot take (batch, d*n + k) = {tuple(inputs.shape)} (the state {tuple(y.shape[1:])} "
                f"flattened, then x's {x.shape[-1]} features) ({type(err).__name__}: {' '.join(str(err).split())}); "
                "check x's features, width and the cell's sizes"
            ) from err
        if not isinstance(out, torch.Tensor) or tuple(out.shape) != expected:
            got = tuple(out.shape) if isinstance(out, torch.Tensor) else describe(out)
            raise ValueError(
                f"the ODERNN cell returned {got}; it must return the updated state {expected} (batch, d*n)"
            )
        return out.view_as(y)

    def _readout(self, y: torch.Tensor) -> torch.Tensor:
        h = hidden(y, self.order)
        try:
            return self.readout(h)
        except (RuntimeError, TypeError) as err:
            raise ValueError(
                f"the ODERNN readout cannot take h of shape {tuple(h.shape)} (batch, width={self.width}) "
                f"({type(err).__name__}: {' '.join(str(err).split())})"
            ) from err
