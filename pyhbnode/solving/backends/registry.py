"""The backend registry: a name maps to a loader that returns a :class:`~.base.Backend`."""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Callable

from ..adjoints import Adjoint
from .base import Backend

__all__ = ["register_backend", "get_backend", "available_backends", "canonical_backend"]

# A loader is a no-argument callable, or the dotted path ``"module:attribute"`` of one: the
# built-in backends are named by path and imported on first use, so this registry (which
# the options ask for backend names) depends on none of them, and Julia costs nothing
# until asked for.
_LOADERS: dict[str, Callable[[], Backend] | str] = {}
_LOADED: dict[str, Backend] = {}
# Other spellings of a registered name, read once where options are built.
_ALIASES = {"torch": "native"}
_warned_auto = False


def register_backend(name: str, loader: Callable[[], Backend] | str) -> None:
    """Register ``loader`` (a no-argument callable returning a :class:`Backend`, or its dotted
    path ``"package.module:function"``) as ``name``."""
    _LOADERS[name] = loader
    _LOADED.pop(name, None)


def available_backends() -> list[str]:
    return sorted(_LOADERS) + ["auto"]


def canonical_backend(name: object) -> str:
    """The registered name ``name`` spells (``"torch"`` is ``"native"``), or an error naming
    the backends there are.  Loads no backend."""
    if not isinstance(name, str):
        raise TypeError(f"backend must be a string naming the backend, got {type(name).__name__}")
    key = name.strip().lower()
    key = _ALIASES.get(key, key)
    if key not in _LOADERS and key != "auto":
        raise ValueError(
            f"unknown backend {name!r}; choose one of {available_backends()} "
            f"(aliases: {', '.join(f'{a}={b}' for a, b in _ALIASES.items())})"
        )
    return key


def get_backend(name: str, adjoint: Adjoint | None = None) -> Backend:
    """The backend registered as ``name`` (or an alias of it).

    ``"auto"`` is Julia where a working Julia is found and it offers the gradient mode
    ``adjoint`` (``None`` asks only whether Julia works), otherwise torchdiffeq (with one
    warning).  Julia does not offer the default ``Checkpointed``, so ``auto`` picks it only
    for ``Backsolve``/``Interpolating``: the gradient mode never changes with the machine.
    Raises ``ValueError`` for an unknown name and :class:`~pyhbnode.JuliaBackendUnavailable`
    for ``"julia"`` without Julia.
    """
    global _warned_auto
    name = canonical_backend(name)
    if name == "auto":
        julia = importlib.import_module("pyhbnode.solving.backends.julia")
        julia_modes = importlib.import_module("pyhbnode.solving.backends.julia._maps").ADJOINTS
        ok, reason = julia.available()
        if ok and (adjoint is None or adjoint.name in julia_modes):
            return get_backend("julia")
        if ok and adjoint is not None:
            reason = f"it has no gradient mode {adjoint.spec()!r} (only {sorted(julia_modes)})"
        if not _warned_auto:
            warnings.warn(f"backend='auto': Julia is not usable ({reason}); using torchdiffeq", stacklevel=3)
            _warned_auto = True
        return get_backend("torchdiffeq")
    if name not in _LOADED:
        _LOADED[name] = _loader(_LOADERS[name])()
    return _LOADED[name]


def _loader(loader: Callable[[], Backend] | str) -> Callable[[], Backend]:
    if callable(loader):
        return loader
    module, _, attribute = loader.partition(":")
    return getattr(importlib.import_module(module), attribute)


register_backend("torchdiffeq", "pyhbnode.solving.backends.torchdiffeq_backend:TorchDiffEqBackend")
register_backend("native", "pyhbnode.solving.backends.native:NativeBackend")
register_backend("julia", "pyhbnode.solving.backends.julia:load_backend")
