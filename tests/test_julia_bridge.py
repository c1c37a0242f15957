"""The Python half of the Julia bridge, checked without Julia.

* Spec + flat parameters + the column-major layout rules: the numpy emulation of the
  Julia side (``tests/julia_emulate.py``, a line-by-line mirror of
  ``PyHBNODEBridge/src/field.jl``) evaluates every model, MLP and conv (with
  tpad, odd kernels, padding, stride, dilation, groups), and must equal torch to 1e-12.
* The autograd bridge end to end: ``JuliaBackend`` driven by a fake runtime that follows
  the Julia API in numpy (fixed-step RK4 forward, central differences backward) must give
  torch's trajectory and gradients for every parameter (incl. ω, χ) and the input, fill
  the NFE statistics, map failures and refuse foreign threads.
"""
from __future__ import annotations

import os
import sys
import threading
import types
import warnings

import numpy as np
import pytest
import torch
from torch import nn

from helpers import backward_in_thread
import julia_emulate as emulate
from julia_cases import KINDS, MODELS, P_FORMULA, U_FORMULA, build_case, formula, zoo_fields
from pyhbnode import (
    ANODE, GHBNODE, HBNODE, NODE, SONODE, AdjointFailure, JuliaBackendError, MaxStepsExceeded,
    NonFiniteState, NotTranslatableError, StepSizeUnderflow, SolverFailure, TimeSequential, TPad,
    odeint,
)
from pyhbnode.fields import activation, mlp
from pyhbnode.solving.backends import registry
from pyhbnode.solving.backends.julia._backend import JuliaBackend
from pyhbnode.solving.backends.julia._runtime import JuliaRuntime
from pyhbnode.solving.backends.julia._spec import describe, pack_parameters, unpack_parameters




def emulated_rhs(field: nn.Module, t: float, y: torch.Tensor) -> torch.Tensor:
    """Evaluate ``field`` the way the Julia bridge does, in torch layout."""
    spec = describe(field)
    p = pack_parameters(spec, like=y).detach().numpy()
    du = emulate.build(spec.json).evaluate(emulate.to_julia_layout(y.detach().numpy()), p, t)
    return torch.from_numpy(emulate.to_torch_layout(du).copy())


def assert_rhs_matches(field: nn.Module, y: torch.Tensor, t: float = 0.37) -> None:
    with torch.no_grad():
        want = field(torch.tensor(t, dtype=y.dtype), y)
    got = emulated_rhs(field, t, y)
    assert got.shape == want.shape
    err = float((got - want).abs().max())
    assert err <= 1e-12 * max(1.0, float(want.abs().max())), f"emulated RHS off by {err:.2e}"


# --- layout: spec + packing + column-major emulation vs torch --------------------------------

@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("kind", KINDS)
def test_conformance_case_rhs_matches_torch(model, kind):
    case = build_case(model, kind)
    assert_rhs_matches(case.field, case.y0)


def _conv_net(cin: int, cout: int) -> nn.Module:
    """Every conv feature the zoo could use, plus the ReLU family and tpad."""
    return TimeSequential(
        TPad(), nn.Conv2d(cin + 1, 4, 1), nn.ReLU(),
        TPad(), nn.Conv2d(5, 4, (3, 2), padding="same"), activation("lrelu"),
        TPad(), nn.Conv2d(5, 4, 3, padding=(2, 1), dilation=(2, 1)), nn.ELU(0.7),
        nn.Conv2d(4, 4, 3, padding=1, groups=2), nn.Hardtanh(-0.5, 0.5),
        TPad(), nn.Conv2d(5, cout, (1, 3), padding=(0, 1), bias=False), nn.Sigmoid(),
    )


@pytest.mark.filterwarnings("ignore:Using padding='same'")
@pytest.mark.parametrize("model", MODELS)
def test_conv_field_with_every_layer_option_matches_torch(model):
    n = 3 if model == "anode" else 2
    cin = 2 * n if model == "sonode" else n
    field = {
        "node": lambda f: NODE(f), "anode": lambda f: ANODE(f, 1), "sonode": lambda f: SONODE(f),
        "hbnode": lambda f: HBNODE(f, gamma=0.3), "ghbnode": lambda f: GHBNODE(f, xi=0.5, sigma="hardtanh"),
    }[model](_conv_net(cin, n)).double()
    order = 2 if model in ("sonode", "hbnode", "ghbnode") else 1
    shape = (3,) + ((2,) if order == 2 else ()) + (n, 5, 6)
    assert_rhs_matches(field, torch.randn(shape, dtype=torch.float64))


