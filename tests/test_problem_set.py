"""torchdiffeq's problem set (tests/problems.py) on every backend and every gradient mode it
offers: states without a batch axis (0-d and 1-D), forward and backward in time, values and
gradients against closed forms.

It catches a backend that indexes a batch axis the state does not have (the torchdiffeq
backend once raised ``IndexError`` on a 0-d ``y0``), a mode that drops or mis-scales a
gradient, and a reversed grid handled as a forward one."""
from __future__ import annotations

import pytest
import torch

from problems import PROBLEMS
from pyhbnode import odeint
from pyhbnode.solving import get_backend
from pyhbnode.solving.backends.julia import available
from pyhbnode.solving.backends.julia._maps import ADJOINTS as JULIA_ADJOINTS

# backend -> its gradient modes, listed without loading Julia
MODES = {"native": get_backend("native").mode_names(), "torchdiffeq": get_backend("torchdiffeq").mode_names(),
         "julia": sorted(JULIA_ADJOINTS)}
CASES = [pytest.param(backend, mode, marks=[pytest.mark.julia] if backend == "julia" else [], id=f"{backend}-{mode}")
         for backend, modes in MODES.items() for mode in modes]
# (t0, t1): torchdiffeq's [1, 8] span is shortened for the heavy sine (|y(8)| ~ 1e4), and each
# grid is also run backward in time
GRIDS = {"forward": (1.0, 3.0), "reverse": (3.0, 1.0)}
TOL = 1e-10


def _use(backend: str) -> None:
    if backend == "julia":
        ok, reason = available()
        if not ok:
            pytest.skip(f"julia backend unavailable: {reason}")


@pytest.mark.parametrize("grid", GRIDS)
@pytest.mark.parametrize("problem", PROBLEMS)
@pytest.mark.parametrize("backend, mode", CASES)
def test_problem_value_and_gradient_match_the_closed_form(backend, mode, problem, grid):
    _use(backend)
    make, rank = PROBLEMS[problem]
    field = make().double()
    t0, t1 = GRIDS[grid]
    t = torch.linspace(t0, t1, 5, dtype=torch.float64)
    y0 = field.y0(t0)
    assert y0.dim() == rank
    ys = odeint(field, y0, t, backend=backend, adjoint=mode, rtol=TOL, atol=TOL).ys
    exact = field.exact(t, y0)
    assert ys.shape == (len(t), *y0.shape)
    scale = 1.0 + float(exact.abs().max())
    torch.testing.assert_close(ys.detach(), exact, rtol=0, atol=1e-6 * scale)

    w = torch.linspace(0.5, 1.5, y0.numel(), dtype=torch.float64).reshape(y0.shape)
    (ys[-1] * w).sum().backward()
    expected = field.gradients(t0, t1, y0, w)
    got = {"y0": y0.grad, **{name: p.grad for name, p in field.named_parameters()}}
    assert set(expected) == {k for k, v in got.items() if v is not None} | {"y0"}
    for name, want in expected.items():
        assert got[name] is not None, f"no gradient for {name}"
        gscale = 1.0 + float(want.abs().max())
        # backsolve re-integrates the state backward: its gradient is accurate to the tolerance
        torch.testing.assert_close(got[name].reshape(want.shape), want.to(got[name].dtype), rtol=0,
                                   atol=(1e-5 if mode in ("backsolve", "interpolating") else 1e-6) * gscale,
                                   msg=lambda m: f"gradient of {name}: {m}")
