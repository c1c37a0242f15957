"""Solve and differentiate the same problem on each backend, and compare.

    python examples/switching_backends.py

``backend="native"`` (our Dormand-Prince, the default), ``"torchdiffeq"`` (the reference),
``"julia"`` (OrdinaryDiffEq through juliacall; skipped here when Julia is not installed),
``"auto"`` (Julia where it works, torchdiffeq otherwise).  The gradient mode is chosen
independently with ``adjoint=`` and means the same mathematics on every backend.
"""
import warnings

import torch

import pyhbnode
from pyhbnode import HBNODE, Backsolve, Checkpointed, SolverOptions, odeint
from pyhbnode.fields import mlp


def solve(field, y0, t, options: SolverOptions):
    field.zero_grad()
    with pyhbnode.record() as rec:
        sol = odeint(field, y0, t, solver=options)
        sol.y_final.pow(2).sum().backward()
    grad = torch.cat([p.grad.flatten() for p in field.parameters()])
    return sol.y_final.detach(), grad, rec.stats


def main() -> None:
    torch.manual_seed(0)
    field = HBNODE(mlp([2, 16, 2], "tanh")).double()
    y0 = torch.randn(8, 2, 2, dtype=torch.float64)                 # (batch, 2, features)
    t = torch.tensor([0.0, 1.0], dtype=torch.float64)

    runs = {
        "native, checkpointed": SolverOptions(backend="native", rtol=1e-8, atol=1e-8),
        "native, backsolve": SolverOptions(backend="native", rtol=1e-8, atol=1e-8, adjoint=Backsolve()),
        "torchdiffeq, checkpointed": SolverOptions(backend="torchdiffeq", rtol=1e-8, atol=1e-8, adjoint=Checkpointed()),
        "torchdiffeq, backsolve": SolverOptions(backend="torchdiffeq", rtol=1e-8, atol=1e-8, adjoint="backsolve"),
        "julia, backsolve": SolverOptions(backend="julia", rtol=1e-8, atol=1e-8, adjoint="backsolve"),
    }
    reference = None
    for name, options in runs.items():
        try:
            y1, grad, stats = solve(field, y0, t, options)
        except pyhbnode.JuliaBackendUnavailable as err:      # raised within seconds, with install advice
            print(f"{name:28s} skipped: {str(err).splitlines()[0]}")
            continue
        if reference is None:
            reference = (y1, grad)
        print(f"{name:28s} NFE {stats.nfe_forward:3d} forward, {stats.nfe_backward:3d} backward;  "
              f"|y1 - ref| {(y1 - reference[0]).abs().max():.1e}  |grad - ref| {(grad - reference[1]).abs().max():.1e}")

    # "auto" never changes the gradient mode with the machine: it takes Julia where it is
    # installed and offers the mode, otherwise torchdiffeq, with one warning saying so.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        y1, _, stats = solve(field, y0, t, SolverOptions(backend="auto", rtol=1e-8, atol=1e-8, adjoint="backsolve"))
    for w in caught:
        print("auto:", str(w.message).splitlines()[0])
    print(f"{'auto, backsolve':28s} NFE {stats.nfe_forward:3d} forward, {stats.nfe_backward:3d} backward")


if __name__ == "__main__":
    main()
