"""The live Julia side: juliacall, the ``PyHBNODEBridge`` module and tensor transport.

Only :func:`get_runtime` imports juliacall, with the switches of
:func:`._env.julia_environment` (one Julia thread unless asked, juliapkg offline: the
first use never downloads), which are removed from ``os.environ`` again once juliacall
has read them.  Every call into Julia goes through :meth:`JuliaRuntime.call`,
which enforces the main-thread rule and maps Julia exceptions onto Python ones
(``_maps.exception_error``).

Transport: a tensor goes to Julia flat (``x.detach().contiguous().reshape(-1)``)
through DLPack (zero-copy) and is reshaped there to ``reverse(torch shape)``; sending flat
vectors sidesteps DLPack.jl's guess between row- and column-major layouts for tensors with
size-1 dimensions.  Results come back flat through ``DLPack.share`` and are cloned at
once, so the shared Julia buffer is released on the main thread and torch owns the result.
A CUDA tensor crosses as a host copy (``.cpu()`` before, ``.to(device)`` after; the bridge
uploads and downloads on the Julia side), counted in :attr:`JuliaRuntime.host_copies`: no
stream or allocator is shared between torch and CUDA.jl (julia/README.md, "GPU").
"""

from __future__ import annotations

import threading
import warnings
from typing import Any

import torch

from . import _maps
from ._env import INSTALL_ADVICE, juliacall_switches
from .errors import JuliaBackendError, JuliaBackendUnavailable

__all__ = ["JuliaRuntime", "get_runtime", "require_main_thread", "JuliaImportOrderWarning", "python_exception"]

MAIN_THREAD_ADVICE = (
    "Julia may only be called from the Python main thread (a Julia GC on another thread can "
    "hang the process). Run backward inside `with torch.autograd.set_multithreading_enabled(False):` "
    "(pyhbnode's fit() does), and do not use the julia backend from DataLoader workers, "
    "threads or nn.DataParallel."
)


class JuliaImportOrderWarning(RuntimeWarning):
    """juliacall was imported after torch (possible segfaults, pytorch#78829)."""


def require_main_thread(what: str) -> None:
    """Raise ``RuntimeError`` unless running on the main thread."""
    if threading.current_thread() is not threading.main_thread():
        raise RuntimeError(f"{what} was called from thread {threading.current_thread().name!r}. " + MAIN_THREAD_ADVICE)


def _import_juliacall():
    """``import juliacall`` with pyhbnode's switches (set for the import only: see
    :func:`._env.juliacall_switches`), turning its torch-first warning into advice."""
    with juliacall_switches(), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        import juliacall  # noqa: F401  (starts Julia)
    for w in caught:
        if "torch was imported before juliacall" in str(w.message):
            warnings.warn(
                "torch was imported before juliacall, which can crash some setups "
                "(pytorch#78829). Put `import juliacall` before `import torch` (and before "
                "`import pyhbnode`) in scripts that use backend='julia'.",
                JuliaImportOrderWarning,
                stacklevel=4,
            )
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return juliacall


def python_exception(julia_type: str, text: str, phase: str) -> BaseException:
    """The Python exception for a Julia exception of type ``julia_type``."""
    name, advice = _maps.exception_error(julia_type)
    message = f"Julia {julia_type} in the {phase} call: {text.strip()}{advice}"
    if name == "JuliaBackendError":
        return JuliaBackendError(message)
    builtin = {
        "TypeError": TypeError,
        "ValueError": ValueError,
        "IndexError": IndexError,
        "MemoryError": MemoryError,
        "KeyboardInterrupt": KeyboardInterrupt,
    }[name]
    return builtin(message)


# PythonCall (JlWrap/any.jl, pyjlany_call) raises a plain Python TypeError, text
# "Julia: MethodError: ...", when the called Julia function itself has no matching method.
_PYTHONCALL_PREFIX = "Julia: "


