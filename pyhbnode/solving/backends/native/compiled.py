"""The DP5 attempt and the checkpointed replay's per-step VJP as compiled programs.

An eager DP5 attempt on a small state costs its ~100 tensor operations' dispatch (1-2 µs
each), not their arithmetic; ``torch.compile`` (inductor, ``fullgraph=True,
dynamic=False``) turns the six field evaluations, the stage sums and the error norm into a
few fused kernels.  Two programs per (field type, state shape, dtype, device, tableau,
tolerances, norm groups), compiled on first use and cached for the process:

* :meth:`CompiledDopri5.attempt` ``(field, s, h, z, k) -> (z1, k7, r, stages)`` without
  gradients: the forward solve's step attempt.  ``s`` and ``h`` are float64 0-d tensors
  (Python floats would be baked into the program and recompile at every new step size);
  ``r`` is the error ratio as a 0-d tensor, read by the loop's one ``.item()``.
* :meth:`CompiledDopri5.step_vjp` ``(field, params, s, h, z, a) -> (a ∂z1/∂z, a ∂z1/∂θ)``:
  one accepted step recomputed from its start and differentiated with ``torch.func.vjp``
  inside the compiled program (measured here 1.7x faster than compiling the step alone
  and running its AOTAutograd backward through ``torch.autograd.grad``, 8x faster than
  eager).

The arithmetic is the eager stepper's (:mod:`.dopri5`): stage times ``s + c_i h`` and the
coefficient products ``h a_ij`` in float64, then rounded to the state's dtype as the eager
``alpha=`` scalars are; inductor may fuse and reorder the sums, so results agree with the
eager path to rounding (tested to 1e-12 in float64), not bit for bit.

The field is an argument of the compiled function, not a constant: with dynamo's inlining
of ``nn.Module`` calls its parameters, buffers and tensor attributes are graph inputs, so a
new instance of the same field class (a ``deepcopy``, the ODE-RNN's per-interval
:class:`~pyhbnode.layers.odernn.ElapsedTime`) reuses the compiled program.  Each cache key
gets its own code object, so dynamo's per-code recompile limit counts recompiles of one
key only.

When compiling or running a program fails (a field dynamo cannot trace, no C++ compiler,
...) the key is marked failed, ONE warning names the field and the error, and the caller
falls back to the eager step (:meth:`CompiledDopri5.attempt` returns ``None``).

On CUDA the programs are compiled with ``mode="reduce-overhead"`` (CUDA graphs); the loop's
``.item()`` on the error ratio is then the step's only host synchronisation.
"""
from __future__ import annotations

import math
import time
import types
import warnings
from typing import Callable, Sequence

import torch
from torch import nn

from .tableau import Tableau

__all__ = ["CompiledDopri5", "compiled_for", "compile_times", "clear_cache"]

# torch.compile's backend: "inductor" (generated C++/Triton kernels) for speed; the tests of
# this path's wiring set "aot_eager" (the same traced programs run by eager kernels,
# compiled in seconds instead of a minute).
BACKEND = "inductor"

OPTIONS: dict = {}

_CACHE: dict[tuple, "CompiledDopri5"] = {}
_COMPILE_TIMES: list[tuple[str, str, float]] = []  # (key description, program, seconds)


def compile_times() -> list[tuple[str, str, float]]:
    """``(what, program, seconds)`` for every program compiled in this process: the
    duration of its first call (tracing, inductor's code generation and the C++ build,
    plus one run)."""
    return list(_COMPILE_TIMES)


def clear_cache() -> None:
    """Forget every compiled program (the next solve compiles again)."""
    _CACHE.clear()
    torch._dynamo.reset()


def _fresh(fn: Callable, tag: str) -> Callable:
    """``fn`` with its own code object, so that dynamo keeps a separate cache for it."""
    code = fn.__code__.replace(co_name=f"{fn.__name__}_{tag}")
    return types.FunctionType(code, fn.__globals__, code.co_name, fn.__defaults__, fn.__closure__)


def _sum_into(z: torch.Tensor, hs: Sequence[torch.Tensor], ks: Sequence[torch.Tensor]) -> torch.Tensor:
    """``z + Σ hs[i] ks[i]`` (one fused loop once compiled)."""
    out = z
    for c, k in zip(hs, ks):
        if c is not None:
            out = out + c * k
    return out


