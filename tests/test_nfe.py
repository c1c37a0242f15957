"""Forward and backward NFE: counted where they happen, reset per call."""
from __future__ import annotations

import torch
from torch import nn

from helpers import initial_state, small_field
from pyhbnode import NODE, Status, odeint


class Counted(nn.Module):
    def __init__(self, field):
        super().__init__()
        self.field, self.calls = field, 0

    def forward(self, t, y):
        self.calls += 1
        return self.field(t, y)


def test_nfe_counts_every_evaluation_and_backward_only_during_adjoint(backend):
    from pyhbnode.solving import get_backend

    inner = small_field("hbnode")
    field = Counted(inner)
    field.order = inner.order
    y0 = initial_state(inner)
    for adjoint in get_backend(backend).mode_names():
        field.calls = 0
        sol = odeint(field, y0, [0.0, 1.0], backend=backend, adjoint=adjoint)
        assert sol.status is Status.SUCCESS
        assert sol.stats.nfe_forward == field.calls > 0
        assert sol.stats.nfe_backward == 0
        sol.ys[-1].pow(2).sum().backward()
        assert sol.stats.nfe_backward > 0
        assert sol.stats.nfe_forward == field.calls - (sol.stats.nfe_backward if adjoint != "direct" else 0)
        if adjoint == "direct":
            assert sol.stats.nfe_backward == sol.stats.nfe_forward


def test_stats_are_per_call(backend):
    field = small_field("node")
    y0 = initial_state(field)
    first = odeint(field, y0, [0.0, 1.0], backend=backend)
    second = odeint(field, y0, [0.0, 1.0], backend=backend)
    assert first.stats is not second.stats
    assert first.stats.nfe_forward == second.stats.nfe_forward > 0
    first.ys.sum().backward()
    assert first.stats.nfe_backward > 0 and second.stats.nfe_backward == 0


def test_dopri5_nfe_is_startup_plus_six_per_step(backend):
    sol = odeint(NODE(nn.Identity()), torch.ones(1, 1, dtype=torch.float64), [0.0, 1.0],
                 backend=backend, rtol=1e-6, atol=1e-6)
    assert sol.stats.steps is not None and sol.stats.steps > 0
    assert sol.stats.nfe_forward - 6 * sol.stats.steps in (1, 2)  # start-up: f(t0), initial-step probe


def test_tighter_tolerance_costs_more_nfe(backend):
    field = small_field("ghbnode")
    y0 = initial_state(field)
    loose = odeint(field, y0, [0.0, 3.0], backend=backend, rtol=1e-3, atol=1e-3).stats.nfe_forward
    tight = odeint(field, y0, [0.0, 3.0], backend=backend, rtol=1e-9, atol=1e-9).stats.nfe_forward
    assert tight > loose
