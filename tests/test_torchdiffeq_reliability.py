"""Bad and borderline problems on the torchdiffeq backend (and ``auto``, which falls back to it):
each gives a correct result or one of our typed errors, within seconds.

A seeded generator draws the cases (the kinds of the reliability fuzz run's torchdiffeq and auto
groups); each case says what a correct result is and which argument an error must name.
"""
from __future__ import annotations

import math
import random
import time
import warnings
from dataclasses import dataclass, field as dc_field
from typing import Callable

import pytest
import torch
from torch import nn

from pyhbnode import NODE, MaxStepsExceeded, NonFiniteState, SolverError, StepSizeUnderflow, odeint
from pyhbnode.fields import mlp

TIME_LIMIT_S = 10.0  # generous: the cases take well under a second to a few seconds here


class Fn(nn.Module):
    """A parameter-free field ``f(t, y)``."""

    def __init__(self, f: Callable, name: str = "") -> None:
        super().__init__()
        self.f, self.name = f, name

    def forward(self, t, y):
        return self.f(t, y)


class Lin(nn.Module):
    """dy/dt = a y, one parameter."""

    def __init__(self, a: float, dtype: torch.dtype) -> None:
        super().__init__()
        self.a = nn.Parameter(torch.tensor(a, dtype=dtype))

    def forward(self, t, y):
        return self.a * y


class After(nn.Module):
    """Behaves like -y for ``n`` calls, then returns ``bad(t, y)``."""

    def __init__(self, n: int, bad: Callable) -> None:
        super().__init__()
        self.n, self.bad, self.calls = n, bad, 0

    def forward(self, t, y):
        self.calls += 1
        return -y if self.calls <= self.n else self.bad(t, y)


@dataclass
class Case:
    kind: str
    field: Callable
    y0: torch.Tensor
    t: torch.Tensor
    kwargs: dict = dc_field(default_factory=dict)
    backward: bool = False
    check: Callable[[torch.Tensor, torch.Tensor], bool] | None = None  # (ys, t) -> correct?
    errors: tuple[type[BaseException], ...] = ()  # acceptable typed errors
    names: tuple[str, ...] = ()  # a ValueError/TypeError must name one of these

    def __repr__(self) -> str:
        return f"Case({self.kind}, y0 {tuple(self.y0.shape)} {self.y0.dtype}, t {self.t.tolist()[:4]}, {self.kwargs})"


def _grid(rng: random.Random, dtype) -> torch.Tensor:
    t0 = rng.choice([0.0, -1.0, 0.3])
    return torch.tensor([t0, t0 + rng.choice([0.5, 1.0, 2.0])], dtype=dtype)


