"""Command-line flags made from declarations: the solver flags from
:class:`~pyhbnode.SolverOptions`'s fields (name, help, parser), numeric flags from the
:class:`~pyhbnode.checks.Setting` that bounds them."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from ..checks import Setting
from ..solving.options import TOL, option_fields, option_names, parse_option

__all__ = ["add_solver_flags", "solver_flags", "typed"]

# ``tol`` is a shorthand, not a field: its help is the one not carried by the dataclass.
_TOL_HELP = "rtol = atol = TOL (the paper's single tolerance); an explicit --rtol/--atol wins"


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _parser(name: str) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        try:
            return parse_option(name, text)
        except ValueError as err:
            raise argparse.ArgumentTypeError(str(err)) from None

    parse.__name__ = name  # argparse names the type in its messages
    return parse


def add_solver_flags(parser: argparse.ArgumentParser, *, tol_help: str = _TOL_HELP) -> None:
    """One flag per solver option (``--backend``, ``--rtol``, ``--max-steps`` ...) and ``--tol``;
    each defaults to ``None`` (the task's or the zoo's value)."""
    group = parser.add_argument_group("solver options (default: the task's)")
    for f in option_fields():
        group.add_argument(
            _flag(f.name),
            dest=f.name,
            type=_parser(f.name),
            default=None,
            metavar=f.name.upper(),
            help=f.metadata["help"],
        )
    group.add_argument(_flag(TOL), dest=TOL, type=_parser(TOL), default=None, metavar="TOL", help=tol_help)


def solver_flags(args: argparse.Namespace) -> dict[str, Any]:
    """The solver options given on the command line, by option name."""
    return {name: getattr(args, name) for name in option_names() if getattr(args, name, None) is not None}


def typed(setting: Setting) -> Callable[[str], Any]:
    """An ``argparse`` ``type=`` that reads and bounds a value as ``setting`` declares."""

    def parse(text: str) -> Any:
        try:
            return setting.parse(text)
        except ValueError as err:
            raise argparse.ArgumentTypeError(str(err).replace("the value must be", "must be")) from None

    parse.__name__ = str(setting)
    return parse