@pytest.mark.parametrize("conv,shape", [
    (nn.Conv1d(2, 3, 3, padding=1), (2, 2, 7)),
    (nn.Conv2d(2, 3, (2, 3), stride=(2, 1), padding=(1, 0)), (2, 2, 5, 6)),
    (nn.Conv3d(2, 2, (1, 2, 3), padding=(0, 1, 1)), (2, 2, 3, 4, 5)),
    (nn.Linear(4, 3), (2, 5, 4)),  # Linear on the last torch dim = Julia's W * x on the first
])
def test_first_order_layer_shapes_match_torch(conv, shape):
    field = NODE(nn.Sequential(conv, nn.Softplus())).double()
    assert_rhs_matches(field, torch.randn(shape, dtype=torch.float64))


def test_packing_is_column_major_and_differentiable():
    lin = nn.Linear(3, 2).double()
    field = GHBNODE(nn.Sequential(lin), omega=-1.0, chi=0.2).double()
    spec = describe(field)
    data = spec.data
    assert [(e["key"], e["role"], e["offset"], e["size"]) for e in data["params"]] == [
        ("layer_1", "weight", 0, [2, 3]), ("layer_1", "bias", 6, [2]),
        ("omega", "value", 8, [1]), ("chi", "value", 9, [1]),
    ]
    p = pack_parameters(spec)
    # Julia reads the first 6 entries as the (2, 3) column-major weight
    w_julia = p[:6].detach().numpy().reshape((2, 3), order="F")
    assert np.array_equal(w_julia, lin.weight.detach().numpy())
    p.sum().backward()
    assert lin.weight.grad is not None and field.damping.omega.grad is not None
    assert field.restoring.chi.grad is not None


def test_fixed_coefficients_are_constants_not_parameters():
    spec = describe(HBNODE(nn.Linear(2, 2), gamma=0.25).double())
    assert spec.data["gamma"] == {"kind": "fixed", "value": 0.25}
    assert spec.data["xi"] == {"kind": "fixed", "value": 0.0}
    assert spec.data["sigma"]["fn"] == "identity"
    assert spec.n_params == 6


def test_spec_text_is_structure_only():
    a, b = NODE(mlp([2, 4, 2], "tanh")).double(), NODE(mlp([2, 4, 2], "tanh")).double()
    assert describe(a).json == describe(b).json  # different values, same cached Julia build
    assert describe(a).json != describe(NODE(mlp([2, 5, 2], "tanh")).double()).json


@pytest.mark.parametrize("net,where", [
    (nn.Sequential(nn.Linear(2, 2), nn.Dropout(0.1)), "f.1"),
    (nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2)), "f.1"),
    (TimeSequential(TPad(), nn.Conv2d(3, 2, 3, padding=1, padding_mode="circular")), "f.layers.1"),
    (nn.Sequential(nn.GELU()), "f.0"),
])
def test_not_translatable_names_the_layer_and_suggests_torch(net, where):
    with pytest.raises(NotTranslatableError) as info:
        describe(NODE(net))
    assert repr(where) in str(info.value) and "torchdiffeq" in str(info.value)


def test_foreign_and_overridden_fields_are_not_translatable():
    class Custom(nn.Module):
        order = 1

        def forward(self, t, y):
            return y ** 2

    class Tweaked(NODE):
        def forward(self, t, y):
            return -super().forward(t, y)

    with pytest.raises(NotTranslatableError, match="Custom"):
        describe(Custom())
    with pytest.raises(NotTranslatableError, match="overrides forward"):
        describe(Tweaked(nn.Linear(2, 2)))


# --- the bridge end to end, with a numpy runtime ---------------------------------------------

STEPS_PER_UNIT = 8


class FakeJuliaError(Exception):
    """Shaped like juliacall.JuliaError: ``.exception`` holds the Julia exception."""

    def __init__(self, exception, text):
        super().__init__(text)
        self.exception = exception


