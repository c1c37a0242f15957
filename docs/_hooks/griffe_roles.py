"""Griffe extension: adapt the package's docstrings to what mkdocstrings renders.

The docstrings are Google-style with two habits of their own, rewritten here at build time
(the source stays as it is):

* Sphinx roles name other objects (``:class:`~pyhbnode.solving.adjoints.Adjoint```), which
  mkdocstrings would print verbatim.  A role becomes a code span of the name (its last
  component with ``~``, as Sphinx shows it): a plain span rather than a cross-reference,
  because some targets are private modules the reference does not document, and an
  unresolved link fails ``--strict``.
* Parameters that share a description are listed together (``rtol, atol: ...``); griffe
  wants one name per entry, so the entry is repeated for each name, and griffe can go on
  checking every documented name against the signature.
"""
from __future__ import annotations

import re
from typing import Any

import griffe

ROLE = re.compile(r":(?:class|func|meth|mod|data|attr|exc|obj):`(~?)([^`]+)`")
SECTION = re.compile(r"^(\s*)(Args|Arguments|Parameters|Attributes|Other Parameters):\s*$")
ENTRY = re.compile(r"^(\s+)(\**\w+(?:\s*,\s*\**\w+)+)(:\s.*)$")


def _span(match: re.Match) -> str:
    tilde, target = match.groups()
    return f"`{target.split('.')[-1] if tilde else target.lstrip('.')}`"


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def split_shared_entries(text: str) -> str:
    lines, out, i = text.splitlines(), [], 0
    section_indent = None
    while i < len(lines):
        line = lines[i]
        head = SECTION.match(line)
        if head:
            section_indent = len(head.group(1))
        elif line.strip() and section_indent is not None and _indent(line) <= section_indent:
            section_indent = None                       # the section ended
        entry = ENTRY.match(line) if section_indent is not None else None
        if entry and _indent(line) > section_indent:
            block = [line]
            while i + 1 < len(lines) and (not lines[i + 1].strip() or _indent(lines[i + 1]) > _indent(line)):
                if not lines[i + 1].strip() and (i + 2 >= len(lines) or _indent(lines[i + 2]) <= _indent(line)):
                    break
                i += 1
                block.append(lines[i])
            for name in (n.strip() for n in entry.group(2).split(",")):
                out.append(f"{entry.group(1)}{name}{entry.group(3)}")
                out.extend(block[1:])
        else:
            out.append(line)
        i += 1
    return "\n".join(out)


class DocstringHabits(griffe.Extension):
    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = split_shared_entries(ROLE.sub(_span, obj.docstring.value))
