"""The native backend's Dormand–Prince 5(4) stepper: order, dense output, step counts,
closed forms, dtypes and shapes."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from pyhbnode import odeint

from pyhbnode.solving import Controller, FixedStep, IController, PIController
from pyhbnode.solving.backends.native import DOPRI5, DOPRI5_SHAMPINE, NativeBackend
from pyhbnode.solving.backends.native.dopri5 import dense_weights


class Linear(nn.Module):
    """dy/dt = y A^T (a damped rotation); exact solution y0 expm(tA)^T."""

    def __init__(self, dtype=torch.float64) -> None:
        super().__init__()
        self.register_buffer("A", torch.tensor([[-0.1, 1.0], [-1.0, -0.1]], dtype=dtype))

    def forward(self, t, y):
        return y @ self.A.T

    def exact(self, y0, t):
        return y0 @ torch.linalg.matrix_exp(t * self.A).T


def fixed_solve(field, y0, t, h):
    sol = odeint(field, y0, torch.as_tensor(t, dtype=y0.dtype), backend="torch", controller=FixedStep(h))
    return sol.ys, sol.stats


def slope(hs, errs):
    return np.polyfit(np.log(hs), np.log(errs), 1)[0]


def test_tableau_is_consistent():
    for tab in (DOPRI5, DOPRI5_SHAMPINE):
        for c, row in zip(tab.c, tab.a):
            assert math.isclose(sum(row), c, abs_tol=1e-14)  # row sums equal the nodes
        assert math.isclose(sum(tab.b), 1.0, abs_tol=1e-14)
        assert math.isclose(sum(tab.e), 0.0, abs_tol=1e-14)  # both embedded solutions are consistent
        assert tab.b[-1] == 0.0 and tab.a[-1] == tab.b[:-1]  # FSAL
    # the interpolant reproduces the step's ends
    assert dense_weights(0.0) == (1.0, 0.0, 0.0, 0.0, 0.0)
    assert np.allclose(dense_weights(1.0), (0.0, 1.0, 0.0, 0.0, 0.0))


def test_convergence_order_is_five():
    field = Linear()
    y0 = torch.tensor([[1.0, 0.5]], dtype=torch.float64)
    hs = [1 / 4, 1 / 8, 1 / 16, 1 / 32]
    errs = []
    for h in hs:
        ys, stats = fixed_solve(field, y0, [0.0, 2.0], h)
        assert stats.steps == stats.accepted == round(2.0 / h) and stats.rejected == 0
        errs.append((ys[-1] - field.exact(y0, 2.0)).abs().max().item())
    assert 4.7 < slope(hs, errs) < 5.4, errs


def test_dense_output_error_order():
    # one step of size h, output in the middle: the 4th-order interpolant's local error is O(h^5)
    field = Linear()
    y0 = torch.tensor([[1.0, 0.5]], dtype=torch.float64)
    hs = [0.8, 0.4, 0.2, 0.1]
    errs = []
    for h in hs:
        ys, stats = fixed_solve(field, y0, [0.0, 0.3 * h, h], h)
        assert stats.steps == 1
        errs.append((ys[1] - field.exact(y0, 0.3 * h)).abs().max().item())
    assert 4.5 < slope(hs, errs) < 5.6, errs


def test_many_output_points_match_closed_form():
    field = Linear()
    y0 = torch.randn(5, 2, dtype=torch.float64)
    t = torch.linspace(0.0, 3.0, 101, dtype=torch.float64)
    sol = odeint(field, y0, t, backend="torch", rtol=1e-9, atol=1e-9)
    exact = torch.stack([field.exact(y0, float(ti)) for ti in t])
    assert sol.ys.shape == (101, 5, 2)
    assert (sol.ys - exact).abs().max() < 1e-7
    assert sol.stats.steps < 100  # outputs come from the dense output, not from extra steps


class Decay(nn.Module):
    def __init__(self, k: float) -> None:
        super().__init__()
        self.k = k

    def forward(self, t, y):
        return -self.k * y


class Oscillator(nn.Module):
    """Harmonic oscillator x'' = -w^2 x as a (batch, 2, n) state (x, v)."""

    def __init__(self, w: float) -> None:
        super().__init__()
        self.w = w

    def forward(self, t, y):
        return torch.stack([y[:, 1], -self.w ** 2 * y[:, 0]], dim=1)


@pytest.mark.parametrize("tol", [1e-6, 1e-9])
def test_exponential_decay_closed_form(tol):
    y0 = torch.rand(3, 4, dtype=torch.float64) + 0.5
    t = torch.tensor([0.0, 0.5, 2.0], dtype=torch.float64)
    sol = odeint(Decay(1.3), y0, t, backend="torch", rtol=tol, atol=tol)
    exact = y0 * torch.exp(-1.3 * t).view(-1, 1, 1)
    assert (sol.ys - exact).abs().max() < 20 * tol
    assert sol.stats.accepted + sol.stats.rejected == sol.stats.steps
    assert sol.stats.nfe_forward == 2 + 6 * sol.stats.steps


def test_harmonic_oscillator_closed_form():
    w = 2.0
    y0 = torch.tensor([[[1.0, 0.3], [0.0, -0.5]]], dtype=torch.float64)  # (1, 2, 2)
    t = torch.linspace(0, 10, 6, dtype=torch.float64)
    sol = odeint(Oscillator(w), y0, t, backend="torch", rtol=1e-10, atol=1e-10)
    x0, v0 = y0[:, 0], y0[:, 1]
    x = x0 * torch.cos(w * t).view(-1, 1, 1) + v0 / w * torch.sin(w * t).view(-1, 1, 1)
    assert (sol.ys[:, :, 0] - x).abs().max() < 1e-8


class Alternating(Controller):
    """Stub: fixed step, rejects every other attempt."""

    def __init__(self, h: float) -> None:
        self.initial = h
        self.calls = 0

    def accepts(self, r: float) -> bool:
        self.calls += 1
        return self.calls % 2 == 0

    def next_step(self, h, r, accepted):
        return self.initial


def test_exact_step_counts_with_stub_controller():
    y0 = torch.ones(2, 3, dtype=torch.float64)
    stub = Alternating(0.25)
    stats = odeint(Decay(1.0), y0, torch.tensor([0.0, 1.0], dtype=torch.float64), controller=stub).stats
    assert stub.calls == 0  # each solve steps with its own copy of the controller
    assert (stats.steps, stats.accepted, stats.rejected) == (8, 4, 4)
    assert stats.nfe_forward == 1 + 6 * 8  # f(y0) plus 6 per attempt; no initial-step probe


def test_constant_field_step_growth_is_exact():
    # a constant field has zero error estimate: the I controller grows the step 10x a step
    class Const(nn.Module):
        def forward(self, t, y):
            return torch.ones_like(y)

    y0 = torch.zeros(1, 1, dtype=torch.float64)
    sol = odeint(Const(), y0, [0.0, 1.0], backend="torch", rtol=1e-6, atol=1e-6)
    # Hairer's start: d0 = 0 -> h0 = 1e-6; d1 = 1e6, d2 = 0 -> h1 = (0.01 / 1e6)^(1/5) = 0.025;
    # h = min(100 h0, h1) = 1e-4.  Steps 1e-4, 1e-3, 1e-2, 1e-1 (t = 0.1111), then the rest.
    assert (sol.stats.steps, sol.stats.rejected) == (5, 0)
    assert sol.stats.nfe_forward == 2 + 6 * 5
    assert torch.allclose(sol.ys[-1], torch.ones(1, 1, dtype=torch.float64))


def test_same_steps_as_torchdiffeq_in_float64():
    torch.manual_seed(0)
    f = nn.Sequential(nn.Linear(3, 16), nn.Tanh(), nn.Linear(16, 3)).double()

    class F(nn.Module):
        def __init__(self):
            super().__init__()
            self.f = f

        def forward(self, t, y):
            return self.f(y)

    y0 = torch.randn(8, 3, dtype=torch.float64)
    a = odeint(F(), y0, [0.0, 1.0], backend="torch", rtol=1e-8, atol=1e-8)
    b = odeint(F(), y0, [0.0, 1.0], backend="torchdiffeq", rtol=1e-8, atol=1e-8)
    assert abs(a.stats.nfe_forward - b.stats.nfe_forward) <= 6  # only the last step may differ
    assert (a.ys[-1] - b.ys[-1]).abs().max() < 1e-7


@pytest.mark.parametrize("shape", [(7,), (4, 3), (2, 2, 3), (2, 3, 4, 5)])
def test_batched_states_of_any_shape(shape):
    y0 = torch.randn(*shape, dtype=torch.float64)
    sol = odeint(Decay(0.5), y0, [0.0, 1.0], backend="torch", rtol=1e-8, atol=1e-8)
    assert sol.ys.shape == (2, *shape)
    assert torch.allclose(sol.ys[-1], y0 * math.exp(-0.5), atol=1e-7)


def test_float32_smoke():
    torch.manual_seed(0)
    f = nn.Sequential(nn.Linear(2, 8), nn.Tanh(), nn.Linear(8, 2))

    class F(nn.Module):
        def __init__(self):
            super().__init__()
            self.f = f

        def forward(self, t, y):
            return self.f(y)

    y0 = torch.randn(4, 2, requires_grad=True)
    for mode in NativeBackend().modes:
        sol = odeint(F(), y0, [0.0, 1.0], backend="torch", adjoint=mode(), rtol=1e-5, atol=1e-5)
        assert sol.ys.dtype == torch.float32
        sol.ys[-1].sum().backward()
        assert y0.grad is not None and torch.isfinite(y0.grad).all()
        y0.grad = None


@pytest.mark.parametrize("controller", ["pi", PIController(embedded="dp"), "hairer", IController(embedded="dp")])
def test_other_controllers_and_dp_weights_solve_too(controller):
    y0 = torch.rand(3, 2, dtype=torch.float64)
    sol = odeint(Decay(2.0), y0, torch.tensor([0.0, 1.0], dtype=torch.float64), rtol=1e-9, atol=1e-9,
                 controller=controller)
    assert torch.allclose(sol.ys[-1], y0 * math.exp(-2.0), atol=1e-8)


def test_bad_controllers_are_refused_by_name():
    y0 = torch.rand(3, 2, dtype=torch.float64)
    with pytest.raises(ValueError, match="controller 'pid'"):
        odeint(Decay(2.0), y0, [0.0, 1.0], controller="pid")
    with pytest.raises(TypeError, match="controller must be"):
        odeint(Decay(2.0), y0, [0.0, 1.0], controller=3)
    with pytest.raises(ValueError, match="embedded"):
        IController(embedded="bogacki")
    with pytest.raises(ValueError, match="takes no step-size controller"):
        odeint(Decay(2.0), y0, [0.0, 1.0], backend="torchdiffeq", adjoint="backsolve", controller="hairer")


def test_no_gradient_for_time_grid():
    t = torch.tensor([0.0, 1.0], dtype=torch.float64, requires_grad=True)
    with pytest.raises(ValueError, match="time grid"):
        odeint(Decay(1.0), torch.ones(1, 1, dtype=torch.float64), t, backend="torch")


def test_icontroller_factors():
    c = IController().start(5)
    assert c.next_step(1.0, 0.0, True) == 10.0
    assert c.next_step(1.0, 2.0 ** 5, False) == pytest.approx(0.45)
    assert c.next_step(1.0, 1e9, False) == 0.2
    assert c.next_step(1.0, 0.9, True) >= 1.0  # never shrinks after an accepted step
    assert c.next_step(1.0, float("nan"), False) == 0.2


class _Decay(nn.Module):
    def forward(self, t, y):
        return -y


@pytest.mark.parametrize("dtype, scale", [(torch.float32, 1e30), (torch.float32, 1e35), (torch.float32, 3e38),
                                          (torch.float64, 1e300)])
def test_states_near_the_largest_value_of_the_dtype_are_solved(dtype, scale):
    """The error ratio is formed and normed without overflow: y0 = 3e38 in float32 once made
    the step shrink until max_steps (|err|/rtol and |err|² overflowed)."""
    y0 = torch.tensor([[scale, -0.5 * scale]], dtype=dtype)
    t = torch.linspace(0.0, 1.0, 8, dtype=dtype)
    sol = odeint(_Decay(), y0, t, backend="torch", compile=False)
    exact = torch.exp(-t.double()).view(-1, 1, 1) * y0.double()
    assert sol.stats.steps < 100
    assert ((sol.ys.double() - exact).abs() / exact.abs()).max() < 1e-5  # rtol 1e-7: global error ~1e-7, float32 rounding ~1e-6


def test_rms_scales_before_squaring():
    from pyhbnode.solving.backends.native.dopri5 import rms

    x = torch.tensor([[3e38, -3e38, 1e38, 0.0]])
    assert math.isclose(rms(x).item(), math.sqrt((9 + 9 + 1) / 4) * 1e38, rel_tol=1e-6)
    assert math.isclose(rms(x, groups=2).item(), 3e38, rel_tol=1e-6)  # the larger group's RMS
    assert rms(torch.zeros(1, 3)).item() == 0.0
    assert rms(torch.tensor([[1e300, 1e300]], dtype=torch.float64)).item() == pytest.approx(1e300)
