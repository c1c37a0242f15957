"""Fuzz measurement of pyhbnode's input handling (run on demand; not part of the test suite).

    PYTHONPATH=<checkout> OMP_NUM_THREADS=1 python tests/fuzz/run_fuzz.py --seed 7 [--out report.txt]

Generates bad and borderline inputs with a seeded generator for ``odeint`` (backends ``torch``
and ``torchdiffeq``), ``ODEBlock``, ``ODERNN``, ``zoo.build``, ``fit`` and the ``pyhbnode``
command, runs each in a worker process (killed and restarted after ``--timeout`` seconds) and
classifies every outcome:

* ``correct``: a valid input gave a finite result (equal to the closed form where one is
  known), or a bad input raised the user's own exception unchanged where that is right;
* ``clear-error``: a bad input raised a typed error whose message names the problem (every
  word of the case's ``must`` list appears in it);
* ``unclear-error``: any other exception (a torch internal, ``AttributeError`` ...);
* ``hang``: no answer within the timeout;
* ``silent-wrong``: NaN/Inf or a value off the closed form, without an error;
* ``accepted-bad-input``: a bad input taken without complaint;
* ``rejected-valid``: a valid input refused;
* ``cli-traceback``: the command printed a Python traceback.

Case kinds: ``valid`` (must succeed), ``bad`` (must raise a clear error), ``hard`` (a problem
that may be unsolvable: a result or a clear ``SolverError``/``TrainingDiverged`` are both fine).
The package under test is whatever ``PYTHONPATH`` imports, so the same script measures main
and a branch.
"""
from __future__ import annotations

import argparse
import collections
import json
import multiprocessing as mp
import os
import random
import subprocess
import sys
import tempfile
import time
import traceback

CLASSES = ("correct", "clear-error", "unclear-error", "hang", "silent-wrong", "accepted-bad-input",
           "rejected-valid", "cli-traceback")
# Exception types that are never a clear answer to bad input: they come from code that did not
# expect the input at all.
UNCLEAR_TYPES = {"AttributeError", "IndexError", "KeyError", "ZeroDivisionError", "AssertionError", "NameError",
                 "UnboundLocalError", "RecursionError", "OverflowError", "StopIteration", "UnpicklingError"}

PRELUDE = r'''
import math, os, tempfile, torch
from torch import nn
from math import inf, nan
import pyhbnode
from pyhbnode import odeint, ODEBlock, ODERNN, zoo, NODE, ANODE, SONODE, HBNODE, GHBNODE, SolverOptions
from pyhbnode.fields import mlp

class Fn(nn.Module):
    def __init__(self, f):
        super().__init__(); self.f = f
    def forward(self, t, y):
        return self.f(t, y)

class Lin(nn.Module):
    def __init__(self, a=-1.0):
        super().__init__(); self.a = nn.Parameter(torch.tensor(a))
    def forward(self, t, y):
        return self.a.to(y.dtype) * y

class After(nn.Module):
    def __init__(self, n, bad):
        super().__init__(); self.n, self.bad, self.calls = n, bad, 0
    def forward(self, t, y):
        self.calls += 1
        return -y if self.calls <= self.n else self.bad(t, y)

class UserError(Exception):
    pass

def boom(t, y):
    raise UserError("the user's own failure")

def cloud():
    from pyhbnode.data import make_pointcloud
    x, y = make_pointcloud(seed=0)
    return torch.from_numpy(x), torch.from_numpy(y)

def finite(x):
    return bool(torch.isfinite(x).all())
'''


