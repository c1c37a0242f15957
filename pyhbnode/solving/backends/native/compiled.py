"""The DP5 attempt and the checkpointed replay's per-step VJP as compiled programs.

An eager DP5 attempt on a small state costs its ~100 tensor operations' dispatch (1-2 µs
each), not their arithmetic; ``torch.compile`` (inductor, ``fullgraph=True,
dynamic=False``; on the CPU with inductor's C++ wrapper, which calls the kernels without
Python in between) turns the seven field evaluations, the stage sums and the error norm into
a few fused kernels.  Two programs per (field classes, state shape, dtype, device,
direction, tableau, tolerances), compiled on first use and cached for the process:

* the **attempt** ``(field, s, h, z, k) -> (z1, k7, r, K)`` without gradients, the forward
  solve's :meth:`~.dopri5.Dopri5.step`.  ``s`` and ``h`` are float64 0-d tensors (Python
  floats would be baked into the program and recompile at every new step size); ``r``, the
  error ratio, is a 0-d tensor read by the loop's one ``.item()``; ``K`` the six stages
  ``(6, N)``.
* the **step VJP** ``(field, names, params, s, h, z, a) -> (a ∂z1/∂z, (a ∂z1/∂θ_i)_i)``: one
  accepted step recomputed from its start and differentiated by ``torch.func.vjp`` inside
  the compiled program — measured here 1.7x faster than compiling the step alone and running
  its AOTAutograd backward through ``torch.autograd.grad``, and 8x faster than eager.

The arithmetic is the eager step's, traced: both programs run :meth:`~.dopri5.Dopri5.step`
itself, with ``s`` and ``h`` as float64 0-d tensors (stage times ``s + c_i h`` and the
coefficient products ``h a_ij`` in float64, rounded to the state's dtype as the eager
``alpha=`` scalars are); inductor fuses and reorders the sums, so the results agree with
the eager path to rounding (tested to 1e-12 in float64), not bit for bit.

The field is an argument of the compiled functions, not a constant: dynamo inlines
``nn.Module`` calls with the parameters, buffers and tensor attributes as graph inputs, so
a new instance of the same classes (a ``deepcopy``, the ODE-RNN's per-interval
:class:`~pyhbnode.layers.odernn.ElapsedTime`) reuses the programs, and dynamo's guards
recompile when a non-tensor attribute differs.  Each cache key has its own code objects,
so dynamo's per-code recompile limit counts one key's recompiles only.

When compiling or running a program fails (a field dynamo cannot trace, no C++ compiler,
...), the key is marked failed, ONE warning names the field and the error, and the solver
steps eagerly for that key from then on.  On CUDA the programs use
``mode="reduce-overhead"`` (CUDA graphs); the loop's ``.item()`` on the error ratio is the
step's only host synchronisation.

Nothing here is imported until a solve has decided to compile (``compile=True``, or
``"auto"`` resolved to ``True`` by :func:`~.decide.decide_compile`): dynamo and inductor
cost a second or more to import.
"""
from __future__ import annotations

import time
import types
import warnings
from typing import Callable

import torch
from torch import nn

from .dopri5 import SMALL, RHS, Dopri5, StepResult

__all__ = ["Programs", "CompiledDopri5", "programs_for", "compile_times", "clear_cache"]

# torch.compile's backend: "inductor" (generated C++/Triton kernels) for speed; the tests of
# this path's wiring set "eager" (dynamo's full graphs run by eager kernels, traced in
# seconds instead of compiled in a minute).
BACKEND = "inductor"
# inductor options on the CPU: the C++ wrapper calls the kernels and the extern matmuls
# without a Python frame per kernel (measured 2.4x faster attempts, 1.7x faster VJPs on the
# point-cloud HBNODE; compiling takes longer the first time), and small matmuls (the
# fields' dense layers on a batch: at most SMALL_MM rows and columns) are decomposed into
# pointwise products and sums that fuse with their neighbours instead of an extern GEMM
# call each (a further 1.2x / 1.4x).
CPU_OPTIONS: dict = {"cpp_wrapper": True, "post_grad_fusion_options": {"decompose_mm_pass": {}}}
SMALL_MM = 64
_CACHE: dict[tuple, "Programs"] = {}
_COMPILE_TIMES: list[tuple[str, str, float]] = []  # (key description, program, seconds)


