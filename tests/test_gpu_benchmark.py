"""``python -m benchmarks.gpu`` in its tiny CPU mode: it runs end to end and writes its report.

The CUDA path itself (CUDA graphs, the timings' synchronisation) needs a GPU and is not run
here; the CPU mode exercises the same code with dynamo-eager programs."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks import gpu


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


def test_tiny_cpu_mode_pointcloud(tmp_path):
    _check_report(_run(tmp_path, "--only", "pointcloud"), {"pointcloud/hbnode batch 8"})


@pytest.mark.slow  # the conv field: ~40 s on a loaded 2-core machine
def test_tiny_cpu_mode_all_cases(tmp_path):
    report = _run(tmp_path)
    _check_report(report, {"pointcloud/hbnode batch 8", "mnist/hbnode batch 1 tol 1e-3"})