# --------------------------------------------------------------------------------------------
# case generators: each yields dicts {target, group, kind, code, must?, check?, expect_type?}
# --------------------------------------------------------------------------------------------
def _odeint_cases(rng: random.Random, backend: str, n: int):
    target = f"odeint[{backend}]"
    dtypes = ["torch.float32", "torch.float64"]

    def base():
        dt = rng.choice(dtypes)
        b, k = rng.choice([1, 3, 8]), rng.choice([1, 2, 5])
        grid = rng.choice(["[0.0, 1.0]", "[0.0, 0.5, 1.0]", "[-1.0, 0.0]", "[0.3, 0.31, 2.0]", "[1.0, 0.0]"])
        opts = rng.choice(["", ", rtol=1e-3, atol=1e-3", ", rtol=1e-5, atol=1e-5"])
        adj = rng.choice(["", ", adjoint='direct'", ", adjoint='backsolve'"])
        return dt, b, k, grid, opts, adj

    def call(field, y0, t, extra="", grad=False):
        tail = f"\nout[-1].pow(2).sum().backward()" if grad else ""
        return (f"field = {field}\ny0 = {y0}\nt = {t}\n"
                f"out = odeint(field, y0, t, backend={backend!r}{extra}).ys{tail}")

    for _ in range(n):
        dt, b, k, grid, opts, adj = base()
        y0 = f"torch.randn({b}, {k}, dtype={dt})"
        t = f"torch.tensor({grid}, dtype={dt})"
        kind = rng.randrange(9)
        if kind == 0:  # valid linear problem, checked against the closed form
            yield dict(target=target, group="valid: dy/dt = a y", kind="valid",
                       code=call("Lin(-0.7).to(" + dt + ")", y0, t, opts + adj, grad=rng.random() < 0.5)
                       + "\nexact = y0 * torch.exp(-0.7 * (t - t[0])).view(-1, 1, 1)",
                       check="float((out - exact).abs().max()) < 1e-2 * (1 + float(exact.abs().max()))")
        elif kind == 1:  # valid: a state at rest
            field = rng.choice(["Lin(-0.7)", "Fn(lambda t, y: torch.sin(y))", "Fn(lambda t, y: y * y)"])
            yield dict(target=target, group="valid: zero state at rest", kind="valid",
                       code=call(f"{field}.to({dt})", f"torch.zeros({b}, {k}, dtype={dt})",
                                 f"torch.tensor({rng.choice(['[0.0, 3.0]', '[0.0, 10.0]', '[-5.0, 5.0]'])}, dtype={dt})",
                                 opts),
                       check="float(out.abs().max()) == 0.0")
        elif kind == 2:  # bad y0
            bad, must = rng.choice([
                ("None", ["y0"]), ("[[1.0, 2.0]]", ["y0"]), (f"torch.ones({b}, {k}, dtype=torch.long)", ["y0", "dtype"]),
                (f"torch.empty(0, {k}, dtype={dt})", ["y0", "empty"]),
                (f"torch.full(({b}, {k}), nan, dtype={dt})", ["y0", "nan"]),
                (f"torch.full(({b}, {k}), inf, dtype={dt})", ["y0", "inf"]),
                (f"torch.randn({b}, {k}, dtype=torch.complex64)", ["y0", "dtype"]),
            ])
            yield dict(target=target, group=f"bad y0: {bad.split('(')[0][:30]}", kind="bad",
                       code=call("Fn(lambda t, y: -y)", bad, t, opts), must=must)
        elif kind == 3:  # bad t
            bad, must = rng.choice([
                ("None", ["t"]), ("'abc'", ["t"]), ("(x for x in [0.0, 1.0])", ["t"]), ("[0.0]", ["t"]),
                (f"torch.tensor([0.0, 0.0, 1.0], dtype={dt})", ["t", "increasing"]),
                (f"torch.tensor([[0.0, 1.0]], dtype={dt})", ["t"]),
                (f"torch.tensor([0.0, nan], dtype={dt})", ["t", "nan"]),
                ("torch.tensor([0, 1])", ["t", "dtype"]),
                (f"torch.tensor([0.0, inf], dtype={dt})", ["t", "inf"]),
            ])
            yield dict(target=target, group=f"bad t: {bad[:30]}", kind="bad",
                       code=call("Fn(lambda t, y: -y)", y0, bad, opts), must=must)
        elif kind == 4:  # bad options
            name, value, must = rng.choice([
                ("rtol", "-1e-3", ["rtol"]), ("rtol", "0.0", ["rtol"]), ("rtol", "inf", ["rtol"]),
                ("rtol", "nan", ["rtol"]), ("rtol", "True", ["rtol"]), ("rtol", "'1e-3'", ["rtol"]),
                ("atol", "inf", ["atol"]), ("atol", "True", ["atol"]), ("atol", "-1.0", ["atol"]),
                ("max_steps", "0", ["max_steps"]), ("max_steps", "1.5", ["max_steps"]),
                ("max_steps", "True", ["max_steps"]), ("method", "'rk45x'", ["method"]),
                ("adjoint", "'magic'", ["adjoint"]), ("backend", "'nope'", ["backend"]),
                ("seminorm", "'false'", ["seminorm"]), ("seminorm", "2", ["seminorm"]),
                ("options", "{'rtol': 1e-3}", ["options"]), ("tol", "-1e-3", ["tol"]),
                ("backend", "3", ["backend"]), ("adjoint", "3", ["adjoint"]),
            ])
            code = call("Fn(lambda t, y: -y)", y0, t, f", {name}={value}")
            if name == "backend":
                code = code.replace(f"backend={backend!r}, ", "")
            yield dict(target=target, group=f"bad option {name}={value}", kind="bad", code=code, must=must)
        elif kind == 5:  # the field returns something that does not match the state
            later = rng.random() < 0.5
            bad, must, label = rng.choice([
                ("None", ["field", "none"], "None"),
                ("y[..., :1] if y.shape[-1] > 1 else torch.cat([y, y], -1)", ["field", "shape"], "wrong shape"),
                ("(-y).double() if y.dtype == torch.float32 else (-y).float()", ["field", "dtype"], "other float dtype"),
                ("(-y).to(torch.complex64)", ["field", "dtype"], "complex"),
                ("torch.zeros_like(y, dtype=torch.long)", ["field", "dtype"], "integer"),
                ("(-y).tolist()", ["field", "list"], "a list"),
                ("-y.sum(-1, keepdim=True) if y.shape[-1] > 1 else torch.cat([y, y], -1)", ["field", "shape"],
                 "(B, 1) or (B, 2k)"),
                ("torch.tensor(1.0, dtype=y.dtype)", ["field", "shape"], "a 0-d tensor"),
            ])
            field = f"After(10, lambda t, y: {bad})" if later else f"Fn(lambda t, y: {bad})"
            yield dict(target=target, group=f"field returns {label}" + (" after 10 calls" if later else ""),
                       kind="bad", code=call(field, y0, t, opts + adj), must=must)
        elif kind == 6:  # the field is not a field / raises its own error
            bad, must, kind_ = rng.choice([
                ("None", ["field"], "bad"), ("3", ["field"], "bad"), ("'f'", ["field"], "bad"),
                ("lambda t, y: -y", [], "valid"), ("Fn(boom)", [], "user"), ("After(5, boom)", [], "user"),
            ])
            group = {"bad": f"field is {bad}", "valid": "field a plain function", "user": f"field raises ({bad})"}[kind_]
            case = dict(target=target, group=group, kind="valid" if kind_ == "valid" else "bad",
                        code=call(bad, y0, t, opts), must=must)
            if kind_ == "user":
                case["expect_type"] = "UserError"
            if kind_ == "valid":
                case["check"] = "finite(out)"
            yield case
        elif kind == 7:  # second-order fields and shapes
            model = rng.choice(["sonode", "hbnode", "ghbnode", "node", "anode"])
            w = rng.choice([2, 3, 5])
            net = f"mlp([{2 * w if model == 'sonode' else w}, 8, {w}], 'tanh')"
            field = {"node": f"NODE({net})", "anode": f"ANODE({net}, 1)", "sonode": f"SONODE({net})",
                     "hbnode": f"HBNODE({net})", "ghbnode": f"GHBNODE({net})"}[model] + f".to({dt})"
            second = model in ("sonode", "hbnode", "ghbnode")
            choice = rng.randrange(4)
            if choice == 0:
                shape, kind_, must, label = ((b, 2, w) if second else (b, w)), "valid", [], "right shape"
            elif choice == 1 and second:
                shape, kind_, must, label = (b, w), "bad", ["y0", "shape"], "first-order layout"
            elif choice == 1:  # a first-order field takes any (batch, *state): valid
                shape, kind_, must, label = (b, 2, w), "valid", [], "(batch, 2, n) state"
            elif choice == 2:
                shape, kind_, must, label = ((b, 2, w + 1) if second else (b, w + 1)), "bad", ["y0", "shape"], "wrong width"
            elif second:
                shape, kind_, must, label = (b, 3, w), "bad", ["y0", "shape"], "three halves"
            else:
                shape, kind_, must, label = (w,), "valid", [], "1-D state without batch"
            if model == "anode" and choice == 0:
                shape = (b, w)
            case = dict(target=target, group=f"{model}: y0 {label}", kind=kind_,
                        code=call(field, "torch.randn(" + ", ".join(map(str, shape)) + f", dtype={dt})", t,
                                  opts + adj), must=must)
            if kind_ == "valid":
                case["check"] = "finite(out)"
            yield case
        else:  # hard problems: a result or a clear SolverError within the timeout
            field, label = rng.choice([
                ("Fn(lambda t, y: -1e30 * y)", "stiff -1e30 y"), ("Fn(lambda t, y: 1e20 * (y + 1))", "huge 1e20 (y+1)"),
                ("Fn(lambda t, y: -1e5 * (y - torch.cos(t)))", "stiff -1e5 (y - cos t)"),
                ("Fn(lambda t, y: y * y)", "blow-up y^2 from y0 = 5"),
            ])
            y0h = f"5 + torch.rand({b}, {k}, dtype={dt})" if "y * y" in field else y0
            yield dict(target=target, group=f"hard: {label}", kind="hard",
                       code=call(field, y0h, f"torch.tensor([0.0, 1.0], dtype={dt})", opts), must=[])
    # a few valid extremes
    for dt in dtypes:
        yield dict(target=target, group="valid: max_steps=2**63", kind="valid",
                   code=call("Lin(-0.7).to(" + dt + ")", f"torch.randn(2, 2, dtype={dt})",
                             f"torch.tensor([0.0, 1.0], dtype={dt})", ", rtol=1e-3, atol=1e-3, max_steps=2**63"),
                   check="finite(out)")
        yield dict(target=target, group="hard: y0 = 3e38", kind="hard",
                   code=call("Fn(lambda t, y: -y)", f"torch.full((2, 2), 3e38, dtype={dt})",
                             f"torch.tensor([0.0, 1.0], dtype={dt})"), must=[])


