"""The paper's mathematics checked numerically: a closed-form heavy-ball solution, the
adjoint systems of Propositions 2 and 3, and the eigenvalue pairing of Proposition 4."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from pyhbnode import GHBNODE, HBNODE, odeint



@pytest.fixture(autouse=True)
def _float64():
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old)


class Spring(nn.Module):
    """f(h) = -k h."""

    def __init__(self, k: float) -> None:
        super().__init__()
        self.k = k

    def forward(self, h):
        return -self.k * h


def test_hbnode_damped_oscillator_matches_closed_form(backend):
    k, gamma = 4.0, 0.5
    field = HBNODE(Spring(k), gamma=gamma)
    h0, m0 = torch.tensor([1.0, -0.3]), torch.tensor([0.0, 2.0])
    y0 = torch.stack([h0, m0], dim=1)[:, :, None]  # (batch=2, 2, 1)
    t = torch.linspace(0.0, 5.0, 11)
    ys = odeint(field, y0, t, backend=backend, rtol=1e-10, atol=1e-10).ys
    wd = math.sqrt(k - gamma**2 / 4)
    decay = torch.exp(-gamma * t / 2)[:, None]
    a, b = h0, (m0 + gamma * h0 / 2) / wd
    h = decay * (a * torch.cos(wd * t)[:, None] + b * torch.sin(wd * t)[:, None])
    m = decay * ((b * wd - gamma / 2 * a) * torch.cos(wd * t)[:, None]
                 - (a * wd + gamma / 2 * b) * torch.sin(wd * t)[:, None])
    assert torch.allclose(ys[:, :, 0, 0], h, atol=1e-8)
    assert torch.allclose(ys[:, :, 1, 0], m, atol=1e-8)


def _net(n: int) -> nn.Module:
    return nn.Sequential(nn.Linear(n, 6), nn.Tanh(), nn.Linear(6, n))


def _rk4_backward(rhs, state, t1, t0, steps):
    dt = (t0 - t1) / steps
    t = t1
    for _ in range(steps):
        k1 = rhs(t, state)
        k2 = rhs(t + dt / 2, [s + dt / 2 * k for s, k in zip(state, k1)])
        k3 = rhs(t + dt / 2, [s + dt / 2 * k for s, k in zip(state, k2)])
        k4 = rhs(t + dt, [s + dt * k for s, k in zip(state, k3)])
        state = [s + dt / 6 * (a + 2 * b + 2 * c + d) for s, a, b, c, d in zip(state, k1, k2, k3, k4)]
        t += dt
    return state


@pytest.mark.parametrize("adjoint", ["checkpointed", "backsolve"])
@pytest.mark.parametrize("generalised", [False, True], ids=["HBNODE-prop2", "GHBNODE-prop3"])
def test_adjoint_system_of_propositions_2_and_3(generalised, adjoint, backend):
    """Integrate eq. 13 (HBNODE) / eq. 16 (GHBNODE) backward ourselves, together with the
    state and the γ/ξ/θ gradient integrals, and compare with the library's gradients: those of
    the discrete solve (``checkpointed``) and of the continuous adjoint the propositions describe
    (``backsolve``: the library integrates the same adjoint system backward)."""
    n, T = 3, 1.0
    f = _net(n)
    field = GHBNODE(f, omega=-0.5, chi=0.2, sigma="tanh") if generalised else HBNODE(f, omega=-0.5)
    y0 = torch.randn(1, 2, n, requires_grad=True)
    t = torch.tensor([0.0, T])
    sol = odeint(field, y0, t, backend=backend, adjoint=adjoint, rtol=1e-11, atol=1e-11)
    c = torch.randn(2, n)
    loss = (c * sol.ys[-1, 0]).sum()
    params = list(f.parameters())
    lib = torch.autograd.grad(loss, [y0, field.damping.omega, *params]
                              + ([field.restoring.chi] if generalised else []))

    gamma = field.gamma.detach()
    xi = field.xi.detach() if generalised else torch.tensor(0.0)
    sigma = torch.tanh if generalised else (lambda m: m)

    def rhs(t, s):
        h, m, a_h, a_m, *_ = s
        with torch.enable_grad():
            hh = h.detach().requires_grad_(True)
            fh = f(hh[None])[0]
            vjp_h, *vjp_theta = torch.autograd.grad(fh, [hh, *params], a_m)
            mm = m.detach().requires_grad_(True)
            (dsigma_am,) = torch.autograd.grad(sigma(mm), mm, a_h)  # a_h σ'(m)
        dh = sigma(m)
        dm = -gamma * m + fh.detach() - xi * h
        da_h = -(vjp_h - xi * a_m)                      # -a_m (∂f/∂h - ξ I)
        da_m = -dsigma_am + gamma * a_m                 # -a_h σ'(m) + γ a_m
        # dL/dθ = ∫ a_m ∂f/∂θ dt, dL/dγ = ∫ a_m (-m) dt, dL/dξ = ∫ a_m (-h) dt, integrated
        # backward as d(acc)/dt = -integrand.
        return [dh, dm, da_h, da_m, (a_m * m).sum(), (a_m * h).sum(), *[-v for v in vjp_theta]]

    hT, mT = sol.ys[-1, 0].detach()
    start = [hT, mT, c[0].clone(), c[1].clone(), torch.tensor(0.0), torch.tensor(0.0),
             *[torch.zeros_like(p) for p in params]]
    h0, m0, a_h0, a_m0, g_gamma, g_xi, *g_theta = _rk4_backward(rhs, start, T, 0.0, 400)

    assert torch.allclose(h0, y0[0, 0].detach(), atol=1e-8), "backward state re-integration drifted"
    assert torch.allclose(lib[0][0, 0], a_h0, atol=1e-7)
    assert torch.allclose(lib[0][0, 1], a_m0, atol=1e-7)
    dgamma_domega = field.damping.eps * torch.sigmoid(field.damping.omega) * (1 - torch.sigmoid(field.damping.omega))
    assert torch.allclose(lib[1], g_gamma * dgamma_domega.detach(), atol=1e-7)
    for got, want in zip(lib[2:2 + len(params)], g_theta):
        assert torch.allclose(got, want, atol=1e-7)
    if generalised:
        dxi_dchi = torch.sigmoid(field.restoring.chi).detach()
        assert torch.allclose(lib[-1], g_xi * dxi_dchi, atol=1e-7)


class GradientField(nn.Module):
    """f(h) = -Wᵀ tanh(W h + b): a gradient field, so ∂f/∂h is symmetric."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.W = nn.Parameter(torch.randn(n + 1, n))
        self.b = nn.Parameter(torch.randn(n + 1))

    def forward(self, h):
        return -torch.tanh(h @ self.W.T + self.b) @ self.W