def rk4_numpy(f, u0, ts, maxiters):
    u, out, nf, steps, t = u0.copy(), [u0.copy()], 0, 0, ts[0]
    for a, b in zip(ts[:-1], ts[1:]):
        n = max(1, int(round((b - a) * STEPS_PER_UNIT)))
        h, t = (b - a) / n, a
        for _ in range(n):
            if steps >= maxiters:
                return None, "MaxIters", t, nf, steps
            k1 = f(u, t)
            k2 = f(u + h / 2 * k1, t + h / 2)
            k3 = f(u + h / 2 * k2, t + h / 2)
            k4 = f(u + h * k3, t + h)
            u = u + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
            t, nf, steps = t + h, nf + 4, steps + 1
            if not np.all(np.isfinite(u)):
                return None, "Unstable", t, nf, steps
        out.append(u.copy())
    return np.stack(out, axis=-1), "Success", t, nf, steps


def rk4_torch(field, y0, ts):
    ys, y = [y0], y0
    ts = [float(x) for x in ts]
    for a, b in zip(ts[:-1], ts[1:]):
        n = max(1, int(round((b - a) * STEPS_PER_UNIT)))
        h, t = (b - a) / n, a

        def f(s, z):
            return field(torch.tensor(s, dtype=y0.dtype), z)

        for _ in range(n):
            k1 = f(t, y)
            k2 = f(t + h / 2, y + h / 2 * k1)
            k3 = f(t + h / 2, y + h / 2 * k2)
            k4 = f(t + h, y + h * k3)
            y, t = y + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4), t + h
        ys.append(y)
    return torch.stack(ys)


class FakeRuntime:
    """The runtime API of ``_runtime.JuliaRuntime``, in numpy.

    Arrays are flat numpy vectors in Julia (column-major) order, exactly what DLPack gives
    the real bridge; ``forward``/``backward``/``rhs`` follow ``PyHBNODEBridge/src/solve.jl``.
    """

    def __init__(self, *, rhs_scale: float = 1.0, forward_retcode: str | None = None,
                 backward_result: dict | None = None) -> None:
        self.calls: list[str] = []
        self.sensealgs: list[str] = []
        self.rhs_scale = rhs_scale
        self.forward_retcode = forward_retcode
        self.backward_result = backward_result or {}
        self._handles: dict[str, emulate.EmulatedField] = {}

    def build(self, spec_json):
        self.calls.append("build")
        return self._handles.setdefault(spec_json, emulate.build(spec_json))

    def to_julia(self, x):
        return x.detach().contiguous().reshape(-1).numpy().copy()

    def to_torch(self, vec, shape, device=None):
        assert device is None or device.type == "cpu"
        return torch.from_numpy(np.asarray(vec).copy()).reshape(shape)

    def call(self, name, *args, phase="forward", **kwargs):
        self.calls.append(name)
        return getattr(self, "_" + name)(*args, **kwargs)

    @staticmethod
    def _params(p):
        return np.zeros(0) if p is None else p

    def _rhs(self, field, u, usize, p, t, device="cpu"):
        assert device == "cpu"
        du = field.evaluate(u.reshape(usize, order="F"), self._params(p), t)
        return self.rhs_scale * du.reshape(-1, order="F")

    def _solve(self, field, u0, usize, p, ts, maxiters):
        def f(u, t):
            return field.evaluate(u, p, t)

        return rk4_numpy(f, u0.reshape(usize, order="F"), ts, maxiters)

    def _forward(self, field, u0, usize, p, ts, *, rtol, atol, maxiters, sensealg, seminorm, keep, device):
        assert device == "cpu"
        assert sensealg in ("backsolve", "interpolating")
        self.sensealgs.append(sensealg)
        p = self._params(p)
        ys, retcode, t, nf, steps = self._solve(field, u0, usize, p, ts, maxiters)
        retcode = self.forward_retcode or retcode
        ok = retcode == "Success"
        return types.SimpleNamespace(
            success=ok, retcode=retcode, t_reached=t, dt_last=float("nan"), nf=nf, naccept=steps,
            nreject=0, counter=nf, ys=ys.reshape(-1, order="F") if ok else None,
            keep=(field, u0, usize, p, ts, maxiters) if keep else None,
        )

    def _backward(self, fw, cot):
        field, u0, usize, p, ts, maxiters = fw.keep
        if self.backward_result:  # a canned failure: skip the finite differences
            out = dict(du0=np.zeros_like(u0), dp=np.zeros_like(p), nfe=1, finite=True, reached_t0=True, hit_maxiters=False)
            out.update(self.backward_result)
            return types.SimpleNamespace(**out)
        nfe = 0

        def loss(u, q):
            nonlocal nfe
            ys, _, _, nf, _ = self._solve(field, u, usize, q, ts, maxiters)
            nfe += nf
            return float(np.dot(cot, ys.reshape(-1, order="F")))

        def grad(x, fn):
            g, h = np.zeros_like(x), 1e-6
            for i in range(x.size):
                e = np.zeros_like(x)
                e[i] = h
                g[i] = (fn(x + e) - fn(x - e)) / (2 * h)
            return g

        du0 = grad(u0, lambda u: loss(u, p))
        dp = grad(p, lambda q: loss(u0, q))
        out = dict(du0=du0, dp=dp, nfe=nfe, finite=True, reached_t0=True, hit_maxiters=False)
        out.update(self.backward_result)
        return types.SimpleNamespace(**out)