def _odeblock_cases(rng: random.Random, n: int):
    for _ in range(n):
        dt = rng.choice(["torch.float32", "torch.float64"])
        backend = rng.choice(["torch", "torchdiffeq"])
        kind = rng.randrange(4)
        if kind == 0:
            args, must, label = rng.choice([
                ("Lin(), 1.0, 1.0", ["t0", "t1"], "t0 == t1"), ("Lin(), 1.0, 0.0", ["t0", "t1"], "t0 > t1"),
                ("Lin(), 0.0, nan", ["t1"], "t1 nan"), ("Lin(), 0.0, inf", ["t1"], "t1 inf"),
                ("Lin(), 'a', 1.0", ["t0"], "t0 a string"), ("Lin(), None, 1.0", ["t0"], "t0 None"),
                ("None", ["field"], "field None"), ("3", ["field"], "field 3"),
                ("Lin(), options={'rtol': 1e-3}", ["options"], "options a dict"),
                ("Lin(), rtol=-1", ["rtol"], "rtol -1"), ("Lin(), tol=inf", ["tol"], "tol inf"),
                ("Lin(), bogus=1", ["bogus"], "unknown keyword"), ("Lin(), backend='x'", ["backend"], "backend x"),
                ("Lin(), adjoint='x'", ["adjoint"], "adjoint x"), ("Lin(), max_steps=-3", ["max_steps"], "max_steps -3"),
            ])
            yield dict(target="ODEBlock", group=f"ctor: {label}", kind="bad",
                       code=f"blk = ODEBlock({args})\nout = blk(torch.randn(4, 3))", must=must)
        elif kind == 1:
            bad, must, label = rng.choice([
                ("None", ["y0"], "y0 None"), ("[1.0, 2.0]", ["y0"], "y0 a list"),
                ("torch.ones(4, 3, dtype=torch.long)", ["y0", "dtype"], "y0 int"),
                ("torch.full((4, 3), nan)", ["y0", "nan"], "y0 nan"),
            ])
            yield dict(target="ODEBlock", group=f"forward: {label}", kind="bad",
                       code=f"blk = ODEBlock(Fn(lambda t, y: -y), backend={backend!r})\nout = blk({bad})", must=must)
        elif kind == 2:
            yield dict(target="ODEBlock", group="forward: HBNODE block with (B, n)", kind="bad",
                       code=f"blk = ODEBlock(HBNODE(mlp([3, 8, 3], 'tanh')), 0.0, 1.0, backend={backend!r})\n"
                            "out = blk(torch.randn(4, 3))", must=["y0", "shape"])
        else:
            yield dict(target="ODEBlock", group="valid block", kind="valid",
                       code=f"blk = ODEBlock(Lin().to({dt}), 0.0, 1.0, backend={backend!r}, tol=1e-4)\n"
                            f"y0 = torch.randn(4, 3, dtype={dt})\nout = blk(y0)\nout.sum().backward()",
                       check="float((out - y0 * math.exp(-1.0)).abs().max()) < 1e-2")


