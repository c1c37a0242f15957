"""`pyhbnode compare pointcloud` and `pyhbnode plot` end to end on a few iterations."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from pyhbnode.cli import main
from pyhbnode.experiments.records import read_csv, read_jsonl

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_compare_writes_table_csv_jsonl_and_figures(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["compare", "pointcloud", "--iters", "3", "--models", "node", "hbnode",
                 "--tol", "1e-3", "--out", str(out), "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "fwd NFE" in printed and "hbnode" in printed
    rows = read_csv(out / "results.csv")
    assert [r["model"] for r in rows] == ["node", "hbnode"]
    for row in rows:
        for column in ("parameters", "nfe_forward_mean", "nfe_backward_mean", "seconds_per_iter",
                       "final_loss", "final_train_sign_accuracy", "status"):
            assert row[column] != "", column
        assert row["iterations"] == 3 and row["nfe_forward_mean"] > 0 and row["nfe_backward_mean"] > 0
    lines = read_jsonl(out / "history.jsonl")
    assert len(lines) == 6
    assert {"model", "iteration", "loss", "nfe_forward", "nfe_backward", "seconds", "lr"} <= set(lines[0])
    config = json.loads((out / "config.json").read_text())
    assert config["seed"] == 0 and config["torch_threads"] == 1 and config["iterations"] == 3
    for name in ("nfe.png", "loss.png", "separation.png"):
        data = (out / name).read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 5000, name
        (out / name).unlink()
    # `pyhbnode plot` redraws them from the saved results alone.
    assert main(["plot", str(out)]) == 0
    assert all((out / n).read_bytes().startswith(PNG_MAGIC) for n in ("nfe.png", "loss.png", "separation.png"))


@pytest.mark.parametrize("argv, words", [
    (["compare", "pointcloud", "--iters", "0"], "--iters"),
    (["compare", "pointcloud", "--models", "resnet"], "invalid choice"),
    (["compare", "mnist"], "invalid choice"),
])
def test_compare_rejects_bad_arguments(argv, words):
    proc = subprocess.run([sys.executable, "-m", "pyhbnode", *argv], capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert words in proc.stderr
    assert "Traceback" not in proc.stderr


def test_compare_to_unwritable_dir_fails_cleanly(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    assert main(["compare", "pointcloud", "--iters", "1", "--out", str(blocker / "run"), "--quiet"]) == 1
    assert "not writable" in capsys.readouterr().err


def test_plot_refuses_a_folder_that_is_no_run(tmp_path, capsys):
    assert main(["plot", str(tmp_path)]) == 1
    assert "no history.jsonl" in capsys.readouterr().err
