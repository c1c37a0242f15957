"""The Julia bridge's test cases (a test helper, not part of the package).

1. *Conformance cases*: every model on a small MLP field and a small conv field, with the
   torchdiffeq reference trajectory and gradients (dopri5 at rtol = atol = 1e-11, direct
   backpropagation).  ``tests/test_julia_conformance.py`` runs them on every backend.
2. *Zoo cases*: the vector field of every zoo model that has a Julia translation (every
   task but silverbox, whose ``DrivenLinear`` field has none), with learnable and fixed
   γ/ξ and every σ, evaluated once by torch at parameters and state given by closed-form
   formulas (:func:`formula`) that the Julia test recomputes, so the file stays small.

``PyHBNODEBridge/test/fixtures/cases.json`` carries both so that the Julia package's own
``test/runtests.jl`` checks the Julia side against torch without Python;
``tests/test_julia_offline.py`` checks the file is current.  Regenerate it with
``PYTHONPATH=. python tests/julia_cases.py`` after changing a builder or the spec format.
"""
from __future__ import annotations

import json
import zlib
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from pyhbnode.fields import ANODE, GHBNODE, HBNODE, NODE, SONODE, TimeSequential, TPad, VectorField
from pyhbnode.zoo import tasks
from pyhbnode.solving.backends.julia import BRIDGE_DIR
from pyhbnode.solving.backends.julia._spec import describe, pack_parameters, unpack_parameters
from pyhbnode import zoo

__all__ = ["MODELS", "KINDS", "TS", "BATCH", "REFERENCE_TOL", "Case", "build_case", "reference",
           "fixture_cases", "zoo_fields", "zoo_cases", "formula", "FIXTURE_PATH", "write_fixtures",
           "load_fixtures"]

MODELS = ("node", "anode", "sonode", "hbnode", "ghbnode")
KINDS = ("mlp", "conv")
TS = (0.0, 0.5, 1.0)
BATCH = 3
REFERENCE_TOL = 1e-11
FIXTURE_PATH = BRIDGE_DIR / "test" / "fixtures" / "cases.json"


@dataclass
class Case:
    name: str
    field: nn.Module
    y0: torch.Tensor
    ts: torch.Tensor
    cotangent: torch.Tensor


def _width(model: str) -> int:
    return 3 if model == "anode" else 2  # ANODE: 2 data channels + 1 augmented


def _net(model: str, kind: str) -> nn.Module:
    n = _width(model)
    nin = 2 * n if model == "sonode" else n
    if kind == "mlp":
        return TimeSequential(
            nn.Linear(nin, 6), nn.Tanh(), TPad(), nn.Linear(7, 6), nn.ELU(), nn.Linear(6, n),
        )
    # Smooth activations: kinks (ReLU) make tight-tolerance adjoints crawl; the RHS-level
    # tests cover ReLU/LeakyReLU/Hardtanh and strided, dilated and grouped convolutions.
    return TimeSequential(
        TPad(), nn.Conv2d(nin + 1, 3, 1), nn.Tanh(),
        TPad(), nn.Conv2d(4, 3, 3, padding=1), nn.Softplus(),
        TPad(), nn.Conv2d(4, n, (3, 1), padding=(1, 0)),
    )


def _field(model: str, kind: str) -> nn.Module:
    f = _net(model, kind)
    if model == "node":
        return NODE(f)
    if model == "anode":
        return ANODE(f, augment=1)
    if model == "sonode":
        return SONODE(f)
    if model == "hbnode":
        return HBNODE(f, omega=-1.0)
    return GHBNODE(f, omega=-1.0, chi=0.3, sigma="tanh" if kind == "mlp" else "hardtanh")


def _state_shape(model: str, kind: str) -> tuple[int, ...]:
    n = _width(model)
    features = (n,) if kind == "mlp" else (n, 3, 4)  # images: C x H x W with H != W
    order = 2 if model in ("sonode", "hbnode", "ghbnode") else 1
    return (BATCH,) + ((2,) if order == 2 else ()) + features