def generate(seed: int, n: int) -> list[Case]:
    rng = random.Random(seed)
    torch.manual_seed(seed)
    cases = []
    kinds = ["stiff", "underflow", "blowup", "huge_y0", "rest", "dtype", "late_bad", "in_place",
             "backward_nan", "tiny_interval", "max_steps", "plain_function", "wrong_layout"]
    for i in range(n):
        kind = kinds[i % len(kinds)]
        dtype = rng.choice([torch.float32, torch.float64])
        mode = rng.choice(["backsolve", "checkpointed", "direct"])
        t = _grid(rng, dtype)
        y0 = torch.randn(rng.choice([1, 3]), 2, dtype=dtype)
        kw = dict(adjoint=mode, rtol=rng.choice([1e-3, 1e-5]), atol=rng.choice([1e-3, 1e-5]))
        if kind == "stiff":
            lam = 10.0 ** rng.uniform(4.5, 6.5)
            c = Case(kind, Fn(lambda t, y, lam=lam: -lam * (y - torch.cos(t))), y0, t, kw,
                     errors=(MaxStepsExceeded, StepSizeUnderflow))
        elif kind == "underflow":
            lam = 10.0 ** rng.uniform(20, 35)
            c = Case(kind, Fn(lambda t, y, lam=lam: -lam * y), y0.double(), t.double(), kw,
                     errors=(StepSizeUnderflow,))
        elif kind == "blowup":  # dy/dt = y^2 from y0 > 1 on [0, 2]: blows up at 1/y0 < 1
            y0 = 1.0 + torch.rand(2, 1, dtype=dtype) * 2
            c = Case(kind, Fn(lambda t, y: y * y), y0, torch.tensor([0.0, 2.0], dtype=dtype), kw,
                     errors=(NonFiniteState, StepSizeUnderflow, MaxStepsExceeded))
        elif kind == "huge_y0":
            scale = 10.0 ** rng.uniform(30, 38.5)
            c = Case(kind, NODE(mlp([2, 8, 2], "tanh")).float(), torch.full((3, 2), scale), t.float(),
                     kw, check=lambda ys, t: bool(torch.isfinite(ys).all()), errors=(NonFiniteState,))
        elif kind == "rest":  # a state at rest stays at rest (issue 13 (a)), float32 included
            span = rng.choice([3.0, 10.0])
            c = Case(kind, Lin(-1.0, dtype), torch.zeros(4, 2, dtype=dtype),
                     torch.tensor([0.0, span], dtype=dtype), dict(kw, rtol=1e-5, atol=1e-5),
                     backward=True, check=lambda ys, t: bool((ys == 0).all()))
        elif kind == "dtype":
            other = rng.choice([torch.float64 if dtype == torch.float32 else torch.float32,
                                torch.complex64, torch.long])
            c = Case(kind, Fn(lambda t, y, o=other: (-y).to(o)), y0, t, kw, names=("field", "dtype"))
        elif kind == "late_bad":
            bad = rng.choice([lambda t, y: None, lambda t, y: y[..., :1], lambda t, y: torch.cat([y, y], -1),
                              lambda t, y: y * float("nan")])
            c = Case(kind, After(rng.randint(2, 12), bad), y0, t, kw, errors=(NonFiniteState,), names=("field",))
        elif kind == "in_place":
            c = Case(kind, Fn(lambda t, y: -(y.mul_(1.0))), y0.requires_grad_(rng.random() < 0.5), t, kw,
                     backward=y0.requires_grad, names=("field",))
        elif kind == "backward_nan":  # finite forward, NaN vector-Jacobian product at y = 0
            kw["adjoint"] = rng.choice(["backsolve", "checkpointed"])
            c = Case(kind, Fn(lambda t, y: -torch.sqrt(y.abs())), torch.zeros(1, 2, dtype=dtype).requires_grad_(),
                     t, kw, backward=True, errors=(NonFiniteState,))
        elif kind == "tiny_interval":  # F2: 1 to 4 ulp of t0
            t0 = torch.tensor(rng.choice([1.0, 3.0]), dtype=dtype)
            t1 = t0
            for _ in range(rng.randint(1, 4)):
                t1 = torch.nextafter(t1, t1 + 1)
            c = Case(kind, Lin(-1.0, dtype), y0, torch.stack([t0, t1]), kw, backward=True,
                     check=lambda ys, t: bool(torch.allclose(ys[-1], ys[0], rtol=1e-5, atol=0)))
        elif kind == "max_steps":
            steps = rng.choice([1, 3, 2**63, 10**20])
            a = -1.0
            c = Case(kind, Lin(a, dtype), y0, t, dict(kw, max_steps=steps), backward=True,
                     check=lambda ys, t, a=a: bool(torch.allclose(
                         ys[-1], ys[0] * math.exp(a * float(t[-1] - t[0])), rtol=1e-2, atol=1e-3)),
                     errors=(MaxStepsExceeded,))
        elif kind == "plain_function":
            c = Case(kind, lambda t, y: -y, y0, t, kw,
                     check=lambda ys, t: bool(torch.allclose(
                         ys[-1], ys[0] * math.exp(-float(t[-1] - t[0])), rtol=1e-2, atol=1e-3)))
        else:  # wrong_layout: a second-order field (B, 2, n) given a first-order state (B, n)
            from pyhbnode import HBNODE

            c = Case(kind, HBNODE(mlp([5, 8, 5], "tanh")).to(dtype), torch.randn(3, 5, dtype=dtype), t, kw,
                     names=("y0",))
        cases.append(c)
    return cases


