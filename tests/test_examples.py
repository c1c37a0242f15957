"""Every script in ``examples/`` runs to the end at its default (tiny) size.

The tutorials include their code from these files, so a passing test means the code on
the documentation site runs.  Each script runs in a fresh interpreter, as a user runs it,
from the repository root; the DDP one under ``torchrun`` with two ranks, as its tutorial says.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((REPO / "examples").glob("*.py"))
# Seconds each may take on a loaded 2-core machine; compiled_steps compiles two programs
# (about 10 s warm, a minute or two with a cold inductor cache).
TIMEOUT = {"compiled_steps.py": 400}


def _command(script: Path) -> list[str]:
    if script.name == "ddp_torchrun.py":
        return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(script)]
    return [sys.executable, str(script)]


def test_every_tutorial_has_its_example():
    docs = (REPO / "docs" / "tutorials").glob("*.md")
    included = {line.split('"')[1] for page in docs for line in page.read_text().splitlines()
                if line.strip().startswith('--8<-- "examples/')}
    assert included == {f"examples/{p.name}" for p in EXAMPLES}


@pytest.mark.parametrize("script", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_runs(script: Path):
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    proc = subprocess.run(_command(script), cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=TIMEOUT.get(script.name, 180))
    assert proc.returncode == 0, f"{script.name} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    assert proc.stdout.strip(), f"{script.name} printed nothing"