def _odernn_cases(rng: random.Random, n: int):
    head = ("import torch.nn as tnn\nw = 4\nfield = NODE(mlp([w, 8, w], 'tanh'))\n"
            "cell = tnn.Linear(w + 3, w)\nreadout = tnn.Linear(w, 2)\n")
    for _ in range(n):
        kind = rng.randrange(3)
        backend = rng.choice(["torch", "torchdiffeq"])
        if kind == 0:
            args, must, label = rng.choice([
                ("field, cell, readout, -1", ["width"], "width -1"), ("field, cell, readout, 0", ["width"], "width 0"),
                ("field, cell, readout, 2.5", ["width"], "width 2.5"), ("field, cell, readout, '4'", ["width"], "width '4'"),
                ("field, None, readout, 4", ["cell"], "cell None"), ("field, cell, None, 4", ["readout"], "readout None"),
                ("None, cell, readout, 4", ["field"], "field None"),
                ("field, cell, readout, 4, options={'rtol': 1e-3}", ["options"], "options a dict"),
                ("field, cell, readout, 4, tol=-1", ["tol"], "tol -1"),
                ("field, cell, readout, 4, cell_first='yes'", ["cell_first"], "cell_first a string"),
            ])
            yield dict(target="ODERNN", group=f"ctor: {label}", kind="bad",
                       code=head + f"rnn = ODERNN({args}, backend={backend!r})\nout = rnn(torch.randn(5, 2, 3), torch.rand(5, 2))",
                       must=must)
        elif kind == 1:
            x, dt, must, label = rng.choice([
                ("torch.randn(5, 2, 3)", "None", ["dt"], "dt None"),
                ("torch.randn(5, 2, 3)", "torch.rand(4, 2)", ["dt"], "dt wrong length"),
                ("torch.randn(5, 2, 3)", "-torch.rand(5, 2)", ["dt"], "dt negative"),
                ("torch.randn(5, 2, 3)", "torch.full((5, 2), nan)", ["dt"], "dt nan"),
                ("torch.randn(5, 2, 7)", "torch.rand(5, 2)", ["x", "features"], "x wrong features"),
                ("torch.randn(5, 3)", "torch.rand(5, 3)", ["x"], "x 2-D"),
                ("torch.randn(0, 2, 3)", "torch.rand(0, 2)", ["x", "empty"], "T = 0"),
                ("None", "torch.rand(5, 2)", ["x"], "x None"),
                ("torch.randn(5, 2, 3).long()", "torch.rand(5, 2)", ["x", "dtype"], "x int"),
                ("torch.randn(5, 2, 3)", "torch.rand(5, 2).long()", ["dt", "dtype"], "dt int"),
            ])
            yield dict(target="ODERNN", group=f"forward: {label}", kind="bad",
                       code=head + f"rnn = ODERNN(field, cell, readout, w, backend={backend!r})\nout = rnn({x}, {dt})",
                       must=must)
        else:
            if rng.random() < 0.5:
                yield dict(target="ODERNN", group="valid rnn", kind="valid",
                           code=head + f"rnn = ODERNN(field, cell, readout, w, backend={backend!r}, tol=1e-4)\n"
                                       "out = rnn(torch.randn(5, 2, 3), torch.rand(5, 2))\nout.sum().backward()",
                           check="tuple(out.shape) == (5, 2, 2) and finite(out)")
            else:
                yield dict(target="ODERNN", group="forward: y0 wrong shape", kind="bad",
                           code=head + f"rnn = ODERNN(field, cell, readout, w, backend={backend!r})\n"
                                       "out = rnn(torch.randn(5, 2, 3), torch.rand(5, 2), torch.zeros(2, 5))",
                           must=["y0", "shape"])


def _zoo_cases(rng: random.Random, n: int):
    for _ in range(n):
        model = rng.choice(["node", "anode", "sonode", "hbnode", "ghbnode"])
        kind = rng.randrange(3)
        if kind == 0:
            fk, must, label, models = rng.choice([
                ("{'gamma': 'x'}", ["gamma"], "gamma a string", ("hbnode", "ghbnode")),
                ("{'gamma': -1.0}", ["gamma"], "gamma -1", ("hbnode", "ghbnode")),
                ("{'gamma': nan}", ["gamma"], "gamma nan", ("hbnode", "ghbnode")),
                ("{'xi': 2.0}", ["xi"], "xi for hbnode", ("hbnode",)),
                ("{'xi': 'big'}", ["xi"], "xi a string", ("ghbnode",)),
                ("{'bogus': 1}", ["bogus"], "unknown key", ("hbnode", "ghbnode")),
                ("{'sigma': 'nope'}", ["sigma"], "sigma unknown", ("ghbnode",)),
                ("{'omega': [1]}", ["omega"], "omega a list", ("hbnode", "ghbnode")),
                ("{'eps': True}", ["eps"], "eps a bool", ("hbnode", "ghbnode")),
                ("[('gamma', 1.0)]", ["field_kwargs"], "field_kwargs a list", ("hbnode", "ghbnode")),
                ("{'gamma': 0.5}", ["field_kwargs"], "field_kwargs for a first-order model", ("node", "anode")),
            ])
            model = rng.choice(models)
            yield dict(target="zoo", group=f"field_kwargs: {label}", kind="bad",
                       code=f"m = zoo.build('pointcloud', {model!r}, field_kwargs={fk}, tol=1e-4)\nout = m(torch.randn(6, 2))",
                       must=must)
        elif kind == 1:
            args, must, label = rng.choice([
                ("'pointcloudx', 'node'", ["task"], "unknown task"), ("'pointcloud', 'nodex'", ["model"], "unknown model"),
                ("3, 'node'", ["task"], "task an int"), ("'pointcloud', None", ["model"], "model None"),
                ("'pointcloud', 'node', tol=-1", ["tol"], "tol -1"), ("'pointcloud', 'node', rtol='a'", ["rtol"], "rtol a string"),
                ("'pointcloud', 'node', backend='x'", ["backend"], "backend x"),
                ("'pointcloud', 'node', adjoint='x'", ["adjoint"], "adjoint x"),
                ("'pointcloud', 'node', bogus=1", ["bogus"], "unknown option"),
                ("'pointcloud', 'node', max_steps=0", ["max_steps"], "max_steps 0"),
            ])
            yield dict(target="zoo", group=f"build: {label}", kind="bad",
                       code=f"m = zoo.build({args})\nout = m(torch.randn(6, 2))", must=must)
        else:
            fk = "{'gamma': 0.3}" if model in ("hbnode", "ghbnode") and rng.random() < 0.5 else "None"
            yield dict(target="zoo", group="valid build + forward", kind="valid",
                       code=f"m = zoo.build('pointcloud', {model!r}, field_kwargs={fk}, tol=1e-4)\nout = m(torch.randn(6, 2))",
                       check="tuple(out.shape) == (6, 1) and finite(out)")