@pytest.fixture
def fake(monkeypatch):
    """Route ``backend="julia"`` to a JuliaBackend over a FakeRuntime."""
    holder = {"runtime": FakeRuntime()}

    def install(runtime=None):
        holder["runtime"] = runtime or FakeRuntime()
        backend = JuliaBackend(holder["runtime"])
        monkeypatch.setitem(registry._LOADERS, "julia", lambda: backend)
        monkeypatch.setitem(registry._LOADED, "julia", backend)
        return holder["runtime"]

    install()
    return install


def _mlp_case(model):
    case = build_case(model, "mlp")
    case.ts = torch.tensor([0.0, 0.5, 1.0], dtype=torch.float64)
    return case


@pytest.mark.parametrize("model", MODELS)
def test_bridge_end_to_end_matches_torch(fake, model):
    runtime = fake()
    case = _mlp_case(model)
    y0 = case.y0.clone().requires_grad_(True)
    sol = odeint(case.field, y0, case.ts, backend="julia", adjoint="interpolating")
    ref_y0 = case.y0.clone().requires_grad_(True)
    ref = rk4_torch(case.field, ref_y0, case.ts)
    assert sol.ys.shape == ref.shape
    assert float((sol.ys.detach() - ref.detach()).abs().max()) <= 1e-12
    params = [p for _, p in case.field.named_parameters()]
    names = ["y0"] + [n for n, _ in case.field.named_parameters()]
    got = torch.autograd.grad((case.cotangent * sol.ys).sum(), [y0, *params])
    want = torch.autograd.grad((case.cotangent * ref).sum(), [ref_y0, *params])
    if model in ("hbnode", "ghbnode"):
        assert "damping.omega" in names
    if model == "ghbnode":
        assert "restoring.chi" in names
    for name, g, w in zip(names, got, want):
        rel = float((g - w).norm() / w.norm().clamp_min(1e-12))
        assert rel <= 1e-6, f"gradient of {name} off by {rel:.2e}"
    assert sol.stats.nfe_forward == 4 * STEPS_PER_UNIT
    assert sol.stats.nfe_backward > 0
    assert sol.stats.steps == STEPS_PER_UNIT and sol.stats.status.name == "SUCCESS"
    assert runtime.calls.count("rhs") == 1  # the layout check, once per structure
    odeint(case.field, case.y0, case.ts, backend="julia", adjoint="backsolve")
    assert runtime.calls.count("rhs") == 1
    assert runtime.sensealgs == ["interpolating", "backsolve"]


def test_bridge_conv_field_end_to_end(fake):
    fake()
    f = TimeSequential(TPad(), nn.Conv2d(2, 1, (3, 1), padding=(1, 0)), nn.Tanh())
    field = HBNODE(f, omega=-1.0).double()
    y0 = (torch.randn(2, 2, 1, 2, 3, dtype=torch.float64) * 0.5).requires_grad_(True)
    ts = torch.tensor([0.0, 0.5], dtype=torch.float64)
    sol = odeint(field, y0, ts, backend="julia", adjoint="backsolve")
    ref_y0 = y0.detach().clone().requires_grad_(True)
    ref = rk4_torch(field, ref_y0, ts)
    assert float((sol.ys.detach() - ref.detach()).abs().max()) <= 1e-12
    g = torch.autograd.grad(sol.ys.pow(2).sum(), [y0, field.damping.omega])
    w = torch.autograd.grad(ref.pow(2).sum(), [ref_y0, field.damping.omega])
    for a, b in zip(g, w):
        assert float((a - b).norm() / b.norm()) <= 1e-6


