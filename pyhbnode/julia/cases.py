"""The backend-conformance cases: every model on a small MLP field and a small conv field.

One source for three consumers:

* ``tests/test_julia_conformance.py`` runs every case on every backend against the
  reference stored here;
* ``PyHBNODEBridge/test/fixtures/cases.json`` carries the same cases (spec, flat
  parameters, one torch RHS evaluation, the torch reference trajectory and gradients) so
  that the Julia package's own ``test/runtests.jl`` checks the Julia side against torch
  without Python;
* ``tests/test_julia_offline.py`` regenerates the file and checks it is current.

Regenerate with ``python -m pyhbnode.julia.cases`` after changing a builder.  Inputs and
parameters are rounded so that the JSON stays short and every value is exact; the
reference is torchdiffeq's dopri5 at rtol = atol = 1e-11 with direct backpropagation.
"""
from __future__ import annotations

import json
import zlib
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ..fields import ANODE, GHBNODE, HBNODE, NODE, SONODE, TimeSequential, TPad
from .spec import describe, pack_parameters

__all__ = ["MODELS", "KINDS", "TS", "BATCH", "REFERENCE_TOL", "Case", "build_case", "reference",
           "fixture_cases", "FIXTURE_PATH", "write_fixtures", "load_fixtures"]

MODELS = ("node", "anode", "sonode", "hbnode", "ghbnode")
KINDS = ("mlp", "conv")
TS = (0.0, 0.5, 1.0)
BATCH = 3
REFERENCE_TOL = 1e-11
FIXTURE_PATH = Path(__file__).resolve().parent / "PyHBNODEBridge" / "test" / "fixtures" / "cases.json"


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


def write_fixtures(path: Path = FIXTURE_PATH) -> Path:
    data = {
        "about": "generated by `python -m pyhbnode.julia.cases`; arrays are flat, Julia (column-major) "
                 "order = torch row-major flatten; usize = reversed torch shape",
        "cases": fixture_cases(),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=0) + "\n")
    return path


def load_fixtures(path: Path = FIXTURE_PATH) -> list[dict]:
    return json.loads(path.read_text())["cases"]


if __name__ == "__main__":
    torch.set_num_threads(1)  # tiny tensors: threads only slow them down
    print(write_fixtures())
