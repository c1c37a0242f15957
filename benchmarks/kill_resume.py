"""Kill ``pyhbnode train`` at random moments, resume it, and compare with an uninterrupted run.

    PYTHONPATH=<checkout> OMP_NUM_THREADS=1 python benchmarks/kill_resume.py --trials 10 --seed 1 [--out FILE]

Per trial: start the command (a checkpoint after every batch, so kills often land inside a
write), SIGKILL it a random 0-0.5 s after a randomly chosen checkpoint appeared, check that the newest visible checkpoint verifies
(``corrupt newest`` otherwise), rerun the same command to the end, and compare its final weights
bit for bit with the reference run and its batch history (every iteration exactly once).
"""
from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ARGS = ["train", "--task", "pointcloud", "--model", "hbnode", "--epochs", "3", "--tol", "1e-3", "--quiet",
        "--set", "checkpoint_every=1", "--set", "batch_size=30"]


def command(out: Path) -> list[str]:
    return [sys.executable, "-m", "pyhbnode", *ARGS, "--out", str(out)]


def final_weights(out: Path):
    from pyhbnode.training import list_checkpoints, load_checkpoint

    return load_checkpoint(list_checkpoints(out / "checkpoints")[0])["model"]


def iterations(out: Path) -> list[int]:
    return [json.loads(line)["iteration"] for line in (out / "history.jsonl").read_text().splitlines() if line.strip()]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=10)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    import torch
    from pyhbnode.training import CheckpointError, list_checkpoints, load_checkpoint

    rng = random.Random(args.seed)
    env = dict(os.environ, OMP_NUM_THREADS="1")
    work = Path(tempfile.mkdtemp(prefix="kill-resume-"))
    lines = []
    t0 = time.time()
    subprocess.run(command(work / "ref"), env=env, check=True, capture_output=True)
    wall = time.time() - t0
    ref, ref_iters = final_weights(work / "ref"), iterations(work / "ref")
    lines.append(f"reference: {' '.join(ARGS)}; {len(ref_iters)} iterations, {wall:.1f} s wall "
                 f"(machine: {os.cpu_count()} cores, OMP_NUM_THREADS=1, seed {args.seed})")
    counts = {"identical": 0, "corrupt_newest": 0, "lost_or_duplicated": 0, "resume_failed": 0, "no_checkpoint_yet": 0}
    for trial in range(args.trials):
        out = work / f"trial-{trial}"
        # Kill once the run has written checkpoint `target - 1`, after a random extra delay (up to
        # a few batches), so that kills land before, inside and after later checkpoint writes.
        target, delay = rng.randint(1, len(ref_iters) - 1), rng.uniform(0.0, 0.5)
        proc = subprocess.Popen(command(out), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        while proc.poll() is None:
            found = list_checkpoints(out / "checkpoints")
            if target == 1 or (found and int(found[0].stem.split("-")[1]) >= target - 1):
                break
            time.sleep(0.005)
        time.sleep(delay)
        finished_early = proc.poll() is not None
        if not finished_early:
            proc.send_signal(signal.SIGKILL)
        proc.wait()
        visible = list_checkpoints(out / "checkpoints")
        corrupt = False
        if visible:
            try:
                load_checkpoint(visible[0])
            except CheckpointError:
                corrupt = True
        else:
            counts["no_checkpoint_yet"] += 1
        counts["corrupt_newest"] += corrupt
        resumed = subprocess.run(command(out), env=env, capture_output=True, text=True)
        same = history_ok = False
        if resumed.returncode != 0:
            counts["resume_failed"] += 1
        else:
            got = final_weights(out)
            same = got.keys() == ref.keys() and all(torch.equal(got[k], ref[k]) for k in ref)
            history_ok = iterations(out) == ref_iters
            counts["identical"] += same and history_ok
            counts["lost_or_duplicated"] += not history_ok
        after = f"checkpoint {target - 1} appeared" if target > 1 else "the start"
        lines.append(f"trial {trial}: killed {delay:.2f} s after {after}"
                     f"{' (had finished)' if finished_early else ''}; "
                     f"newest visible checkpoint {visible[0].name if visible else '-'} "
                     f"{'CORRUPT' if corrupt else 'ok'}; resume rc {resumed.returncode}; "
                     f"weights {'bit-identical' if same else 'DIFFER'}; history {'exact' if history_ok else 'WRONG'}"
                     + (f"; {resumed.stderr.strip().splitlines()[-1][:200]}" if resumed.returncode else ""))
    lines.append(f"summary: {counts['identical']}/{args.trials} bit-identical with exact history; "
                 f"corrupt newest checkpoints after a kill: {counts['corrupt_newest']}; "
                 f"lost or duplicated batches: {counts['lost_or_duplicated']}; resume failures: {counts['resume_failed']}; "
                 f"killed before the first checkpoint: {counts['no_checkpoint_yet']}")
    text = "\n".join(lines)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
