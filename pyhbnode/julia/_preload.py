"""Import juliacall before torch when the user opted into Julia (``PYHBNODE_JULIA=1``).

juliacall warns (and some setups crash, pytorch#78829) when torch is imported first.
``pyhbnode/__init__.py`` calls :func:`run` before it imports torch; with the default
``PYHBNODE_JULIA=auto`` this does nothing, so ``import pyhbnode`` never imports juliacall
unless asked.  Torch-free.
"""
from __future__ import annotations

import os
import sys

__all__ = ["run"]


def run() -> bool:
    """Import juliacall now if ``PYHBNODE_JULIA`` is ``1``/``require`` and torch is not yet
    imported; returns whether juliacall is imported afterwards."""
    value = os.environ.get("PYHBNODE_JULIA", "auto").strip().lower()
    if value not in {"1", "on", "yes", "true", "require", "required"}:
        return "juliacall" in sys.modules
    if "juliacall" in sys.modules or "torch" in sys.modules:
        return "juliacall" in sys.modules
    try:
        import juliacall  # noqa: F401
    except ImportError as err:
        raise ImportError(
            f"PYHBNODE_JULIA={value} asks pyhbnode to start Julia, but juliacall cannot be "
            f"imported ({err}). Install it with `pip install 'pyhbnode[julia]'` or unset "
            "PYHBNODE_JULIA."
        ) from err
    return True
