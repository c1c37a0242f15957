"""NesterovNODE, GNesterovNODE and AdamNODE: right-hand sides against the official formulas,
the Nesterov readout, gradients of every mode against finite differences, boundedness of the
G-variant, and the zoo entries."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from pyhbnode import AdamNODE, GNesterovNODE, NesterovNODE, ODEBlock, ODERNN, odeint, zoo
from pyhbnode.fields import mlp
from pyhbnode.layers.odernn import ElapsedTime

D = torch.float64


def _linear(n: int) -> nn.Linear:
    lin = nn.Linear(n, n).to(D)
    with torch.no_grad():
        lin.weight.normal_()
        lin.bias.normal_()
    return lin


def _f(lin: nn.Linear, x: torch.Tensor) -> torch.Tensor:
    return x @ lin.weight.T + lin.bias


def _softplus(x: float) -> float:
    return math.log1p(math.exp(x))


# ---------------------------------------------------------------------------------------------
# Right-hand sides, written straight from the spec (official NesterovNODE.forward / AdamNODEs).


@pytest.mark.parametrize("sign", [1, -1])
def test_gnesterov_rhs_is_the_official_formula(sign):
    n = 4
    lin = _linear(n)
    field = GNesterovNODE(lin, sign=sign, xi=None, chi=0.75, sigma_h="tanh", sigma_f=nn.Hardtanh(-0.5, 0.5),
                          sigma_m="sigmoid", sigma_dm="elu").to(D)
    y = torch.randn(5, 2, n, dtype=D)
    for t in (0.3, 1.0, 1.7, 4.0):
        a, b = y[:, 0], y[:, 1]
        r = t ** 1.5 * math.exp(-t / 2)
        m = (1.5 * math.sqrt(t) * math.exp(-t / 2) - 0.5 * r) * a + r * b
        da = torch.tanh(m)
        inner = torch.sigmoid(sign * _f(lin, a).clamp(-0.5, 0.5) - m) - _softplus(0.75) * a
        db = torch.where(inner > 0, inner, torch.expm1(inner))
        got = field(torch.tensor(t, dtype=D), y)
        torch.testing.assert_close(got, torch.stack([da, db], dim=1), rtol=1e-12, atol=1e-12)


def test_nesterov_rhs_is_the_official_formula_with_identities():
    lin = _linear(3)
    y = torch.randn(4, 2, 3, dtype=D)
    t = 1.4
    a, b = y[:, 0], y[:, 1]
    r = t ** 1.5 * math.exp(-t / 2)
    m = (1.5 * math.sqrt(t) * math.exp(-t / 2) - 0.5 * r) * a + r * b
    for sign in (1, -1):
        field = NesterovNODE(lin, sign=sign).to(D)
        want = torch.stack([m, sign * _f(lin, a) - m], dim=1)
        torch.testing.assert_close(field(torch.tensor(t, dtype=D), y), want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("second_moment", ["softplus", "sigmoid"])
def test_adamnode_rhs_is_the_official_formula_under_m_to_minus_m(second_moment):
    n = 3
    lin = _linear(n)
    field = AdamNODE(lin, alpha1=-0.375, alpha2=1.25, xi1=None, chi1=0.25, xi2=None, chi2=-0.5, sigma_h="tanh",
                     second_moment=second_moment).to(D)
    y = torch.randn(6, 3, n, dtype=D)
    h, m_ours, v = y[:, 0], y[:, 1], y[:, 2]
    m = -m_ours  # the official state stores -m
    phi = torch.nn.functional.softplus(v) if second_moment == "softplus" else torch.sigmoid(v)
    df = _f(lin, h)
    s1, s2 = 1 / (1 + math.exp(0.375)), 1 / (1 + math.exp(-1.25))
    dh = torch.tanh(-m) / (phi.sqrt() + 1e-8)
    dm = s1 * (-df - m) + _softplus(0.25) * h
    dv = s2 * (df ** 2 - v) + _softplus(-0.5) * h
    got = field(torch.tensor(0.5, dtype=D), y)
    torch.testing.assert_close(got, torch.stack([dh, -dm, dv], dim=1), rtol=1e-12, atol=1e-12)


# ---------------------------------------------------------------------------------------------
# The Nesterov readout and its domain.


def _unreadout(ts: torch.Tensor, zs: torch.Tensor) -> torch.Tensor:
    """The inverse of the identity-activation readout: a = h/k, b = dh/k + c(T) h."""
    t = ts.reshape(-1, 1, 1)
    k = t ** -1.5 * torch.exp(t / 2)
    c = 1.5 * t.sqrt() * torch.exp(-t / 2) - 0.5 / k
    h, dh = zs[:, :, 0], zs[:, :, 1]
    return torch.stack([h / k, dh / k + c * h], dim=2)


def test_nesterov_readout_inverted_and_reapplied_is_the_identity():
    field = NesterovNODE(_linear(3)).to(D)
    ts = torch.tensor([0.5, 1.0, 2.0, 3.5], dtype=D)
    zs = torch.randn(4, 5, 2, 3, dtype=D)
    torch.testing.assert_close(field.readout(ts, _unreadout(ts, zs)), zs, rtol=1e-12, atol=1e-12)


def test_odeblock_reads_out_every_time_but_the_first():
    field = GNesterovNODE(mlp([3, 6, 3], "tanh"), sigma_k="tanh", sigma_out=nn.Hardtanh(-0.3, 0.3)).to(D)
    block = ODEBlock(field, 1.0, 2.0, tol=1e-9)
    y0 = torch.randn(2, 2, 3, dtype=D)
    t = torch.tensor([1.0, 1.5, 2.0], dtype=D)
    raw = odeint(field, y0, t, rtol=1e-9, atol=1e-9).ys
    got = block.solve(y0, t).ys
    torch.testing.assert_close(got[0], y0)
    torch.testing.assert_close(got[1:], field.readout(t[1:], raw[1:]))
    torch.testing.assert_close(block(y0), got[-1])


def test_odernn_reads_out_after_each_gap():
    field = NesterovNODE(mlp([3, 6, 3], "tanh")).to(D)
    rnn = ODERNN(field, nn.Linear(6 + 2, 6).to(D), nn.Linear(3, 1).to(D), 3, t0=0.5, tol=1e-9)
    y = torch.randn(2, 2, 3, dtype=D)
    dt = torch.tensor([0.5, 1.5], dtype=D)
    s = torch.tensor([0.5, 1.5], dtype=D)
    raw = odeint(ElapsedTime(field, dt), y, s, rtol=1e-9, atol=1e-9).y_final
    torch.testing.assert_close(rnn.evolve(y, dt), field.readout(s[1:], raw[None])[0])


@pytest.mark.parametrize("t0", [0.0, -1.0])
def test_nesterov_refuses_intervals_starting_at_or_before_zero(t0):
    for field in (NesterovNODE(_linear(2)), GNesterovNODE(_linear(2))):
        with pytest.raises(ValueError, match=rf"t0={t0:g}.*singular.*t0=1"):
            ODEBlock(field, t0, 2.0)
        with pytest.raises(ValueError, match=r"t0=.*singular"):
            ODERNN(field, nn.Linear(6, 4), nn.Linear(2, 1), 2, t0=t0)
    block = ODEBlock(NesterovNODE(_linear(2)).to(D), 1.0, 2.0)
    with pytest.raises(ValueError, match="smallest.*singular"):
        block.solve(torch.randn(1, 2, 2, dtype=D), torch.tensor([t0, 1.0], dtype=D))
    ODEBlock(AdamNODE(_linear(2)), t0, 2.0)  # AdamNODE has no singular time


def test_julia_refuses_the_later_models_by_name():
    from pyhbnode.solving.backends.julia._spec import describe
    from pyhbnode.solving.backends.julia.errors import NotTranslatableError

    for field in (NesterovNODE(_linear(2)), GNesterovNODE(_linear(2)), AdamNODE(_linear(2))):
        with pytest.raises(NotTranslatableError, match=rf"no {type(field).__name__} model.*backend='torch'"):
            describe(field)


# ---------------------------------------------------------------------------------------------
# Gradients of every mode against central finite differences, float64.


def _fields() -> dict[str, nn.Module]:
    torch.manual_seed(1)
    return {
        "nesterovnode": NesterovNODE(mlp([2, 4, 2], "tanh"), sign=-1),
        "gnesterovnode": GNesterovNODE(mlp([2, 4, 2], "tanh"), xi=None, chi=0.3, sigma_h="tanh", sigma_f="tanh",
                                       sigma_k="tanh", sigma_out="tanh"),
        "adamnode": AdamNODE(mlp([2, 4, 2], "tanh"), alpha1=0.5, alpha2=-0.5, xi1=None, xi2=None, chi1=-1.0,
                             chi2=-2.0, sigma_h="tanh"),
    }


def _coefficients(name: str) -> list[str]:
    return {"nesterovnode": [], "gnesterovnode": ["restoring.chi"],
            "adamnode": ["beta1.omega", "beta2.omega", "restoring1.chi", "restoring2.chi"]}[name]


@pytest.mark.parametrize("adjoint", ["checkpointed", "backsolve", "direct"])
@pytest.mark.parametrize("name", ["nesterovnode", "gnesterovnode", "adamnode"])
def test_gradients_of_every_mode_match_finite_differences(name, adjoint, backend):
    field = _fields()[name].to(D)
    order = field.order
    block = ODEBlock(field, 1.0, 1.8, backend=backend, adjoint=adjoint, rtol=1e-11, atol=1e-11)
    torch.manual_seed(2)
    y0 = torch.randn(2, order, 2, dtype=D)
    if name == "adamnode":
        y0[:, 2] = y0[:, 2].abs()  # a second moment, away from φ's flat tail
    t = torch.tensor([1.0, 1.3, 1.8], dtype=D)
    weights = torch.randn(3, *y0.shape, dtype=D)

    def loss(y: torch.Tensor) -> torch.Tensor:
        ys = block.solve(y, t).ys
        return (weights * ys).sum() + (ys[-1] ** 2).sum()

    names = [n for n, _ in field.named_parameters()]
    params = [p for _, p in field.named_parameters()]
    x = y0.clone().requires_grad_(True)
    grads = torch.autograd.grad(loss(x), [x, *params])

    def directional(direction: list[torch.Tensor], eps: float = 1e-5) -> tuple[float, float]:
        exact = sum(float((g * d).sum()) for g, d in zip(grads, direction))
        values = []
        for sign in (1.0, -1.0):
            with torch.no_grad():
                for p, d in zip(params, direction[1:]):
                    p.add_(sign * eps * d)
                values.append(float(loss(y0 + sign * eps * direction[0])))
                for p, d in zip(params, direction[1:]):
                    p.sub_(sign * eps * d)
        return exact, (values[0] - values[1]) / (2 * eps)

    everything = [torch.randn_like(y0)] + [torch.randn_like(p) for p in params]
    coefficients = [torch.zeros_like(y0)] + [torch.ones_like(p) if n in _coefficients(name) else torch.zeros_like(p)
                                             for n, p in zip(names, params)]
    for label, direction in (("all inputs", everything), ("coefficients", coefficients)):
        if label == "coefficients" and not _coefficients(name):
            continue
        exact, fd = directional(direction)
        assert abs(exact - fd) <= 1e-5 * max(1.0, abs(fd)), f"{name}/{backend}/{adjoint} {label}: {exact} vs FD {fd}"


# ---------------------------------------------------------------------------------------------
# Boundedness on a driven (Silverbox-like) input.


def test_gnesterov_state_stays_bounded_over_a_long_driven_horizon():
    torch.manual_seed(0)
    ts = torch.arange(64.0)
    v1 = torch.sin(0.3 * ts)[None].repeat(2, 1) + 0.1 * torch.randn(2, 64)
    v2_0 = torch.randn(2, 1)
    g = zoo.build("silverbox", "gnesterovnode", tol=1e-5)
    plain = zoo.build("silverbox", "nesterovnode", tol=1e-5)
    with torch.no_grad():
        hg, hp = g(v1, v2_0, ts), plain(v1, v2_0, ts)
        a0 = g.initial(v2_0)[:, 0].abs().max()
    # σ_h = hardtanh(±0.25) bounds da/dt, σ_k = hardtanh(±0.25) bounds k: |h(t)| <= 0.25 (|a(1)| + 0.25 t).
    bound = 0.25 * (a0 + 0.25 * ts[:, None, None])
    assert bool(torch.isfinite(hg).all()) and bool((hg[1:].abs() <= bound[1:] + 1e-6).all())
    assert float(hg.abs().max()) < 5.0
    assert float(hp[-1].abs().max()) > 1e6  # k(T) = T^(-3/2) e^(T/2) ≈ 1.5e11 at T = 64 without σ_k


# ---------------------------------------------------------------------------------------------
# The zoo.

# Trainable parameters of the authors preset, counted by hand from their scripts' layers (the
# papers' own tables were not at hand; none of these numbers is quoted from a paper):
# point cloud (NesterovNODE nested_n_spheres.py): initial 2→14→14→2 (282) + field [t, h] 3→14→14→2
# (296) + decoder 2→1 (3); AdamNODE adds β₁, β₂ and its three registered scalars (γ, corr, corr2).
# MNIST/CIFAR-10: the HBNODE sizes (5, 50)/(12, 51) without γ; AdamNODE's CIFAR-10 script widens the
# state to 15 channels (hidden 31).  Walker2D: tempf (3 × 600) + the cell (7,872) + readout (425) + corr.
AUTHORS_COUNTS = {
    "pointcloud": {"nesterovnode": 581, "gnesterovnode": 581, "adamnode": 586},
    "mnist": {"nesterovnode": 85930, "gnesterovnode": 85930, "adamnode": 85832},
    "cifar10": {"nesterovnode": 172915, "gnesterovnode": 172915, "adamnode": 173070},
    "walker2d": {"nesterovnode": 10098, "gnesterovnode": 10098},
}
# The paper preset: the heavy-ball paper's layers of the task (no t input, Walker2D field fc_n),
# no dormant scalars.
PAPER_COUNTS = {
    "pointcloud": {"nesterovnode": 567, "gnesterovnode": 567, "adamnode": 569},
    "mnist": {"nesterovnode": 85929, "gnesterovnode": 85930, "adamnode": 85829},
    "cifar10": {"nesterovnode": 172915, "gnesterovnode": 172915, "adamnode": 173069},
    "walker2d": {"nesterovnode": 8897, "gnesterovnode": 8898},
}


def _trainable(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters() if p.requires_grad)


def test_parameter_counts_of_the_authors_layers():
    got = {task: {m: _trainable(zoo.build(task, m, preset="authors")) for m in counts}
           for task, counts in AUTHORS_COUNTS.items()}
    assert got == AUTHORS_COUNTS
    got = {task: {m: _trainable(zoo.build(task, m)) for m in counts} for task, counts in PAPER_COUNTS.items()}
    assert got == PAPER_COUNTS


@pytest.mark.parametrize("task, model", [("plane_vibration", "nesterovnode"), ("plane_vibration", "gnesterovnode"),
                                         ("plane_vibration", "adamnode"), ("walker2d", "adamnode")])
def test_tasks_their_authors_did_not_run_are_refused(task, model):
    with pytest.raises(ValueError, match=rf"no '{task}' architecture for model '{model}'.*authors ran it on"):
        zoo.build(task, model)


def test_zoo_sets_the_authors_coefficients_and_interval():
    mn = zoo.build("mnist", "gnesterovnode").block
    assert (mn.t0, mn.t1) == (1.0, 2.0) and mn.field.sign == -1
    assert mn.field.restoring.learnable and abs(float(mn.field.xi.detach()) - _softplus(2.0)) < 1e-6
    assert isinstance(mn.field.sigma_k, nn.Hardtanh) and mn.field.sigma_k.max_val == 0.5
    assert float(zoo.build("cifar10", "gnesterovnode").block.field.xi) == 1.5
    walker = zoo.build("walker2d", "gnesterovnode", preset="authors")
    assert walker.rnn.t0 == 1.0 and isinstance(walker.rnn.field.sigma_out, nn.Tanh) and walker.time_scale == 1 / 64
    adam = zoo.build("cifar10", "adamnode").block.field
    assert adam.second_moment == "sigmoid" and abs(float(adam.beta1().detach()) - 1 / (1 + math.exp(-3))) < 1e-7
    pc = zoo.build("pointcloud", "adamnode").block
    assert (pc.t0, pc.field.order) == (0.0, 3)
