"""Start juliacall before anything imports torch, where the julia tests are required.

juliacall warns (and some setups crash, pytorch#78829) when torch was imported first
(julia/README.md, "Importing"), and ``tests/conftest.py`` imports torch.  So conftest
imports this module first.  Under ``PYHBNODE_JULIA=require`` (the Julia CI job, after
``install``) it imports juliacall with pyhbnode's switches; pyhbnode then finds juliacall
running and loads the bridge in-process, so Julia also starts only once.  Otherwise it does
nothing: an unasked ``import juliacall`` could start Julia, or fail, in every test session;
there the julia tests keep the subprocess probe and juliacall's import-order warning.

It must not import ``pyhbnode`` (whose ``__init__`` imports torch), so it loads the
stdlib-only ``_env`` module of the julia backend by path.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

ENV_PY = Path(__file__).resolve().parents[1] / "pyhbnode" / "solving" / "backends" / "julia" / "_env.py"


def _env_module():
    spec = importlib.util.spec_from_file_location("_pyhbnode_julia_env_for_tests", ENV_PY)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def start_juliacall_if_required() -> bool:
    """Import juliacall now if ``PYHBNODE_JULIA=require``; whether it did."""
    env = _env_module()
    try:
        if env.mode() != env.REQUIRE:
            return False
    except ValueError:  # an invalid switch: the julia tests report it themselves
        return False
    with env.juliacall_switches():
        import juliacall  # noqa: F401  (a failure here is the required job's failure)
    return True


STARTED = start_juliacall_if_required()
