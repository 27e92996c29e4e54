"""What OpenTelemetry support and ``observe()`` cost a memory hit when unused.

"absent": the hit with the ``opentelemetry`` API modules out of ``sys.modules`` (all the
library looks at to notice it); "installed, no provider": the API imported, as an
application instrumented elsewhere has it, without a provider set. Interleaved rounds
of the same process; the ratio is the second over the first.
"""

from __future__ import annotations

import sys
from types import ModuleType

from ._timing import Subject, sync_runner
from .context import Context
from .report import Row, Target, sample_row
from .workloads import PROMPT, memory_cache, ours

__all__ = ["telemetry"]

SECTION = "telemetry unused (memory hit)"
API_MODULES = ("opentelemetry.trace", "opentelemetry.metrics")
ABSENT = "absent"
NO_PROVIDER = "no provider"


class _Hidden:
    """Takes the API modules out of ``sys.modules`` for a round, and puts them back."""

    def __init__(self) -> None:
        self.saved: dict[str, ModuleType] = {}

    def hide(self) -> None:
        for name in API_MODULES:
            module = sys.modules.pop(name, None)
            if module is not None:
                self.saved[name] = module

    def restore(self) -> None:
        sys.modules.update(self.saved)
        self.saved.clear()


def telemetry(ctx: Context) -> list[Row]:
    figure = "hit, opentelemetry-api installed, no provider"
    try:
        from opentelemetry import trace
    except ImportError:
        reason = "unavailable: opentelemetry-api is not installed: pip install '.[otel]'"
        return [Row(SECTION, figure, status=reason)]
    if not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
        return [Row(SECTION, figure, status="skipped: a tracer provider is set")]
    import opentelemetry.metrics  # noqa: F401 - imported, as an instrumented application has it

    cache = memory_cache()
    chat = ours(cache)
    ctx.tracing.filtered()
    chat(PROMPT)
    hidden = _Hidden()
    subjects = [
        Subject(ABSENT, sync_runner(chat, PROMPT), hidden.hide, hidden.restore),
        Subject(NO_PROVIDER, sync_runner(chat, PROMPT), ctx.tracing.filtered),
    ]
    found = ctx.measure(SECTION, subjects)
    absent = found[ABSENT]
    return [
        sample_row(
            SECTION, "hit, opentelemetry absent", absent, against=absent.median_us, vs=ABSENT
        ),
        sample_row(
            SECTION,
            figure,
            found[NO_PROVIDER],
            against=absent.median_us,
            vs=ABSENT,
            target=Target("<=", 1.1),
        ),
    ]
