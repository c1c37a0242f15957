"""The torchdiffeq backend: gradient modes, budgets per pass, decreasing and tiny grids.

References are closed forms: the issue's oscillator ``x'' + 0.4 x' + k x = 0`` (k = 4) is
linear, ``y(t) = expm(A (t - t0)) y0`` with ``A = [[0, 1], [-k, -0.4]]``, and its gradients
with respect to ``y0`` and ``k`` come from autograd through ``torch.linalg.matrix_exp``.
"""
from __future__ import annotations

import pytest
import torch
from torch import nn

from helpers import MODEL_NAMES, initial_state, small_field
from pyhbnode import MaxStepsExceeded, odeint
from pyhbnode.solving import SolverOptions, SolverStats, get_backend

BACKEND = "torchdiffeq"
MODES = ("backsolve", "checkpointed", "direct")


class Osc(nn.Module):
    """x'' + 0.4 x' + k x = 0 as a first-order field on y = (x, x'), one parameter k."""

    def __init__(self, k: float = 4.0) -> None:
        super().__init__()
        self.k = nn.Parameter(torch.tensor(k, dtype=torch.float64))

    def forward(self, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        x, v = y[..., 0], y[..., 1]
        return torch.stack([v, -0.4 * v - self.k * x], dim=-1)


def closed_form(k: torch.Tensor, y0: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """``(T, *y0.shape)`` exact states of :class:`Osc` on the grid ``t`` (either direction)."""
    zero, one = torch.zeros_like(k), torch.ones_like(k)
    a = torch.stack([torch.stack([zero, one]), torch.stack([-k, -0.4 * one])])
    return torch.stack([y0 @ torch.linalg.matrix_exp(a * (ti - t[0])).T for ti in t])


def y0_osc(requires_grad: bool = True) -> torch.Tensor:
    return torch.tensor([[1.0, 0.5]], dtype=torch.float64, requires_grad=requires_grad)


def solve_backend(field, y0, t, adjoint, **options) -> tuple[torch.Tensor, SolverStats]:
    """Call the backend itself: ``odeint``'s validation (another module) may still refuse
    decreasing grids; the backend is what has to solve them."""
    stats = SolverStats()
    ys = get_backend(BACKEND).solve(field, y0, t, SolverOptions(backend=BACKEND, adjoint=adjoint, **options), stats)
    return ys, stats


def exact_grads(t: torch.Tensor, weights: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    k = torch.tensor(4.0, dtype=torch.float64, requires_grad=True)
    y0 = y0_osc()
    loss = (weights * closed_form(k, y0, t)).sum()
    gy0, gk = torch.autograd.grad(loss, [y0, k])
    return gy0, gk


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm().clamp_min(1e-300))


# ---- gradient modes -------------------------------------------------------------------

@pytest.mark.parametrize("model", MODEL_NAMES)
def test_checkpointed_is_direct_to_1e12(model):
    """The replay differentiates the forward's own steps: direct's gradient, to rounding."""
    field = small_field(model)
    y0 = initial_state(field)
    t = torch.tensor([0.0, 0.3, 1.0], dtype=torch.float64)
    grads, stats = {}, {}
    for mode in ("direct", "checkpointed"):
        y = y0.clone().requires_grad_(True)
        sol = odeint(field, y, t, backend=BACKEND, adjoint=mode, rtol=1e-8, atol=1e-8)
        weights = torch.linspace(-1.0, 1.0, sol.ys.numel(), dtype=torch.float64).view_as(sol.ys)
        grads[mode] = torch.autograd.grad((weights * sol.ys).sum(), [y, *field.parameters()])
        stats[mode] = sol.stats
    for g_direct, g_ckpt in zip(grads["direct"], grads["checkpointed"]):
        assert rel(g_ckpt, g_direct) <= 1e-12
    # NFE: the replay evaluates the field as often as the forward did, one VJP each
    s = stats["checkpointed"]
    assert s.nfe_backward == s.nfe_forward == stats["direct"].nfe_forward
    assert s.steps_backward == s.steps


def test_checkpointed_nfe_per_pass_and_no_graph_in_gradient():
    field = Osc()
    y0 = y0_osc()
    sol = odeint(field, y0, torch.tensor([0.0, 1.0], dtype=torch.float64), backend=BACKEND, adjoint="checkpointed")
    assert sol.stats.nfe_backward == 0
    (g1,) = torch.autograd.grad(sol.ys[-1].sum(), y0, retain_graph=True)
    assert sol.stats.nfe_backward == sol.stats.nfe_forward
    (g2,) = torch.autograd.grad(sol.ys[-1].sum(), y0)
    assert sol.stats.nfe_backward == 2 * sol.stats.nfe_forward
    assert torch.equal(g1, g2)


@pytest.mark.parametrize("mode", MODES)
def test_gradients_carry_no_graph(mode):
    """F4: the y0 gradient of every mode is a plain tensor."""
    y0 = y0_osc()
    sol = odeint(Osc(), y0, torch.tensor([0.0, 1.0], dtype=torch.float64), backend=BACKEND, adjoint=mode)
    (g,) = torch.autograd.grad(sol.ys[-1].sum(), y0)
    assert not g.requires_grad
    g.numpy()


def test_checkpointed_parameters_only_and_time_gradient():
    """No input but the parameters needs a gradient (a plain torch checkpoint would drop them),
    and a gradient with respect to t matches direct's."""
    t_grid = torch.tensor([0.0, 0.5, 1.5], dtype=torch.float64)
    got = {}
    for mode in ("direct", "checkpointed"):
        field = Osc()
        t = t_grid.clone().requires_grad_(True)
        sol = odeint(field, y0_osc(requires_grad=False), t, backend=BACKEND, adjoint=mode, rtol=1e-9, atol=1e-9)
        got[mode] = torch.autograd.grad(sol.ys.sum(), [field.k, t])
    for a, b in zip(got["checkpointed"], got["direct"]):
        assert rel(a, b) <= 1e-12


class NoisyField(nn.Module):
    """A field with dropout: the replay must see the same mask as the forward."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(4, 4).double()
        self.drop = nn.Dropout(0.3)

    def forward(self, t, y):
        return torch.tanh(self.drop(self.lin(y)))


def test_checkpointed_replays_with_the_forward_random_state():
    field = NoisyField()
    y0 = torch.randn(3, 4, dtype=torch.float64)
    t = torch.tensor([0.0, 1.0], dtype=torch.float64)
    grads = {}
    for mode in ("direct", "checkpointed"):
        torch.manual_seed(7)
        sol = odeint(field, y0, t, backend=BACKEND, adjoint=mode, method="rk4")
        torch.manual_seed(123)  # the backward must not depend on the random state it finds
        grads[mode] = torch.autograd.grad(sol.ys[-1].pow(2).sum(), list(field.parameters()))
    for a, b in zip(grads["checkpointed"], grads["direct"]):
        assert rel(a, b) <= 1e-12


def test_interpolating_is_not_offered():
    y0 = y0_osc()
    with pytest.raises(ValueError, match=r"torchdiffeq.*interpolating.*backsolve"):
        odeint(Osc(), y0, [0.0, 1.0], backend=BACKEND, adjoint="interpolating")


def test_default_gradient_mode_is_checkpointed():
    """No ``adjoint=`` means ``Checkpointed()`` here as on every backend: the replay's
    gradient, bit-identical to ``direct``'s."""
    assert set(get_backend(BACKEND).mode_names()) == set(MODES)
    y0 = y0_osc()
    t = torch.tensor([0.0, 0.7, 1.5], dtype=torch.float64)
    default = odeint(Osc(), y0, t, backend=BACKEND)
    assert default.stats.steps_backward is None or default.stats.steps_backward == 0
    g_default, = torch.autograd.grad(default.ys[-1].sum(), y0)
    g_direct, = torch.autograd.grad(odeint(Osc(), y0, t, backend=BACKEND, adjoint="direct").ys[-1].sum(), y0)
    assert torch.equal(g_default, g_direct)
    assert default.stats.steps_backward > 0  # the replay ran (direct runs none)


# ---- F1: max_steps per pass, and grids with more intervals than max_steps -------------

@pytest.mark.parametrize("mode", MODES)
def test_grid_with_more_intervals_than_max_steps_differentiates(mode):
    """F1 (small): 60 output intervals, max_steps = 40, every mode against the closed form."""
    t = torch.linspace(0.0, 2.0, 61, dtype=torch.float64)
    y0 = y0_osc()
    field = Osc()
    sol = odeint(field, y0, t, backend=BACKEND, adjoint=mode, rtol=1e-8, atol=1e-8, max_steps=40)
    assert sol.stats.steps <= 40
    weights = torch.linspace(-1.0, 1.0, sol.ys.numel(), dtype=torch.float64).view_as(sol.ys)
    gy0, gk = torch.autograd.grad((weights * sol.ys).sum(), [y0, field.k])
    ey0, ek = exact_grads(t, weights)
    assert rel(gy0, ey0) <= 1e-5 and rel(gk, ek) <= 1e-5
    if mode == "backsolve":
        assert sol.stats.steps_backward > 60  # more attempts than max_steps, all allowed


@pytest.mark.slow
def test_issue_f1_reproducer_backsolve():
    """F1 as filed: 10,001 intervals, default max_steps (10,000), backsolve.  Minutes: every
    interval is its own torchdiffeq solve in odeint_adjoint's backward."""
    t = torch.linspace(0, 10, 10002, dtype=torch.float64)
    y0 = y0_osc()
    field = Osc()
    sol = odeint(field, y0, t, backend=BACKEND, adjoint="backsolve", rtol=1e-8, atol=1e-8)
    gy0, gk = torch.autograd.grad(sol.ys[-1].sum(), [y0, field.k])
    weights = torch.zeros_like(sol.ys)
    weights[-1] = 1.0
    ey0, ek = exact_grads(t, weights)
    assert rel(gy0, ey0) <= 1e-5 and rel(gk, ek) <= 1e-5


def test_max_steps_counts_attempts_over_the_whole_solve():
    """19 intervals of ~9 attempts each: torchdiffeq's per-interval count would allow
    max_steps = 100; ours counts the solve, and stops at attempt 101 exactly."""
    t = torch.linspace(0, 10, 20, dtype=torch.float64)
    full = odeint(Osc(), y0_osc(False), t, backend=BACKEND, rtol=1e-8, atol=1e-8)
    assert full.stats.steps > 100
    with pytest.raises(MaxStepsExceeded, match="max_steps = 100") as info:
        odeint(Osc(), y0_osc(False), t, backend=BACKEND, rtol=1e-8, atol=1e-8, max_steps=100)
    assert info.value.nfe_forward == 2 + 6 * 100 and info.value.phase == "forward"


class StiffWhenDifferentiated(nn.Module):
    """dy/dt = -w y, but 10^4 times stiffer under autograd: the forward (run without a graph by
    both adjoint modes) is cheap, their backward pass is not."""

    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.tensor(1.0, dtype=torch.float64))

    def forward(self, t, y):
        return -(1e4 if torch.is_grad_enabled() else 1.0) * self.w * y


@pytest.mark.parametrize("mode", ["backsolve", "checkpointed"])
def test_backward_pass_has_its_own_budget(mode):
    sol = odeint(StiffWhenDifferentiated(), torch.ones(2, 1, dtype=torch.float64), [0.0, 1.0],
                 backend=BACKEND, adjoint=mode, max_steps=50)
    assert sol.stats.steps <= 50
    with pytest.raises(MaxStepsExceeded, match="max_steps = 50") as info:
        sol.ys[-1].sum().backward()
    assert info.value.phase == "backward" and info.value.nfe_backward > 0


# ---- F3: repeated backward passes through one solution --------------------------------

@pytest.mark.parametrize("mode", MODES)
def test_repeated_backward_passes_do_not_accumulate_the_budget(mode):
    """F3: 40 passes through one solution whose budget fits fewer than 2 passes' attempts."""
    field = Osc()
    y0 = y0_osc()
    t = torch.tensor([0.0, 1.0], dtype=torch.float64)
    probe = odeint(field, y0.detach(), t, backend=BACKEND, rtol=1e-6, atol=1e-6)
    sol = odeint(field, y0, t, backend=BACKEND, adjoint=mode, rtol=1e-6, atol=1e-6, max_steps=probe.stats.steps)
    first = []
    for i in range(40):
        (g,) = torch.autograd.grad(sol.ys[-1, 0, i % 2], y0, retain_graph=True)
        if i < 2:
            first.append(g)
        assert torch.equal(g, first[i % 2])
    per_pass = sol.stats.nfe_backward / 40
    assert per_pass == int(per_pass) > 0  # every pass costs the same
    if mode != "direct":
        assert sol.stats.steps_backward > 2 * (probe.stats.steps + 3)  # > two passes' budget in all


@pytest.mark.slow
def test_issue_f3_reproducer():
    """F3 as filed: a few hundred passes through one 20-point solution at the default budget."""
    y0 = y0_osc()
    sol = odeint(Osc(), y0, torch.linspace(0, 10, 20, dtype=torch.float64), backend=BACKEND, adjoint="backsolve")
    for i in range(300):
        torch.autograd.grad(sol.ys[-1, 0, i % 2], y0, retain_graph=True)
    assert sol.stats.steps_backward > 10_000


def test_gradcheck_and_jacobian_through_one_solution():
    """gradcheck (many passes over each solve) in both adjoint modes; a Jacobian by rows."""
    t = torch.tensor([0.0, 0.5, 1.0], dtype=torch.float64)
    for mode in ("backsolve", "checkpointed"):
        def solve(y0, mode=mode):
            return odeint(Osc(), y0, t, backend=BACKEND, adjoint=mode, rtol=1e-10, atol=1e-10, max_steps=200).ys[-1]

        assert torch.autograd.gradcheck(solve, (y0_osc(),), eps=1e-6, atol=1e-5)
        jac = torch.autograd.functional.jacobian(solve, y0_osc(False))
        exact = torch.linalg.matrix_exp(torch.tensor([[0.0, 1.0], [-4.0, -0.4]], dtype=torch.float64))
        assert rel(jac.reshape(2, 2), exact) <= 1e-8


# ---- F5: decreasing grids, F2: intervals of a few ulp ---------------------------------

@pytest.mark.parametrize("grid", [[1.0, 0.0], [2.0, 1.5, 1.0, 0.0]])
@pytest.mark.parametrize("mode", MODES)
def test_decreasing_grid_with_gradients(grid, mode):
    t = torch.tensor(grid, dtype=torch.float64)
    field, y0 = Osc(), y0_osc()
    ys, stats = solve_backend(field, y0, t, mode, rtol=1e-10, atol=1e-10)
    exact = closed_form(torch.tensor(4.0, dtype=torch.float64), y0.detach(), t)
    assert rel(ys.detach(), exact) <= 1e-8
    weights = torch.linspace(-1.0, 1.0, ys.numel(), dtype=torch.float64).view_as(ys)
    gy0, gk = torch.autograd.grad((weights * ys).sum(), [y0, field.k])
    ey0, ek = exact_grads(t, weights)
    assert rel(gy0, ey0) <= 1e-7 and rel(gk, ek) <= 1e-7
    assert stats.nfe_backward > 0


@pytest.mark.parametrize("ulps", [1, 2, 4])
@pytest.mark.parametrize("mode", MODES)
def test_intervals_of_a_few_ulp(ulps, mode):
    """F2: t = [1, 1 + n ulp] gives y0 + h f(y0) to rounding; [0, 1 - ulp, 1] differentiates."""
    eps = 2.0 ** -52
    t = torch.tensor([1.0, 1.0 + ulps * eps], dtype=torch.float64)
    field, y0 = Osc(), y0_osc()
    sol = odeint(field, y0, t, backend=BACKEND, adjoint=mode)
    euler = y0 + (t[1] - t[0]) * field(t[0], y0)
    assert torch.allclose(sol.ys[-1], euler, rtol=0, atol=4 * eps)
    (g,) = torch.autograd.grad(sol.ys[-1].sum(), y0)
    assert torch.allclose(g, torch.ones_like(g), rtol=0, atol=1e-12)  # dy1/dy0 = I + O(h)

    t = torch.tensor([0.0, 1.0 - ulps * eps / 2, 1.0], dtype=torch.float64)
    field, y0 = Osc(), y0_osc()
    sol = odeint(field, y0, t, backend=BACKEND, adjoint=mode, rtol=1e-10, atol=1e-10)
    weights = torch.ones_like(sol.ys)
    gy0, gk = torch.autograd.grad((weights * sol.ys).sum(), [y0, field.k])
    ey0, ek = exact_grads(t, weights)
    assert rel(gy0, ey0) <= 1e-7 and rel(gk, ek) <= 1e-7
