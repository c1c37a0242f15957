"""The numpy emulation of ``field.jl`` (tests/julia_emulate.py) is a hand copy; this test reads
what a parser can from the Julia source and checks the emulation assumes the same.

Derived from ``field.jl`` (tree-sitter-julia) and from ``julia_emulate.py`` (Python ``ast``),
then compared:

* the heavy-ball right-hand side: ``dm``'s additive terms, each with its sign and the
  symbols it multiplies (``+f``, ``-γ·m``, ``-ξ·h``), and ``dh`` = σ(m);
* the learnable coefficients: γ = ε·sigmoid(ω), ξ = softplus(χ) with softplus's
  ``(beta, threshold)`` constants.

What it cannot see, left to the numerical tests against torch (test_julia_bridge.py): the
layers (dense/conv orientation, padding), the time-padding channel, array layouts and the
packing of the flat parameter vector — their meaning is in how the arrays are indexed, not in
a sign or a constant a parser can pair up.
"""
from __future__ import annotations

import ast
import inspect
import textwrap
from pathlib import Path

import pytest

import julia_emulate

tree_sitter = pytest.importorskip("tree_sitter")
tree_sitter_julia = pytest.importorskip("tree_sitter_julia")

FIELD_JL = (Path(__file__).resolve().parents[1] / "pyhbnode" / "solving" / "backends" / "julia" / "PyHBNODEBridge"
            / "src" / "field.jl")
# the symbols a term may hold, in each language's spelling
SYMBOLS = {"f": "f", "gamma": "gamma", "xi": "xi", "m": "m", "h": "h", "u2": "h"}


def _julia_nodes():
    parser = tree_sitter.Parser(tree_sitter.Language(tree_sitter_julia.language()))
    root = parser.parse(FIELD_JL.read_bytes()).root_node

    def walk(n):
        yield n
        for c in n.children:
            yield from walk(c)

    return list(walk(root))


def _julia_terms(node, sign: int = 1) -> set[tuple[int, frozenset[str]]]:
    """``a .- b .* c`` -> ``{(+1, {a}), (-1, {b, c})}``: the additive terms and their symbols."""
    if node.type == "binary_expression":
        left, op, right = node.children
        if op.text in (b"-", b".-", b"+", b".+"):
            flip = -1 if op.text in (b"-", b".-") else 1
            return _julia_terms(left, sign) | _julia_terms(right, sign * flip)
    names = set()
    stack = [node]
    while stack:
        n = stack.pop()
        if n.type == "identifier" and n.text.decode() in SYMBOLS:
            names.add(SYMBOLS[n.text.decode()])
        stack.extend(n.children)
    return {(sign, frozenset(names))}


def _python_terms(node: ast.AST, sign: int = 1) -> set[tuple[int, frozenset[str]]]:
    if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Sub)):
        flip = -1 if isinstance(node.op, ast.Sub) else 1
        return _python_terms(node.left, sign) | _python_terms(node.right, sign * flip)
    names = {SYMBOLS[n.id] for n in ast.walk(node) if isinstance(n, ast.Name) and n.id in SYMBOLS}
    return {(sign, frozenset(names))}


def _julia_assignment(name: str):
    found = [n for n in _julia_nodes() if n.type == "assignment" and n.children[0].text == name.encode()]
    assert len(found) == 1, f"expected one assignment to {name} in field.jl, found {len(found)}"
    return found[0].children[2]


def _python_assignment(func, name: str) -> ast.AST:
    tree = ast.parse(textwrap.dedent(inspect.getsource(func)))
    found = [n.value for n in ast.walk(tree) if isinstance(n, ast.Assign)
             and any(isinstance(t, ast.Name) and t.id == name for t in n.targets)]
    assert len(found) == 1, f"expected one assignment to {name} in {func.__qualname__}"
    return found[0]


def test_the_heavy_ball_momentum_equation_has_the_julia_signs():
    julia = _julia_terms(_julia_assignment("dm"))
    python = _python_terms(_python_assignment(julia_emulate.EmulatedField.evaluate, "dm"))
    assert julia == {(1, frozenset({"f"})), (-1, frozenset({"gamma", "m"})), (-1, frozenset({"xi", "h"}))}, julia
    assert python == julia


def test_the_position_equation_applies_sigma_to_m():
    julia = _julia_assignment("dh")
    assert julia.type == "call_expression" and julia.children[0].text == b"activate"
    args = [c.text for c in julia.children[1].children if c.type not in ("(", ")", ",")]
    assert args == [b"k.sigma", b"m"], args
    python = ast.unparse(_python_assignment(julia_emulate.EmulatedField.evaluate, "dh"))
    assert python == "m if sig is None else sig(m)", python


def _julia_coef(kind: str) -> str:
    """The body of ``coef(c::<kind>, p, ::Type{T})``."""
    for n in _julia_nodes():
        if n.type == "assignment" and n.children[0].type == "where_expression" \
                and f"coef(c::{kind}," in n.children[0].text.decode():
            return n.children[2].text.decode()
    raise AssertionError(f"no coef(c::{kind}, ...) in field.jl")


def test_the_coefficients_are_the_julia_ones():
    sigmoid = _julia_coef("SigmoidOf")
    assert sigmoid.replace(" ", "") == "T(c.eps).*activate(Sigmoid(),p[c.index:c.index])", sigmoid
    softplus = _julia_coef("SoftplusOf")
    assert softplus.replace(" ", "").startswith("activate(Softplus(1.0,20.0),"), softplus
    coef = textwrap.dedent(inspect.getsource(julia_emulate.EmulatedField.coef))
    assert 'return c["eps"] * _sigmoid(theta[("omega", "value")])' in coef
    assert 'return _softplus(theta[("chi", "value")])' in coef
    defaults = inspect.signature(julia_emulate._softplus).parameters
    assert (defaults["beta"].default, defaults["threshold"].default) == (1.0, 20.0)