def _contract_cases(rng: random.Random, n: int):
    """Zoo model inputs (wrong shape/rank/dtype per task, the issue's cases), states without a batch
    axis on every backend and mode, and non-finite gradients in every mode."""
    tasks = {  # task -> (models, valid inputs, bad inputs with the words their message must hold)
        "pointcloud": (["node", "hbnode", "ghbnode", "adamnode"], "torch.randn(4, 2)",
                       [("torch.randn(6, 3)", ["x", "shape"]), ("torch.randn(4, 2, dtype=torch.float64)", ["x", "dtype"]),
                        ("torch.ones(4, 2, dtype=torch.long)", ["x", "dtype"]), ("torch.randn(4)", ["x", "shape"])]),
        "mnist": (["node", "hbnode", "anode"], None,
                  [("torch.randn(2, 28, 28)", ["x", "unsqueeze"]), ("torch.randn(2, 1, 27, 27)", ["x", "shape"]),
                   ("torch.randn(2, 3, 28, 28)", ["x", "channels"])]),
        "cifar10": (["node", "anode", "hbnode"], None,
                    [("torch.randn(2, 3, 28, 28)", ["x", "shape"]), ("torch.randn(2, 1, 32, 32)", ["x", "channels"])]),
        "silverbox": (["node", "hbnode", "ghbnode", "nesterovnode"],
                      "torch.randn(2, 6), torch.randn(2, 1), torch.linspace(0, 0.5, 6)",
                      [("torch.randn(2, 5), torch.randn(2, 1), torch.linspace(0, 1, 10)", ["v1", "ts"]),
                       ("torch.randn(2, 10), torch.randn(2, 2), torch.linspace(0, 1, 10)", ["v2_0", "shape"]),
                       ("torch.randn(2, 10), torch.randn(2, 1), torch.linspace(1, 0, 10)", ["ts", "increasing"])]),
        "plane_vibration": (["node", "hbnode"], None,
                            [("torch.randn(10, 2, 5), torch.rand(10, 2)", ["x", "64"]),
                             ("torch.randn(64, 2, 4), torch.rand(64, 2)", ["x", "shape"])]),
        "walker2d": (["node", "gnesterovnode"], None,
                     [("torch.randn(5, 2, 17), torch.rand(4, 2)", ["dt", "x"]), ("torch.randn(5, 2, 17), -torch.rand(5, 2)", ["dt", ">= 0"])]),
    }
    for _ in range(n):
        kind = rng.randrange(4)
        if kind <= 1:
            task = rng.choice(sorted(tasks))
            models, good, bad = tasks[task]
            model = rng.choice(models)
            build = f"m = zoo.build({task!r}, {model!r}, tol=1e-3)\n"
            if good is not None and rng.random() < 0.25:
                yield dict(target="zoo inputs", group=f"{task}: valid input", kind="valid",
                           code=build + f"out = m({good})", check="finite(out)")
            else:
                args, must = rng.choice(bad)
                yield dict(target="zoo inputs", group=f"{task}: {args[:40]}", kind="bad",
                           code=build + f"out = m({args})", must=must)
        elif kind == 2:  # a state without a batch axis, every backend and mode, against the closed form
            backend = rng.choice(["torch", "torchdiffeq"])
            mode = rng.choice(["checkpointed", "backsolve", "direct"])
            shape = rng.choice(["()", "(3,)"])
            dt = rng.choice(["torch.float32", "torch.float64"])
            yield dict(target="0-d/1-D states", group=f"{backend} {mode} y0 shape {shape}", kind="valid",
                       code=(f"y0 = torch.ones({shape}, dtype={dt}, requires_grad=True)\n"
                             f"out = odeint(Lin(-0.7).to({dt}), y0, torch.tensor([0.0, 1.0], dtype={dt}), "
                             f"backend={backend!r}, adjoint={mode!r}, rtol=1e-6, atol=1e-6).ys\n"
                             "out[-1].sum().backward()"),
                       check="abs(float(out[-1].flatten()[0]) - math.exp(-0.7)) < 1e-4 and "
                             "abs(float(y0.grad.flatten()[0]) - math.exp(-0.7)) < 1e-3")
        else:  # the field's derivative is infinite on the solution: a typed error in backward, never NaN
            backend = rng.choice(["torch", "torchdiffeq"])
            mode = rng.choice(["checkpointed", "backsolve", "direct"])
            shape = rng.choice(["()", "(2,)", "(2, 3)"])
            yield dict(target="nonfinite gradients", group=f"{backend} {mode}", kind="bad",
                       code=(f"y0 = torch.zeros({shape}, dtype=torch.float64, requires_grad=True)\n"
                             "out = odeint(Fn(lambda t, y: -torch.sqrt(y.abs())), y0, "
                             f"torch.tensor([0.0, 1.0], dtype=torch.float64), backend={backend!r}, adjoint={mode!r}).ys\n"
                             "out[-1].sum().backward()\nout = y0.grad"),
                       must=["non-finite"])