def build_case(model: str, kind: str, dtype: torch.dtype = torch.float64) -> Case:
    """The deterministic case ``model``/``kind`` (independent of the global RNG state)."""
    seed = zlib.crc32(f"{model}/{kind}".encode())
    gen = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        field = _field(model, kind).to(torch.float64)
    with torch.no_grad():
        for p in field.parameters():
            p.copy_(torch.round(p * 1e4) / 1e4)
    shape = _state_shape(model, kind)
    y0 = torch.round(torch.randn(shape, generator=gen, dtype=torch.float64) * 500) / 1000
    cot = torch.round(torch.randn((len(TS),) + shape, generator=gen, dtype=torch.float64) * 1000) / 1000
    ts = torch.tensor(TS, dtype=torch.float64)
    return Case(f"{model}-{kind}", field.to(dtype), y0.to(dtype), ts.to(dtype), cot.to(dtype))


def reference(case: Case, tol: float = REFERENCE_TOL) -> dict[str, torch.Tensor]:
    """torchdiffeq dopri5 with direct backprop: ``ys`` and the gradients of
    ``sum(cotangent * ys)`` for ``y0`` and every named parameter."""
    import torchdiffeq

    y0 = case.y0.clone().requires_grad_(True)
    ys = torchdiffeq.odeint(case.field, y0, case.ts, rtol=tol, atol=tol, method="dopri5")
    names = [n for n, _ in case.field.named_parameters()]
    params = [p for _, p in case.field.named_parameters()]
    grads = torch.autograd.grad((case.cotangent * ys).sum(), [y0, *params])
    out = {"ys": ys.detach(), "y0": grads[0]}
    out.update({f"param:{n}": g for n, g in zip(names, grads[1:])})
    return out


def _pack_like(field: nn.Module, values: dict[str, torch.Tensor]) -> torch.Tensor:
    """The flat Julia-ordered vector of per-parameter tensors ``values`` (e.g. gradients)."""
    spec = describe(field)
    saved = {n: p.detach().clone() for n, p in field.named_parameters()}
    try:
        with torch.no_grad():
            for n, p in field.named_parameters():
                p.copy_(values[n])
            return pack_parameters(spec).detach().clone()
    finally:
        with torch.no_grad():
            for n, p in field.named_parameters():
                p.copy_(saved[n])


def _flat(x: torch.Tensor) -> list[float]:
    return [float(v) for v in x.detach().contiguous().reshape(-1)]


def fixture_cases() -> list[dict]:
    """The JSON-ready cases of ``cases.json`` (computes the references: a few seconds)."""
    out = []
    for kind in KINDS:
        for model in MODELS:
            case = build_case(model, kind)
            spec = describe(case.field)
            ref = reference(case)
            t_rhs = 0.3
            with torch.no_grad():
                du = case.field(torch.tensor(t_rhs, dtype=torch.float64), case.y0)
            dp = _pack_like(case.field, {n[len("param:"):]: g for n, g in ref.items() if n.startswith("param:")})
            out.append({
                "name": case.name,
                "spec": spec.json,
                "usize": list(reversed(case.y0.shape)),
                "p": _flat(pack_parameters(spec)),
                "u": _flat(case.y0),
                "t": t_rhs,
                "du": _flat(du),
                "ts": list(TS),
                "cotangent": _flat(case.cotangent),
                "ys": _flat(ref["ys"]),
                "du0": _flat(ref["y0"]),
                "dp": _flat(dp),
                "reference_tol": REFERENCE_TOL,
            })
    return out


# --- zoo cases ---------------------------------------------------------------------------

ZOO_TASKS = ("pointcloud", "mnist", "cifar10", "plane_vibration", "walker2d")
ZOO_SPATIAL = (2, 3)   # images: the conv fields are size-agnostic, so a small H x W suffices
ZOO_T = 0.3


def formula(n: int, scale: float, rate: float) -> torch.Tensor:
    """``scale * sin(rate * k)`` for ``k = 1..n`` (float64): what runtests.jl recomputes."""
    return scale * torch.sin(rate * torch.arange(1, n + 1, dtype=torch.float64))


