"""Bad input is refused before any solving, with a message naming the argument.

Each test is a generator over bad inputs (finite case lists, parametrized: every case runs
every time), not one test per example: for every
generated case the call must raise ``TypeError``/``ValueError`` (or the named error class) whose
message names the argument at fault."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from pyhbnode import GHBNODE, HBNODE, NODE, SONODE, NonFiniteState, ODEBlock, ODERNN, odeint, zoo
from pyhbnode.fields import mlp
from pyhbnode import SolverOptions
from pyhbnode.solving.validation import check_field_output, explain_field_failure, reraise_field_failure

# Finite case lists run in full (parametrized), not sampled: every case runs every time.
DTYPES = [torch.float32, torch.float64]
BACKENDS = ["torch", "torchdiffeq"]
SIZES = [(1, 1), (3, 4)]  # (batch, width): the degenerate one and a general one


class Fn(nn.Module):
    def __init__(self, f) -> None:
        super().__init__()
        self.f = f

    def forward(self, t, y):
        return self.f(t, y)


class After(nn.Module):
    """``-y`` for ``n`` calls, then ``bad(t, y)``: a field that breaks on a later evaluation."""

    def __init__(self, n: int, bad) -> None:
        super().__init__()
        self.n, self.bad, self.calls = n, bad, 0

    def forward(self, t, y):
        self.calls += 1
        return -y if self.calls <= self.n else self.bad(t, y)


def raises_naming(fn, *words: str, types=(TypeError, ValueError)) -> str:
    with pytest.raises(types) as info:
        fn()
    msg = str(info.value).lower()
    for w in words:
        assert w.lower() in msg, f"{w!r} not in {msg!r}"
    return msg


# --- odeint's problem: y0, t, field -------------------------------------------------------------
BAD_Y0 = [
    (lambda b, k, dt: None, ["y0"]),
    (lambda b, k, dt: [[1.0] * k] * b, ["y0"]),
    (lambda b, k, dt: torch.ones(b, k, dtype=torch.long), ["y0", "dtype"]),
    (lambda b, k, dt: torch.ones(b, k, dtype=torch.complex64), ["y0", "dtype"]),
    (lambda b, k, dt: torch.empty(0, k, dtype=dt), ["y0", "empty"]),
    (lambda b, k, dt: torch.full((b, k), math.nan, dtype=dt), ["y0", "nan"]),
    (lambda b, k, dt: torch.full((b, k), math.inf, dtype=dt), ["y0", "inf"]),
]
BAD_T = [
    (lambda dt: None, ["t"]), (lambda dt: "abc", ["t"]), (lambda dt: (x for x in (0.0, 1.0)), ["t"]),
    (lambda dt: [0.0], ["t"]),
    (lambda dt: torch.tensor([0.0, 0.0, 1.0], dtype=dt), ["t", "increasing"]),
    (lambda dt: torch.tensor([[0.0, 1.0]], dtype=dt), ["t"]), (lambda dt: torch.tensor([0.0, math.nan], dtype=dt), ["t"]),
    (lambda dt: torch.tensor([0, 1]), ["t", "dtype"]),
]


@pytest.mark.parametrize("case", BAD_Y0)
@pytest.mark.parametrize("b, k", SIZES)
@pytest.mark.parametrize("dt", DTYPES)
@pytest.mark.parametrize("backend", BACKENDS)
def test_bad_y0_is_named(case, b, k, dt, backend):
    make, words = case
    raises_naming(lambda: odeint(Fn(lambda t, y: -y), make(b, k, dt), torch.tensor([0.0, 1.0], dtype=dt),
                                 backend=backend), *words)


@pytest.mark.parametrize("case", BAD_T)
@pytest.mark.parametrize("dt", DTYPES)
@pytest.mark.parametrize("backend", BACKENDS)
def test_bad_t_is_named(case, dt, backend):
    make, words = case
    raises_naming(lambda: odeint(Fn(lambda t, y: -y), torch.ones(2, 2, dtype=dt), make(dt), backend=backend), *words)


@pytest.mark.parametrize("model", ["sonode", "hbnode", "ghbnode"])
@pytest.mark.parametrize("b, w", SIZES)
@pytest.mark.parametrize("layout", ["first-order", "three halves", "no batch"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_second_order_field_needs_the_stacked_layout(model, b, w, layout, backend):
    net = mlp([2 * w if model == "sonode" else w, 8, w], "tanh").double()
    field = {"sonode": SONODE, "hbnode": HBNODE, "ghbnode": GHBNODE}[model](net).double()
    shape = {"first-order": (b, w), "three halves": (b, 3, w), "no batch": (2 * w,)}[layout]
    raises_naming(lambda: odeint(field, torch.randn(shape, dtype=torch.float64), torch.tensor([0.0, 1.0], dtype=torch.float64),
                                 backend=backend), "y0", "shape", "second order")


@pytest.mark.parametrize("bad", [None, 3, "f", 1.5])
@pytest.mark.parametrize("backend", BACKENDS)
def test_a_field_that_is_not_callable_is_named(bad, backend):
    raises_naming(lambda: odeint(bad, torch.ones(2, 2), torch.tensor([0.0, 1.0]), backend=backend), "field")


# --- solver options ------------------------------------------------------------------------------
BAD_OPTIONS = [
    ("rtol", -1e-3), ("rtol", 0.0), ("rtol", math.inf), ("rtol", math.nan), ("rtol", True), ("rtol", "1e-3"),
    ("atol", math.inf), ("atol", -1.0), ("atol", True), ("tol", math.inf), ("tol", 0), ("max_steps", 0),
    ("max_steps", 1.5), ("max_steps", True), ("max_steps", -3), ("seminorm", "false"), ("seminorm", 2),
    ("backend", 3), ("method", 3), ("adjoint", 3), ("bogus", 1),
]


@pytest.mark.parametrize("case", BAD_OPTIONS, ids=lambda c: f"{c[0]}={c[1]!r}")
def test_bad_solver_option_is_named(case):
    name, value = case
    raises_naming(lambda: SolverOptions.from_kwargs(**{name: value}), name)


@pytest.mark.parametrize("case", BAD_OPTIONS, ids=lambda c: f"{c[0]}={c[1]!r}")
@pytest.mark.parametrize("layer", ["ODEBlock", "ODERNN"])
def test_layers_refuse_bad_solver_options(case, layer):
    name, value = case
    if layer == "ODEBlock":
        raises_naming(lambda: ODEBlock(NODE(mlp([3, 8, 3], "tanh")), **{name: value}), name)
    else:
        raises_naming(lambda: ODERNN(NODE(mlp([4, 8, 4], "tanh")), nn.Linear(7, 4), nn.Linear(4, 2), 4,
                                     **{name: value}), name)


BAD_BLOCK_ARGS = [
    (dict(t0=1.0, t1=1.0), ["t0", "t1"]), (dict(t0=1.0, t1=0.0), ["t0", "t1"]), (dict(t1=math.nan), ["t1"]),
    (dict(t1=math.inf), ["t1"]), (dict(t0="a"), ["t0"]), (dict(t0=None), ["t0"]),
    (dict(solver={"rtol": 1e-3}), ["solver", "solveroptions"]), (dict(solver=3), ["solver"]),
]


@pytest.mark.parametrize("case", BAD_BLOCK_ARGS)
def test_odeblock_constructor_names_the_argument(case):
    kwargs, words = case
    raises_naming(lambda: ODEBlock(NODE(mlp([3, 8, 3], "tanh")), **kwargs), *words)


@pytest.mark.parametrize("bad", [None, [1.0, 2.0], 3.0])
def test_odeblock_forward_names_y0(bad):
    raises_naming(lambda: ODEBlock(NODE(mlp([3, 8, 3], "tanh")))(bad), "y0")


def _rnn(**kwargs):
    args = dict(field=NODE(mlp([4, 8, 4], "tanh")), cell=nn.Linear(4 + 3, 4), readout=nn.Linear(4, 2), width=4)
    args.update(kwargs)
    return ODERNN(args.pop("field"), args.pop("cell"), args.pop("readout"), args.pop("width"), tol=1e-3, **args)


BAD_RNN_ARGS = [
    (dict(width=-1), ["width"]), (dict(width=0), ["width"]), (dict(width=2.5), ["width"]), (dict(width="4"), ["width"]),
    (dict(width=True), ["width"]), (dict(cell=None), ["cell"]), (dict(readout=None), ["readout"]),
    (dict(field=None), ["field"]), (dict(cell_first="yes"), ["cell_first"]), (dict(options={"rtol": 1e-3}), ["options"]),
]
BAD_RNN_INPUTS = [
    (lambda: (torch.randn(5, 2, 3), None), ["dt"]), (lambda: (torch.randn(5, 2, 3), torch.rand(4, 2)), ["dt"]),
    (lambda: (torch.randn(5, 2, 3), -torch.rand(5, 2)), ["dt"]),
    (lambda: (torch.randn(5, 2, 3), torch.full((5, 2), math.nan)), ["dt"]),
    (lambda: (torch.randn(5, 2, 7), torch.rand(5, 2)), ["cell", "features"]),
    (lambda: (torch.randn(5, 3), torch.rand(5, 3)), ["x"]), (lambda: (torch.randn(0, 2, 3), torch.rand(0, 2)), ["x", "empty"]),
    (lambda: (None, torch.rand(5, 2)), ["x"]), (lambda: (torch.randn(5, 2, 3).long(), torch.rand(5, 2)), ["x"]),
]


@pytest.mark.parametrize("case", BAD_RNN_ARGS)
def test_odernn_constructor_names_the_argument(case):
    kwargs, words = case
    raises_naming(lambda: _rnn(**kwargs), *words)


@pytest.mark.parametrize("case", BAD_RNN_INPUTS)
@pytest.mark.parametrize("backend", BACKENDS)
def test_odernn_forward_names_the_input(case, backend):
    make, words = case
    rnn = _rnn(backend=backend)
    raises_naming(lambda: rnn(*make()), *words)


def test_odernn_names_a_wrong_initial_state_and_a_misfit_readout():
    raises_naming(lambda: _rnn()(torch.randn(5, 2, 3), torch.rand(5, 2), torch.zeros(2, 5)), "y0", "shape")
    raises_naming(lambda: _rnn(readout=nn.Linear(5, 2))(torch.randn(5, 2, 3), torch.rand(5, 2)), "readout")
    raises_naming(lambda: _rnn(cell=nn.Linear(7, 3))(torch.randn(5, 2, 3), torch.rand(5, 2)), "cell", "returned")


# --- the field's output: first and later evaluations ------------------------------------------------
BAD_OUTPUTS = [
    (lambda y: None, ["field", "none"]), (lambda y: y.tolist(), ["field", "list"]),
    (lambda y: y[..., :1] if y.shape[-1] > 1 else torch.cat([y, y], -1), ["field", "shape"]),
    (lambda y: y.sum(-1, keepdim=True) if y.shape[-1] > 1 else torch.cat([y, y], -1), ["field", "shape"]),
    (lambda y: torch.tensor(1.0, dtype=y.dtype), ["field", "shape"]),
    (lambda y: y.double() if y.dtype == torch.float32 else y.float(), ["field", "dtype"]),
    (lambda y: y.to(torch.complex64), ["field", "complex", "dtype"]),
    (lambda y: torch.zeros_like(y, dtype=torch.long), ["field", "integer", "dtype"]),
    (lambda y: y.to("meta"), ["field", "device"]),
]


@pytest.mark.parametrize("case", BAD_OUTPUTS)
@pytest.mark.parametrize("b, k", SIZES)
@pytest.mark.parametrize("dt", DTYPES)
def test_check_field_output_names_what_is_wrong(case, b, k, dt):
    bad, words = case
    y = torch.randn(b, k, dtype=dt)
    raises_naming(lambda: check_field_output(bad(y), y, torch.tensor(0.5)), *words)
    check_field_output(-y, y)  # a right output passes


@pytest.mark.parametrize("case", BAD_OUTPUTS[:-1])
@pytest.mark.parametrize("after", [0, 10])
@pytest.mark.parametrize("dt", DTYPES)
@pytest.mark.parametrize("backend", BACKENDS)
def test_explain_field_failure_diagnoses_a_later_evaluation(case, after, dt, backend):
    """What a backend does on the failure path: re-evaluate once and name the field's fault,
    whatever the stepper raised (or, where a backend let it through, on a probe)."""
    bad, words = case
    y0, t = torch.randn(3, 2, dtype=dt), torch.tensor([0.0, 1.0], dtype=dt)
    field = After(after, lambda t, y: bad(y))
    try:
        odeint(field, y0, t, backend=backend, rtol=1e-4, atol=1e-4)
        raised: BaseException = RuntimeError("probe")
    except Exception as err:  # noqa: BLE001 - whatever the stepper raised
        raised = err
    better = explain_field_failure(field, t[0], y0, raised)
    assert better is not None, raised
    msg = str(better).lower()
    assert all(w in msg for w in words), msg


@pytest.mark.parametrize("case", BAD_OUTPUTS[:-1])
@pytest.mark.parametrize("after", [0, 10])
@pytest.mark.parametrize("backend", BACKENDS)
def test_odeblock_reports_a_field_that_breaks_later(case, after, backend):
    bad, words = case
    block = ODEBlock(After(after, lambda t, y: bad(y)), 0.0, 1.0, backend=backend, tol=1e-4)
    with pytest.raises((TypeError, ValueError)) as info:
        block(torch.randn(3, 2))
    msg = str(info.value).lower()
    assert "field" in msg and any(w in msg for w in words[1:]), msg


def test_a_users_own_exception_passes_through_unchanged():
    class Mine(Exception):
        pass

    def boom(t, y):
        raise Mine("mine")

    for backend in ("torch", "torchdiffeq"):
        with pytest.raises(Mine):
            ODEBlock(After(5, boom), backend=backend, tol=1e-3)(torch.randn(2, 2))
    err = RuntimeError("my own runtime error")
    assert explain_field_failure(Fn(lambda t, y: (_ for _ in ()).throw(err)), 0.0, torch.ones(1), err) is None
    with pytest.raises(RuntimeError, match="my own"):
        reraise_field_failure(Fn(lambda t, y: -y), 0.0, torch.ones(2), err)


def test_a_width_mismatch_on_the_first_evaluation_names_y0():
    block = ODEBlock(NODE(mlp([3, 8, 3], "tanh")), tol=1e-3)
    raises_naming(lambda: block(torch.randn(4, 5)), "y0", "shape", "field")


def test_a_nonfinite_first_output_is_a_nonfinite_state():
    y = torch.ones(2, 2)
    with pytest.raises(NonFiniteState):
        check_field_output(torch.full((2, 2), math.nan), y, 0.0)


# --- zoo.build -----------------------------------------------------------------------------------
BAD_FIELD_KWARGS = [
    ("hbnode", {"gamma": "x"}, ["gamma"]), ("ghbnode", {"gamma": -1.0}, ["gamma"]), ("hbnode", {"gamma": math.nan}, ["gamma"]),
    ("hbnode", {"xi": 2.0}, ["xi", "hbnode"]), ("ghbnode", {"xi": "big"}, ["xi"]), ("ghbnode", {"bogus": 1}, ["bogus"]),
    ("ghbnode", {"sigma": "nope"}, ["sigma"]), ("hbnode", {"omega": [1]}, ["omega"]), ("hbnode", {"eps": True}, ["eps"]),
    ("hbnode", {"eps": 0.0}, ["eps"]), ("hbnode", [("gamma", 1.0)], ["field_kwargs"]), ("node", {"gamma": 0.5}, ["field_kwargs"]),
]


@pytest.mark.parametrize("case", BAD_FIELD_KWARGS)
@pytest.mark.parametrize("task", ["pointcloud", "silverbox", "walker2d"])
def test_zoo_build_names_bad_field_kwargs(case, task):
    model, kwargs, words = case
    raises_naming(lambda: zoo.build(task, model, field_kwargs=kwargs), *words)


@pytest.mark.parametrize("case", [(("pointcloudx", "node"), {}, ["task"]), ((3, "node"), {}, ["task"]),
                             (("pointcloud", "nodex"), {}, ["model"]), (("pointcloud", None), {}, ["model"]),
                             (("pointcloud", "node"), {"tol": -1}, ["tol"]), (("pointcloud", "node"), {"rtol": "a"}, ["rtol"]),
                             (("pointcloud", "node"), {"bogus": 1}, ["bogus"]), (("pointcloud", "node"), {"max_steps": 0}, ["max_steps"]),
                             (("pointcloud", "node"), {"backend": "nope"}, ["backend"])])
def test_zoo_build_names_bad_arguments(case):
    args, kwargs, words = case
    raises_naming(lambda: zoo.build(*args, **kwargs), *words)


def test_zoo_build_takes_valid_coefficients():
    m = zoo.build("pointcloud", "ghbnode", field_kwargs={"gamma": 0.3, "xi": 0.0, "sigma": "hardtanh"}, tol=1e-4)
    assert torch.isfinite(m(torch.randn(6, 2))).all()
