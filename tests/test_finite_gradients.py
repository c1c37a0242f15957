"""A non-finite gradient is reported in every gradient mode of every backend.

Generators over fields whose derivative is infinite on the solution (``sqrt(|y|)`` at ``y = 0``),
state ranks (0-d, 1-D, batched) and which input needs the gradient (``y0``, a parameter):
``backward()`` must raise :class:`NonFiniteState` with ``phase == "backward"``, never return
NaN.  And the check is free where gradients are finite: the same gradient, one check per
backward pass however many steps the solve took."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from pyhbnode import NonFiniteState, odeint
from pyhbnode.solving import get_backend
from pyhbnode.solving import finite_gradients

MODES = [(b, m) for b in ("native", "torchdiffeq") for m in get_backend(b).mode_names()]
SHAPES = {"0-d": (), "1-D": (3,), "batched": (2, 3)}


class SqrtDecay(nn.Module):
    """``dy/dt = -a sqrt(|y|)``: from ``y0 = 0`` the solution stays at 0, where ``∂f/∂y`` is infinite."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Parameter(torch.tensor(1.0, dtype=torch.float64))

    def forward(self, t, y):
        return -self.a * torch.sqrt(y.abs())


@pytest.mark.parametrize("wrt", ["y0", "parameter", "both"])
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("backend, mode", MODES, ids=[f"{b}-{m}" for b, m in MODES])
def test_a_nonfinite_gradient_is_a_backward_nonfinite_state(backend, mode, shape, wrt):
    field = SqrtDecay()
    field.a.requires_grad_(wrt != "y0")
    y0 = torch.zeros(SHAPES[shape], dtype=torch.float64, requires_grad=wrt != "parameter")
    ys = odeint(field, y0, torch.linspace(0.0, 1.0, 4, dtype=torch.float64), backend=backend, adjoint=mode).ys
    with pytest.raises(NonFiniteState) as info:
        ys[-1].sum().backward()
    assert info.value.phase == "backward"
    for grad in (y0.grad, field.a.grad):
        assert grad is None or bool(torch.isfinite(grad).all()), "a NaN gradient was written before the error"


@pytest.mark.parametrize("backend", ["native", "torchdiffeq"])
def test_direct_names_the_input_whose_gradient_is_not_finite(backend):
    field = SqrtDecay()
    y0 = torch.zeros(2, dtype=torch.float64)
    ys = odeint(field, y0, torch.tensor([0.0, 1.0], dtype=torch.float64), backend=backend, adjoint="direct").ys
    with pytest.raises(NonFiniteState, match="field parameter 'a'.*differentiable"):
        ys[-1].sum().backward()


@pytest.mark.parametrize("backend", ["native", "torchdiffeq"])
def test_finite_direct_gradients_are_unchanged_and_checked_once(backend, monkeypatch):
    calls = []
    check = finite_gradients._CheckGradients.backward

    def counted(ctx, *grads):
        calls.append(len(grads))
        return check(ctx, *grads)

    monkeypatch.setattr(finite_gradients._CheckGradients, "backward", staticmethod(counted))
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 16), nn.Tanh(), nn.Linear(16, 3)).double()

    class Field(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = net

        def forward(self, t, y):
            return self.net(y)

    field = Field()
    y0 = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    t = torch.tensor([0.0, 2.0], dtype=torch.float64)
    grads = {}
    for mode in ("direct", "checkpointed"):
        y0.grad = None
        field.zero_grad()
        sol = odeint(field, y0, t, backend=backend, adjoint=mode, rtol=1e-9, atol=1e-9)
        sol.ys[-1].pow(2).sum().backward()
        assert sol.stats.steps > 5
        grads[mode] = [y0.grad.clone(), *(p.grad.clone() for p in field.parameters())]
    # one check per backward pass, however many steps; checkpointed has its own check
    assert calls == [1 + len(list(field.parameters()))]
    # checkpointed is the exact gradient of the same discrete solve
    for direct, checkpointed in zip(grads["direct"], grads["checkpointed"]):
        torch.testing.assert_close(direct, checkpointed, rtol=1e-10, atol=1e-12)
    assert all(type(p) is nn.Parameter for p in field.parameters()), "the parameters were not restored"
