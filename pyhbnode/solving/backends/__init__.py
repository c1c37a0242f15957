"""Solver backends: what each provides (:class:`Backend`) and the registry that maps a name
to one (loaded on first use)."""

from .base import Backend, GradientMode
from .registry import available_backends, canonical_backend, get_backend, register_backend

__all__ = ["Backend", "GradientMode", "register_backend", "get_backend", "available_backends", "canonical_backend"]
