"""Backend conformance: every model, on every backend, against a tight torchdiffeq reference.

Parametrised over ``backend in {torchdiffeq, julia}``.  The cases (every model on a small
MLP field with tpad and on a 3x4 conv field with tpad) come from
:mod:`julia_cases` (tests/), which also writes them for the Julia package's own tests.
Where Julia is unusable the Julia cases skip with the reason from
``pyhbnode.solving.backends.julia.available()``; with ``PYHBNODE_JULIA=require`` ``available()`` raises
instead, so on a Julia machine every case below runs, unchanged, or fails.
"""
from __future__ import annotations

import dataclasses

import pytest
import torch
from torch import nn

from helpers import backward_in_thread
from pyhbnode import NODE, MaxStepsExceeded, SolverError, odeint
from julia_cases import KINDS, MODELS, build_case, reference
from pyhbnode.solving import get_backend
from pyhbnode.solving.backends.julia import available
from pyhbnode.solving.backends.julia._maps import ADJOINTS as JULIA_ADJOINTS

BACKENDS = ["torchdiffeq", "julia"]
ADJOINTS = {"torchdiffeq": ["backsolve"], "julia": list(JULIA_ADJOINTS)}
TOL = 1e-8
CASES = [(m, k) for k in KINDS for m in MODELS]


def use(backend: str) -> None:
    """Skip a Julia case with the reason from ``available()`` (which raises under
    ``PYHBNODE_JULIA=require``)."""
    if backend == "julia":
        ok, reason = available()
        if not ok:
            pytest.skip(f"julia backend unavailable: {reason}")


def marks(backend: str):
    return [pytest.mark.julia] if backend == "julia" else []


BACKEND_PARAMS = [pytest.param(b, marks=marks(b), id=b) for b in BACKENDS]
BACKEND_ADJOINT_PARAMS = [
    pytest.param(b, a, marks=marks(b), id=f"{b}-{a}") for b in BACKENDS for a in ADJOINTS[b]
]

_REFS: dict[tuple[str, str], dict] = {}




def ref_for(model: str, kind: str) -> dict:
    if (model, kind) not in _REFS:
        _REFS[(model, kind)] = reference(build_case(model, kind))
    return _REFS[(model, kind)]


def run(case, backend: str, adjoint: str, tol: float = TOL):
    y0 = case.y0.clone().requires_grad_(True)
    sol = odeint(case.field, y0, case.ts, backend=backend, adjoint=adjoint, rtol=tol, atol=tol)
    names = [n for n, _ in case.field.named_parameters()]
    params = [p for _, p in case.field.named_parameters()]
    with torch.autograd.set_multithreading_enabled(False):
        grads = torch.autograd.grad((case.cotangent * sol.ys).sum(), [y0, *params])
    out = {"y0": grads[0]}
    out.update({f"param:{n}": g for n, g in zip(names, grads[1:])})
    return sol, out


@pytest.mark.parametrize("backend,adjoint", BACKEND_ADJOINT_PARAMS)
@pytest.mark.parametrize("model,kind", CASES, ids=[f"{m}-{k}" for m, k in CASES])
def test_outputs_gradients_and_nfe(backend, adjoint, model, kind):
    use(backend)
    case = build_case(model, kind)
    ref = ref_for(model, kind)
    sol, grads = run(case, backend, adjoint)
    assert sol.ys.shape == (len(case.ts), *case.y0.shape)
    assert sol.ys.dtype == case.y0.dtype and sol.ys.device == case.y0.device
    err = float((sol.ys.detach() - ref["ys"]).abs().max())
    assert err <= 1e-6, f"{backend}/{adjoint}: trajectory off by {err:.2e}"
    names = set(grads)
    if model in ("hbnode", "ghbnode"):
        assert "param:damping.omega" in names
    if model == "ghbnode":
        assert "param:restoring.chi" in names
    for name, g in ref.items():
        if name == "ys":
            continue
        rel = float((grads[name] - g).norm() / g.norm().clamp_min(1e-12))
        assert rel <= 1e-4, f"{backend}/{adjoint}: gradient of {name} off by relative {rel:.2e}"
    stats = sol.stats
    assert stats.nfe_forward > 0
    assert stats.nfe_backward > 0
    assert stats.status.name == "SUCCESS"


@pytest.mark.parametrize("backend", BACKEND_PARAMS)
def test_stats_fresh_per_call_and_backward_counted(backend):
    use(backend)
    case = build_case("hbnode", "mlp")
    adjoint = ADJOINTS[backend][0]
    first = odeint(case.field, case.y0.clone().requires_grad_(True), case.ts, backend=backend, adjoint=adjoint)
    assert first.stats.nfe_forward > 0 and first.stats.nfe_backward == 0
    with torch.autograd.set_multithreading_enabled(False):
        first.ys.sum().backward()
    assert first.stats.nfe_backward > 0
    second = odeint(case.field, case.y0, case.ts, backend=backend, adjoint=adjoint)
    assert second.stats is not first.stats and second.stats.nfe_backward == 0


