"""States at the edges of their dtype: near the largest finite value, and very many elements.

A solvable problem (``dy/dt = -y`` decays) must give the closed form, or — where an
intermediate overflows — a :class:`NonFiniteState` that says so; never ``MaxStepsExceeded``
(the step-size controller misreading an overflowed error norm as stiffness) or an untyped
error."""
from __future__ import annotations

import math

import pytest
import torch

from pyhbnode import NonFiniteState, odeint

@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("backend", ["native", "torchdiffeq"])
def test_a_state_near_the_dtype_max_decays_or_is_a_clear_overflow(backend, dtype):
    y0 = torch.full((2, 2), 0.9 * torch.finfo(dtype).max, dtype=dtype)
    try:
        ys = odeint(lambda t, y: -y, y0, torch.tensor([0.0, 1.0], dtype=dtype), backend=backend).ys
    except NonFiniteState as err:
        assert "non-finite" in str(err)
        return
    torch.testing.assert_close(ys[-1], y0 * math.exp(-1.0), rtol=1e-4, atol=0)


@pytest.mark.parametrize("mode", ["checkpointed", "backsolve", "direct"])
def test_a_large_state_without_a_batch_axis_solves_and_differentiates(backend, mode):
    y0 = torch.linspace(0.5, 1.5, 20_000, dtype=torch.float64, requires_grad=True)
    ys = odeint(lambda t, y: -0.5 * y, y0, torch.tensor([0.0, 1.0], dtype=torch.float64), backend=backend,
                adjoint=mode, rtol=1e-6, atol=1e-6).ys
    torch.testing.assert_close(ys[-1], y0.detach() * math.exp(-0.5), rtol=1e-5, atol=0)
    ys[-1].sum().backward()
    torch.testing.assert_close(y0.grad, torch.full_like(y0, math.exp(-0.5)), rtol=1e-4, atol=0)
