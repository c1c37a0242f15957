"""Backend registry: a name maps to a loader that returns a :class:`Backend`.

Loaders run on first use, so an optional backend (Julia) costs nothing until asked for.
"""
from __future__ import annotations

import warnings
from typing import Callable

from .base import Backend

__all__ = ["Backend", "register_backend", "get_backend", "available_backends"]

_LOADERS: dict[str, Callable[[], Backend]] = {}
_LOADED: dict[str, Backend] = {}
_warned_auto = False


def register_backend(name: str, loader: Callable[[], Backend]) -> None:
    """Register ``loader`` (a no-argument callable returning a :class:`Backend`) as ``name``."""
    _LOADERS[name] = loader
    _LOADED.pop(name, None)


def available_backends() -> list[str]:
    return sorted(_LOADERS) + ["auto"]


def get_backend(name: str, adjoint: str | None = None) -> Backend:
    """The backend registered as ``name``.

    ``"auto"`` is Julia where a working Julia is found and it offers the gradient mode
    ``adjoint`` (a mode name; ``None`` asks only whether Julia works), otherwise
    torchdiffeq (with one warning).  Julia does not offer the default ``checkpointed``, so
    ``auto`` picks it only for ``adjoint="backsolve"``/``"interpolating"``: the gradient
    mode never changes with the machine.  Raises ``ValueError`` for an unknown name and
    :class:`~pyhbnode.JuliaBackendUnavailable` for ``"julia"`` without Julia.
    """
    global _warned_auto
    if name == "auto":
        from .julia import available
        from .julia._maps import ADJOINTS

        ok, reason = available()
        if ok and (adjoint is None or adjoint in ADJOINTS):
            return get_backend("julia")
        if ok:
            reason = f"it has no gradient mode {adjoint!r} (only {sorted(ADJOINTS)})"
        if not _warned_auto:
            warnings.warn(f"backend='auto': Julia is not usable ({reason}); using torchdiffeq", stacklevel=3)
            _warned_auto = True
        return get_backend("torchdiffeq")
    if name not in _LOADERS:
        raise ValueError(f"unknown backend {name!r}; choose one of {available_backends()}")
    if name not in _LOADED:
        _LOADED[name] = _LOADERS[name]()
    return _LOADED[name]


def _load_torchdiffeq() -> Backend:
    from .torchdiffeq_backend import TorchDiffEqBackend

    return TorchDiffEqBackend()


def _load_torch() -> Backend:
    from .native import TorchBackend

    return TorchBackend()


def _load_julia() -> Backend:
    from .julia import load_backend

    return load_backend()


register_backend("torchdiffeq", _load_torchdiffeq)
register_backend("torch", _load_torch)
register_backend("julia", _load_julia)
