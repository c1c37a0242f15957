"""Adjoint gradients equal backprop through the solver, for every model and backend."""
from __future__ import annotations

import pytest
import torch

from helpers import MODEL_NAMES, initial_state, small_field
from pyhbnode import odeint


def _grads(field, y0, t, backend, adjoint, tol=1e-10):
    y0 = y0.clone().requires_grad_(True)
    sol = odeint(field, y0, t, backend=backend, adjoint=adjoint, rtol=tol, atol=tol)
    weights = torch.linspace(-1.0, 1.0, sol.ys.numel(), dtype=y0.dtype).view_as(sol.ys)
    loss = (weights * sol.ys).sum() + (sol.ys[-1] ** 2).sum()
    params = [p for p in field.parameters()]
    grads = torch.autograd.grad(loss, [y0, *params])
    names = ["y0"] + [n for n, _ in field.named_parameters()]
    return dict(zip(names, grads)), sol.stats


def _adjoint_modes(backend: str) -> list[str]:
    from pyhbnode.solving import get_backend

    return [a for a in get_backend(backend).mode_names() if a != "direct"]


@pytest.mark.parametrize("model", MODEL_NAMES)
def test_adjoint_matches_direct_backprop(model, backend):
    field = small_field(model)
    y0 = initial_state(field)
    t = torch.tensor([0.0, 0.4, 1.0], dtype=torch.float64)
    reference, _ = _grads(field, y0, t, backend, "direct")
    if model in ("hbnode", "ghbnode"):
        assert "damping.omega" in reference
    if model == "ghbnode":
        assert "restoring.chi" in reference
    for adjoint in _adjoint_modes(backend):
        got, stats = _grads(field, y0, t, backend, adjoint)
        assert stats.nfe_backward > 0
        for name, g in reference.items():
            rel = (got[name] - g).norm() / g.norm().clamp_min(1e-12)
            assert rel <= 1e-5, f"{model}/{adjoint}: gradient of {name} off by relative {rel:.2e}"


def test_gradcheck_adjoint(backend):
    """gradcheck of the adjoint w.r.t. y0, and the damping parameter ω against a central
    difference, in float64."""
    field = small_field("hbnode", n=2, hidden=4)
    t = torch.tensor([0.0, 0.5], dtype=torch.float64)
    adjoint = _adjoint_modes(backend)[0]

    def solve(y0):
        return odeint(field, y0, t, backend=backend, adjoint=adjoint, rtol=1e-12, atol=1e-12).ys[-1]

    y0 = initial_state(field, batch=2, n=2).requires_grad_(True)
    assert torch.autograd.gradcheck(solve, (y0,), eps=1e-6, atol=1e-6)

    omega = field.damping.omega
    (g,) = torch.autograd.grad(solve(y0.detach()).sum(), omega)
    base, h = float(omega.detach()), 1e-6
    values = []
    with torch.no_grad():
        for shifted in (base + h, base - h):
            omega.fill_(shifted)
            values.append(float(solve(y0.detach()).sum()))
        omega.fill_(base)
    fd = (values[0] - values[1]) / (2 * h)
    assert abs(float(g) - fd) <= 1e-6 * max(1.0, abs(fd))