def compile_times() -> list[tuple[str, str, float]]:
    """``(what, program, seconds)`` for every program compiled in this process: the
    duration of its first call (tracing, code generation and the C++ build, plus one run)."""
    return list(_COMPILE_TIMES)


def clear_cache() -> None:
    """Forget every compiled program."""
    _CACHE.clear()
    _COMPILE_TIMES.clear()
    torch._dynamo.reset()


def _small_mm_thresholds() -> None:
    """Inductor reads the CPU size limits of its ``decompose_mm_pass`` from module globals
    set at import; they matter only to compiles that enable the pass (ours, through
    ``options``), so setting them leaves other compiles in the process as they were."""
    try:
        from torch._inductor.fx_passes import decompose_mem_bound_mm as pass_module
    except ImportError:  # another torch: the pass keeps its defaults
        return
    pass_module.cpu_max_first_dimension_decomposition = SMALL_MM
    pass_module.cpu_max_other_dimension_decomposition = SMALL_MM


def _fresh(fn: Callable, tag: str) -> Callable:
    """``fn`` with its own code object, so that dynamo keeps a separate cache for it."""
    code = fn.__code__.replace(co_name=f"{fn.__name__}_{tag}")
    return types.FunctionType(code, fn.__globals__, code.co_name, fn.__defaults__, fn.__closure__)


class Programs:
    """The compiled attempt and step VJP of one key (see the module docstring).

    Args:
        method: the eager step method whose arithmetic is compiled (tableau, tolerances,
            error-norm groups).
        shape, dtype, device: the field's state.
        direction: the solve runs in ``s = direction · t`` (``rhs = direction · field``).
        what: a name for warnings and :func:`compile_times`.
    """

    def __init__(self, method: Dopri5, shape: torch.Size, dtype: torch.dtype, device: torch.device,
                 direction: float, what: str) -> None:
        self.what = what
        self.failed: str | None = None
        self.calls = 0  # successful program runs: a test can tell compiled steps from the eager fallback
        self._device = device
        self._ran: set[str] = set()
        method.rows(dtype, device)  # the coefficient rows exist before tracing reads them
        sign = float(direction)

        def rows(call: Callable) -> RHS:
            """``call`` (the field, or its functional form) on rows, in ``s``, as the eager
            :func:`~.field.row_field`."""
            def rhs(s: torch.Tensor, y: torch.Tensor):
                f = call((sign * s).to(dtype), y.view(shape)).reshape(1, -1)
                return (f if sign > 0 else -f), None
            return rhs

        def attempt(field, s, h, z, k):
            res = method.step(rows(field), s, h, z, k)
            return res.z, res.k, res.ratio, res.K if res.K is not None else torch.cat(res.stages)

        def step_vjp(field, names, params, s, h, z, a):
            def step(z, params):
                values = dict(zip(names, params))
                rhs = rows(lambda t, y: torch.func.functional_call(field, values, (t, y), strict=False))
                return method.step(rhs, s, h, z, rhs(s, z)[0], last_stage=False).z

            _, pull = torch.func.vjp(step, z, params)
            return pull(a)

        tag = str(len(_CACHE))
        opts: dict = dict(fullgraph=True, dynamic=False, backend=BACKEND)
        if BACKEND == "inductor":
            if device.type == "cuda":
                opts["mode"] = "reduce-overhead"
            elif device.type == "cpu" and CPU_OPTIONS:
                opts["options"] = dict(CPU_OPTIONS)
                _small_mm_thresholds()
        self._attempt = torch.compile(_fresh(attempt, tag), **opts)
        self._step_vjp = torch.compile(_fresh(step_vjp, tag), **opts)
        # CUDA graphs reuse their output memory at the next replay, and the solver keeps
        # outputs across steps (the state, FSAL stage, checkpoints): copy them out
        self._copy_out = opts.get("mode") == "reduce-overhead"

    def times(self, s: float, h: float) -> tuple[torch.Tensor, torch.Tensor]:
        """``s`` and ``h`` as the float64 0-d tensors the programs take."""
        return (torch.tensor(s, dtype=torch.float64, device=self._device),
                torch.tensor(h, dtype=torch.float64, device=self._device))

    def attempt(self, field: nn.Module, s: float, h: float, z: torch.Tensor, k: torch.Tensor):
        """One attempt without gradients: ``(z1, k7, r, K)``, or ``None`` when this key's
        programs failed (then step eagerly)."""
        if self.failed is not None:
            return None
        st, ht = self.times(s, h)
        with torch.no_grad():
            return self._call("attempt", self._attempt, field, st, ht, z, k)

    def step_vjp(self, field: nn.Module, names: tuple[str, ...], params: tuple[torch.Tensor, ...],
                 s: float, h: float, z: torch.Tensor, a: torch.Tensor):
        """``(a ∂z1/∂z, (a ∂z1/∂θ_i)_i)`` of the step ``(s, h)`` from ``z`` (``params`` the
        field's parameters named ``names``); ``None`` when this key's programs failed."""
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
        except Exception as exc:  # noqa: BLE001 -- any failure of dynamo/inductor means: step eagerly
            msg = str(exc).strip().splitlines()
            self.failed = f"{type(exc).__name__}: {msg[0] if msg else ''}"
            warnings.warn(f"compiling the DP5 step failed for {self.what} ({self.failed}); "
                          "stepping eagerly for it", RuntimeWarning, stacklevel=2)
            return None
        self.calls += 1
        if first:
            self._ran.add(name)
            _COMPILE_TIMES.append((self.what, name, time.perf_counter() - t0))
        if self._copy_out:
            out = torch.utils._pytree.tree_map(lambda x: x.clone() if isinstance(x, torch.Tensor) else x, out)
        return out


