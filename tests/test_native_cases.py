"""Issue 10's cases F1, F2, F4, F5 and issue 13's solver bugs on the native backend.

Every case uses ``Osc``, x'' + 0.4 x' + k x = 0 (k = 4, a learnable parameter) as a first-order
field, in float64.  Gradients are checked against closed forms (the solution is a matrix
exponential) or against ``Direct()`` (the exact gradient of the discrete solve)."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from pyhbnode import Backsolve, Checkpointed, Direct, odeint
from pyhbnode.solving import SolverError, SolverOptions, StepSizeUnderflow

MODES = (Checkpointed(), Checkpointed(2), Backsolve(), Direct())


class Osc(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.k = nn.Parameter(torch.tensor(4.0, dtype=torch.float64))

    def forward(self, t, y):
        return torch.stack([y[:, 1], -0.4 * y[:, 1] - self.k * y[:, 0]], dim=1)

    def matrix(self):
        return torch.stack([torch.stack([torch.zeros_like(self.k), torch.ones_like(self.k)]),
                            torch.stack([-self.k, torch.full_like(self.k, -0.4)])])


def y0_leaf():
    return torch.tensor([[1.0, 0.5]], dtype=torch.float64, requires_grad=True)


def exact(field: Osc, y0: torch.Tensor, t: float) -> torch.Tensor:
    """y(t) = y0 expm(t A)^T, differentiable in y0 and k."""
    return y0 @ torch.linalg.matrix_exp(t * field.matrix()).T


def grads_of(loss, field, y0):
    return torch.autograd.grad(loss, (y0, field.k))


def _f1(adjoint, points: int, max_steps: int) -> None:
    field, y0 = Osc(), y0_leaf()
    t = torch.linspace(0, 10, points, dtype=torch.float64)
    sol = odeint(field, y0, t, adjoint=adjoint, rtol=1e-8, atol=1e-8, max_steps=max_steps)
    g = grads_of(sol.ys[-1].sum(), field, y0)
    ref = grads_of(exact(field, y0, 10.0).sum(), field, y0)
    for a, b in zip(g, ref):
        assert torch.allclose(a, b, rtol=1e-5, atol=1e-9)


@pytest.mark.parametrize("adjoint", ["backsolve", "checkpointed"])
def test_f1_adjoint_differentiates_more_output_intervals_than_max_steps(adjoint):
    # 300 output intervals, max_steps 200 (the forward takes 160 attempts): the backward
    # budget is per output interval
    _f1(adjoint, 301, 200)


@pytest.mark.slow
@pytest.mark.parametrize("adjoint", ["backsolve", "checkpointed"])
def test_f1_issue_reproducer(adjoint):
    _f1(adjoint, 10002, 10_000)  # the issue's grid with the default max_steps


@pytest.mark.parametrize("adjoint", MODES, ids=str)
def test_f2_intervals_of_a_few_ulp(adjoint):
    field, y0 = Osc(), y0_leaf()
    t = torch.tensor([1.0, 1.0 + 2 ** -52], dtype=torch.float64)
    sol = odeint(field, y0, t, adjoint=adjoint)
    assert torch.allclose(sol.ys[-1], y0, rtol=0, atol=1e-14)
    t = torch.tensor([0.0, 1.0 - 2 ** -53, 1.0], dtype=torch.float64)
    sol = odeint(field, y0, t, adjoint=adjoint, rtol=1e-10, atol=1e-10)
    g = grads_of(sol.ys[1:].sum(), field, y0)
    ref = grads_of(2 * exact(field, y0, 1.0).sum(), field, y0)
    for a, b in zip(g, ref):
        assert torch.allclose(a, b, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("adjoint", MODES, ids=str)
def test_f4_gradients_carry_no_graph(adjoint):
    field, y0 = Osc(), y0_leaf()
    sol = odeint(field, y0, torch.tensor([0.0, 1.0], dtype=torch.float64), adjoint=adjoint)
    g, gk = grads_of(sol.ys[-1].sum(), field, y0)
    assert not g.requires_grad and g.grad_fn is None and not gk.requires_grad
    g.numpy()


@pytest.mark.parametrize("adjoint", MODES, ids=str)
@pytest.mark.parametrize("grid", [[1.0, 0.0], [2.0, 1.5, 1.0, 0.0]])
def test_f5_decreasing_grids_with_gradients(adjoint, grid):
    field, y0 = Osc(), y0_leaf()
    t = torch.tensor(grid, dtype=torch.float64)
    sol = odeint(field, y0, t, adjoint=adjoint, rtol=1e-10, atol=1e-10)
    t0 = grid[0]
    for i, ti in enumerate(grid):
        assert torch.allclose(sol.ys[i], exact(field, y0, ti - t0), rtol=1e-8, atol=1e-9)
    w = torch.tensor([[0.3, -1.1]], dtype=torch.float64)
    loss = sum((sol.ys[i] * w).sum() * (i + 1) for i in range(1, len(grid)))
    ref_loss = sum((exact(field, y0, ti - t0) * w).sum() * (i + 1) for i, ti in enumerate(grid) if i)
    for a, b in zip(grads_of(loss, field, y0), grads_of(ref_loss, field, y0)):
        assert torch.allclose(a, b, rtol=1e-6, atol=1e-9)


def test_f5_backward_in_time_undoes_forward():
    field = Osc()
    y0 = torch.tensor([[1.0, 0.5]], dtype=torch.float64)
    with torch.no_grad():
        y1 = odeint(field, y0, [0.0, 2.0], rtol=1e-11, atol=1e-11).ys[-1]
        back = odeint(field, y1, [2.0, 0.0], rtol=1e-11, atol=1e-11).ys[-1]
    assert torch.allclose(back, y0, atol=1e-8)


class Lin(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(2, 2)

    def forward(self, t, y):
        return self.lin(y) - self.lin.bias  # zero at rest


def test_issue13a_float32_state_at_rest_is_solved():
    torch.manual_seed(0)
    sol = odeint(Lin(), torch.zeros(2, 2), torch.tensor([0.0, 3.0]))
    assert torch.equal(sol.ys[-1], torch.zeros(2, 2))
    assert sol.stats.rejected == 0


class Huge(nn.Module):
    def forward(self, t, y):
        return 1e16 * (y + 1)


def test_issue13b_overflowing_field_is_a_solver_error():
    with pytest.raises(SolverError) as info:
        odeint(Huge(), torch.ones(2, 3), torch.tensor([0.0, 1.0]))
    assert info.value.phase == "forward"


@pytest.mark.parametrize("name,value", [("rtol", 5e-324), ("rtol", 1e-20), ("rtol", math.inf), ("atol", math.inf),
                                        ("atol", math.nan), ("rtol", 0.0), ("atol", -1.0), ("rtol", True)])
def test_bad_tolerances_are_refused_by_name(name, value):
    with pytest.raises(ValueError, match=name):
        SolverOptions(**{name: value})
    with pytest.raises(ValueError, match=name):
        odeint(Osc(), y0_leaf(), [0.0, 1.0], **{name: value})


def test_field_returning_another_dtype_is_named():
    with pytest.raises(TypeError, match="returned dtype torch.float64 for a state of dtype torch.float32"):
        odeint(lambda_field(lambda t, y: (-y).double()), torch.ones(2, 2), [0.0, 1.0])


def lambda_field(fn):
    class F(nn.Module):
        def forward(self, t, y):
            return fn(t, y)
    return F()


def test_underflow_inside_an_interval_still_raises():
    # a landing step below the floor is taken; a controller that shrinks below it is not
    class Stiff(nn.Module):
        def forward(self, t, y):
            return -1e30 * y

    with pytest.raises(StepSizeUnderflow):
        odeint(Stiff(), torch.ones(1, 2, dtype=torch.float64), [0.0, 1.0])