@pytest.mark.parametrize("backend", BACKEND_PARAMS)
def test_gradcheck_node_2d(backend):
    use(backend)
    case = build_case("node", "mlp")
    adjoint = ADJOINTS[backend][0]
    t = torch.tensor([0.0, 0.5], dtype=torch.float64)

    def solve(y0):
        return odeint(case.field, y0, t, backend=backend, adjoint=adjoint, rtol=1e-12, atol=1e-12).ys[-1]

    y0 = case.y0[:2].clone().requires_grad_(True)
    with torch.autograd.set_multithreading_enabled(False):
        assert torch.autograd.gradcheck(solve, (y0,), eps=1e-6, atol=1e-6)


@pytest.mark.parametrize("backend", BACKEND_PARAMS)
def test_float32_smoke(backend):
    use(backend)
    case = build_case("ghbnode", "mlp", dtype=torch.float32)
    ref = ref_for("ghbnode", "mlp")
    sol, grads = run(case, backend, ADJOINTS[backend][0], tol=1e-5)
    assert sol.ys.dtype == torch.float32
    assert float((sol.ys.detach().double() - ref["ys"]).abs().max()) <= 1e-3
    g, r = grads["param:damping.omega"].double(), ref["param:damping.omega"]
    assert float((g - r).abs() / r.abs().clamp_min(1e-6)) <= 1e-2


def _exploding_field() -> nn.Module:
    lin = nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        lin.weight.fill_(2000.0)
    return NODE(lin).double()


@pytest.mark.parametrize("backend", BACKEND_PARAMS)
def test_blow_up_raises_a_solver_error(backend):
    """dh/dt = 2000 h overflows float64 long before t = 1."""
    use(backend)
    y0 = torch.ones(1, 1, dtype=torch.float64)
    t = torch.tensor([0.0, 1.0], dtype=torch.float64)
    with pytest.raises(SolverError) as info:
        odeint(_exploding_field(), y0, t, backend=backend, adjoint=ADJOINTS[backend][0], rtol=1e-1, atol=1e-1)
    assert info.value.phase == "forward"
    assert info.value.nfe_forward > 0


@pytest.mark.parametrize("backend", BACKEND_PARAMS)
def test_max_steps_raises_max_steps_exceeded(backend):
    use(backend)
    case = build_case("hbnode", "mlp")
    with pytest.raises(MaxStepsExceeded):
        odeint(case.field, case.y0, case.ts, backend=backend, adjoint=ADJOINTS[backend][0],
               rtol=1e-10, atol=1e-10, max_steps=5)


@pytest.mark.parametrize("backend", BACKEND_PARAMS)
def test_mixed_dtypes_raise_type_error_before_solving(backend):
    use(backend)
    case = build_case("node", "mlp")
    with pytest.raises(TypeError):
        odeint(case.field, case.y0.float(), case.ts.float(), backend=backend, adjoint=ADJOINTS[backend][0])


# --- Julia only ---------------------------------------------------------------------------

@pytest.mark.julia
@pytest.mark.parametrize("model,kind", CASES, ids=[f"{m}-{k}" for m, k in CASES])
def test_julia_rhs_equals_torch_before_any_solve(model, kind):
    """One evaluation of the Julia-built field equals torch to 1e-12 (layout, packing, conv
    orientation, tpad, the halves of second-order states)."""
    use("julia")
    case = build_case(model, kind)
    t = 0.37
    with torch.no_grad():
        want = case.field(torch.tensor(t, dtype=torch.float64), case.y0)
    got = get_backend("julia").rhs(case.field, t, case.y0)
    assert float((got - want).abs().max()) <= 1e-12 * max(1.0, float(want.abs().max()))


@pytest.mark.julia
def test_julia_forward_counter_equals_solver_nf():
    """VERIFY on a Julia machine: the bridge's counter around the field sees exactly the
    evaluations DP5 reports in ``sol.stats.nf``."""
    use("julia")
    case = build_case("ghbnode", "conv")
    sol = odeint(case.field, case.y0, case.ts, backend="julia", adjoint="backsolve", rtol=TOL, atol=TOL)
    info = get_backend("julia").last_info
    assert info["counter_forward"] == info["nf"] == sol.stats.nfe_forward


