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
import warnings

import pytest
import torch
from torch import nn

from pyhbnode import odeint, record, zoo
from pyhbnode.fields import HBNODE, mlp
from pyhbnode.layers import set_solver_options
from pyhbnode.solving.backends.native import TorchBackend
from pyhbnode.solving.backends.native import compiled

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
    out_c, g_c, st_c = _loss_and_grads(model, True, inputs)
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
    with pytest.raises(ValueError, match="compile must be True, False or None"):
        TorchBackend(compile="yes")
    with pytest.raises(TypeError, match="compile must be True, False or None"):
        odeint(HBNODE(mlp([2, 2], "tanh")), torch.zeros(1, 2, 2), [0.0, 1.0], compile="yes")
    with pytest.raises(ValueError, match="backend 'torchdiffeq' has no compiled steps"):
        odeint(HBNODE(mlp([2, 2], "tanh")), torch.zeros(1, 2, 2), [0.0, 1.0], backend="torchdiffeq", compile=True)


def test_auto_compiles_after_the_eager_budget(traced, monkeypatch):
    """compile=None steps eagerly, counting the step attempts (forward and backward) on the
    key, until AUTO_AFTER_ATTEMPTS are made; then it steps compiled and stops counting."""
    monkeypatch.setattr("pyhbnode.solving.backends.native.backend.AUTO_AFTER_ATTEMPTS", 60)
    model, (x,) = _pointcloud("hbnode", seed=2)
    field = model.block.field
    y0 = model.initial(x).detach().requires_grad_(True)
    t = torch.tensor([0.0, 1.0], dtype=torch.float64)

    def solve():
        ys = odeint(field, y0, t, rtol=1e-7, atol=1e-7).ys
        ys.sum().backward()
        return ys.detach()

    ref = solve()
    (programs,) = [p for p in compiled._CACHE.values() if p.what.startswith("HBNODE on (6, 2, 2) torch.float64")]
    spent = [programs.eager_attempts]
    while spent[-1] < 60:
        with record() as rec:
            assert (solve() - ref).abs().max() <= TOL
        spent.append(programs.eager_attempts)
        # the account is what was solved, not how long it took: load cannot move the switch
        assert spent[-1] - spent[-2] == rec.stats.steps + rec.stats.steps_backward
        assert len(spent) < 10_000
    assert all(b > a for a, b in zip(spent, spent[1:]))  # every eager solve was counted
    assert (solve() - ref).abs().max() <= TOL
    assert programs.eager_attempts == spent[-1]  # compiled now: nothing more to count


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
