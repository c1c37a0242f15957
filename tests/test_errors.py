"""Every error path raises the documented type with a message that says what to do."""
from __future__ import annotations

import time

import pytest
import torch
from torch import nn

from helpers import initial_state, small_field
from pyhbnode import (
    NODE, JuliaBackendUnavailable, SolverOptions, MaxStepsExceeded, NonFiniteState, SolverError,
    StepSizeUnderflow, odeint,
)


class Square(nn.Module):
    """du/dt = u²: from u0 = 1 it blows up at t = 1."""

    def forward(self, u):
        return u * u


def test_blow_up_raises_solver_error_with_time_and_nfe(backend):
    with pytest.raises(SolverError) as info:
        odeint(NODE(Square()), torch.ones(1, 1, dtype=torch.float64), [0.0, 2.0], backend=backend)
    err = info.value
    assert isinstance(err, (NonFiniteState, StepSizeUnderflow, MaxStepsExceeded))
    assert err.phase == "forward" and err.nfe_forward > 0
    assert err.t is not None and 0.9 < err.t <= 1.0 + 1e-6, err.t
    assert "NFE so far" in str(err)


def test_max_steps_exceeded(backend):
    field = small_field("hbnode")
    with pytest.raises(MaxStepsExceeded, match="max_steps"):
        odeint(field, initial_state(field), [0.0, 10.0], backend=backend, max_steps=5, rtol=1e-10, atol=1e-10)


class NaNWhenDifferentiating(nn.Module):
    """Finite in the forward solve (run without grad by the adjoint), NaN in the backward."""

    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.tensor(-1.0, dtype=torch.float64))

    def forward(self, h):
        out = self.w * h
        return out * float("nan") if torch.is_grad_enabled() else out


def test_error_in_backward_propagates_typed(backend):
    from pyhbnode.solving import get_backend

    adjoint = [a for a in get_backend(backend).mode_names() if a != "direct"
               and not (backend == "torchdiffeq" and a == "checkpointed")][0]  # torchdiffeq branch
    sol = odeint(NODE(NaNWhenDifferentiating()), torch.ones(2, 1, dtype=torch.float64), [0.0, 1.0],
                 backend=backend, adjoint=adjoint)
    with pytest.raises(NonFiniteState) as info:
        sol.ys[-1].sum().backward()
    assert info.value.phase == "backward"
    assert "backward solve" in str(info.value)


@pytest.mark.parametrize(
    "y0, t, exc, words",
    [
        (torch.ones(2, 3), [0.0, 1.0], TypeError, "dtype"),                         # float32 vs float64 field
        (torch.ones(2, 3, dtype=torch.float64), [1.0, 0.5, 0.7], ValueError, "strictly increasing or strictly decreasing"),
        (torch.ones(2, 3, dtype=torch.float64), [0.0, 1.0, 1.0], ValueError, "strictly increasing"),
        (torch.ones(2, 3, dtype=torch.float64), [[0.0, 1.0]], ValueError, "1-D"),
        (torch.ones(2, 3, dtype=torch.float64), [0.0], ValueError, "at least 2"),
        (torch.tensor([[1.0, float("nan"), 0.0]] * 2, dtype=torch.float64), [0.0, 1.0], ValueError, "NaN"),
        (torch.ones(2, 3, dtype=torch.float64), [0.0, float("inf")], ValueError, "NaN or Inf"),
        (torch.ones(2, 3, dtype=torch.int64), [0.0, 1.0], TypeError, "floating-point"),
        ([[1.0, 2.0, 3.0]], [0.0, 1.0], TypeError, "y0 must be a torch.Tensor"),
    ],
)
def test_bad_input_is_named(y0, t, exc, words):
    field = small_field("node")
    with pytest.raises(exc, match=words):
        odeint(field, y0, t)


def test_time_grid_dtype_must_match():
    field = small_field("node")
    with pytest.raises(TypeError, match="t has dtype"):
        odeint(field, torch.ones(2, 3, dtype=torch.float64), torch.tensor([0.0, 1.0], dtype=torch.float32))


def test_device_mismatch_is_named():
    # A second real device is not needed to check the messages: "meta" tensors stand in.
    field = small_field("node")
    y0 = torch.ones(2, 3, dtype=torch.float64)
    with pytest.raises(ValueError, match="t is on meta but y0 is on cpu"):
        odeint(field, y0, torch.tensor([0.0, 1.0], dtype=torch.float64, device="meta"))
    with pytest.raises(ValueError, match="is on meta but y0 is on cpu"):
        odeint(field.to("meta"), y0, [0.0, 1.0])


def test_field_returning_wrong_shape(backend):
    field = NODE(nn.Linear(3, 2).double())
    with pytest.raises(ValueError, match="returned"):
        odeint(field, torch.ones(2, 3, dtype=torch.float64), [0.0, 1.0], backend=backend)


def test_bad_options():
    field = small_field("node")
    y0 = initial_state(field)
    with pytest.raises(TypeError, match="unknown solver option"):
        SolverOptions.from_kwargs(rtoll=1e-3)
    with pytest.raises(ValueError, match="rtol"):
        odeint(field, y0, [0.0, 1.0], rtol=-1.0)
    with pytest.raises(ValueError, match="max_steps"):
        odeint(field, y0, [0.0, 1.0], max_steps=0)
    with pytest.raises(ValueError, match="unknown backend"):
        odeint(field, y0, [0.0, 1.0], backend="nope")
    with pytest.raises(ValueError, match="unknown gradient mode 'magic'"):
        odeint(field, y0, [0.0, 1.0], backend="torchdiffeq", adjoint="magic")
    with pytest.raises(ValueError, match="backend 'native' has no gradient mode 'interpolating'"):
        odeint(field, y0, [0.0, 1.0], backend="torch", adjoint="interpolating")


def test_julia_backend_unavailable_is_fast_and_clear(monkeypatch):
    import importlib.util

    if importlib.util.find_spec("juliacall") is not None:
        pytest.skip("juliacall is installed here; tests/test_julia_*.py cover the working backend")
    monkeypatch.delenv("PYHBNODE_JULIA", raising=False)
    field = small_field("node")
    start = time.perf_counter()
    with pytest.raises(JuliaBackendUnavailable) as info:
        odeint(field, initial_state(field), [0.0, 1.0], backend="julia")
    assert time.perf_counter() - start < 5.0
    assert isinstance(info.value, ImportError)
    assert "pyhbnode[julia]" in str(info.value)
