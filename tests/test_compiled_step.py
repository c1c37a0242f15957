"""The compiled DP5 step (issue 11): same solution, gradient and counts as the eager step.

The default tests compile with dynamo's ``eager`` backend (the same full graphs dynamo
traces for inductor, run by eager kernels; seconds to compile): they prove the wiring — the compiled
attempt in the forward loop, the ``torch.func.vjp`` of the checkpointed replay, the cache,
the fallback.  The ``slow`` tests compile every zoo model with inductor, as the backend does
by default (about a minute per program on a loaded 2-core machine, seconds from inductor's
on-disk cache).  Everything in float64, compared with the eager path to 1e-12.
"""
from __future__ import annotations

import copy
import subprocess
import sys
import warnings

import pytest
import torch
from torch import nn

from pyhbnode import odeint, record, zoo
from pyhbnode.fields import HBNODE, mlp
from pyhbnode.layers import set_solver_options, solver_layers
from pyhbnode.solving import SolverOptions
from pyhbnode.solving.backends.native import COMPILE_PAYS_AFTER, compiled, decide_compile
from pyhbnode.solving.backends.native.dopri5 import SMALL
from pyhbnode.training import fit

TOL = 1e-12


@pytest.fixture(scope="module")
def traced():
    """dynamo-eager programs for the whole module: the tests share one field class and state
    shape (the point-cloud HBNODE on 6 points), so its two programs are traced once."""
    saved = compiled.BACKEND
    compiled.BACKEND = "eager"
    compiled.clear_cache()
    yield
    compiled.BACKEND = saved
    compiled.clear_cache()


def _loss_and_grads(model: nn.Module, compile: bool, inputs: tuple) -> tuple:
    m = copy.deepcopy(model)
    set_solver_options(m, backend="torch", compile=compile)
    with record() as rec:
        out = m(*inputs)
        loss = out.pow(2).sum()
        grads = torch.autograd.grad(loss, [p for p in m.parameters() if p.requires_grad], allow_unused=True)
    return out.detach(), grads, rec.stats


def _assert_same(model: nn.Module, inputs: tuple) -> None:
    out_e, g_e, st_e = _loss_and_grads(model, False, inputs)
    before = sum(p.calls for p in compiled._CACHE.values())
    out_c, g_c, st_c = _loss_and_grads(model, True, inputs)
    # the programs ran: a failed compile falls back to eager steps, which would match trivially
    failed = [p.failed for p in compiled._CACHE.values() if p.failed]
    assert not failed, failed
    assert sum(p.calls for p in compiled._CACHE.values()) >= before + st_c.steps
    assert (out_c - out_e).abs().max().item() <= TOL
    for a, b in zip(g_c, g_e):
        if a is None or b is None:
            assert a is None and b is None
            continue
        assert (a - b).abs().max().item() <= TOL * max(1.0, b.abs().max().item())
    # the same steps: the compiled attempt accepts and rejects exactly where the eager one does
    assert (st_c.nfe_forward, st_c.nfe_backward, st_c.steps, st_c.accepted) == \
           (st_e.nfe_forward, st_e.nfe_backward, st_e.steps, st_e.accepted)


def _pointcloud(name: str, seed: int = 0) -> tuple[nn.Module, tuple]:
    torch.manual_seed(seed)
    model = zoo.build("pointcloud", name, tol=1e-7).double()
    return model, (torch.randn(6, 2, dtype=torch.float64),)


def test_compiled_matches_eager_on_pointcloud_hbnode(traced):
    model, inputs = _pointcloud("hbnode")
    _assert_same(model, inputs)
    assert sorted(p for _, p, _ in compiled.compile_times()) == ["attempt", "step_vjp"]


def test_new_instance_of_the_same_field_reuses_the_programs(traced):
    n = len(compiled.compile_times())
    other, inputs = _pointcloud("hbnode", seed=3)  # new weights, same classes and shape
    _assert_same(other, inputs)
    assert len(compiled.compile_times()) == n


