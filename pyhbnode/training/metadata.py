"""What ran a result: recorded next to every training run and experiment."""
from __future__ import annotations

import os
import platform
import time

import torch

__all__ = ["run_metadata"]


def run_metadata(**extra) -> dict:
    """Machine, threads, versions and date, plus ``extra`` (config, seed, backend, ...)."""
    from .. import __version__  # on use: the package sets it after importing its floors

    return {
        "pyhbnode": __version__,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "torch_threads": torch.get_num_threads(),
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        **extra,
    }