def run_case(case: Case, backend: str) -> tuple[str, float]:
    """Run one case; return the outcome's description and the seconds it took. Fails the test
    on anything but a correct result or an accepted typed error."""
    start = time.perf_counter()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # backend='auto' warns once that it falls back
            sol = odeint(case.field, case.y0, case.t, backend=backend, **case.kwargs)
            ys = sol.ys
            if case.backward and ys.requires_grad:
                ys[-1].pow(2).sum().backward()
        outcome = "result"
        assert case.check is not None, f"{case}: a result where an error was due: {ys}"
        assert case.check(ys.detach(), case.t), f"{case}: wrong result {ys}"
    except SolverError as err:
        outcome = type(err).__name__
        assert isinstance(err, case.errors), f"{case}: unexpected {err!r}"
        assert err.t is not None and "NFE so far" in str(err), f"{case}: no time or NFE in {err}"
        if isinstance(err, MaxStepsExceeded):
            assert "max_steps" in str(err)
    except (ValueError, TypeError) as err:
        outcome = type(err).__name__
        assert case.names and any(n in str(err) for n in case.names), f"{case}: unclear {err!r}"
    return outcome, time.perf_counter() - start


@pytest.mark.parametrize("backend", ["torchdiffeq", "auto"])
def test_generated_bad_inputs_give_a_result_or_a_typed_error_quickly(backend):
    if backend == "auto":
        from pyhbnode.solving import get_backend

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the one "falls back to torchdiffeq" warning
            if get_backend("auto").name != "torchdiffeq":
                pytest.skip("with Julia present 'auto' is the Julia backend, tested by tests/test_julia_*.py")
    cases = generate(seed=2026 if backend == "torchdiffeq" else 13, n=39 if backend == "torchdiffeq" else 13)
    times = []
    for case in cases:
        outcome, seconds = run_case(case, backend)
        times.append((seconds, case.kind, outcome))
        assert seconds < TIME_LIMIT_S, f"{case} took {seconds:.1f} s ({outcome})"
    kinds = {k for _, k, _ in times}
    assert len(kinds) == 13  # every kind drawn at least once


# ---- the fuzz run's reproducers, one per kind (issue 13) --------------------------------

def test_step_underflow_is_immediate():
    y0 = torch.randn(8, 2, dtype=torch.float64)
    start = time.perf_counter()
    with pytest.raises(StepSizeUnderflow) as info:
        odeint(Fn(lambda t, y: -1e30 * y), y0, torch.tensor([0.0, 1.0], dtype=torch.float64),
               backend="torchdiffeq", rtol=1e-3, atol=1e-3, adjoint="direct")
    assert time.perf_counter() - start < TIME_LIMIT_S
    assert info.value.t == 0.0 and info.value.dt is not None and info.value.nfe_forward < 10


def test_stiff_field_stops_early_on_its_pace():
    """-1e5 (y - cos t) on [0, 1] needs ~4e4 attempts: the budget (10^4) is judged by the pace
    after 10 % of it, not exhausted (about 16 s of torchdiffeq stepping here)."""
    y0 = torch.randn(8, 2)
    start = time.perf_counter()
    with pytest.raises(MaxStepsExceeded, match="cannot finish within max_steps = 10000") as info:
        odeint(Fn(lambda t, y: -1e5 * (y - torch.cos(t))), y0, torch.tensor([0.0, 1.0]),
               backend="torchdiffeq", rtol=1e-3, atol=1e-3)
    assert time.perf_counter() - start < TIME_LIMIT_S
    assert info.value.nfe_forward <= 2 + 6 * 1000 and info.value.t < 0.1


def test_huge_float32_state_is_not_returned_as_inf():
    y0 = torch.full((3, 2), 3e38, dtype=torch.float32)
    with pytest.raises(NonFiniteState, match="rescale y0 or use float64"):
        odeint(NODE(mlp([2, 8, 2], "tanh")), y0, torch.linspace(0, 2, 8), backend="torchdiffeq",
               rtol=1e-3, atol=1e-3)


