"""The Julia backend (DifferentialEquations.jl DP5 + SciMLSensitivity), loaded lazily.

Importing this module never imports juliacall.
"""
from __future__ import annotations

from ..solving.errors import JuliaBackendUnavailable

__all__ = ["available", "load_backend"]


def available() -> tuple[bool, str]:
    """``(ok, reason)``: whether the Julia backend can be used in this process."""
    return False, "the Julia bridge is not built into this version of pyhbnode"


def load_backend():
    ok, reason = available()
    if not ok:
        raise JuliaBackendUnavailable(
            f"backend='julia' is unavailable: {reason}. Install the extra with "
            "`pip install pyhbnode[julia]` and run `python -m pyhbnode.julia install`, "
            "or use backend='torchdiffeq'."
        )