P_FORMULA = (0.1, 0.7)    # parameters: 0.1 sin(0.7 k)
U_FORMULA = (0.5, 1.3)    # state: 0.5 sin(1.3 k)


def _variants(model: str) -> list[tuple[str, dict]]:
    """Field keyword variants: learnable (the zoo default), fixed coefficients, every σ."""
    if model == "hbnode":
        return [("learnable", {}), ("fixed", {"gamma": 0.3})]
    if model == "ghbnode":
        return [("learnable", {}), ("fixed", {"gamma": 0.3, "xi": 0.5}),
                ("hardtanh", {"sigma": "hardtanh"}), ("identity", {"sigma": "identity"})]
    return [("default", {})]


def _zoo_model(task: str, model: str, kwargs: dict) -> nn.Module:
    return zoo.build(task, model, field_kwargs=kwargs)


def zoo_fields() -> list[tuple[str, VectorField, tuple[int, ...]]]:
    """``(name, field, torch state shape)`` of every translatable zoo field variant."""
    out = []
    for task in ZOO_TASKS:
        for model in MODELS:
            for label, kwargs in _variants(model):
                with torch.random.fork_rng(devices=[]):
                    torch.manual_seed(0)
                    net = _zoo_model(task, model, kwargs)
                field = next(m for m in net.modules() if isinstance(m, VectorField)).double()
                sizes = tasks.SIZES[task][model]
                n = sizes[1] if task in ("plane_vibration", "walker2d") else sizes[0]
                features = (n, *ZOO_SPATIAL) if task in ("mnist", "cifar10") else (n,)
                shape = (2,) + ((2,) if field.order == 2 else ()) + features
                out.append((f"{task}/{model}/{label}", field, shape))
    return out


def zoo_cases() -> list[dict]:
    """The JSON-ready zoo cases: spec, Julia state size and torch's RHS at the formula
    parameters and state (the values themselves are recomputed in Julia)."""
    out = []
    for name, field, shape in zoo_fields():
        spec = describe(field)
        unpack_parameters(spec, field, formula(spec.n_params, *P_FORMULA))
        n_state = 1
        for s in shape:
            n_state *= s
        u = formula(n_state, *U_FORMULA).reshape(shape)
        with torch.no_grad():
            du = field(torch.tensor(ZOO_T, dtype=torch.float64), u)
        out.append({"name": name, "spec": spec.json, "usize": list(reversed(shape)), "t": ZOO_T,
                    "du": _flat(du)})
    return out


def write_fixtures(path: Path = FIXTURE_PATH) -> Path:
    data = {
        "about": "generated by tests/julia_cases.py; arrays are flat, Julia (column-major) order = torch "
                 "row-major flatten; usize = reversed torch shape; zoo cases: p_k = "
                 f"{P_FORMULA[0]} sin({P_FORMULA[1]} k), u_k = {U_FORMULA[0]} sin({U_FORMULA[1]} k), k = 1..n",
        "p_formula": list(P_FORMULA),
        "u_formula": list(U_FORMULA),
        "cases": fixture_cases(),
        "zoo": zoo_cases(),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    # One case per line: short diffs, small file.
    lines = ["{"]
    for i, (key, value) in enumerate(data.items()):
        end = "," if i < len(data) - 1 else ""
        if isinstance(value, list) and value and isinstance(value[0], dict):
            body = ",\n".join(json.dumps(v, separators=(",", ":")) for v in value)
            lines.append(f"{json.dumps(key)}: [\n{body}\n]{end}")
        else:
            lines.append(f"{json.dumps(key)}: {json.dumps(value)}{end}")
    lines.append("}")
    path.write_text("\n".join(lines) + "\n")
    return path


def load_fixtures(path: Path = FIXTURE_PATH) -> dict:
    return json.loads(path.read_text())


if __name__ == "__main__":
    torch.set_num_threads(1)  # tiny tensors: threads only slow them down
    print(write_fixtures())
