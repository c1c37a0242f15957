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

Calling a program through dynamo costs a few hundred µs of Python (frame evaluation, guard
checks, AOTAutograd's wrappers) — as much as the program itself on the point-cloud models.
On the CPU the programs are compiled through a backend that keeps each graph dynamo builds
with the sources of its inputs (``L['field']._modules['f']._parameters['weight']``,
``L['z']``, ...): after a call through dynamo, the program is *bound* — its constant inputs
(parameters, buffers, coefficient rows) read once — and the later calls run the graph
directly with the per-call inputs (``s``, ``h``, ``z``, ``k`` or ``a``).  A new solve, a new
field instance or a per-call input of another layout re-checks that graph's own dynamo guards
(its cache entry's guard manager, a few µs) and re-reads the constants; where the guards fail
(a changed plain attribute of the field, say) the call goes through dynamo, which recompiles.
A graph's outputs are checked once against dynamo's own result before it is called directly.

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
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from .dopri5 import RHS, SMALL, Dopri5, StepResult

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
_CACHE: dict[tuple, Programs] = {}
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

    def __init__(
        self, method: Dopri5, shape: torch.Size, dtype: torch.dtype, device: torch.device, direction: float, what: str
    ) -> None:
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

            def rhs(s: Any, y: torch.Tensor):  # s: a traced float64 0-d tensor where RHS says float
                f = call((sign * s).to(dtype), y.view(shape)).reshape(1, -1)
                return (f if sign > 0 else -f), None

            return rhs

        def attempt(field, s, h, z, k):
            res = method.step(rows(field), s, h, z, k)
            return res.z, res.k, res.ratio, res.K if res.K is not None else torch.cat(res.stages)

        def step_vjp(field, names, params, s, h, z, a):
            def step(z, params):
                values = dict(zip(names, params, strict=True))
                rhs = rows(lambda t, y: torch.func.functional_call(field, values, (t, y), strict=False))
                return method.step(rhs, s, h, z, rhs(s, z)[0], last_stage=False).z

            pull = torch.func.vjp(step, z, params)[1]
            return pull(a)

        tag = str(len(_CACHE))
        self._raw = {"attempt": _fresh(attempt, tag), "step_vjp": _fresh(step_vjp, tag)}
        # on CUDA: CUDA graphs (inductor's "reduce-overhead"), called through dynamo; they reuse
        # their output memory at the next replay, and the solver keeps outputs across steps
        # (the state, FSAL stage, checkpoints): copy them out
        self._copy_out = BACKEND == "inductor" and device.type == "cuda"
        if self._copy_out:
            opts: dict = dict(fullgraph=True, dynamic=False, backend=BACKEND, mode="reduce-overhead")
        else:
            opts = dict(fullgraph=True, dynamic=False)
        self._compiled = {
            name: torch.compile(fn, **opts)
            if self._copy_out
            else torch.compile(fn, backend=self._capturing(name, device), **opts)
            for name, fn in self._raw.items()
        }
        self._last: dict[str, _Graph] = {}  # the graph dynamo ran last, per program
        self._bound: dict[str, _Bound] = {}  # per program: the graph to call directly
        self._checked: set[str] = set()  # the programs whose bound graph's guards held in this solve

    def _capturing(self, name: str, device: torch.device) -> Callable:
        """A dynamo backend that compiles with :data:`BACKEND` and keeps each graph it built
        (its inputs' sources), so that :meth:`_call` can run it without dynamo."""

        def backend(gm: torch.fx.GraphModule, example_inputs: list) -> Callable:
            fn: Callable
            if BACKEND == "inductor":
                from torch._inductor.compile_fx import compile_fx

                patches = {}
                if device.type == "cpu" and CPU_OPTIONS:
                    patches = dict(CPU_OPTIONS)
                    _small_mm_thresholds()
                # a callable outside AOT mode; the annotation lists AOT's outputs (paths, weights) too
                fn = compile_fx(gm, example_inputs, config_patches=patches)  # type: ignore[assignment]
            elif BACKEND == "eager":
                fn = gm.forward
            else:
                fn = torch._dynamo.lookup_backend(BACKEND)(gm, example_inputs)
            args = [n.meta.get("grapharg") for n in gm.graph.nodes if n.op == "placeholder"]
            graph = _Graph(fn, [None if a is None or a.source is None else a.source.name for a in args])

            def run(*inputs):
                self._last[name] = graph
                return fn(*inputs)

            return run

        return backend

    def begin(self) -> None:
        """A new solve: its first call of each program checks the bound graph's guards
        (dynamo's, on the field's attributes; else the call goes through dynamo), the later
        ones run the graph directly."""
        self._checked.clear()

    def times(self, s: float, h: float) -> tuple[torch.Tensor, torch.Tensor]:
        """``s`` and ``h`` as the float64 0-d tensors the programs take."""
        scalar = torch.scalar_tensor  # half the cost of torch.tensor for a 0-d tensor
        return (
            scalar(s, dtype=torch.float64, device=self._device),
            scalar(h, dtype=torch.float64, device=self._device),
        )

    def attempt(self, field: nn.Module, s: float, h: float, z: torch.Tensor, k: torch.Tensor):
        """One attempt without gradients: ``(z1, k7, r, K)``, or ``None`` when this key's
        programs failed (then step eagerly)."""
        if self.failed is not None:
            return None
        st, ht = self.times(s, h)
        with torch.no_grad():
            return self._call("attempt", field, (field, st, ht, z.contiguous(), k.contiguous()))

    def step_vjp(
        self,
        field: nn.Module,
        names: tuple[str, ...],
        params: tuple[torch.Tensor, ...],
        s: float,
        h: float,
        z: torch.Tensor,
        a: torch.Tensor,
    ):
        """``(a ∂z1/∂z, (a ∂z1/∂θ_i)_i)`` of the step ``(s, h)`` from ``z`` (``params`` the
        field's parameters named ``names``, detached); ``None`` when this key's programs failed."""
        if self.failed is not None:
            return None
        st, ht = self.times(s, h)
        with torch.no_grad():
            # contiguous: a loss's gradient may arrive expanded (stride 0), and a graph built
            # for one layout must not see another
            return self._call(
                "step_vjp", field, (field, names, params, st, ht, z.detach().contiguous(), a.contiguous())
            )

    def _call(self, name: str, field: nn.Module, args: tuple):
        bound = self._bound.get(name)
        if bound is not None:
            if name not in self._checked or bound.field is not field or not bound.fits(args):
                # a new solve, field or input layout: re-read the constants where dynamo's
                # guards still hold
                bound = bound.graph.rebind(self._raw[name], field, args)
                if bound is not None:
                    self._bound[name] = bound
                    self._checked.add(name)
            if bound is not None:
                self.calls += 1
                return bound.run(args)
        first = name not in self._ran
        t0 = time.perf_counter() if first else 0.0
        try:
            out = self._compiled[name](*args)
        except Exception as exc:  # noqa: BLE001 -- any failure of dynamo/inductor means: step eagerly
            msg = str(exc).strip().splitlines()
            self.failed = f"{type(exc).__name__}: {msg[0] if msg else ''}"
            warnings.warn(
                f"compiling the DP5 step failed for {self.what} ({self.failed}); stepping eagerly for it",
                RuntimeWarning,
                stacklevel=3,
            )
            return None
        self.calls += 1
        if first:
            self._ran.add(name)
            _COMPILE_TIMES.append((self.what, name, time.perf_counter() - t0))
        if self._copy_out:
            return torch.utils._pytree.tree_map(lambda x: x.clone() if isinstance(x, torch.Tensor) else x, out)
        graph = self._last.pop(name, None)
        if graph is not None:
            if graph.guards is None and graph.fresh:  # compiled in this call: its cache entry is the newest
                graph.guards = _newest_guards(self._raw[name])
            graph.fresh = False
            bound = graph.bind(self._raw[name], field, args, out)
            if bound is not None:
                self._bound[name] = bound
                self._checked.add(name)
        return out


class _Graph:
    """A graph dynamo compiled for a program: ``fn(*inputs)`` and the source of each input
    (``"L['field']._modules['f']._parameters['weight']"``, ``"L['z']"``, ...)."""

    def __init__(self, fn: Callable, sources: list[str | None]) -> None:
        self.fn, self.sources = fn, sources
        self.usable = all(x is not None for x in sources)
        self.fresh = True  # not yet run through dynamo's cache
        self.guards = None  # dynamo's guard manager of this graph's cache entry, when known
        self.constants: Callable | None = None  # L -> the inputs that stay fixed in a solve
        self.per_call: list[tuple[int, int]] = []  # (input index, argument index) of the others
        self.shape: list[int] | None = None  # the program's output: -1 a tensor, n a tuple of n

    @staticmethod
    def frame(raw: Callable, args: tuple) -> dict:
        """The frame locals dynamo sees for a call of ``raw``: its arguments and closure."""
        code = raw.__code__
        L = dict(zip(code.co_varnames[: code.co_argcount], args, strict=False))
        L.update(zip(code.co_freevars, (c.cell_contents for c in raw.__closure__ or ()), strict=True))
        return L

    def rebind(self, raw: Callable, field: nn.Module, args: tuple) -> _Bound | None:
        """Bound again for a new solve or field where this graph's guards hold (a few µs;
        a call through dynamo costs hundreds), else ``None``."""
        if self.guards is None or self.constants is None or not self.usable:
            return None
        L = self.frame(raw, args)
        try:
            if not self.guards.check(L):
                return None
            return _Bound(self, field, list(self.constants(L)), args)
        except Exception:  # noqa: BLE001 -- dynamo's internals changed: go through dynamo
            self.guards = None
            return None

    def bind(self, raw: Callable, field: nn.Module, args: tuple, out) -> _Bound | None:
        """The graph bound to this solve's ``field`` and constant inputs (parameters,
        coefficient rows), or ``None`` where an input's source cannot be read back or the
        graph's outputs are not the program's (then every call goes through dynamo)."""
        if not self.usable:
            return None
        names = raw.__code__.co_varnames[: raw.__code__.co_argcount]
        L = self.frame(raw, args)
        if self.constants is None and not self._prepare(names, args, out):
            return None
        assert self.constants is not None  # _prepare compiled them
        try:
            bound = _Bound(self, field, list(self.constants(L)), args)
        except Exception:  # noqa: BLE001 -- a source dynamo spells in a way eval cannot read
            self.usable = False
            return None
        if self.shape is None:  # once per graph: its outputs are dynamo's, in the same order
            leaves = [x for part in out for x in (part if isinstance(part, (tuple, list)) else (part,))]
            got = list(self.fn(*bound.inputs(args)))
            if len(got) != len(leaves) or not all(
                isinstance(x, torch.Tensor) and torch.equal(x, y) for x, y in zip(got, leaves, strict=True)
            ):
                self.usable = False
                return None
            self.shape = [len(part) if isinstance(part, (tuple, list)) else -1 for part in out]
        return bound

    def _prepare(self, names: tuple[str, ...], args: tuple, out) -> bool:
        """Split the inputs into per-call arguments and constants (read by one compiled
        expression); ``False`` where that cannot be done."""
        slots = {f"L[{k!r}]": i for i, k in enumerate(names)}
        constant = []
        for j, src in enumerate(self.sources):
            assert src is not None  # asked only of a usable graph: every source is known
            if src in slots and isinstance(args[slots[src]], torch.Tensor):
                self.per_call.append((j, slots[src]))
                constant.append("None")
            else:
                constant.append(src)
        nested = isinstance(out, tuple) and all(
            isinstance(p, torch.Tensor)
            or (isinstance(p, (tuple, list)) and all(isinstance(x, torch.Tensor) for x in p))
            for p in out
        )
        if not nested:
            self.usable = False
            return False
        try:
            self.constants = eval(
                f"lambda L: ({', '.join(constant)},)",  # noqa: S307 -- dynamo's own sources
                {"torch": torch, "device": torch.device},
            )
        except SyntaxError:
            self.usable = False
            return False
        return True


def _layout(x: torch.Tensor) -> tuple:
    return x.shape, x.stride(), x.dtype, x.device, x.requires_grad


def _newest_guards(raw: Callable):
    """The guard manager of the newest entry in dynamo's cache for ``raw``'s code (``None``
    where this torch does not expose it)."""
    try:
        from torch._dynamo.eval_frame import _debug_get_cache_entry_list

        entries = _debug_get_cache_entry_list(raw.__code__)
        return entries[0].guard_manager if entries else None
    except (ImportError, AttributeError, IndexError):
        return None


class _Bound:
    """A graph bound to one solve: its constant inputs evaluated once, the per-call ones
    (``s``, ``h``, ``z``, ``k`` or ``a``) taken from each call's arguments."""

    __slots__ = ("graph", "field", "constant", "layout")

    def __init__(self, graph: _Graph, field: nn.Module, constant: list, args: tuple) -> None:
        self.graph, self.field, self.constant = graph, field, constant
        # the per-call inputs' layout when the guards held: dynamo specialises on it
        self.layout = [_layout(args[i]) for _, i in graph.per_call]

    def fits(self, args: tuple) -> bool:
        """Whether the per-call inputs have the layout the guards were checked on."""
        return all(_layout(args[i]) == lay for (_, i), lay in zip(self.graph.per_call, self.layout, strict=True))

    def inputs(self, args: tuple) -> list:
        inputs = list(self.constant)
        for j, i in self.graph.per_call:
            inputs[j] = args[i]
        return inputs

    def run(self, args: tuple) -> tuple:
        got = self.graph.fn(*self.inputs(args))
        out, i = [], 0
        assert self.graph.shape is not None  # set when the graph was bound
        for n in self.graph.shape:
            if n < 0:
                out.append(got[i])
                i += 1
            else:
                out.append(tuple(got[i : i + n]))
                i += n
        return tuple(out)


def programs_for(
    field: nn.Module, method: Dopri5, shape: torch.Size, dtype: torch.dtype, device: torch.device, direction: float
) -> Programs:
    """The cached :class:`Programs` for this field's classes and this state."""
    # the classes of the field's modules: fields of the same classes (a deepcopy, a new
    # ElapsedTime around the same field) share programs; dynamo's guards tell them apart
    key = (
        tuple(type(m) for m in field.modules()),
        tuple(shape),
        dtype,
        device,
        float(direction),
        method.tableau.e,
        method.rtol,
        method.atol,
        method.groups,
        BACKEND,
    )
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
        super().__init__(
            method.tableau,
            rtol=method.rtol,
            atol=method.atol,
            groups=method.groups,
            estimate_error=method.estimate_error,
        )
        self.programs, self.field = programs, field
        programs.begin()

    def step(
        self, rhs: RHS, s: float, h: float, z: torch.Tensor, k: torch.Tensor, *, last_stage: bool = True
    ) -> StepResult:
        if last_stage and self.estimate_error and not torch.is_grad_enabled():
            got = self.programs.attempt(self.field, s, h, z, k)
            if got is not None:
                z1, k7, r, K = got
                stages = K.split(1)  # six (1, N) views in one call
                return StepResult(z1, k7, stages, K if z.numel() <= SMALL else None, (None,) * 6, r)
        return super().step(rhs, s, h, z, k, last_stage=last_stage)
