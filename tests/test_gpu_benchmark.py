"""``python -m benchmarks.gpu`` in its tiny CPU mode: it runs end to end and writes its report.

The CUDA path itself (CUDA graphs, the timings' synchronisation) needs a GPU and is not run
here; the CPU mode exercises the same code with dynamo-eager programs."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from benchmarks import gpu
from pyhbnode.solving.backends.native import compiled


@pytest.fixture(autouse=True)
def _restore(monkeypatch):
    """The CPU mode sets the compile backend and one torch thread for its process: undo both
    (and drop its dynamo-eager programs) for the tests after these."""
    threads = torch.get_num_threads()
    monkeypatch.setattr(compiled, "BACKEND", compiled.BACKEND)
    yield
    torch.set_num_threads(threads)
    compiled.clear_cache()


def _run(tmp_path: Path, *extra: str) -> dict:
    assert gpu.main(["--device", "cpu", "--out", str(tmp_path), *extra]) == 0
    assert "checks PASSED" in (tmp_path / "gpu.txt").read_text()
    return json.loads((tmp_path / "gpu.json").read_text())


def _check_report(report: dict, cases: set[str]) -> None:
    env = report["environment"]
    assert {"device", "device_name", "torch", "cuda", "date", "mode", "compile_backend"} <= set(env)
    assert env["device"] == "cpu" and "smoke" in env["mode"]
    assert report["checks_passed"] is True
    assert {(r["dtype"], r["runner"]) for r in report["checks"]} == {
        (d, r) for d in ("float64", "float32") for r in ("eager", "compiled")}
    for r in report["checks"]:
        assert r["sol_rel_err"] <= r["sol_tol"] and r["grad_rel_err"] <= r["grad_tol"]
    assert {r["case"] for r in report["timings"]} == cases
    for r in report["timings"]:
        assert {"runner", "ms_iter", "x_torchdiffeq", "nfe_f", "nfe_b", "warmup_s"} <= set(r)
        assert r["ms_iter"] > 0 and r["nfe_f"] > 0 and r["nfe_b"] > 0
    assert {r["runner"] for r in report["timings"]} == {"pyhbnode eager", "pyhbnode compiled",
                                                       "torchdiffeq odeint_adjoint"}


def test_tiny_cpu_mode(tmp_path):
    """~15 s on a loaded 2-core machine (one torch thread)."""
    _check_report(_run(tmp_path), {"pointcloud/hbnode batch 8", "mnist/hbnode batch 1 tol 1e-3"})


def test_only_keeps_the_named_cases(tmp_path):
    _check_report(_run(tmp_path, "--only", "pointcloud"), {"pointcloud/hbnode batch 8"})
