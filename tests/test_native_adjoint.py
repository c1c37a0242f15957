"""The native backend's gradient modes: every adjoint against backprop through the solver
(float64, tight tolerances), ``gradcheck``, seminorm, output grids."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from pyhbnode import GHBNODE, HBNODE, NODE, odeint
from pyhbnode.fields import mlp

ADJOINTS = ("backsolve", "checkpointed")


def make(model: str, n: int = 3, hidden: int = 10):
    torch.manual_seed(1)
    f = mlp([n, hidden, hidden, n], "tanh")
    field = {
        "node": lambda: NODE(f),
        "hbnode": lambda: HBNODE(f, omega=-1.0),
        "ghbnode": lambda: GHBNODE(f, omega=-1.0, chi=0.3),
    }[model]().double()
    shape = (5, n) if model == "node" else (5, 2, n)
    y0 = (0.5 * torch.randn(shape, dtype=torch.float64)).requires_grad_()
    return field, y0


def grads(field, y0, t, adjoint, tol=1e-10, seminorm=False):
    params = [p for p in field.parameters() if p.requires_grad]
    sol = odeint(field, y0, t, backend="torch", adjoint=adjoint, rtol=tol, atol=tol, seminorm=seminorm)
    w = torch.linspace(-1, 1, sol.ys[0].numel(), dtype=torch.float64).view_as(sol.ys[0])
    loss = (sol.ys[-1] * w).sum() + sol.ys[-1].pow(2).sum() + 0.5 * sol.ys[1:-1].pow(3).sum()
    return torch.autograd.grad(loss, [y0, *params]), sol.stats


def rel_err(a, b):
    return ((a - b).norm() / b.norm().clamp_min(1e-12)).item()


@pytest.mark.parametrize("model", ["node", "hbnode", "ghbnode"])
@pytest.mark.parametrize("adjoint", ADJOINTS)
def test_adjoint_matches_direct(model, adjoint):
    field, y0 = make(model)
    t = torch.tensor([0.0, 0.7, 1.5], dtype=torch.float64)
    ref, _ = grads(field, y0, t, "direct")
    got, stats = grads(field, y0, t, adjoint)
    assert stats.nfe_backward > 0 and stats.steps_backward > 0
    for a, b in zip(got, ref):
        assert rel_err(a, b) <= 1e-5
    if model != "node":
        # the heavy-ball coefficients' parameters are among the checked gradients
        names = [n for n, p in field.named_parameters() if p.requires_grad]
        assert "damping.omega" in names
        if model == "ghbnode":
            assert "restoring.chi" in names
        omega = dict(zip(names, got[1:]))["damping.omega"]
        assert omega.abs() > 0


@pytest.mark.parametrize("adjoint", ("backsolve",))
def test_seminorm_gives_the_same_gradient_with_fewer_steps(adjoint):
    field, y0 = make("ghbnode")
    t = torch.tensor([0.0, 1.0], dtype=torch.float64)
    ref, _ = grads(field, y0, t, "direct")
    full, full_stats = grads(field, y0, t, adjoint, seminorm=False)
    semi, semi_stats = grads(field, y0, t, adjoint, seminorm=True)
    for a, b in zip(semi, ref):
        assert rel_err(a, b) <= 1e-5
    assert semi_stats.steps_backward <= full_stats.steps_backward


@pytest.mark.parametrize("adjoint", ("direct",) + ADJOINTS)
def test_gradcheck_tiny(adjoint):
    torch.manual_seed(0)
    field = GHBNODE(mlp([2, 4, 2], "tanh"), omega=-1.0, chi=0.2).double()
    y0 = torch.randn(2, 2, 2, dtype=torch.float64, requires_grad=True)

    def fn(y0):
        return odeint(field, y0, [0.0, 0.5, 1.0], backend="torch", adjoint=adjoint, rtol=1e-12, atol=1e-12).ys

    assert torch.autograd.gradcheck(fn, (y0,), atol=1e-6, rtol=1e-4)


@pytest.mark.parametrize("adjoint", ADJOINTS)
def test_parameter_gradients_match_finite_differences(adjoint):
    torch.manual_seed(0)
    field = GHBNODE(mlp([2, 3, 2], "tanh"), omega=-1.0, chi=0.2).double()
    y0 = torch.randn(2, 2, 2, dtype=torch.float64)
    t = [0.0, 0.6, 1.2]

    def loss():
        ys = odeint(field, y0, t, backend="torch", adjoint=adjoint, rtol=1e-12, atol=1e-12).ys
        return ys[1:].pow(2).sum() + ys[-1].sum()

    params = list(field.parameters())
    got = torch.autograd.grad(loss(), params)
    eps = 1e-6
    with torch.no_grad():
        for p, g in zip(params, got):
            flat, gflat = p.view(-1), g.reshape(-1)
            for i in range(flat.numel()):
                old = flat[i].item()
                flat[i] = old + eps
                up = loss().item()
                flat[i] = old - eps
                down = loss().item()
                flat[i] = old
                fd = (up - down) / (2 * eps)
                assert abs(fd - gflat[i].item()) <= 1e-6 + 1e-5 * abs(fd)


def test_params_only_and_y0_only():
    field, y0 = make("hbnode")
    t = torch.tensor([0.0, 1.0], dtype=torch.float64)
    y_fixed = y0.detach()
    for adjoint in ADJOINTS:
        ys = odeint(field, y_fixed, t, backend="torch", adjoint=adjoint, rtol=1e-9, atol=1e-9).ys
        ys[-1].sum().backward()
        assert all(p.grad is not None for p in field.parameters())
        field.zero_grad()
    for p in field.parameters():
        p.requires_grad_(False)
    for adjoint in ADJOINTS:
        ys = odeint(field, y0, t, backend="torch", adjoint=adjoint, rtol=1e-9, atol=1e-9).ys
        (g,) = torch.autograd.grad(ys[-1].sum(), y0)
        assert torch.isfinite(g).all()


def test_checkpointed_is_more_accurate_than_backsolve_for_damped_hbnode():
    # strong damping: the state run backward is anti-damped, backsolve loses accuracy
    torch.manual_seed(0)
    f = mlp([3, 16, 3], "tanh").double()
    field = HBNODE(f, gamma=4.0).double()
    y0 = torch.randn(8, 2, 3, dtype=torch.float64, requires_grad=True)
    t = torch.tensor([0.0, 3.0], dtype=torch.float64)
    ref, _ = grads(field, y0, t, "direct", tol=1e-6)
    err = {}
    for adjoint in ADJOINTS:
        got, _ = grads(field, y0, t, adjoint, tol=1e-6, seminorm=True)
        err[adjoint] = max(rel_err(a, b) for a, b in zip(got, ref))
    assert err["checkpointed"] < 1e-10 < err["backsolve"]


def test_checkpointed_is_the_discrete_gradient():
    # checkpointed backprop through recomputed steps equals backprop through the solver
    for model in ("node", "ghbnode"):
        field, y0 = make(model)
        t = torch.tensor([0.0, 0.3, 0.7, 1.5], dtype=torch.float64)
        ref, ref_stats = grads(field, y0, t, "direct", tol=1e-5)
        got, stats = grads(field, y0, t, "checkpointed", tol=1e-5)
        for a, b in zip(got, ref):
            assert rel_err(a, b) <= 1e-10
        assert stats.steps_backward == stats.accepted
        # 6 evaluations per accepted step, one more for a step holding an interior output
        assert 6 * stats.accepted <= stats.nfe_backward <= 6 * stats.accepted + 2


def test_large_state_path_gradients():
    # states over 8192 elements combine stages with adds instead of addmm
    torch.manual_seed(0)
    field = HBNODE(mlp([64, 16, 64], "tanh"), omega=-1.0).double()
    y0 = (0.3 * torch.randn(70, 2, 64, dtype=torch.float64)).requires_grad_()
    t = torch.tensor([0.0, 0.5, 1.0], dtype=torch.float64)
    ref, _ = grads(field, y0, t, "direct", tol=1e-8)
    for adjoint in ADJOINTS:
        got, _ = grads(field, y0, t, adjoint, tol=1e-8)
        for a, b in zip(got, ref):
            assert rel_err(a, b) <= 1e-5, adjoint


@pytest.mark.parametrize("max_checkpoints", [1, 3])
def test_checkpointed_with_few_checkpoints_replays_exactly(max_checkpoints):
    from pyhbnode.solving import Checkpointed

    field, y0 = make("ghbnode")
    t = torch.tensor([0.0, 0.37, 2.0, 4.0], dtype=torch.float64)
    out = {}
    for k in (None, max_checkpoints):
        sol = odeint(field, y0, t, adjoint=Checkpointed(k), rtol=1e-7, atol=1e-7)
        g = torch.autograd.grad(sol.ys[1:].pow(2).sum(), [y0, *field.parameters()])
        out[k] = (torch.cat([x.reshape(-1) for x in g]), sol.stats)
    (full, s_full), (thin, s_thin) = out[None], out[max_checkpoints]
    assert torch.equal(full, thin)  # replayed steps are bitwise the forward's
    assert s_thin.nfe_backward > s_full.nfe_backward  # the replays are counted
    with pytest.raises(ValueError, match="max_checkpoints"):
        Checkpointed(0)


class _Decay(nn.Module):
    """dy/dt = -y, with no parameters: the gradient reaches y0 only through a·∂f/∂y."""

    def forward(self, t, y):
        return -y


@pytest.mark.parametrize("adjoint", ["checkpointed", "backsolve", "direct"])
def test_field_without_parameters_has_the_exact_state_gradient(adjoint):
    """dL/dy0 = e^-1 for L = y(1) of dy/dt = -y, in every gradient mode (backsolve's row_vjp
    must keep the a·∂f/∂y term when the field has no parameters)."""
    y0 = torch.tensor([[1.0, -2.0]], dtype=torch.float64, requires_grad=True)
    sol = odeint(_Decay(), y0, [0.0, 1.0], backend="torch", adjoint=adjoint, rtol=1e-10, atol=1e-12)
    (g,) = torch.autograd.grad(sol.ys[-1].sum(), y0)
    assert torch.allclose(g, torch.full_like(g, math.exp(-1.0)), rtol=1e-8, atol=0.0), g