def _fit_cases(rng: random.Random, n: int):
    head = "torch.manual_seed(0); m = zoo.build('pointcloud', 'node', tol=1e-3); x, y = cloud()\n"
    bad = [
        ("None, (x, y)", ["model"], "model None"), ("lambda z: z, (x, y)", ["model"], "model a lambda"),
        ("m, (x, y), lr=0", ["lr"], "lr 0"), ("m, (x, y), lr=nan", ["lr"], "lr nan"), ("m, (x, y), lr='a'", ["lr"], "lr str"),
        ("m, (x, y), epochs=0", ["epochs"], "epochs 0"), ("m, (x, y), epochs=1.5", ["epochs"], "epochs 1.5"),
        ("m, (x, y), batch_size=0", ["batch_size"], "batch_size 0"), ("m, (x, y), optimizer='nope'", ["optimizer"], "optimizer"),
        ("m, (x, y), lr_schedule='step:1:nan'", ["lr_schedule"], "lr_schedule step:1:nan"),
        ("m, (x, y), lr_schedule='nope'", ["lr_schedule"], "lr_schedule nope"),
        ("m, (x, y), progress='yes'", ["progress"], "progress a string"), ("m, (x, y), resume=None", ["resume"], "resume None"),
        ("m, (x, y), callbacks=3", ["callbacks"], "callbacks 3"),
        ("m, (x, y), device='gpu9'", ["device"], "device gpu9"), ("m, (x, y), seed=-1", ["seed"], "seed -1"),
        ("m, (x, y[:10])", ["train_data"], "x and y lengths differ"), ("m, (x[:0], y[:0])", ["empty"], "empty data"),
        ("m, (x, y.index_fill(0, torch.tensor([5]), nan))", ["train_data", "nan"], "NaN in y"),
        ("m, (x.index_fill(0, torch.tensor([5]), inf), y)", ["train_data", "inf"], "inf in x"),
        ("m, (x, y), loss='nope'", ["loss"], "loss nope"), ("m, (x, y), metrics=['nope']", ["metric"], "metric nope"),
        ("m, (x, y), grad_clip=-1", ["grad_clip"], "grad_clip -1"), ("m, (x, y), tol=-1", ["tol"], "tol -1"),
        ("m, (x, y), backend='x'", ["backend"], "backend x"), ("m, (x, y), weight_decay=nan", ["weight_decay"], "weight_decay nan"),
        ("m, (x, y), max_batches=0", ["max_batches"], "max_batches 0"),
        ("m, (x, y), checkpoint_every=0, checkpoint_dir=d", ["checkpoint_every"], "checkpoint_every 0"),
        ("m, (x, y), checkpoint_dir=f", ["checkpoint_dir"], "checkpoint_dir a file"),
        ("m, (x, y), checkpoint_dir=3", ["checkpoint_dir"], "checkpoint_dir 3"),
        ("m, (x, y), val_data=(x[:5], y[:5, :0])", ["val"], "val_data mismatched"),
    ]
    setup = ("d = tempfile.mkdtemp()\nf = os.path.join(d, 'afile')\nopen(f, 'w').write('x')\n")
    for _ in range(n):
        kind = rng.randrange(4)
        if kind < 3:
            args, must, label = rng.choice(bad)
            yield dict(target="fit", group=label, kind="bad",
                       code=head + setup + f"h = pyhbnode.fit({args}, epochs=1, batch_size=60, progress=False)"
                       if "epochs=" not in args and "batch_size=" not in args and "progress=" not in args
                       else head + setup + f"h = pyhbnode.fit({args})", must=must)
        elif rng.random() < 0.5:
            lr = rng.choice(["1e6", "1e3"])
            yield dict(target="fit", group=f"hard: lr={lr}", kind="hard",
                       code=head + "d = tempfile.mkdtemp()\n"
                                   f"h = pyhbnode.fit(m, (x, y), lr={lr}, epochs=3, batch_size=60, checkpoint_dir=d, progress=False)",
                       must=[])
        else:
            yield dict(target="fit", group="valid fit", kind="valid",
                       code=head + "h = pyhbnode.fit(m, (x, y), epochs=1, batch_size=60, max_batches=1, progress=False)\nout = None",
                       check="True")


def _cli_cases(rng: random.Random, n: int):
    tr = ["train", "--task", "pointcloud", "--model", "node", "--epochs", "1", "--quiet", "--tol", "1e-3",
          "--set", "limit=20", "--set", "max_batches=1"]
    bad = [
        (["compare", "pointcloud", "--tol", "inf", "--iters", "1", "--quiet", "--models", "node"], "", ["tol"], "compare --tol inf"),
        (["compare", "pointcloud", "--tol", "-1", "--iters", "1", "--quiet", "--models", "node"], "", ["tol"], "compare --tol -1"),
        (["compare", "pointcloud", "--seed", "-1", "--iters", "1", "--quiet", "--models", "node"], "", ["seed"], "compare --seed -1"),
        (["compare", "pointcloud", "--iters", "0", "--quiet"], "", ["iters"], "compare --iters 0"),
        (["compare", "pointcloud", "--backend", "nope", "--iters", "1", "--quiet", "--models", "node"], "", ["backend"], "compare --backend nope"),
        (["compare", "pointcloud", "--threads", "-2", "--iters", "1", "--quiet", "--models", "node"], "", ["threads"], "compare --threads -2"),
        (["reproduce", "pointcloud", "--tiny", "--threads", "-2", "--quiet", "--models", "node"], "", ["threads"], "reproduce --threads -2"),
        (["reproduce", "pointcloud", "--tiny", "--threads", "0", "--quiet", "--models", "node"], "", ["threads"], "reproduce --threads 0"),
        (["reproduce", "pointcloud", "--tiny", "--seed", "-1", "--quiet", "--models", "node"], "", ["seed"], "reproduce --seed -1"),
        (["reproduce", "pointcloud", "--tiny", "--set", "iters=abc", "--quiet", "--models", "node"], "", ["iters"], "reproduce --set iters=abc"),
        (["reproduce", "nope", "--tiny"], "", ["nope"], "reproduce unknown experiment"),
        (["reproduce", "pointcloud", "--tiny", "--device", "cuda", "--quiet", "--models", "node"], "", ["cuda"], "reproduce --device cuda"),
        (tr[:-4] + ["--set", "field_kwargs={\"xi\": 2}", "--model", "hbnode"], "", ["xi"], "train field_kwargs xi for hbnode"),
        (tr + ["--set", "field_kwargs={\"gamma\": \"x\"}", "--model", "hbnode"], "", ["gamma"], "train field_kwargs gamma x"),
        (tr + ["--seed", "-5"], "", ["seed"], "train --seed -5"), (tr + ["--lr", "nan"], "", ["lr"], "train --lr nan"),
        (tr + ["--set", "limit=-5"], "", ["limit"], "train --set limit=-5"), (tr + ["--tol", "inf"], "", ["tol"], "train --tol inf"),
        (tr + ["--set", "bogus=1"], "", ["bogus"], "train --set bogus=1"),
        (tr + ["--config", "cfg.toml"], "open('cfg.toml', 'w').write('epochs = [')", ["cfg.toml"], "train garbage toml"),
        (tr + ["--config", "fifo.toml"], "os.mkfifo('fifo.toml')", ["fifo.toml"], "train --config a FIFO"),
        (tr + ["--config", "adir.toml"], "os.mkdir('adir.toml')", ["adir.toml"], "train --config a directory"),
        (tr + ["--out", "ro"], "os.mkdir('ro'); os.chmod('ro', 0o500)", ["ro"], "train --out read-only"),
        (tr + ["--out", "afile"], "open('afile', 'w').write('x')", ["afile"], "train --out a file"),
        (tr + ["--out", "r1"], "os.makedirs('r1/checkpoints'); os.mkfifo('r1/checkpoints/ckpt-000000001.pt');"
                               "open('r1/checkpoints/ckpt-000000001.json', 'w').write('{\"bytes\": 1, \"sha256\": \"x\"}')",
         ["ckpt-000000001"], "train checkpoint a FIFO"),
        (["plot", "r2"], "os.makedirs('r2'); open('r2/config.json', 'w').write('[1, 2]')", ["config.json"], "plot config.json a list"),
        (["plot", "r3"], "os.makedirs('r3'); open('r3/history.jsonl', 'w').write('{\"a\": 1}\\n')", ["history.jsonl"], "plot history wrong records"),
        (["plot", "r4"], "os.makedirs('r4'); open('r4/config.json', 'w').write('{x')", ["config.json"], "plot garbage config.json"),
        (["plot", "r5"], "os.makedirs('r5'); open('r5/history.jsonl', 'w').write('garbage\\n')", ["history.jsonl"], "plot garbage history"),
        (["plot", "r6"], "os.makedirs('r6'); open('r6/history.jsonl', 'w').write('')", ["history.jsonl"], "plot empty history"),
        (["plot", "r7"], "os.makedirs('r7'); os.mkfifo('r7/history.jsonl')", ["history.jsonl"], "plot history a FIFO"),
        (["plot", "nothere"], "", ["nothere"], "plot missing dir"),
        (["report", "r8"], "os.makedirs('r8'); open('r8/config.json', 'w').write('{x')", ["config.json"], "report garbage config.json"),
        (["report", "r9"], "os.makedirs('r9'); open('r9/config.json', 'w').write('[1]')", ["config.json"], "report config.json a list"),
    ]
    if os.geteuid() == 0:  # root writes into a read-only folder: not a bad input here
        bad = [c for c in bad if c[3] != "train --out read-only"]
    valid = [(tr + ["--out", "ok"], "", "train tiny"), (["reproduce", "--list"], "", "reproduce --list")]
    for _ in range(n):
        if rng.random() < 0.85:
            argv, setup, must, label = rng.choice(bad)
            # a bad file among the checkpoints is skipped with a warning naming it (and training
            # starts from the previous good one), as a corrupt checkpoint is: not an error
            kind = "skip" if label == "train checkpoint a FIFO" else "bad"
            yield dict(target="cli", group=label, kind=kind, argv=argv, setup=setup, must=must)
        else:
            argv, setup, label = rng.choice(valid)
            yield dict(target="cli", group=label, kind="valid", argv=argv, setup=setup, must=[])


