"""The ``pyhbnode`` command-line application: a client of the library, above every floor."""

from .main import main

__all__ = ["main"]
