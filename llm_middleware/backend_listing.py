"""The table of ``llm-middleware backends``: each registered backend and whether it loads.

A backend that fails to load because a module is missing names the extra of its
package that installs that module (``pip install "llm-middleware[redis]"``), read from
the package's own metadata, so third-party plugins get the same hint.
"""

from __future__ import annotations

import re
from importlib.metadata import Distribution, EntryPoint

from .errors import LLMMiddlewareError
from .registry import backend_class, registered_backends

__all__ = ["backend_rows", "extra_providing", "render_table"]

_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")
_EXTRA = re.compile(r"""extra\s*==\s*['"]([^'"]+)['"]""")


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def extra_providing(dist: Distribution | None, module: str) -> str | None:
    """The extra of ``dist`` whose requirements include the top-level ``module``, if any."""
    if dist is None:
        return None
    wanted = _normalize(module.split(".", 1)[0])
    for requirement in dist.requires or ():
        name, extra = _NAME.match(requirement), _EXTRA.search(requirement)
        if name and extra and _normalize(name.group(1)) == wanted:
            return extra.group(1)
    return None


def _status(name: str, entry: EntryPoint) -> str:
    try:
        backend_class(name)
    except LLMMiddlewareError as exc:
        cause = exc.__cause__
        status = f"fails to load: {cause or exc}"
        if isinstance(cause, ModuleNotFoundError) and cause.name:
            extra = extra_providing(entry.dist, cause.name)
            if extra is not None and entry.dist is not None:
                status += f' (pip install "{entry.dist.name}[{extra}]")'
        return status
    return "ok"


def backend_rows() -> list[tuple[str, str, str, str]]:
    """(name, entry point, package, status) of every registered backend, by name."""
    rows = []
    for name, entry in sorted(registered_backends(refresh=True).items()):
        source = entry.dist.name if entry.dist is not None else "?"
        rows.append((name, entry.value, source, _status(name, entry)))
    return rows


def render_table(rows: list[tuple[str, str, str, str]]) -> list[str]:
    """The rows as lines whose columns line up whatever the longest name."""
    header = ("name", "entry point", "package", "status")
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(3)]
    return [
        "  ".join(cell.ljust(width) for cell, width in zip(row[:3], widths, strict=True))
        + "  "
        + row[3]
        for row in [header, *rows]
    ]