class JuliaRuntime:
    """The loaded bridge.  Methods mirror the Julia API (``PyHBNODEBridge/src``)."""

    def __init__(self) -> None:
        require_main_thread("loading the Julia backend")
        try:
            self.juliacall = _import_juliacall()
        except ImportError as err:
            raise JuliaBackendUnavailable(f"cannot import juliacall: {err}. {INSTALL_ADVICE}") from err
        self.JuliaError = self.juliacall.JuliaError
        self.module = self.juliacall.newmodule("PyHBNODE")
        try:
            self.module.seval("using PyHBNODEBridge")
        except self.JuliaError as err:
            raise JuliaBackendUnavailable(
                f"Julia started but `using PyHBNODEBridge` failed: {err}. {INSTALL_ADVICE}"
            ) from err
        self.bridge = self.module.PyHBNODEBridge
        self.dlpack = self.bridge.DLPack
        self._handles: dict[str, Any] = {}
        self._cuda_loaded = False
        self.host_copies = {"count": 0, "bytes": 0}

    def call(self, name: str, *args, phase: str = "forward", **kwargs):
        """``PyHBNODEBridge.<name>(args...; kwargs...)`` with exceptions mapped."""
        require_main_thread(f"PyHBNODEBridge.{name}")
        return self._invoke(getattr(self.bridge, name), args, kwargs, phase)

    def _invoke(self, fn, args: tuple, kwargs: dict, phase: str):
        """``fn(*args, **kwargs)`` with Julia exceptions mapped onto Python ones."""
        try:
            return fn(*args, **kwargs)
        except self.JuliaError as err:
            raise self.map_exception(err, phase) from err
        except TypeError as err:
            text = str(err)
            if not text.startswith(_PYTHONCALL_PREFIX):
                raise
            julia_type = text[len(_PYTHONCALL_PREFIX) :].split(":", 1)[0].strip() or "MethodError"
            raise python_exception(julia_type, text[len(_PYTHONCALL_PREFIX) :], phase) from err

    def map_exception(self, err: Any, phase: str) -> BaseException:
        try:
            jtype = str(self.bridge.exception_name(err.exception))
        except Exception:  # noqa: BLE001
            jtype = "unknown"
        return python_exception(jtype, str(err), phase)

    def build(self, spec_json: str):
        """The Julia field of a spec (cached per spec text: structure, never values)."""
        handle = self._handles.get(spec_json)
        if handle is None:
            handle = self.call("build", spec_json, phase="build")
            self._handles[spec_json] = handle
        return handle

    def load_cuda(self) -> None:
        """``using CUDA`` in the runtime's module (once), which loads the bridge's CUDA extension."""
        if self._cuda_loaded:
            return
        require_main_thread("loading CUDA.jl")
        try:
            self.module.seval("using CUDA")
        except self.JuliaError as err:
            raise JuliaBackendUnavailable(
                f"CUDA tensors need CUDA.jl in the Julia project, and `using CUDA` failed: {err}. "
                "Run `python -m pyhbnode.solving.backends.julia install --cuda` once, or solve on the CPU."
            ) from err
        self._cuda_loaded = True

    def _count_host_copy(self, x: torch.Tensor) -> None:
        if x.device.type != "cpu":
            self.host_copies["count"] += 1
            self.host_copies["bytes"] += x.numel() * x.element_size()

    def to_julia(self, x: torch.Tensor):
        """A flat Julia vector over ``x``'s memory (zero-copy through DLPack; a host copy
        first for a CUDA tensor)."""
        self._count_host_copy(x)
        flat = x.detach().contiguous().reshape(-1).cpu()
        return self._invoke(self.dlpack.from_dlpack, (flat,), {}, "transfer")

    def to_torch(self, vec, shape: tuple[int, ...], device: torch.device | None = None) -> torch.Tensor:
        """Copy a flat Julia (host) vector into a new torch tensor of ``shape`` on ``device``
        (default the CPU)."""
        shared = self._invoke(self.dlpack.share, (vec, torch.from_dlpack), {}, "transfer")
        out = shared.reshape(shape).clone()
        del shared  # releases the Julia buffer now, on this (main) thread
        if device is not None and device.type != "cpu":
            out = out.to(device)
            self._count_host_copy(out)
        return out


_runtime: JuliaRuntime | None = None
_lock = threading.Lock()


def get_runtime() -> JuliaRuntime:
    """The process-wide runtime (starts Julia on first call)."""
    global _runtime
    with _lock:
        if _runtime is None:
            _runtime = JuliaRuntime()
        return _runtime
