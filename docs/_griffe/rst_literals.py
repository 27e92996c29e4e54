"""A griffe extension for the API reference: reST literal blocks become Markdown code.

The library's docstrings introduce examples the reST way, a paragraph ending in ``::``
followed by the block. Markdown would run an unindented block into the text (and read a
TOML ``[[rule]]`` as a link), so each such block becomes a fenced code block. Loaded by
``mkdocs.yml`` (mkdocstrings' python handler, ``extensions``); never shipped with the site.
"""

from __future__ import annotations

from typing import Any

import griffe


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def fence_literal_blocks(text: str) -> str:
    """``intro::`` + blank line + block -> ``intro:`` + a fenced block.

    The block is the indented lines that follow (the reST rule) or, when the next line is
    not indented further, the lines up to the next blank line.
    """
    lines = text.splitlines()
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        starts_block = (
            line.rstrip().endswith("::") and i + 2 < len(lines) and not lines[i + 1].strip()
        )
        if not starts_block:
            out.append(line)
            i += 1
            continue
        intro = line.rstrip()[:-1].rstrip()
        if intro and not intro.endswith(":"):
            intro += ":"
        base = _indent(line)
        j = i + 2
        block: list[str] = []
        if _indent(lines[j]) > base:
            while j < len(lines) and (not lines[j].strip() or _indent(lines[j]) > base):
                block.append(lines[j])
                j += 1
        else:
            while j < len(lines) and lines[j].strip():
                block.append(lines[j])
                j += 1
        while block and not block[-1].strip():
            block.pop()
        margin = min(_indent(b) for b in block if b.strip())
        pad = " " * base
        if intro.strip() != ":":
            out += [intro, ""]
        out += [pad + "```", *(pad + b[margin:] if b.strip() else "" for b in block), pad + "```"]
        out.append("")
        i = j
    return "\n".join(out).rstrip() + ("\n" if text.endswith("\n") else "")


class RstLiteralBlocks(griffe.Extension):
    """Rewrite every docstring's reST literal blocks as fenced Markdown code blocks."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = fence_literal_blocks(obj.docstring.value)