def generate(seed: int, scale: float):
    rng = random.Random(seed)
    cases = []
    for backend in ("torch", "torchdiffeq"):
        cases += list(_odeint_cases(rng, backend, int(260 * scale)))
    cases += list(_odeblock_cases(rng, int(50 * scale)))
    cases += list(_odernn_cases(rng, int(50 * scale)))
    cases += list(_zoo_cases(rng, int(50 * scale)))
    cases += list(_contract_cases(rng, int(120 * scale)))
    cases += list(_fit_cases(rng, int(40 * scale)))
    cases += list(_cli_cases(rng, int(40 * scale)))
    for i, c in enumerate(cases):
        c["id"] = f"s{seed}-c{i:04d}"
    return cases


# --------------------------------------------------------------------------------------------
# running and classifying
# --------------------------------------------------------------------------------------------
def _message_ok(msg: str, must) -> bool:
    low = msg.lower()
    return all(w.lower() in low for w in must)


def _classify_python(case, outcome) -> tuple[str, str]:
    status, etype, msg, ok = outcome
    kind = case["kind"]
    if status == "raised":
        if case.get("expect_type"):
            return ("correct" if etype == case["expect_type"] else "unclear-error"), f"{etype}: {msg}"
        if kind == "valid":
            return "rejected-valid", f"{etype}: {msg}"
        if kind == "hard":
            clear = etype in ("MaxStepsExceeded", "StepSizeUnderflow", "NonFiniteState", "SolverFailure",
                              "TrainingDiverged", "SolverError", "AdjointFailure")
            return ("clear-error" if clear else "unclear-error"), f"{etype}: {msg}"
        clear = etype not in UNCLEAR_TYPES and _message_ok(msg, case["must"])
        return ("clear-error" if clear else "unclear-error"), f"{etype}: {msg}"
    # returned
    if kind == "bad":
        return ("silent-wrong" if ok is False else "accepted-bad-input"), f"returned (check {ok})"
    if ok is False:
        return "silent-wrong", "result off / non-finite"
    return "correct", ""


def _worker(conn) -> None:
    import warnings

    warnings.simplefilter("ignore")
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    ns0: dict = {}
    exec(PRELUDE, ns0)
    import torch

    torch.set_num_threads(1)
    while True:
        case = conn.recv()
        if case is None:
            return
        ns = dict(ns0)
        cwd = os.getcwd()
        tmp = tempfile.mkdtemp(prefix="fuzz-")
        os.chdir(tmp)
        try:
            exec(case["code"], ns)
            ok = None
            if case.get("check"):
                try:
                    ok = bool(eval(case["check"], ns))
                except Exception:
                    ok = False
            elif "out" in ns and isinstance(ns["out"], torch.Tensor):
                ok = bool(torch.isfinite(ns["out"]).all())
            conn.send(("returned", None, "", ok))
        except BaseException as err:  # noqa: BLE001 - classifying every outcome is the point
            conn.send(("raised", type(err).__name__, " ".join(str(err).split())[:400], None))
        finally:
            os.chdir(cwd)


