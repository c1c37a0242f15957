"""The julia backend (OrdinaryDiffEq DP5 + SciMLSensitivity adjoints), loaded lazily.

Importing this package imports neither juliacall nor the backend's torch code:
:func:`available` decides without starting Julia (see :mod:`._detect`), and everything
else is imported on first use.

* :func:`available` -> ``(ok, reason)``;
* :func:`load_backend` -> the ``JuliaBackend`` (starts Julia), or
  :class:`JuliaBackendUnavailable` with install advice, within seconds;
* :func:`warmup` JITs one model once (the first call per structure/dtype/adjoint compiles);
* ``python -m pyhbnode.solving.backends.julia install`` resolves, installs and precompiles
  the Julia side: the only command that downloads anything.

The Julia package ``PyHBNODEBridge`` ships beside this file and is declared in
``pyhbnode/juliapkg.json`` (juliapkg reads it from every ``sys.path`` entry's packages).
"""

from __future__ import annotations

from pathlib import Path

from ._detect import available, mode, reset
from .errors import JuliaBackendError, JuliaBackendUnavailable, NotTranslatableError

__all__ = [
    "available",
    "load_backend",
    "warmup",
    "mode",
    "reset",
    "BRIDGE_DIR",
    "JULIAPKG_JSON",
    "JuliaBackendUnavailable",
    "JuliaBackendError",
    "NotTranslatableError",
]

BRIDGE_DIR = Path(__file__).resolve().parent / "PyHBNODEBridge"
JULIAPKG_JSON = Path(__file__).resolve().parents[3] / "juliapkg.json"


def load_backend():
    """The julia backend; raises :class:`JuliaBackendUnavailable` (an ``ImportError``)
    within seconds when Julia is not usable, with install advice."""
    ok, reason = available()
    if not ok:
        raise JuliaBackendUnavailable(f"backend='julia' is unavailable: {reason}")
    from ._backend import JuliaBackend
    from ._runtime import get_runtime

    return JuliaBackend(get_runtime())


def warmup(field, y0, *, adjoint: str = "backsolve", t=(0.0, 0.1), rtol: float = 1e-4, atol: float = 1e-4) -> dict:
    """JIT-compile ``field`` for ``y0``'s structure, dtype and device with one tiny forward
    and backward solve; returns the seconds each took.

    ``y0`` is an example state (any batch size: batch size never recompiles).  Call it once
    before timing or training; the first call per (field structure, dtype, device, adjoint)
    compiles, later ones run at full speed.  Solves through the backend object itself (no
    solution recording): this floor does not import ``pyhbnode.solving.odeint``, which
    imports the backends."""
    import time

    import torch

    from ...options import SolverOptions
    from ...solution import SolverStats

    backend = load_backend()
    options = SolverOptions.from_kwargs(None, backend="julia", adjoint=adjoint, rtol=rtol, atol=atol)
    backend.check_options(options)
    y0 = y0.detach()[:1].clone().requires_grad_(True)
    ts = torch.as_tensor(t, dtype=y0.dtype, device=y0.device)
    start = time.perf_counter()
    ys = backend.solve(field, y0, ts, options, SolverStats())
    mid = time.perf_counter()
    params = [q for q in field.parameters() if q.requires_grad]
    with torch.autograd.set_multithreading_enabled(False):  # keep Julia on this thread
        torch.autograd.grad(ys.sum(), [y0, *params], allow_unused=True)
    end = time.perf_counter()
    return {"forward_s": mid - start, "backward_s": end - mid}
