"""Runners on PyTorch: pyhbnode's native backend, raw torchdiffeq and torchode.

Every runner trains its own deep copy of the task's model with ``fit``'s Adam on the task's batches;
``step(i)`` is one training iteration (forward, loss, backward, optimiser step) and returns
an :class:`Record`.  The peers replace only the ODE solve inside the model (the block of a
:class:`~pyhbnode.zoo.ContinuousModel`, the ``evolve`` of an ODE-RNN); the initial-state
network, the cell, the head and the loss are the same modules for all.
"""
from __future__ import annotations

import abc
import copy
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from pyhbnode import record
from pyhbnode.layers import set_solver_options
from pyhbnode.layers.odernn import ElapsedTime
from pyhbnode.training.optim import make_optimizer

from .tasks import Task

__all__ = ["Record", "TorchRunner", "PyHBNODE", "TorchDiffEq", "TorchODE"]


@dataclass
class Record:
    """One training iteration: loss, field evaluations forward/backward, solver step
    attempts (forward; ``None`` where the peer does not say), all summed over the solves."""

    loss: float
    nfe_f: float | None
    nfe_b: float | None
    steps: float | None


class Counted(nn.Module):
    """``field`` with a call counter (how the peers without statistics are counted)."""

    def __init__(self, field: nn.Module) -> None:
        super().__init__()
        self.field = field
        self.order = getattr(field, "order", 1)
        self.calls = 0

    def forward(self, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return self.field(t, y)


class TorchRunner(abc.ABC):
    """A copy of ``task.model`` trained with Adam; subclasses choose how the ODE is solved."""

    label = "torch"

    def __init__(self, task: Task) -> None:
        self.task = task
        self.model = copy.deepcopy(task.model)
        # fit's Adam (fused where torch can): the optimiser every pyhbnode user trains with
        self.opt = make_optimizer("adam", self.model.parameters(), lr=task.lr, weight_decay=0.0)

    @abc.abstractmethod
    def step(self, i: int) -> Record:
        """One training iteration on batch ``i`` and its statistics."""

    def train(self, i: int) -> float:
        """Forward, loss, backward and the optimiser step on batch ``i``; the loss."""
        inputs, target = self.task.batch(i)
        self.opt.zero_grad()
        loss = self.task.loss(self.model(*inputs), target)
        self.forward_done()
        loss.backward()
        self.opt.step()
        return loss.item()

    def forward_done(self) -> None:
        """Called between the loss and ``loss.backward()``."""

    def probe(self, i: int) -> tuple[nn.Module, torch.Tensor]:
        """The ODE field of this runner's model and a state it was solved at on batch ``i``,
        for timing one field evaluation and one VJP (the lower bound of an iteration).

        The state is the solve's initial state (``initial(x)``), or for an ODE-RNN the
        final state of its last forward pass (so ``step(i)`` must have run); the field is
        the model's own module, which every runner solves (peers through a call counter or
        a reshaping view that add no arithmetic)."""
        m = self.model
        inputs, _ = self.task.batch(i)
        if hasattr(m, "block"):
            with torch.no_grad():
                return m.block.field, m.initial(*inputs)
        if hasattr(m, "rnn") and m.rnn.last_state is not None:
            return ElapsedTime(m.rnn.field, inputs[1][-1]), m.rnn.last_state.detach()
        raise TypeError(f"no ODE field and state found in {type(m).__name__}")

    def replace_solve(self, solve: Callable[[nn.Module, torch.Tensor], torch.Tensor]) -> None:
        """Route the model's ODE solves through ``solve(field, y0) -> y(1)`` (t in [0, 1])."""
        m = self.model
        if hasattr(m, "block"):
            block = m.block
            if (block.t0, block.t1) != (0.0, 1.0):
                raise ValueError("the peers integrate over [0, 1]")
            block.forward = lambda y0: solve(block.field, y0)
        elif hasattr(m, "rnn"):
            rnn = m.rnn

            def evolve(y: torch.Tensor, dt: torch.Tensor) -> torch.Tensor:
                if not bool((dt > 0).any()):
                    return y
                return solve(ElapsedTime(rnn.field, dt), y)

            rnn.evolve = evolve
        else:
            raise TypeError(f"no ODE solve found in {type(m).__name__}")


class PyHBNODE(TorchRunner):
    """pyhbnode through the model's own solver layers, with ``options`` (e.g. a backend name)."""

    def __init__(self, task: Task, label: str, **options) -> None:
        super().__init__(task)
        self.label = label
        set_solver_options(self.model, **options)

    def step(self, i: int) -> Record:
        with record() as rec:  # every solve of the iteration, backward NFE included
            loss = self.train(i)
        st = rec.stats
        return Record(loss, st.nfe_forward, st.nfe_backward, st.steps)


class _CountingRunner(TorchRunner):
    """Counts field calls before and after ``loss.backward()``."""

    def __init__(self, task: Task) -> None:
        super().__init__(task)
        self.counters: list[Counted] = []
        self._at_forward = 0

    def counted(self, field: nn.Module) -> Counted:
        c = Counted(field)
        self.counters.append(c)
        return c

    def step(self, i: int) -> Record:
        self.counters.clear()
        self.steps = 0
        return self.record(self.train(i))

    def forward_done(self) -> None:
        self._at_forward = sum(c.calls for c in self.counters)

    def record(self, loss: float) -> Record:
        total = sum(c.calls for c in self.counters)
        return Record(loss, self._at_forward, total - self._at_forward, self.steps or None)


class TorchDiffEq(_CountingRunner):
    """Raw ``torchdiffeq.odeint_adjoint`` (dopri5, rtol = atol = tol), as the paper's code."""

    label = "torchdiffeq odeint_adjoint"

    def __init__(self, task: Task) -> None:
        super().__init__(task)
        from torchdiffeq import odeint_adjoint

        tol = task.tol

        def solve(field, y0):
            f = self.counted(field)
            t = torch.tensor([0.0, 1.0], dtype=y0.dtype, device=y0.device)
            return odeint_adjoint(f, y0, t, rtol=tol, atol=tol, method="dopri5",
                                  adjoint_params=tuple(field.parameters()))[-1]

        self.replace_solve(solve)


class _Flat(nn.Module):
    """torchode's view of a field: ``f(t (B,), y (B, N)) -> (B, N)``.  The benchmark's
    fields are autonomous in ``t`` (point cloud, ODE-RNN), so the per-sample times are not
    passed on."""

    def __init__(self, field: Counted, shape: torch.Size) -> None:
        super().__init__()
        self.field, self.shape = field, shape

    def forward(self, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.field(t.reshape(-1)[0], y.reshape(self.shape)).reshape(y.shape)


class TorchODE(_CountingRunner):
    """torchode 1.0.1: Dopri5 + IntegralController (rtol = atol = tol), with
    ``AutoDiffAdjoint`` (backprop through the solver loop; per-sample step sizes) or
    ``JointBacksolveAdjoint`` (the batch as one system, continuous adjoint)."""

    def __init__(self, task: Task, adjoint: str) -> None:
        super().__init__(task)
        import torchode as to

        if adjoint not in ("autodiff", "joint_backsolve"):
            raise ValueError(f"adjoint must be 'autodiff' or 'joint_backsolve', got {adjoint!r}")
        self.label = f"torchode {'AutoDiffAdjoint' if adjoint == 'autodiff' else 'JointBacksolveAdjoint'}"
        tol = task.tol

        def solve(field, y0):
            flat = _Flat(self.counted(field), y0.shape)
            term = to.ODETerm(flat)
            method = to.Dopri5(term=term)
            ctrl = to.IntegralController(atol=tol, rtol=tol, term=term)
            batch = y0.shape[0]
            problem = to.InitialValueProblem(y0=y0.reshape(batch, -1), t_start=y0.new_zeros(batch),
                                             t_end=y0.new_ones(batch))
            if adjoint == "autodiff":
                sol = to.AutoDiffAdjoint(method, ctrl).solve(problem)
            else:
                sol = to.JointBacksolveAdjoint(term, method, ctrl).solve(problem)
            self.steps += int(sol.stats["n_steps"].max())
            return sol.ys[:, -1].reshape(y0.shape)

        self.replace_solve(solve)

    def record(self, loss: float) -> Record:
        r = super().record(loss)
        if self.label.endswith("AutoDiffAdjoint"):
            r.nfe_b = r.nfe_f  # backprop through the loop: one VJP per forward evaluation
        return r