class Runner:
    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self.proc = None
        self.conn = None

    def _start(self) -> None:
        ctx = mp.get_context("spawn")
        parent, child = ctx.Pipe()
        self.proc = ctx.Process(target=_worker, args=(child,), daemon=True)
        self.proc.start()
        self.conn = parent
        self.conn.send({"code": "pass"})  # warm up: the imports are not part of any case's time
        if not self.conn.poll(300):
            raise RuntimeError("fuzz worker did not start")
        self.conn.recv()

    def run(self, case):
        if self.proc is None or not self.proc.is_alive():
            self._start()
        self.conn.send(case)
        if self.conn.poll(self.timeout):
            try:
                return self.conn.recv()
            except EOFError:
                self.proc = None
                return ("raised", "WorkerCrash", "the worker process died", None)
        self.proc.kill()
        self.proc.join()
        self.proc = None
        return ("hang", None, f"no answer after {self.timeout:g} s", None)

    def close(self) -> None:
        if self.proc is not None and self.proc.is_alive():
            self.conn.send(None)
            self.proc.join(5)


def run_cli(case, timeout: float) -> tuple[str, str]:
    with tempfile.TemporaryDirectory(prefix="fuzz-cli-") as tmp:
        if case["setup"]:
            subprocess.run([sys.executable, "-c", "import os\n" + case["setup"]], cwd=tmp, check=True)
        env = dict(os.environ, OMP_NUM_THREADS="1", PYHBNODE_DATA=os.path.join(tmp, "data"))
        try:
            proc = subprocess.run([sys.executable, "-m", "pyhbnode", *case["argv"]], cwd=tmp, env=env,
                                  capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return "hang", f"no answer after {timeout:g} s"
        finally:
            for root, dirs, _ in os.walk(tmp):  # let the cleanup into a read-only folder
                for d in dirs:
                    os.chmod(os.path.join(root, d), 0o700)
    err = proc.stderr.strip()
    last = err.splitlines()[-1] if err else ""
    if "Traceback (most recent call last)" in err:
        return "cli-traceback", f"rc {proc.returncode}; {last[:300]}"
    if case["kind"] == "valid":
        return ("correct" if proc.returncode == 0 else "rejected-valid"), f"rc {proc.returncode}; {last[:300]}"
    if case["kind"] == "skip":
        named = proc.returncode == 0 and "skipping checkpoint" in err and _message_ok(err, case["must"])
        return ("correct" if named else "accepted-bad-input"), f"rc {proc.returncode}; {last[:200]}"
    if proc.returncode == 0:
        return "accepted-bad-input", f"rc 0; {last[:200]}"
    clear = _message_ok(err, case["must"]) and len(err.splitlines()) <= 3
    return ("clear-error" if clear else "unclear-error"), f"rc {proc.returncode}; {last[:300]}"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=int(time.time()) % 100000)
    ap.add_argument("--scale", type=float, default=1.0, help="multiply the number of cases per target")
    ap.add_argument("--timeout", type=float, default=20.0, help="seconds before a case counts as a hang")
    ap.add_argument("--only", default=None, help="run only targets whose name contains this")
    ap.add_argument("--out", default=None, help="also write the report to this file")
    ap.add_argument("--jsonl", default=None, help="write one JSON line per case here")
    args = ap.parse_args(argv)

    cases = generate(args.seed, args.scale)
    if args.only:
        cases = [c for c in cases if args.only in c["target"]]
    runner = Runner(args.timeout)
    results = []
    started = time.time()
    try:
        for i, case in enumerate(cases):
            t0 = time.time()
            if case["target"] == "cli":
                cls, detail = run_cli(case, args.timeout + 40)  # the command's own start-up is not a hang
            else:
                outcome = runner.run(case)
                if outcome[0] == "hang":
                    cls, detail = "hang", outcome[2]
                else:
                    cls, detail = _classify_python(case, outcome)
            results.append({**{k: case[k] for k in ("id", "target", "group", "kind")}, "class": cls,
                            "detail": detail, "seconds": round(time.time() - t0, 3),
                            "code": case.get("code") or " ".join(case["argv"])})
            if (i + 1) % 50 == 0:
                print(f"  {i + 1}/{len(cases)} cases, {time.time() - started:.0f} s", file=sys.stderr, flush=True)
    finally:
        runner.close()

    lines = [f"pyhbnode fuzz: seed {args.seed}, {len(results)} cases, timeout {args.timeout:g} s, "
             f"{time.time() - started:.0f} s wall; package {_package_path()}", ""]
    targets = sorted({r["target"] for r in results})
    width = max(len(t) for t in targets + ["target", "total"])
    lines.append("target".ljust(width) + "".join(c.rjust(20) for c in CLASSES))
    totals = collections.Counter()
    for tgt in targets:
        cnt = collections.Counter(r["class"] for r in results if r["target"] == tgt)
        totals.update(cnt)
        lines.append(tgt.ljust(width) + "".join(str(cnt.get(c, 0)).rjust(20) for c in CLASSES))
    lines.append("total".ljust(width) + "".join(str(totals.get(c, 0)).rjust(20) for c in CLASSES))
    lines.append("")
    lines.append("Groups not ending in correct / clear-error (target · group · class · count · example):")
    groups = collections.defaultdict(list)
    for r in results:
        if r["class"] not in ("correct", "clear-error"):
            groups[(r["target"], r["group"], r["class"])].append(r)
    for (tgt, grp, cls), rs in sorted(groups.items()):
        ex = rs[0]
        lines.append(f"- {tgt} · {grp} · {cls} · {len(rs)} · {ex['id']}: {ex['detail'][:240]}")
        lines.append("    " + ex["code"].replace("\n", "\n    ")[:900])
    text = "\n".join(lines)
    print(text)
    if args.out:
        with open(args.out, "w") as fh:
            fh.write(text + "\n")
    if args.jsonl:
        with open(args.jsonl, "w") as fh:
            for r in results:
                fh.write(json.dumps(r) + "\n")
    return 0


def _package_path() -> str:
    try:
        import importlib.util

        spec = importlib.util.find_spec("pyhbnode")
        return os.path.dirname(spec.origin) if spec and spec.origin else "?"
    except Exception:
        return "?"


if __name__ == "__main__":
    sys.exit(main())
