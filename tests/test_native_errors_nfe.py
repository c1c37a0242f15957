"""The native backend's NFE counting and failures (forward and inside ``backward``)."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from pyhbnode import HBNODE, odeint
from pyhbnode.fields import mlp
from pyhbnode.solving import MaxStepsExceeded, NonFiniteState, SolverError, Status, StepSizeUnderflow

ALL = ("backsolve", "checkpointed", "direct")


class Counted(nn.Module):
    def __init__(self, field: nn.Module) -> None:
        super().__init__()
        self.field = field
        self.calls = 0

    def forward(self, t, y):
        self.calls += 1
        return self.field(t, y)


def hb_field():
    torch.manual_seed(0)
    return HBNODE(mlp([3, 8, 3], "tanh"), omega=-1.0).double()


@pytest.mark.parametrize("adjoint", ALL)
def test_nfe_counts_every_evaluation(adjoint):
    field = Counted(hb_field())
    y0 = torch.randn(4, 2, 3, dtype=torch.float64, requires_grad=True)
    sol = odeint(field, y0, [0.0, 0.5, 1.0], backend="torch", adjoint=adjoint, rtol=1e-8, atol=1e-8)
    st = sol.stats
    assert st.status is Status.SUCCESS
    assert st.nfe_forward == field.calls == 2 + 6 * st.steps  # incl. the 2 start-up evaluations
    assert st.steps == st.accepted + st.rejected and st.accepted > 0
    assert st.nfe_backward == 0 and st.steps_backward is None
    sol.ys[-1].pow(2).sum().backward()
    assert st.nfe_backward > 0
    if adjoint == "direct":
        assert st.nfe_backward == st.nfe_forward and st.steps_backward == 0
    else:
        # each backward evaluation is one vector-Jacobian product of the field
        assert st.nfe_backward == field.calls - st.nfe_forward
        assert st.nfe_backward >= 6 * st.steps_backward  # 6 per attempt (+ start-up, restarts)
    # a new call starts from zero
    sol2 = odeint(field, y0.detach(), [0.0, 1.0], backend="torch", adjoint=adjoint)
    assert sol2.stats.nfe_backward == 0 and sol2.stats.nfe_forward > 0


def test_backward_nfe_counts_restarts_at_outputs():
    field = Counted(hb_field())
    y0 = torch.randn(4, 2, 3, dtype=torch.float64, requires_grad=True)
    # start-up: f and Hairer's initial-step probe
    for adjoint, start in (("backsolve", 2),):
        field.calls = 0
        sol = odeint(field, y0, torch.linspace(0, 1, 5, dtype=torch.float64), backend="torch", adjoint=adjoint)
        sol.ys.pow(2).sum().backward()
        st = sol.stats
        # 6 per attempt; 1 per interior output where the adjoint jumps
        assert st.nfe_backward == start + 6 * st.steps_backward + 3
        assert field.calls == st.nfe_forward + st.nfe_backward


def test_no_grad_solve_records_nothing():
    field = hb_field()
    y0 = torch.randn(4, 2, 3, dtype=torch.float64)
    with torch.no_grad():
        sol = odeint(field, y0, [0.0, 1.0], backend="torch", adjoint="backsolve")
    assert not sol.ys.requires_grad and sol.stats.nfe_forward > 0


class Square(nn.Module):
    def forward(self, t, y):
        return y * y


@pytest.mark.parametrize("adjoint", ALL)
def test_blow_up_raises_solver_error(adjoint):
    # du/dt = u^2, u(0) = 1 explodes at t = 1
    y0 = torch.ones(1, 1, dtype=torch.float64, requires_grad=True)
    with pytest.raises(SolverError) as info:
        odeint(Square(), y0, [0.0, 2.0], backend="torch", adjoint=adjoint)
    err = info.value
    assert isinstance(err, (StepSizeUnderflow, NonFiniteState, MaxStepsExceeded))
    assert err.phase == "forward" and 0.9 < err.t < 1.01 and err.nfe_forward > 0  # blow-up at t = 1


def test_max_steps_exceeded():
    y0 = torch.ones(1, 1, dtype=torch.float64)
    with pytest.raises(MaxStepsExceeded) as info:
        odeint(hb_field(), torch.randn(2, 2, 3, dtype=torch.float64), [0.0, 10.0], backend="torch", max_steps=5)
    assert info.value.nfe_forward == 2 + 6 * 5
    assert "max_steps" in str(info.value)
    with pytest.raises(MaxStepsExceeded):
        odeint(Square(), y0, [0.0, 0.9], backend="torch", max_steps=5, rtol=1e-10, atol=1e-10)


def test_non_finite_field_is_named():
    class NaNField(nn.Module):
        def forward(self, t, y):
            return y * float("nan")

    with pytest.raises(NonFiniteState, match="non-finite"):
        odeint(NaNField(), torch.ones(2, 2, dtype=torch.float64), [0.0, 1.0], backend="torch")


class NaNWhenDifferentiating(nn.Module):
    def forward(self, t, y):
        return -y * float("nan") if torch.is_grad_enabled() else -y


@pytest.mark.parametrize("adjoint", ("backsolve", "checkpointed"))
def test_error_inside_backward_propagates_typed(adjoint):
    y0 = torch.ones(2, 2, dtype=torch.float64, requires_grad=True)
    sol = odeint(NaNWhenDifferentiating(), y0, [0.0, 1.0], backend="torch", adjoint=adjoint)
    with pytest.raises(NonFiniteState) as info:
        sol.ys[-1].sum().backward()
    assert info.value.phase == "backward" and "backward solve" in str(info.value)
    assert sol.stats.nfe_backward > 0


class Stiffening(nn.Module):
    """Harmless forward, violently oscillating adjoint: the backward solve runs out of steps."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.tensor(1.0, dtype=torch.float64))

    def forward(self, t, y):
        if torch.is_grad_enabled():
            return self.w * torch.stack([1e4 * y[:, 1], -1e4 * y[:, 0]], dim=1)
        return -y


@pytest.mark.parametrize("adjoint", ("backsolve",))
def test_max_steps_inside_backward_propagates_typed(adjoint):
    y0 = torch.ones(1, 2, dtype=torch.float64)
    field = Stiffening()
    sol = odeint(field, y0, [0.0, 1.0], backend="torch", adjoint=adjoint, max_steps=50)
    with pytest.raises(MaxStepsExceeded) as info:
        sol.ys[-1].sum().backward()
    assert info.value.phase == "backward"
    assert sol.stats.steps_backward == 50


class UserError(Exception):
    pass


class RaisesWhenDifferentiating(nn.Module):
    def forward(self, t, y):
        if torch.is_grad_enabled():
            raise UserError("boom")
        return -y


@pytest.mark.parametrize("adjoint", ("backsolve", "checkpointed"))
def test_user_exception_inside_backward_propagates(adjoint):
    y0 = torch.ones(2, 2, dtype=torch.float64, requires_grad=True)
    sol = odeint(RaisesWhenDifferentiating(), y0, [0.0, 1.0], backend="torch", adjoint=adjoint)
    with pytest.raises(UserError, match="boom"):
        sol.ys[-1].sum().backward()


def test_wrong_output_shape_is_named():
    class Bad(nn.Module):
        def forward(self, t, y):
            return y[:, :1]

    with pytest.raises(ValueError, match="shape"):
        odeint(Bad(), torch.ones(2, 3, dtype=torch.float64), [0.0, 1.0], backend="torch")
