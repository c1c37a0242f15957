"""The live Julia side: juliacall, the ``PyHBNODEBridge`` module and tensor transport.

Only :func:`get_runtime` imports juliacall.  Every call into Julia goes through
:meth:`JuliaRuntime.call`, which enforces the main-thread rule and maps Julia exceptions
onto Python ones (``maps.exception_error``).

Transport: a tensor goes to Julia flat (``x.detach().contiguous().reshape(-1)``) through
DLPack (zero-copy, CPU or CUDA) and is reshaped there to ``reverse(torch shape)``; sending
flat vectors sidesteps DLPack.jl's guess between row- and column-major layouts for tensors
with size-1 dimensions.  Results come back flat through ``DLPack.share`` and are cloned at
once, so the shared Julia buffer is released on the main thread and torch owns the result
(the capsule's deleter never runs on an autograd worker thread).
"""
from __future__ import annotations

import threading
import warnings
from typing import Any

import torch

from ..solving.errors import JuliaBackendError, JuliaBackendUnavailable
from . import maps
from .detect import INSTALL_ADVICE

__all__ = ["JuliaRuntime", "get_runtime", "require_main_thread", "JuliaImportOrderWarning"]

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
        raise RuntimeError(
            f"{what} was called from thread {threading.current_thread().name!r}. " + MAIN_THREAD_ADVICE
        )


def _import_juliacall():
    """``import juliacall``, turning its torch-first warning into pyhbnode advice."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        import juliacall  # noqa: F401  (starts Julia; resolves juliapkg dependencies)
    for w in caught:
        if "torch was imported before juliacall" in str(w.message):
            warnings.warn(
                "torch was imported before juliacall, which can crash some setups "
                "(pytorch#78829). Set PYHBNODE_JULIA=1 so that `import pyhbnode` imports "
                "juliacall first, or `import juliacall` before torch.",
                JuliaImportOrderWarning, stacklevel=4,
            )
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return juliacall


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
        self._cuda = False
        self._handles: dict[str, Any] = {}

    # -- calls ---------------------------------------------------------------------------
    def call(self, name: str, *args, phase: str = "forward", **kwargs):
        """``PyHBNODEBridge.<name>(args...; kwargs...)`` with exceptions mapped."""
        require_main_thread(f"PyHBNODEBridge.{name}")
        fn = getattr(self.bridge, name)
        try:
            return fn(*args, **kwargs)
        except self.JuliaError as err:
            raise self.map_exception(err, phase) from err

    def map_exception(self, err: BaseException, phase: str) -> BaseException:
        try:
            jtype = str(self.bridge.exception_name(err.exception))
        except Exception:  # noqa: BLE001
            jtype = "unknown"
        return python_exception(jtype, str(err), phase)

    # -- fields --------------------------------------------------------------------------
    def build(self, spec_json: str):
        """The Julia field of a spec (cached per spec text: structure, never values)."""
        handle = self._handles.get(spec_json)
        if handle is None:
            handle = self.call("build", spec_json, phase="build")
            self._handles[spec_json] = handle
        return handle

    # -- transport -----------------------------------------------------------------------
    def ensure_device(self, device: torch.device) -> None:
        if device.type == "cpu":
            return
        if device.type != "cuda":
            raise TypeError(f"the julia backend supports CPU and CUDA tensors, got device {device}")
        if not self._cuda:
            try:
                self.module.seval("using CUDA, cuDNN")
            except self.JuliaError as err:
                raise JuliaBackendUnavailable(
                    "CUDA tensors need CUDA.jl and cuDNN.jl in the Julia environment: run "
                    f"`python -m pyhbnode.julia install --cuda` ({err})"
                ) from err
            self._cuda = True
        index = device.index if device.index is not None else torch.cuda.current_device()
        self.call("select_device", int(index), phase="transfer")

    def to_julia(self, x: torch.Tensor):
        """A flat Julia vector over ``x``'s memory (zero-copy through DLPack)."""
        flat = x.detach().contiguous().reshape(-1)
        if flat.is_cuda:
            self.ensure_device(flat.device)
            torch.cuda.current_stream(flat.device).synchronize()
        try:
            return self.dlpack.from_dlpack(flat)
        except self.JuliaError as err:
            raise self.map_exception(err, "transfer") from err

    def to_torch(self, vec, shape: tuple[int, ...], device: torch.device) -> torch.Tensor:
        """Copy a flat Julia vector into a new torch tensor of ``shape`` on ``device``."""
        try:
            shared = self.dlpack.share(vec, torch.from_dlpack)
        except self.JuliaError as err:
            raise self.map_exception(err, "transfer") from err
        out = shared.reshape(shape).clone()
        del shared  # releases the Julia buffer now, on this (main) thread
        if out.device != device:
            out = out.to(device)
        return out


def python_exception(julia_type: str, text: str, phase: str) -> BaseException:
    """The Python exception for a Julia exception of type ``julia_type``."""
    name, advice = maps.exception_error(julia_type)
    message = f"Julia {julia_type} in the {phase} call: {text.strip()}{advice}"
    if name == "JuliaBackendError":
        return JuliaBackendError(message)
    builtin = {"TypeError": TypeError, "ValueError": ValueError, "IndexError": IndexError,
               "MemoryError": MemoryError, "KeyboardInterrupt": KeyboardInterrupt}[name]
    return builtin(message)


_runtime: JuliaRuntime | None = None
_lock = threading.Lock()


def get_runtime() -> JuliaRuntime:
    """The process-wide runtime (starts Julia on first call)."""
    global _runtime
    with _lock:
        if _runtime is None:
            _runtime = JuliaRuntime()
        return _runtime