def test_inference_keeps_nothing_and_skips_autograd(fake):
    fake()
    case = _mlp_case("hbnode")
    with torch.no_grad():
        sol = odeint(case.field, case.y0, case.ts, backend="julia", adjoint="backsolve")
    assert sol.ys.grad_fn is None and sol.stats.nfe_forward > 0


def test_field_without_parameters(fake):
    fake()
    field = NODE(nn.Tanh()).double()
    y0 = torch.randn(2, 3, dtype=torch.float64, requires_grad=True)
    ts = torch.tensor([0.0, 0.5], dtype=torch.float64)
    sol = odeint(field, y0, ts, backend="julia", adjoint="backsolve")
    (g,) = torch.autograd.grad(sol.ys.sum(), [y0])
    ref_y0 = y0.detach().clone().requires_grad_(True)
    (w,) = torch.autograd.grad(rk4_torch(field, ref_y0, ts).sum(), [ref_y0])
    assert float((g - w).abs().max()) <= 1e-6


@pytest.mark.parametrize("retcode,error", [
    ("MaxIters", MaxStepsExceeded), ("DtLessThanMin", StepSizeUnderflow), ("Unstable", NonFiniteState),
    ("DtNaN", NonFiniteState), ("InitialFailure", SolverFailure),
])
def test_forward_retcodes_raise_solver_errors(fake, retcode, error):
    fake(FakeRuntime(forward_retcode=retcode))
    case = _mlp_case("node")
    with pytest.raises(error) as info:
        odeint(case.field, case.y0, case.ts, backend="julia", adjoint="backsolve")
    assert info.value.phase == "forward" and info.value.nfe_forward > 0
    assert retcode in str(info.value)


def test_max_steps_reaches_the_runtime_as_maxiters(fake):
    fake()
    case = _mlp_case("node")
    with pytest.raises(MaxStepsExceeded) as info:
        odeint(case.field, case.y0, case.ts, backend="julia", adjoint="backsolve", max_steps=3)
    assert info.value.t is not None and info.value.t < 1.0


@pytest.mark.parametrize("result,match", [
    ({"finite": False}, "non-finite"), ({"hit_maxiters": True, "reached_t0": False}, "maxiters"),
    ({"reached_t0": False}, "stopped before reaching t0"),
])
def test_backward_failures_raise_adjoint_failure(fake, result, match):
    fake(FakeRuntime(backward_result=result))
    case = _mlp_case("hbnode")
    sol = odeint(case.field, case.y0.clone().requires_grad_(True), case.ts, backend="julia", adjoint="backsolve")
    with pytest.raises(AdjointFailure, match=match) as info:
        sol.ys.sum().backward()
    assert info.value.phase == "backward"


def test_layout_check_catches_a_wrong_rhs(fake):
    fake(FakeRuntime(rhs_scale=1.0 + 1e-6))
    case = _mlp_case("ghbnode")
    with pytest.raises(JuliaBackendError, match="layout check failed"):
        odeint(case.field, case.y0, case.ts, backend="julia", adjoint="backsolve")


def test_backward_off_the_main_thread_raises(fake):
    fake()
    case = _mlp_case("hbnode")
    sol = odeint(case.field, case.y0.clone().requires_grad_(True), case.ts, backend="julia", adjoint="backsolve")
    errors = backward_in_thread(sol.ys.sum())
    assert errors and isinstance(errors[0], RuntimeError)
    assert "set_multithreading_enabled(False)" in str(errors[0])
    with torch.autograd.set_multithreading_enabled(False):
        sol.ys.sum().backward()  # on the main thread it works
    assert sol.stats.nfe_backward > 0


def test_not_translatable_fails_before_touching_julia(fake):
    runtime = fake()
    field = NODE(nn.Sequential(nn.Linear(2, 2), nn.Dropout(0.1))).double()
    with pytest.raises(NotTranslatableError):
        odeint(field, torch.zeros(1, 2, dtype=torch.float64), [0.0, 1.0], backend="julia", adjoint="backsolve")
    assert runtime.calls == []


@pytest.mark.parametrize("kwargs,match", [
    ({"adjoint": "direct"}, "'direct'"), ({"adjoint": "checkpointed"}, "'checkpointed'"),
    ({}, "'checkpointed'"),   # the project-wide default, which julia does not offer
    ({"adjoint": "gauss"}, "'gauss'"), ({"adjoint": "backsolve", "method": "rk4"}, "dopri5"),
])
def test_bad_options_are_rejected_before_solving(fake, kwargs, match):
    runtime = fake()
    case = _mlp_case("node")
    with pytest.raises(ValueError, match=match) as info:
        odeint(case.field, case.y0, case.ts, backend="julia", **kwargs)
    if "gradient mode" in str(info.value):
        assert "'backsolve'" in str(info.value) and "'interpolating'" in str(info.value)
    assert runtime.calls == []


