"""The issue-18 targets benchmark: its verdicts and a fresh-process measurement."""
from __future__ import annotations

import pytest

targets = pytest.importorskip("benchmarks.peers.targets")


def test_verdict_marks_met_and_missed():
    line, ok = targets._verdict("x", 0.5, 0.6, "x", "detail")
    assert ok and "MET" in line and "0.50x" in line
    line, ok = targets._verdict("x", 0.7, 0.6, "x", "detail")
    assert not ok and "MISSED" in line


def test_first_iteration_runs_in_a_fresh_process():
    r = targets._child("first", "pointcloud/hbnode", 21, None)
    assert r["iters"] == 21 and r["first_s"] > 0 and r["later_s"] > 0
    assert r["compile"] == "auto" and r["programs"] == []  # the layers' default; outside fit it never compiles


def test_a_compiled_child_reports_its_programs(monkeypatch):
    # the record the first-iteration target reads is live: a compiled child (dynamo's "eager"
    # backend: traced, not built) lists its programs
    monkeypatch.setenv("PYHBNODE_BENCH_COMPILE_BACKEND", "eager")
    r = targets._child("compile", "pointcloud/hbnode", 3, None)
    assert r["compile"] is True and {p for p, _ in r["programs"]} == {"attempt", "step_vjp"}
