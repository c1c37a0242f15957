"""ODEBlock and the ODE-RNN hybrid: values against hand-computed recursions, gradients,
and per-call statistics."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from helpers import MODEL_NAMES, small_field
from pyhbnode import HBNODE, NODE, ODEBlock, ODERNN, odeint, record


class Decay(nn.Module):
    def forward(self, h):
        return -h


def test_odeblock_returns_final_state_and_stats(backend):
    field = small_field("ghbnode")
    block = ODEBlock(field, 0.0, 2.0, backend=backend, tol=1e-9)
    y0 = torch.randn(3, 2, 3, dtype=torch.float64)
    with record() as rec:
        out = block(y0)
        assert rec.stats.nfe_forward > 0 and rec.stats.nfe_backward == 0
        out.sum().backward()
    ref = odeint(field, y0, [0.0, 2.0], backend=backend, rtol=1e-9, atol=1e-9).ys[-1]
    assert torch.allclose(out, ref, atol=1e-12)
    assert rec.stats.nfe_backward > 0


def test_odeblock_rejects_empty_interval():
    with pytest.raises(ValueError, match="t0 < t1"):
        ODEBlock(small_field("node"), 1.0, 1.0)


def _identity_cell(width_state: int, k: int) -> nn.Linear:
    """new state = state + [x, 0...] (x added to the first k entries)."""
    cell = nn.Linear(width_state + k, width_state, bias=False).double()
    with torch.no_grad():
        cell.weight.zero_()
        cell.weight[:, :width_state] = torch.eye(width_state)
        cell.weight[:k, width_state:] = torch.eye(k)
    return cell


def test_odernn_first_order_matches_exact_recursion(backend):
    n = k = 2
    rnn = ODERNN(NODE(Decay()), _identity_cell(n, k), nn.Identity(), n, backend=backend, tol=1e-10)
    x = torch.randn(5, 3, k, dtype=torch.float64)
    dt = torch.rand(5, 3, dtype=torch.float64) + 0.1
    dt[0] = 0.0  # no evolution before the first observation
    with record() as rec:
        out = rnn(x, dt)
    h = torch.zeros(3, n, dtype=torch.float64)
    for i in range(5):
        h = h * torch.exp(-dt[i])[:, None] + x[i]
        assert torch.allclose(out[i], h, atol=1e-8)
    assert rec.stats.solves == 4  # the dt = 0 step is skipped


def test_odernn_heavy_ball_state_matches_closed_form(backend):
    """HBNODE-RNN with f(h) = -h, γ fixed: between observations each sample follows the
    damped oscillator over its own elapsed time."""
    n, k, gamma = 1, 1, 0.4
    rnn = ODERNN(HBNODE(Decay(), gamma=gamma), _identity_cell(2 * n, k), nn.Identity(), n,
                 backend=backend, tol=1e-10)
    x = torch.randn(3, 2, k, dtype=torch.float64)
    dt = torch.tensor([[0.0, 0.0], [0.7, 1.3], [0.2, 2.0]], dtype=torch.float64)
    out = rnn(x, dt)
    wd = math.sqrt(1 - gamma**2 / 4)
    h = torch.zeros(2, dtype=torch.float64)
    m = torch.zeros(2, dtype=torch.float64)
    for i in range(3):
        tau = dt[i]
        e = torch.exp(-gamma * tau / 2)
        b = (m + gamma * h / 2) / wd
        h, m = (e * (h * torch.cos(wd * tau) + b * torch.sin(wd * tau)),
                e * ((b * wd - gamma / 2 * h) * torch.cos(wd * tau) - (h * wd + gamma / 2 * b) * torch.sin(wd * tau)))
        h = h + x[i, :, 0]
        assert torch.allclose(out[i, :, 0], h, atol=1e-8)


@pytest.mark.parametrize("model", MODEL_NAMES)
def test_odernn_adjoint_gradients_match_direct(model, backend):
    from pyhbnode.solving import get_backend

    n, k = 3, 2
    field = small_field(model, n=n)
    d = field.order
    cell = nn.Sequential(nn.Linear(d * n + k, d * n), nn.Tanh()).double()
    readout = nn.Linear(n, 1).double()
    x = torch.randn(4, 2, k, dtype=torch.float64)
    dt = torch.rand(4, 2, dtype=torch.float64) + 0.2
    grads = {}
    for adjoint in get_backend(backend).mode_names():
        rnn = ODERNN(field, cell, readout, n, backend=backend, adjoint=adjoint, tol=1e-10)
        with record() as rec:
            loss = rnn(x, dt).pow(2).sum()
            params = list(rnn.parameters())
            grads[adjoint] = torch.autograd.grad(loss, params)
        assert rec.stats.solves == 4 and rec.stats.nfe_backward > 0
    for adjoint, g in grads.items():
        for a, b in zip(g, grads["direct"]):
            assert (a - b).norm() <= 1e-5 * b.norm().clamp_min(1e-12), adjoint


def test_odernn_rejects_bad_shapes():
    rnn = ODERNN(NODE(Decay()), nn.Linear(4, 2), nn.Identity(), 2)
    with pytest.raises(ValueError, match="time, batch, features"):
        rnn(torch.randn(5, 2), torch.ones(5))
    with pytest.raises(ValueError, match=r"dt\.shape\[0\] = 4 but x\.shape\[0\] = 5"):
        rnn(torch.randn(5, 3, 2), torch.ones(4, 3))
    with pytest.raises(ValueError, match=">= 0"):
        rnn(torch.randn(5, 3, 2), -torch.ones(5, 3))


def test_odernn_cell_first_reads_then_evolves(backend):
    n = k = 1
    rnn = ODERNN(NODE(Decay()), _identity_cell(n, k), nn.Identity(), n, cell_first=True, backend=backend, tol=1e-10)
    x = torch.randn(3, 2, k, dtype=torch.float64)
    dt = torch.rand(3, 2, dtype=torch.float64) + 0.1
    out = rnn(x, dt)
    h = torch.zeros(2, n, dtype=torch.float64)
    for i in range(3):
        h = (h + x[i]) * torch.exp(-dt[i])[:, None]
        assert torch.allclose(out[i], h, atol=1e-8)


def test_recorder_sums_a_block_called_twice(backend):
    import pyhbnode

    field = small_field("hbnode")
    block = ODEBlock(field, 0.0, 1.0, backend=backend, tol=1e-8)
    y0 = torch.randn(3, 2, 3, dtype=torch.float64, requires_grad=True)
    # the same two solves one by one, as the reference totals
    singles = [odeint(field, y, [0.0, 1.0], backend=backend, rtol=1e-8, atol=1e-8) for y in (y0, 0.5 * y0)]
    for s in singles:
        s.ys[-1].pow(2).sum().backward()
    with pyhbnode.record() as rec:
        out = block(y0) + block(0.5 * y0)
        before = rec.stats
        out.pow(2).sum().backward()
    after = rec.stats
    assert before.solves == after.solves == 2
    assert before.nfe_forward == after.nfe_forward == sum(s.stats.nfe_forward for s in singles)
    assert before.nfe_backward == 0
    assert after.nfe_backward == sum(s.stats.nfe_backward for s in singles) > 0


def test_layers_keep_no_statistics_of_their_own():
    """NFE are read through ``record()`` alone: a layer that kept counters could disagree with it."""
    block = ODEBlock(small_field("node"), 0.0, 1.0)
    block(torch.randn(2, 3, dtype=torch.float64))
    assert not hasattr(block, "stats") and not hasattr(block, "reset_stats")


def test_recorders_nest_and_see_only_their_own_solves():
    import pyhbnode

    field = small_field("node")
    y0 = torch.randn(3, 3, dtype=torch.float64)
    with pyhbnode.record() as outer:
        odeint(field, y0, [0.0, 1.0])
        with pyhbnode.record() as inner:
            odeint(field, y0, [0.0, 2.0])
    odeint(field, y0, [0.0, 1.0])  # outside both
    assert inner.stats.solves == 1 and outer.stats.solves == 2
    assert outer.stats.nfe_forward > inner.stats.nfe_forward > 0