def test_interior_outputs_and_inference(traced):
    """Steps holding interior output times are differentiated eagerly, the others compiled;
    a solve without gradients runs the compiled attempt alone."""
    model, (x,) = _pointcloud("hbnode", seed=1)
    field = model.block.field
    y0 = model.initial(x).detach().requires_grad_(True)
    t = torch.tensor([0.0, 0.3, 1.1, 2.0], dtype=torch.float64)
    res = {}
    for on in (False, True):
        sol = odeint(field, y0, t, compile=on, rtol=1e-7, atol=1e-7)
        g = torch.autograd.grad(sol.ys.pow(2).sum(), (y0, *field.parameters()))
        with torch.no_grad():
            ys_ng = odeint(field, y0, t, compile=on, rtol=1e-7, atol=1e-7).ys
        res[on] = (sol.ys.detach(), g, ys_ng)
    (ye, ge, ne), (yc, gc, nc) = res.values()
    assert (ye - yc).abs().max() <= TOL and (ne - nc).abs().max() <= TOL
    assert max((a - b).abs().max().item() for a, b in zip(ge, gc)) <= TOL


class _Scaled(nn.Module):
    """dy/dt = -scale · tanh(W y), ``scale`` a plain float: dynamo guards on it."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(3, 3)
        self.scale = 1.0

    def forward(self, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return -self.scale * torch.tanh(self.lin(y))


def test_programs_run_without_dynamo_inside_a_solve_and_recheck_guards_per_solve(traced):
    """After a solve's first call (through dynamo and its guards) the programs run their
    graph directly; the next solve goes through dynamo again, so a changed plain attribute
    of the field (a guard) recompiles instead of reusing a stale graph."""
    torch.manual_seed(0)
    field = _Scaled().double()
    y0 = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    t = torch.tensor([0.0, 1.0], dtype=torch.float64)
    for scale in (1.0, 3.0):
        field.scale = scale
        ref = odeint(field, y0, t, compile=False)
        (g_ref,) = torch.autograd.grad(ref.ys[-1].sum(), y0)
        sol = odeint(field, y0, t, compile=True)
        programs = next(p for p in compiled._CACHE.values() if p.what.startswith("_Scaled"))
        assert "attempt" in programs._bound  # later attempts ran the bound graph
        (g,) = torch.autograd.grad(sol.ys[-1].sum(), y0)
        assert "step_vjp" in programs._bound
        assert (sol.ys - ref.ys).abs().max() <= TOL and (g - g_ref).abs().max() <= TOL
        assert sol.stats.steps == ref.stats.steps
    bound = programs._bound["step_vjp"]
    args = (field, None, None, torch.zeros((), dtype=torch.float64), torch.zeros((), dtype=torch.float64),
            torch.zeros(1, 12, dtype=torch.float64), torch.zeros(1, 12, dtype=torch.float64))
    assert bound.fits(args)
    # a layout dynamo did not see (an expanded loss gradient): back through the guards
    assert not bound.fits(args[:-1] + (torch.zeros((), dtype=torch.float64).expand(1, 12),))
    with torch.no_grad():  # forward solves back to back, no backward between them
        for scale in (1.0, 5.0):
            field.scale = scale
            ref = odeint(field, y0, t, compile=False).ys
            assert (odeint(field, y0, t, compile=True).ys - ref).abs().max() <= TOL


class _Untraceable(nn.Module):
    """A field whose Python control flow reads a tensor's value: no full graph."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(3, 3)

    def forward(self, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if float(y.abs().sum()) > 1e9:
            return y
        return torch.tanh(self.lin(y))


def test_untraceable_field_falls_back_with_one_warning(traced):
    field = _Untraceable().double()
    y0 = torch.randn(4, 3, dtype=torch.float64)
    t = torch.tensor([0.0, 1.0], dtype=torch.float64)
    ref = odeint(field, y0, t, compile=False).ys
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        a = odeint(field, y0, t, compile=True).ys
        b = odeint(field, y0, t, compile=True).ys
    ours = [w for w in caught if "compiling the DP5 step failed" in str(w.message)]
    assert len(ours) == 1, [str(w.message) for w in caught]
    assert "_Untraceable" in str(ours[0].message)
    assert torch.equal(a, ref) and torch.equal(b, ref)


def test_compile_option_is_checked():
    with pytest.raises(TypeError, match="compile must be True, False or 'auto'"):
        odeint(HBNODE(mlp([2, 2], "tanh")), torch.zeros(1, 2, 2), [0.0, 1.0], compile="yes")
    with pytest.raises(ValueError, match="backend 'torchdiffeq' has no compiled steps"):
        odeint(HBNODE(mlp([2, 2], "tanh")), torch.zeros(1, 2, 2), [0.0, 1.0], backend="torchdiffeq", compile=True)
    assert SolverOptions().compile == "auto"
    with pytest.warns(DeprecationWarning, match="compile=None is deprecated"):
        assert SolverOptions(compile=None).compile == "auto"


def test_default_solve_imports_no_compiler():
    """A solve with default options neither compiles nor imports dynamo/inductor (a second
    or more of imports in the first solve of a process)."""
    code = ("import sys, torch; from pyhbnode import odeint, zoo; "
            "m = zoo.build('pointcloud', 'hbnode'); m(torch.randn(4, 2)).sum().backward(); "
            "print(sorted(k for k in ('torch._dynamo', 'torch._inductor') if k in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


def test_seed_gives_the_same_numbers_whatever_ran_before(traced):
    """compile="auto" decides from the solve alone: seed 7's loss and gradients are the same,
    bit for bit, alone and after 80 other training solves of the same model and shape in the
    same process (the old policy switched to compiled steps after a process-wide count)."""
    def run(seed: int):
        torch.manual_seed(seed)
        model = zoo.build("pointcloud", "hbnode", tol=1e-7)
        x = torch.randn(6, 2)
        loss = model(x).pow(2).sum()
        grads = torch.autograd.grad(loss, [p for p in model.parameters() if p.requires_grad])
        return loss.detach(), grads

    first = run(7)
    for seed in range(100, 180):
        run(seed)
    again = run(7)
    assert torch.equal(first[0], again[0])
    assert all(torch.equal(a, b) for a, b in zip(first[1], again[1]))


def test_decide_compile_rule():
    field = HBNODE(mlp([2, 2], "tanh"))
    many = COMPILE_PAYS_AFTER
    assert decide_compile(field, 600, "cpu", many) is True
    assert decide_compile(field, 600, "cpu", many - 1) is False  # too short to pay for the compile
    assert decide_compile(field, 600, "cpu", 1) is False  # a single solve never compiles
    assert decide_compile(field, SMALL + 1, "cpu", many) is False  # a large state
    assert decide_compile(field, 600, "cuda", many) is False  # no GPU measurement yet
    model = zoo.build("pointcloud", "hbnode")
    assert decide_compile(model, torch.randn(50, 2), "cpu", many) is True  # the state read off one pass
    set_solver_options(model, adjoint="direct")
    assert decide_compile(model, torch.randn(50, 2), "cpu", many) is False  # no compiled programs for Direct
    with pytest.raises(ValueError, match="iterations must be a positive int"):
        decide_compile(field, 600, "cpu", 0)


def test_fit_decides_once_for_the_whole_run(traced, monkeypatch):
    """fit resolves "auto" at its start from epochs × batches: a short run steps eagerly, a
    run past the threshold compiles from its first step."""
    x = torch.randn(12, 2, dtype=torch.float64)
    y = torch.randn(12, 1, dtype=torch.float64)
    model = zoo.build("pointcloud", "hbnode", tol=1e-5).double()
    before = len(compiled.compile_times())
    fit(model, (x, y), epochs=2, batch_size=6, progress=False)
    assert {layer.options.compile for layer in solver_layers(model)} == {False}
    assert len(compiled.compile_times()) == before
    monkeypatch.setattr("pyhbnode.solving.backends.native.decide.COMPILE_PAYS_AFTER", 4)
    model = zoo.build("pointcloud", "hbnode", tol=1e-5).double()
    fit(model, (x, y), epochs=2, batch_size=6, progress=False)
    assert {layer.options.compile for layer in solver_layers(model)} == {True}
    assert len(compiled.compile_times()) > before


# -- inductor, every zoo model (slow) -----------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("name", zoo.MODELS)
def test_inductor_matches_eager_pointcloud(name):
    model, inputs = _pointcloud(name)
    _assert_same(model, inputs)


@pytest.mark.slow
def test_inductor_matches_eager_plane_vibration_odernn():
    """ODE-RNN: a new ElapsedTime field per interval, one compiled program for all."""
    model = zoo.build("plane_vibration", "hbnode", tol=1e-7).double()
    x = torch.randn(3, 4, 5, dtype=torch.float64)
    dt = 1.0 + torch.rand(3, 4, dtype=torch.float64)
    _assert_same(model, (x, dt))


@pytest.mark.slow
def test_inductor_matches_eager_mnist_conv():
    model = zoo.build("mnist", "hbnode", tol=1e-5).double()
    _assert_same(model, (torch.randn(2, 1, 28, 28, dtype=torch.float64),))


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (CUDA graphs, reduce-overhead)")
def test_cuda_graphs_match_eager():
    model = zoo.build("pointcloud", "hbnode", tol=1e-7).double().cuda()
    _assert_same(model, (torch.randn(6, 2, dtype=torch.float64, device="cuda"),))
