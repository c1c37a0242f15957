"""Step-size controllers as objects: the Hairer/scipy controller reproduces scipy RK45's step
counts exactly; controllers are reusable templates and validate their settings."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from pyhbnode import HairerController, IController, odeint

scipy_integrate = pytest.importorskip("scipy.integrate", reason="scipy is needed to compare with RK45")


class VanDerPol(nn.Module):
    def __init__(self, mu: float) -> None:
        super().__init__()
        self.mu = mu

    def forward(self, t, y):
        x, v = y[..., 0], y[..., 1]
        return torch.stack([v, self.mu * (1 - x * x) * v - x], -1)


class Arenstorf(nn.Module):
    mu = 0.012277471

    def forward(self, t, y):
        x, yy, vx, vy = y[..., 0], y[..., 1], y[..., 2], y[..., 3]
        m, M = self.mu, 1 - self.mu
        d1 = ((x + m) ** 2 + yy ** 2) ** 1.5
        d2 = ((x - M) ** 2 + yy ** 2) ** 1.5
        return torch.stack([vx, vy, x + 2 * vy - M * (x + m) / d1 - m * (x - M) / d2,
                            yy - 2 * vx - M * yy / d1 - m * yy / d2], -1)


ARENSTORF = (Arenstorf(), [0.994, 0.0, 0.0, -2.00158510637908252240537862224], 17.0652165601579625588917206249)
VDP10 = (VanDerPol(10.0), [2.0, 0.0], 20.0)


@pytest.mark.parametrize("problem,tol", [(ARENSTORF, 1e-10), (ARENSTORF, 1e-6), (VDP10, 1e-8), (VDP10, 1e-4)],
                         ids=["arenstorf-1e-10", "arenstorf-1e-6", "vdp10-1e-8", "vdp10-1e-4"])
def test_hairer_controller_reproduces_scipy_rk45_counts(problem, tol):
    field, y0, T = problem

    def fun(t, y):
        return field(torch.tensor(t, dtype=torch.float64), torch.tensor(y)).numpy()

    ref = scipy_integrate.solve_ivp(fun, (0.0, T), y0, method="RK45", rtol=tol, atol=tol)
    accepted = len(ref.t) - 1
    attempts = (ref.nfev - 2) // 6  # f(y0), the initial-step probe, 6 per attempt
    sol = odeint(field, torch.tensor([y0], dtype=torch.float64), torch.tensor([0.0, T], dtype=torch.float64),
                 rtol=tol, atol=tol, controller="hairer")
    st = sol.stats
    assert (st.nfe_forward, st.accepted, st.rejected) == (ref.nfev, accepted, attempts - accepted)
    assert torch.allclose(sol.ys[-1, 0], torch.tensor(ref.y[:, -1]), rtol=0, atol=1e3 * tol)


def test_hairer_rejects_fewer_than_the_integral_controller_at_tight_tolerance():
    field, y0, T = ARENSTORF
    y = torch.tensor([y0], dtype=torch.float64)
    t = torch.tensor([0.0, T], dtype=torch.float64)
    i = odeint(field, y, t, rtol=1e-10, atol=1e-10, controller=IController()).stats
    h = odeint(field, y, t, rtol=1e-10, atol=1e-10, controller=HairerController()).stats
    assert h.rejected < i.rejected / 10


def test_a_controller_is_a_reusable_template():
    c = HairerController()
    field, y0, T = VDP10
    y = torch.tensor([y0], dtype=torch.float64)
    a = odeint(field, y, [0.0, T], rtol=1e-6, atol=1e-6, controller=c).stats
    b = odeint(field, y, [0.0, T], rtol=1e-6, atol=1e-6, controller=c).stats
    assert (a.nfe_forward, a.rejected) == (b.nfe_forward, b.rejected)
    assert c == HairerController() and c != IController()


@pytest.mark.parametrize("kwargs,word", [({"safety": 0.0}, "safety"), ({"ifactor": 0.5}, "ifactor"),
                                         ({"dfactor": 1.5}, "dfactor"), ({"embedded": "x"}, "embedded")])
def test_controller_settings_are_validated(kwargs, word):
    with pytest.raises(ValueError, match=word):
        HairerController(**kwargs)