@pytest.mark.parametrize("generalised", [False, True], ids=["HBNODE", "GHBNODE"])
@pytest.mark.parametrize("t_start", [0.0, 0.7])
def test_proposition_4_eigenvalues_pair(generalised, t_start, backend):
    """The eigenvalues of ∂z(T)/∂z(t), the matrix that carries the adjoint from T to t,
    pair up so that the logs of their moduli sum to (t - T)γ in each pair."""
    n, T = 3, 2.0
    f = GradientField(n)
    field = GHBNODE(f, gamma=0.6, xi=0.4, sigma="tanh") if generalised else HBNODE(f, gamma=0.6)
    z_t = torch.randn(1, 2, n)
    tt = torch.tensor([t_start, T])

    def flow(z):
        return odeint(field, z.view(1, 2, n), tt, backend=backend, adjoint="direct",
                      rtol=1e-11, atol=1e-11).ys[-1].reshape(-1)

    phi = torch.autograd.functional.jacobian(flow, z_t.reshape(-1))
    logs = torch.linalg.eigvals(phi).abs().log().sort().values
    sums = logs + logs.flip(0)
    expected = (t_start - T) * 0.6
    assert torch.allclose(sums, torch.full_like(sums, expected), atol=1e-6), sums
    # Liouville: det Φ = exp(n (t - T) γ), whatever the field.
    assert math.isclose(float(torch.linalg.det(phi)), math.exp(n * expected), rel_tol=1e-6)


def test_node_eigenvalues_do_not_pair(backend):
    """Contrast: for NODE the log-moduli need not pair to a constant (the claim is specific
    to the heavy-ball structure)."""
    from pyhbnode import NODE

    n = 3
    field = NODE(GradientField(n))
    tt = torch.tensor([0.0, 2.0])

    def flow(z):
        return odeint(field, z.view(1, n), tt, backend=backend, adjoint="direct",
                      rtol=1e-10, atol=1e-10).ys[-1].reshape(-1)

    phi = torch.autograd.functional.jacobian(flow, torch.randn(n))
    logs = torch.linalg.eigvals(phi).abs().log().sort().values
    sums = logs + logs.flip(0)
    assert float(sums.max() - sums.min()) > 1e-3