@pytest.mark.julia
def test_julia_backward_off_the_main_thread_raises():
    use("julia")
    case = build_case("hbnode", "mlp")
    sol = odeint(case.field, case.y0.clone().requires_grad_(True), case.ts, backend="julia", adjoint="backsolve")
    errors = backward_in_thread(sol.ys.sum())
    assert errors and isinstance(errors[0], RuntimeError)
    assert "set_multithreading_enabled" in str(errors[0])


@pytest.mark.julia
def test_julia_backsolve_nfe_close_to_torchdiffeq_adjoint():
    use("julia")
    case = build_case("hbnode", "mlp")
    nfe = {}
    for backend, adjoint in (("torchdiffeq", "backsolve"), ("julia", "backsolve")):
        sol, _ = run(case, backend, adjoint, tol=1e-7)
        nfe[backend] = sol.stats.nfe_backward
    ratio = nfe["julia"] / nfe["torchdiffeq"]
    assert 0.5 <= ratio <= 2.0, f"backward NFE julia {nfe['julia']} vs torchdiffeq {nfe['torchdiffeq']}"


@pytest.mark.julia
def test_julia_not_translatable_names_the_layer():
    from pyhbnode import NotTranslatableError

    use("julia")
    field = NODE(nn.Sequential(nn.Linear(2, 2), nn.Dropout(0.1))).double()
    with pytest.raises(NotTranslatableError, match=r"f\.1.*Dropout.*torchdiffeq"):
        odeint(field, torch.zeros(1, 2, dtype=torch.float64), [0.0, 1.0], backend="julia", adjoint="backsolve")


@pytest.mark.slow
@pytest.mark.parametrize("backend", BACKEND_PARAMS)
def test_hbnode_backward_nfe_below_node_on_point_cloud(backend):
    """Spec §4 trend: at initialisation HBNODE's backward solve needs fewer evaluations than NODE's."""
    use(backend)
    from pyhbnode.zoo.fields import make_field
    from pyhbnode.fields import mlp

    torch.manual_seed(0)
    x = torch.rand(50, 2, dtype=torch.float64) * 2 - 1
    nfe = {}
    for model in ("node", "hbnode"):
        f = mlp([2, 20, 20, 2], "elu").double()
        field = make_field(model, f).double()
        y0 = x if model == "node" else torch.stack([x, torch.zeros_like(x)], dim=1)
        y0 = y0.clone().requires_grad_(True)
        sol = odeint(field, y0, [0.0, 1.0], backend=backend, adjoint=ADJOINTS[backend][0], rtol=1e-7, atol=1e-7)
        with torch.autograd.set_multithreading_enabled(False):
            sol.ys[-1].pow(2).sum().backward()
        nfe[model] = sol.stats.nfe_backward
    assert nfe["hbnode"] < nfe["node"], f"{backend}: HBNODE backward NFE {nfe['hbnode']} >= NODE {nfe['node']} at init"


@pytest.mark.julia
@pytest.mark.cuda
@pytest.mark.parametrize("adjoint", list(JULIA_ADJOINTS))
@pytest.mark.parametrize("model", MODELS)
def test_julia_cuda_mlp_matches_the_cpu_reference(model, adjoint):
    """A CUDA state of an MLP field is solved on that GPU (through host copies) and gives the
    CPU reference's trajectory and gradients, on the same device as it came."""
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    use("julia")
    cpu = build_case(model, "mlp")
    ref = ref_for(model, "mlp")
    case = dataclasses.replace(cpu, field=cpu.field.cuda(), y0=cpu.y0.cuda(), ts=cpu.ts.cuda(),
                               cotangent=cpu.cotangent.cuda())
    sol, grads = run(case, "julia", adjoint)
    assert sol.ys.device == case.y0.device and sol.ys.dtype == torch.float64
    assert float((sol.ys.detach().cpu() - ref["ys"]).abs().max()) <= 1e-6
    for name, want in ref.items():
        if name == "ys":
            continue
        assert grads[name].device == case.y0.device
        rel = float((grads[name].cpu() - want).norm() / want.norm().clamp_min(1e-12))
        assert rel <= 1e-4, f"cuda/{adjoint}: gradient of {name} off by relative {rel:.2e}"
    assert get_backend("julia").last_info["device"] == f"cuda:{torch.cuda.current_device()}"


@pytest.mark.julia
@pytest.mark.cuda
def test_julia_cuda_conv_field_is_refused_before_julia_runs():
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    use("julia")
    case = build_case("hbnode", "conv")
    with pytest.raises(ValueError, match="convolutional fields on the CPU only"):
        odeint(case.field.cuda(), case.y0.cuda(), case.ts.cuda(), backend="julia", adjoint="backsolve")