class CompiledDopri5:
    """The compiled DP5 programs of one key (see the module docstring).

    Args:
        tableau: the DP5 pair (its ``e`` weights decide the error estimate).
        shape: the field's state shape; the loop's rows ``(1, N)`` are viewed to it.
        dtype, device: the state's.
        rtol, atol: the error ratio's tolerances.
        groups: the error norm is the largest RMS over ``groups`` equal slices of the row.
        what: a name for warnings and :func:`compile_times`.
    """

    def __init__(self, tableau: Tableau, shape: torch.Size, dtype: torch.dtype, device: torch.device,
                 rtol: float, atol: float, groups: int, what: str) -> None:
        self.what = what
        self.failed: str | None = None
        self._dtype = dtype
        self._device = device
        mode = "reduce-overhead" if (device.type == "cuda" and BACKEND == "inductor") else None
        c, a, b, e = tableau.c, tableau.a, tableau.b, tableau.e
        n = math.prod(shape)
        n_group = n // groups
        inv_sqrt = 1.0 / math.sqrt(n_group)
        atol_r = atol / rtol

        def stages(field, s, h, z, k):
            """Stages 2-6 and ``z1`` of a DP5 step (the eager ``_stages``' arithmetic)."""
            def rhs(i: int, y):
                return field((s + c[i] * h).to(dtype), y.view(shape)).reshape(1, -1)

            def coeffs(row):  # h a_ij in float64, rounded to the state's dtype like ``alpha=``
                return [None if x == 0.0 else (h * x).to(dtype) for x in row]

            ks = [k]
            for i in range(1, 6):
                ks.append(rhs(i, _sum_into(z, coeffs(a[i]), ks)))
            return ks, _sum_into(z, coeffs(b[:6]), ks)

        def attempt(field, s, h, z, k):
            ks, z1 = stages(field, s, h, z, k)
            k7 = field((s + h).to(dtype), z1.view(shape)).reshape(1, -1)
            # the error estimate pre-divided by rtol, as the eager stepper's
            err = _sum_into(torch.zeros_like(z), [None if x == 0.0 else (h * (x / rtol)).to(dtype) for x in e],
                            ks + [k7])
            err = err / (torch.maximum(z.abs(), z1.abs()) + atol_r)
            if groups == 1:
                r = torch.linalg.vector_norm(err) * inv_sqrt
            else:
                r = torch.linalg.vector_norm(err.view(groups, n_group), dim=1).max() * inv_sqrt
            return z1, k7, r, torch.cat(ks)

        def step_vjp(field, names, params, s, h, z, a):
            def step(z, params):
                values = dict(zip(names, params))

                def call(t, y):
                    return torch.func.functional_call(field, values, (t, y), strict=False)

                k = call(s.to(dtype), z.view(shape)).reshape(1, -1)
                return stages(call, s, h, z, k)[1]

            _, pull = torch.func.vjp(step, z, params)
            return pull(a)

        tag = f"{len(_CACHE)}"
        opts = dict(fullgraph=True, dynamic=False, backend=BACKEND)
        if mode is not None:
            opts["mode"] = mode
        elif BACKEND == "inductor" and OPTIONS:
            opts["options"] = dict(OPTIONS)
        self._attempt = torch.compile(_fresh(attempt, tag), **opts)
        self._step_vjp = torch.compile(_fresh(step_vjp, tag), **opts)
        self._ran: set[str] = set()

    # -- calls ----------------------------------------------------------------------------
    def times(self, s: float, h: float) -> tuple[torch.Tensor, torch.Tensor]:
        """``s`` and ``h`` as the float64 0-d tensors the programs take."""
        return (torch.tensor(s, dtype=torch.float64, device=self._device),
                torch.tensor(h, dtype=torch.float64, device=self._device))

    def attempt(self, field: nn.Module, s: float, h: float, z: torch.Tensor, k: torch.Tensor):
        """One attempt without gradients: ``(z1, k7, r, K6)`` (``K6`` the six stages
        stacked, ``(6, N)``), or ``None`` when this key's programs failed (use the eager step)."""
        if self.failed is not None:
            return None
        st, ht = self.times(s, h)
        with torch.no_grad():
            return self._call("attempt", self._attempt, field, st, ht, z, k)

    def step_vjp(self, field: nn.Module, names: tuple[str, ...], params: tuple[torch.Tensor, ...],
                 s: float, h: float, z: torch.Tensor, a: torch.Tensor):
        """``(a ∂z1/∂z, (a ∂z1/∂θ_i)_i)`` of the accepted step ``(s, h)`` from ``z``, the
        parameters named ``names`` of ``field`` being ``params``; ``None`` on failure."""
        if self.failed is not None:
            return None
        st, ht = self.times(s, h)
        with torch.no_grad():
            return self._call("step_vjp", self._step_vjp, field, names,
                              tuple(p.detach() for p in params), st, ht, z.detach(), a)

    def _call(self, name: str, fn: Callable, *args):
        first = name not in self._ran
        t0 = time.perf_counter() if first else 0.0
        try:
            out = fn(*args)
        except Exception as exc:  # noqa: BLE001 -- any failure of dynamo/inductor means: run eager
            self.failed = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            warnings.warn(f"compiling the DP5 step failed for {self.what} ({self.failed}); "
                          "using the eager step for it", RuntimeWarning, stacklevel=4)
            return None
        if first:
            self._ran.add(name)
            _COMPILE_TIMES.append((self.what, name, time.perf_counter() - t0))
        return out


def compiled_for(field: nn.Module, tableau: Tableau, shape: torch.Size, dtype: torch.dtype,
                 device: torch.device, rtol: float, atol: float, groups: int = 1) -> CompiledDopri5:
    """The cached :class:`CompiledDopri5` for this field's class and this state."""
    # the classes of the field's modules: two fields with the same classes (a deepcopy, a new
    # ElapsedTime around the same field) share programs, dynamo's guards tell them apart
    key = (tuple(type(m) for m in field.modules()), tuple(shape), dtype, device, tableau.e,
           float(rtol), float(atol), groups, BACKEND)
    got = _CACHE.get(key)
    if got is None:
        what = f"{type(field).__name__} on {tuple(shape)} {dtype} {device}"
        got = _CACHE[key] = CompiledDopri5(tableau, torch.Size(shape), dtype, device, rtol, atol, groups, what)
    return got
