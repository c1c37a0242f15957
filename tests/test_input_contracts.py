"""Every zoo model refuses a bad input before any layer runs, naming the argument, what it
expected and what it received (``pyhbnode.contracts.InputSpec``).

The expected inputs are written here independently of the models' specs (the README's table);
a generator derives the bad inputs from them: every axis dropped, added or resized, another
dtype, NaN values, a non-tensor, sizes that disagree between arguments — for every task and
every model the zoo builds for it."""
from __future__ import annotations

import math

import pytest
import torch

from pyhbnode import ODERNN, NODE, zoo
from pyhbnode.fields import mlp

# task -> the inputs of a valid call, batch B = 2: (name, shape) with named sizes shared between arguments
B, T, S = 2, 64, 6
INPUTS = {
    "pointcloud": [("x", (B, 2))],
    "mnist": [("x", (B, 1, 28, 28))],
    "cifar10": [("x", (B, 3, 32, 32))],
    "plane_vibration": [("x", (T, B, 5)), ("dt", (T, B))],
    "walker2d": [("x", (5, B, 17)), ("dt", (5, B))],
    "silverbox": [("v1", (B, S)), ("v2_0", (B, 1)), ("ts", (S,))],
}
MODELS = [(task, model) for task in INPUTS for model in zoo.MODELS if task in zoo.RUNS_ON.get(model, zoo.TASKS)]


def valid(task: str, dtype: torch.dtype = torch.float32) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    out = []
    for name, shape in INPUTS[task]:
        if name == "ts":
            out.append(torch.linspace(0.0, 0.5, shape[0], dtype=dtype))
        elif name == "dt":
            out.append(torch.rand(shape, generator=g, dtype=dtype) * 0.1)
        else:
            out.append(torch.randn(shape, generator=g, dtype=dtype))
    return out


def bad_inputs(task: str):
    """``(label, inputs, argument at fault)`` for every way the generator breaks one argument."""
    for i, (name, shape) in enumerate(INPUTS[task]):
        def with_(x, i=i):
            args = valid(task)
            args[i] = x
            return args

        good = valid(task)[i]
        if name != "dt":  # dt (T,) is valid: one gap per stamp for the whole batch
            yield f"{name} without its last axis", with_(good[..., 0]), name
        yield f"{name} with an extra axis", with_(good.unsqueeze(-1)), name
        # a lone input's batch axis is free; every other axis is fixed or shared with another input
        for axis in range(1 if len(INPUTS[task]) == 1 else 0, len(shape)):
            grown = list(shape)
            grown[axis] += 1
            yield f"{name} axis {axis} one larger", with_(torch.randn(grown)), name
        yield f"{name} float64", with_(good.double()), name
        yield f"{name} int64", with_(good.long()), name
        yield f"{name} a list", with_(good.tolist()), name
        nan = good.clone()
        nan.view(-1)[0] = math.nan
        yield f"{name} with NaN", with_(nan), name


BAD = [pytest.param(task, model, label, args, name, id=f"{task}-{model}-{label}")
       for task, model in MODELS for label, args, name in bad_inputs(task)]
_BUILT: dict[tuple[str, str], torch.nn.Module] = {}


def built(task: str, model: str) -> torch.nn.Module:
    if (task, model) not in _BUILT:
        _BUILT[task, model] = zoo.build(task, model, tol=1e-3)
    return _BUILT[task, model]


@pytest.mark.parametrize("task, model, label, args, name", BAD)
def test_a_bad_input_is_refused_naming_the_argument(task, model, label, args, name, monkeypatch):
    net = built(task, model)
    ran = []
    for layer in net.children():  # no layer may run on a refused input
        monkeypatch.setattr(layer, "forward", lambda *a, **k: ran.append(a) or pytest.fail("a layer ran"))
    with pytest.raises((TypeError, ValueError)) as info:
        net(*args)
    msg = str(info.value)
    assert f"zoo.build({task!r}, {model!r})" in msg and name in msg, msg
    assert not ran


@pytest.mark.parametrize("task, model", MODELS, ids=[f"{t}-{m}" for t, m in MODELS])
def test_valid_inputs_pass_the_contract_in_the_models_dtype(task, model):
    net = built(task, model)
    net.input_spec.check(net, *valid(task))
    net64 = zoo.build(task, model, tol=1e-3).double()
    net64.input_spec.check(net64, *valid(task, torch.float64))


@pytest.mark.parametrize("model", ["node", "hbnode", "ghbnode", "adamnode"])
def test_valid_cheap_models_run_end_to_end(model):
    torch.manual_seed(0)
    out = zoo.build("pointcloud", model, tol=1e-3)(torch.randn(4, 2))
    assert out.shape == (4, 1)
    v1, v2_0, ts = valid("silverbox")
    assert zoo.build("silverbox", model, tol=1e-3)(v1, v2_0, ts).shape[:2] == (S, B)