def test_default_gradient_mode_is_refused_by_julia_and_auto_keeps_it(fake, monkeypatch):
    """The default ``Checkpointed()`` means the same on every backend: julia, which cannot
    do it, says so; ``auto`` takes julia only for a mode julia has, so the gradient mode
    never depends on whether the machine has Julia."""
    from pyhbnode import Checkpointed
    from pyhbnode.solving.backends import registry as registry_module
    from pyhbnode.solving.backends import julia as julia_module

    runtime = fake()
    case = _mlp_case("hbnode")
    with pytest.raises(ValueError, match="'checkpointed'"):
        odeint(case.field, case.y0, case.ts, backend="julia")
    monkeypatch.setattr(julia_module, "available", lambda: (True, "julia works"))
    monkeypatch.setattr(registry_module, "_warned_auto", True)
    assert registry_module.get_backend("auto", adjoint=Checkpointed()).name == "torchdiffeq"
    sol = odeint(case.field, case.y0.clone().requires_grad_(True), case.ts, backend="auto", adjoint="backsolve")
    sol.ys.sum().backward()
    assert runtime.sensealgs == ["backsolve"]


def test_adjoint_objects_are_read_by_name():
    """After the solving redesign ``options.adjoint`` is an object with a ``name``."""
    from pyhbnode.solving.backends.julia._maps import adjoint_name

    assert adjoint_name(types.SimpleNamespace(name="interpolating")) == "interpolating"
    with pytest.raises(ValueError, match="'checkpointed'.*'backsolve', 'interpolating'"):
        adjoint_name(types.SimpleNamespace(name="checkpointed"))


def test_unsupported_dtypes_and_unbatched_states(fake):
    fake()
    with pytest.raises(TypeError, match="float32 or float64"):
        odeint(NODE(nn.Linear(2, 2)).half(), torch.zeros(1, 2, dtype=torch.float16), torch.tensor([0.0, 1.0], dtype=torch.float16), backend="julia", adjoint="backsolve")
    with pytest.raises(ValueError, match="batched"):
        odeint(NODE(nn.Tanh()).double(), torch.zeros(3, dtype=torch.float64), [0.0, 1.0], backend="julia", adjoint="backsolve")
    t = torch.tensor([0.0, 1.0], dtype=torch.float64, requires_grad=True)
    with pytest.raises(ValueError, match="output times"):
        odeint(NODE(nn.Tanh()).double(), torch.zeros(1, 2, dtype=torch.float64), t, backend="julia", adjoint="backsolve")


# --- the juliacall runtime's exception and thread handling --------------------------------

def _runtime_with(fn):
    rt = JuliaRuntime.__new__(JuliaRuntime)
    rt.JuliaError = FakeJuliaError
    rt.bridge = types.SimpleNamespace(forward=fn, exception_name=lambda exc: exc)
    return rt


@pytest.mark.parametrize("julia_type,python_type", [
    ("MethodError", TypeError), ("DimensionMismatch", ValueError), ("ArgumentError", ValueError),
    ("OutOfMemoryError", MemoryError), ("InterruptException", KeyboardInterrupt),
    ("SpecError", JuliaBackendError), ("LoadError", JuliaBackendError),
])
def test_julia_exceptions_map_onto_python_ones(julia_type, python_type):
    def fail(*args, **kwargs):
        raise FakeJuliaError(julia_type, f"{julia_type}: something went wrong")

    with pytest.raises(python_type) as info:
        _runtime_with(fail).call("forward", phase="forward")
    assert julia_type in str(info.value) and "forward" in str(info.value)
    if python_type is TypeError:
        assert "dtype" in str(info.value)


def test_runtime_calls_refuse_foreign_threads():
    rt = _runtime_with(lambda *a, **k: 1)
    assert rt.call("forward") == 1
    errors = []
    th = threading.Thread(target=lambda: errors.append(_catch(lambda: rt.call("forward"))))
    th.start()
    th.join()
    assert isinstance(errors[0], RuntimeError) and "main thread" in str(errors[0])


