"""Error types of the julia backend (torch-free: importing them starts nothing)."""

from __future__ import annotations

__all__ = ["JuliaBackendUnavailable", "JuliaBackendError", "NotTranslatableError"]


class JuliaBackendUnavailable(ImportError):
    """``backend="julia"`` was asked for but no working Julia installation was found."""


class JuliaBackendError(RuntimeError):
    """An exception raised inside Julia that maps onto no standard Python error."""


class NotTranslatableError(TypeError):
    """A field contains a layer the Julia bridge cannot rebuild in Julia."""