def test_state_at_rest_in_float32_is_solved():
    sol = odeint(Lin(-1.0, torch.float32), torch.zeros(2, 2), torch.tensor([0.0, 3.0]), backend="torchdiffeq")
    assert bool((sol.ys == 0).all())


@pytest.mark.parametrize("other", [torch.float64, torch.complex64, torch.long])
def test_field_output_dtype_is_checked(other):
    with pytest.raises(TypeError, match=f"field returned (a complex |an integer |another )dtype {other}.*state of dtype torch.float32"):
        odeint(Fn(lambda t, y: (-y).to(other)), torch.randn(3, 2), [0.0, 1.0], backend="torchdiffeq")


@pytest.mark.parametrize("bad, exc, words", [
    (lambda t, y: None, TypeError, "field returned None"),
    (lambda t, y: y[..., :1], ValueError, r"field returned shape \(8, 1\) at t = .* for a state of shape \(8, 2\)"),
    (lambda t, y: torch.cat([y, y], -1), ValueError, r"field returned shape \(8, 4\)"),
])
def test_field_output_is_checked_on_every_evaluation(bad, exc, words):
    with pytest.raises(exc, match=words + r".*") as info:
        odeint(After(10, bad), torch.randn(8, 2, dtype=torch.float64), [-1.0, 0.0], backend="torchdiffeq")
    assert "evaluation 11" in str(info.value)


@pytest.mark.parametrize("requires_grad", [False, True])
def test_field_modifying_its_input_is_named(requires_grad):
    y0 = torch.randn(3, 2).requires_grad_(requires_grad)
    with pytest.raises(ValueError, match="field modified its input y in place"):
        odeint(Fn(lambda t, y: -(y.mul_(1.0))), y0, [0.0, 1.0], backend="torchdiffeq", adjoint="direct")


@pytest.mark.parametrize("mode", ["backsolve", "checkpointed"])
def test_nan_only_in_the_backward_pass_is_typed(mode):
    y0 = torch.zeros(1, 2, dtype=torch.float64).requires_grad_()
    sol = odeint(Fn(lambda t, y: -torch.sqrt(y.abs())), y0, torch.linspace(0, 2, 8, dtype=torch.float64),
                 backend="torchdiffeq", adjoint=mode)
    with pytest.raises(NonFiniteState, match="differentiable") as info:
        sol.ys[-1].pow(2).sum().backward()
    assert info.value.phase == "backward"


@pytest.mark.parametrize("mode", ["backsolve", "checkpointed", "direct"])
def test_plain_function_field_in_every_mode(mode):
    y0 = torch.randn(8, 5, dtype=torch.float64, requires_grad=True)
    sol = odeint(lambda t, y: -y, y0, [0.0, 0.5, 1.0], backend="torchdiffeq", adjoint=mode, rtol=1e-8, atol=1e-8)
    (g,) = torch.autograd.grad(sol.ys[-1].sum(), y0)
    assert torch.allclose(g, torch.full_like(g, math.exp(-1.0)), rtol=1e-6)


@pytest.mark.parametrize("steps", [2**63, 10**20])
def test_huge_max_steps_is_accepted(steps):
    sol = odeint(Lin(-1.0, torch.float64), torch.ones(3, 1, dtype=torch.float64), [0.0, 1.0],
                 backend="torchdiffeq", max_steps=steps)
    assert torch.allclose(sol.ys[-1], torch.full((3, 1), math.exp(-1.0), dtype=torch.float64), rtol=1e-6)


def test_wrong_state_layout_is_named_on_the_first_evaluation():
    from pyhbnode import HBNODE

    with pytest.raises(ValueError, match=r"y0 has shape \(1, 5\).*second order.*\(batch, 2, \*features\)"):
        odeint(HBNODE(mlp([5, 8, 5], "tanh")).double(), torch.randn(1, 5, dtype=torch.float64), [0.0, 3.0],
               backend="torchdiffeq")
