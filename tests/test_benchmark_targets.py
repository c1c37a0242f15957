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
    assert r["compile"] == "auto" and r["programs"] == []  # a solve outside fit never compiles
    assert "torch._inductor" not in r["imported"]  # nothing of inductor imported without a compile