def programs_for(field: nn.Module, method: Dopri5, shape: torch.Size, dtype: torch.dtype,
                 device: torch.device, direction: float) -> Programs:
    """The cached :class:`Programs` for this field's classes and this state."""
    # the classes of the field's modules: fields of the same classes (a deepcopy, a new
    # ElapsedTime around the same field) share programs; dynamo's guards tell them apart
    key = (tuple(type(m) for m in field.modules()), tuple(shape), dtype, device, float(direction),
           method.tableau.e, method.rtol, method.atol, method.groups, BACKEND)
    got = _CACHE.get(key)
    if got is None:
        what = f"{type(field).__name__} on {tuple(shape)} {dtype} {device}"
        got = _CACHE[key] = Programs(method, torch.Size(shape), dtype, device, direction, what)
    return got


class CompiledDopri5(Dopri5):
    """:class:`~.dopri5.Dopri5` whose attempts without gradients run the compiled program.

    A drop-in step method for the forward loop of one solve of ``field``: ``step`` with
    ``last_stage`` and no autograd recording calls :meth:`Programs.attempt` (``rhs`` must be
    the row field of ``field``, as :func:`~.field.row_field` makes it); anything else, or a
    failed program, is the eager step.
    """

    def __init__(self, method: Dopri5, programs: Programs, field: nn.Module) -> None:
        super().__init__(method.tableau, rtol=method.rtol, atol=method.atol, groups=method.groups,
                         estimate_error=method.estimate_error)
        self.programs, self.field = programs, field

    def step(self, rhs: RHS, s: float, h: float, z: torch.Tensor, k: torch.Tensor, *,
             last_stage: bool = True) -> StepResult:
        if last_stage and self.estimate_error and not torch.is_grad_enabled():
            got = self.programs.attempt(self.field, s, h, z, k)
            if got is not None:
                z1, k7, r, K = got
                stages = tuple(K[i:i + 1] for i in range(6))
                return StepResult(z1, k7, stages, K if z.numel() <= SMALL else None, (None,) * 6, r)
        return super().step(rhs, s, h, z, k, last_stage=last_stage)