# The issue's cases, each with the words its message must hold (argument, expected, received, fix).
ISSUE_CASES = {
    "pointcloud (6, 3)": ("pointcloud", "ghbnode", lambda: [torch.randn(6, 3)],
                          ["x", "(batch, coordinates=2)", "(6, 3)"]),
    "float64 into float32": ("pointcloud", "ghbnode", lambda: [torch.randn(6, 2, dtype=torch.float64)],
                             ["x", "torch.float64", "torch.float32", "x.to(torch.float32)", "model.to(torch.float64)"]),
    "long input": ("pointcloud", "node", lambda: [torch.ones(6, 2, dtype=torch.long)], ["x", "torch.int64", "x.to("]),
    "mnist without channel axis": ("mnist", "hbnode", lambda: [torch.randn(2, 28, 28)],
                                   ["x", "(batch, channels=1, height=28, width=28)", "(2, 28, 28)", "x.unsqueeze(1)"]),
    "mnist 27x27": ("mnist", "hbnode", lambda: [torch.randn(2, 1, 27, 27)], ["x", "height=28", "(2, 1, 27, 27)"]),
    "cifar10 28x28": ("cifar10", "node", lambda: [torch.randn(2, 3, 28, 28)], ["x", "width=32", "(2, 3, 28, 28)"]),
    "cifar10 anode one channel": ("cifar10", "anode", lambda: [torch.randn(2, 1, 32, 32)],
                                  ["x", "channels=3", "(2, 1, 32, 32)"]),
    "silverbox v1 shorter than ts": ("silverbox", "hbnode",
                                     lambda: [torch.randn(2, 5), torch.randn(2, 1), torch.linspace(0, 1, 10)],
                                     ["v1.shape[1] = 5", "ts.shape[0] = 10", "samples"]),
    "silverbox v2_0 width 2": ("silverbox", "ghbnode",
                               lambda: [torch.randn(2, 10), torch.randn(2, 2), torch.linspace(0, 1, 10)],
                               ["v2_0", "(batch, observed=1)", "(2, 2)"]),
    "silverbox decreasing grid": ("silverbox", "node",
                                  lambda: [torch.randn(2, 10), torch.randn(2, 1), torch.linspace(1, 0, 10)],
                                  ["ts", "strictly increasing"]),
    "plane vibration shorter than the window": ("plane_vibration", "hbnode",
                                                lambda: [torch.randn(10, 2, 5), torch.rand(10, 2)],
                                                ["x.shape[0] = 10", "at least 64", "window"]),
    "walker2d negative dt": ("walker2d", "gnesterovnode", lambda: [torch.randn(5, 2, 17), -torch.rand(5, 2)],
                             ["dt", ">= 0"]),
}


@pytest.mark.parametrize("case", ISSUE_CASES)
def test_the_issues_inputs_get_a_clear_error(case):
    task, model, make, words = ISSUE_CASES[case]
    with pytest.raises((TypeError, ValueError)) as info:
        built(task, model)(*make())
    for w in words:
        assert w in str(info.value), f"{w!r} not in {info.value}"


def test_a_window_matching_the_sequence_is_accepted():
    net = zoo.build("plane_vibration", "hbnode", window=10, tol=1e-3)
    assert net(torch.randn(10, 2, 5), torch.rand(10, 2) * 0.1).shape == (10, 2, 5)


ODERNN_BAD = {
    "x float64 for a float32 rnn": (lambda: (torch.randn(5, 2, 3, dtype=torch.float64), torch.rand(5, 2)),
                                    ["x", "torch.float64", "torch.float32"]),
    "dt of another batch": (lambda: (torch.randn(5, 2, 3), torch.rand(5, 3)), ["dt.shape[1] = 3", "x.shape[1] = 2"]),
    "y0 of another width": (lambda: (torch.randn(5, 2, 3), torch.rand(5, 2), torch.zeros(2, 5)),
                            ["y0", "(batch, width=4)", "(2, 5)"]),
    "y0 of another batch": (lambda: (torch.randn(5, 2, 3), torch.rand(5, 2), torch.zeros(3, 4)),
                            ["y0.shape[0] = 3", "x.shape[1] = 2"]),
    "x empty": (lambda: (torch.randn(0, 2, 3), torch.rand(0, 2)), ["x", "empty"]),
}


@pytest.mark.parametrize("case", ODERNN_BAD)
def test_odernn_refuses_a_bad_input_by_the_same_contract(case):
    make, words = ODERNN_BAD[case]
    rnn = ODERNN(NODE(mlp([4, 8, 4], "tanh")), torch.nn.Linear(7, 4), torch.nn.Linear(4, 2), 4, tol=1e-3)
    with pytest.raises((TypeError, ValueError)) as info:
        rnn(*make())
    for w in ["ODERNN", *words]:
        assert w in str(info.value), f"{w!r} not in {info.value}"