def _catch(fn):
    try:
        fn()
    except BaseException as err:  # noqa: BLE001
        return err
    return None


def test_torch_first_warning_becomes_advice(tmp_path, monkeypatch):
    """juliacall's 'torch was imported before juliacall' warning is replaced by pyhbnode's
    advice; other warnings pass through; juliacall starts with one thread and offline, and
    those switches leave os.environ again (issue 20, item 3: a later `install` launched from
    this process must not run offline)."""
    from pyhbnode.solving.backends.julia._runtime import JuliaImportOrderWarning, _import_juliacall

    for key in ("PYTHON_JULIACALL_THREADS", "PYTHON_JULIACALL_HANDLE_SIGNALS", "PYTHON_JULIAPKG_OFFLINE",
                "JULIA_PKG_OFFLINE"):
        monkeypatch.delenv(key, raising=False)   # restored (removed) after the test
    monkeypatch.setenv("JULIA_NUM_THREADS", "auto")

    (tmp_path / "juliacall.py").write_text(
        "import warnings\n"
        "warnings.warn('torch was imported before juliacall. This may cause a segfault.')\n"
        "warnings.warn('something else', DeprecationWarning)\n"
        "import os\n"
        "SEEN = {k: os.environ.get(k) for k in ('PYTHON_JULIACALL_THREADS', 'PYTHON_JULIACALL_HANDLE_SIGNALS',\n"
        "                                       'PYTHON_JULIAPKG_OFFLINE', 'JULIA_PKG_OFFLINE')}\n"
        "MARK = 'fake juliacall'\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "juliacall", raising=False)
    try:
        with warnings.catch_warnings(record=True) as record:
            warnings.simplefilter("always")
            mod = _import_juliacall()
        assert mod.MARK == "fake juliacall"
        advice = [w for w in record if issubclass(w.category, JuliaImportOrderWarning)]
        assert len(advice) == 1 and "`import juliacall` before `import torch`" in str(advice[0].message)
        assert mod.SEEN == {"PYTHON_JULIACALL_THREADS": "1",   # not JULIA_NUM_THREADS=auto
                            "PYTHON_JULIACALL_HANDLE_SIGNALS": None,
                            "PYTHON_JULIAPKG_OFFLINE": "yes", "JULIA_PKG_OFFLINE": "true"}
        for key in mod.SEEN:
            assert key not in os.environ, f"{key} leaked into os.environ"
        assert os.environ["JULIA_NUM_THREADS"] == "auto"
        messages = [str(w.message) for w in record]
        assert not any("This may cause a segfault" in m for m in messages)
        assert any("something else" in m for m in messages)
    finally:
        sys.modules.pop("juliacall", None)


# --- the zoo's fields, softplus, packing, devices, PythonCall's TypeError ----------------

ZOO = zoo_fields()


@pytest.mark.parametrize("name,field,shape", ZOO, ids=[z[0] for z in ZOO])
def test_every_zoo_field_matches_torch_at_the_fixture_formulas(name, field, shape):
    """What runtests.jl checks in Julia (fixtures `zoo`), checked here on the emulation."""
    spec = describe(field)
    unpack_parameters(spec, field, formula(spec.n_params, *P_FORMULA))
    u = formula(int(np.prod(shape)), *U_FORMULA).reshape(shape)
    assert_rhs_matches(field, u, t=0.3)


def test_silverbox_field_has_no_julia_translation():
    from julia_cases import _zoo_model

    from pyhbnode.fields import VectorField

    field = next(m for m in _zoo_model("silverbox", "hbnode", {}).modules() if isinstance(m, VectorField))
    with pytest.raises(NotTranslatableError, match="DrivenLinear"):
        describe(field)


def test_unpack_inverts_pack():
    field = GHBNODE(TimeSequential(nn.Linear(3, 4), nn.Tanh(), TPad(), nn.Conv1d(5, 3, 3, padding=1)),
                    omega=-1.0, chi=0.2).double()
    spec = describe(field)
    flat = torch.randn(spec.n_params, dtype=torch.float64)
    unpack_parameters(spec, field, flat)
    assert torch.equal(pack_parameters(spec).detach(), flat)


@pytest.mark.parametrize("beta,threshold", [(1.0, 20.0), (2.0, 5.0), (0.5, 1.0)])
def test_softplus_follows_torch_above_its_threshold(beta, threshold):
    """torch returns x where beta*x > threshold (issue 9, item 4); the spec carries both."""
    field = NODE(nn.Sequential(nn.Linear(2, 2), nn.Softplus(beta=beta, threshold=threshold))).double()
    spec = describe(field)
    act = spec.data["net"][1]
    assert (act["beta"], act["threshold"]) == (beta, threshold)
    with torch.no_grad():
        field.f[0].weight.copy_(torch.tensor([[30.0, 0.0], [0.0, 1.0]]))
        field.f[0].bias.zero_()
    y = torch.tensor([[1.0, 0.3], [0.9, -2.0], [threshold / beta + 1e-3, 40.0]], dtype=torch.float64)
    assert_rhs_matches(field, y)


def test_non_cpu_non_cuda_tensors_are_refused_with_advice():
    from pyhbnode.solving import SolverOptions, SolverStats

    runtime = FakeRuntime()
    field = NODE(nn.Linear(2, 2)).double()
    y0 = torch.zeros(1, 2, dtype=torch.float64, device="meta")  # any non-CPU device
    t = torch.tensor([0.0, 1.0], dtype=torch.float64)
    with pytest.raises(TypeError, match="CPU and CUDA tensors.*backend='torch'"):
        JuliaBackend(runtime).solve(field, y0, t, SolverOptions(adjoint="backsolve"), SolverStats())
    assert runtime.calls == []


def test_pythoncall_method_error_is_mapped_with_advice():
    """PythonCall raises a plain TypeError("Julia: MethodError: ...") when the called Julia
    function has no matching method (JlWrap/any.jl); it gets the dtype advice (item 10)."""
    def fail(*args, **kwargs):
        raise TypeError("Julia: MethodError: no method matching forward(::Vector{Float32}, ::Vector{Float64})")

    with pytest.raises(TypeError, match="Julia MethodError in the forward call.*one dtype"):
        _runtime_with(fail).call("forward", phase="forward")

    def python_bug(*args, **kwargs):
        raise TypeError("unsupported operand")

    with pytest.raises(TypeError, match="^unsupported operand$"):
        _runtime_with(python_bug).call("forward", phase="forward")


def test_transfer_errors_are_mapped_too():
    """DLPack's from_dlpack/share go through the same mapping as the bridge's functions
    (e.g. no from_dlpack method for this object: PythonCall's plain TypeError)."""
    def no_method(*args, **kwargs):
        raise TypeError("Julia: MethodError: no method matching from_dlpack(::Py)")

    rt = _runtime_with(None)
    rt.dlpack = types.SimpleNamespace(from_dlpack=no_method, share=no_method)
    with pytest.raises(TypeError, match="Julia MethodError in the transfer call"):
        rt.to_julia(torch.zeros(3))
    with pytest.raises(TypeError, match="Julia MethodError in the transfer call"):
        rt.to_torch(object(), (3,))


@pytest.mark.parametrize("kwargs,match", [({"controller": "hairer"}, "controller"), ({"compile": True}, "compile")])
def test_torch_only_options_are_refused(fake, kwargs, match):
    """Controllers and compiled steps belong to the torch backend; julia must not ignore them."""
    runtime = fake()
    case = _mlp_case("node")
    with pytest.raises(ValueError, match=match):
        odeint(case.field, case.y0, case.ts, backend="julia", adjoint="backsolve", **kwargs)
    assert runtime.calls == []


def test_julia_device_names_and_gpu_refusals():
    """Where a state on each device is solved; conv fields stay on the CPU (no cuDNN pinned).
    The CUDA solves themselves run in test_julia_conformance.py where a GPU and Julia exist."""
    from pyhbnode.solving.backends.julia._backend import julia_device
    from pyhbnode.solving.backends.julia._spec import describe

    mlp = describe(HBNODE(nn.Sequential(nn.Linear(3, 3), nn.Tanh())).double())
    conv = describe(NODE(nn.Sequential(nn.Conv2d(2, 2, 3, padding=1), nn.Tanh())).double())
    assert julia_device(torch.device("cpu"), conv) == "cpu"
    assert julia_device(torch.device("cuda:1"), mlp) == "cuda:1"
    with pytest.raises(ValueError, match=r"runs convolutional fields on the CPU only.*cuDNN.*backend='torch'"):
        julia_device(torch.device("cuda:0"), conv)
    with pytest.raises(TypeError, match="CPU and CUDA tensors"):
        julia_device(torch.device("meta"), mlp)
