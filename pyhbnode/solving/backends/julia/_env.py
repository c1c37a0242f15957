"""The ``PYHBNODE_JULIA`` switch and juliacall's environment switches.  Stdlib only.

The bottom of the julia package: :mod:`._detect` (availability) and :mod:`._runtime`
(the live juliacall) both read these and neither imports the other's module level, so the
package has no import cycle.  It imports nothing relative either, so the test suite can
load it by path before torch (``tests/julia_first.py``).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

__all__ = [
    "OFF",
    "AUTO",
    "REQUIRE",
    "INSTALL_COMMAND",
    "INSTALL_ADVICE",
    "mode",
    "julia_environment",
    "juliacall_switches",
]

OFF, AUTO, REQUIRE = "off", "auto", "require"
_OFF_VALUES = {"0", "off", "no", "false", "never"}
_AUTO_VALUES = {"", "auto"}
_REQUIRE_VALUES = {"1", "on", "yes", "true", "require", "required"}

INSTALL_COMMAND = "python -m pyhbnode.solving.backends.julia install"
INSTALL_ADVICE = (
    "Install the extra with `pip install 'pyhbnode[julia]'`, then run "
    f"`{INSTALL_COMMAND}` once (the only step that downloads: Julia if needed, the "
    "packages, and precompilation; see julia/README.md), or use backend='torchdiffeq'."
)


def mode() -> str:
    """``"off"``, ``"auto"`` or ``"require"`` from ``PYHBNODE_JULIA``."""
    value = os.environ.get("PYHBNODE_JULIA", "auto").strip().lower()
    if value in _OFF_VALUES:
        return OFF
    if value in _REQUIRE_VALUES:
        return REQUIRE
    if value in _AUTO_VALUES:
        return AUTO
    raise ValueError(f"PYHBNODE_JULIA must be one of 0, auto, 1/require; got {value!r}")


def julia_environment(env: Mapping[str, str], *, offline: bool = True) -> dict[str, str]:
    """``env`` plus juliacall/juliapkg switches (a new dict; ``env`` is not changed).

    * ``PYTHON_JULIACALL_THREADS=1`` unless set (juliacall would otherwise follow
      ``JULIA_NUM_THREADS``); where it asks for more than one thread,
      ``PYTHON_JULIACALL_HANDLE_SIGNALS=yes`` unless set (multithreaded Julia with signal
      handling off can segfault in the GC, PythonCall #219; the price: Ctrl-C no longer
      raises ``KeyboardInterrupt`` while Julia runs);
    * ``offline``: ``PYTHON_JULIAPKG_OFFLINE=yes`` and ``JULIA_PKG_OFFLINE=true`` unless set,
      so that importing juliacall never downloads Julia or packages."""
    out = dict(env)
    threads = out.setdefault("PYTHON_JULIACALL_THREADS", "1").strip()
    if threads != "1":
        out.setdefault("PYTHON_JULIACALL_HANDLE_SIGNALS", "yes")
    if offline:
        out.setdefault("PYTHON_JULIAPKG_OFFLINE", "yes")
        out.setdefault("JULIA_PKG_OFFLINE", "true")
    return out


@contextmanager
def juliacall_switches() -> Iterator[dict[str, str]]:
    """``os.environ`` with :func:`julia_environment`'s switches for the duration of the
    block (``import juliacall`` reads them), then without the ones it added: a process that
    started Julia must not hand ``PYTHON_JULIAPKG_OFFLINE``/``JULIA_PKG_OFFLINE`` to the
    programs it launches later (an ``install`` from a notebook would silently run offline).
    Yields the switches it added."""
    added = {k: v for k, v in julia_environment(os.environ).items() if k not in os.environ}
    os.environ.update(added)
    try:
        yield added
    finally:
        for key in added:
            os.environ.pop(key, None)
