"""Shared fixtures: the Python-side backends every correctness test runs on."""
from __future__ import annotations

import julia_first  # noqa: F401  (before torch: starts juliacall first under PYHBNODE_JULIA=require)
import pytest

import pyhbnode  # noqa: F401  (never imports juliacall: Julia starts at the first julia solve)
import torch
from pyhbnode.solving import available_backends

# Every backend that solves in Python is held to the same correctness tests; the Julia
# backend has its own conformance suite (tests/test_julia_*.py) that skips without Julia.
PY_BACKENDS = ["native", "torchdiffeq"]
# A renamed backend must not drop out of every correctness test silently (the native backend's
# old name "torch" once did: filtered against the registry, it left only torchdiffeq here).
assert set(PY_BACKENDS) <= set(available_backends()), (PY_BACKENDS, available_backends())


@pytest.fixture(params=PY_BACKENDS)
def backend(request) -> str:
    return request.param


@pytest.fixture(autouse=True)
def _seed_and_threads():
    # One intra-op thread: the solves here are small, and on a loaded 2-core machine a
    # second thread makes them far slower, not faster.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    yield
    torch.set_num_threads(threads)
