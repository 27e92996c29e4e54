"""``tail -f app.log | llm-middleware stats - --every 10``: a summary refreshed while the
log grows, and a last one when the input ends."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterable

from .logstats import LogSummary

__all__ = ["follow"]

_END = object()


def follow(
    lines: Iterable[str | bytes],
    every: float,
    show: Callable[[LogSummary, bool], None],
    *,
    clock: Callable[[], float] = time.monotonic,
    timeline: bool = False,
) -> LogSummary:
    """Summarize ``lines`` as they come; ``show(summary, False)`` every ``every`` seconds of
    ``clock`` (also while no line comes), and ``show(summary, True)`` once at the end.

    The lines are read by a daemon thread, so a quiet input does not hold the refreshes
    back; an error while reading ends the summary and is raised here."""
    if every <= 0:
        raise ValueError(f"every must be positive, not {every!r}")
    summary = LogSummary()
    if timeline:
        from .timeline import Timeline

        summary.timeline = Timeline()
    arrived: queue.Queue[object] = queue.Queue(maxsize=65536)
    failure: list[BaseException] = []

    def read() -> None:
        try:
            for line in lines:
                arrived.put(line)
        except BaseException as exc:  # handed to the summarizing thread
            failure.append(exc)
        finally:
            arrived.put(_END)

    threading.Thread(target=read, name="llm-middleware-stats", daemon=True).start()
    deadline = clock() + every
    while True:
        now = clock()
        if now >= deadline:
            show(summary, False)
            deadline = now + every
        try:
            line = arrived.get(timeout=deadline - now)
        except queue.Empty:
            continue
        if line is _END:
            break
        if isinstance(line, (str, bytes)) and line.strip():  # blank lines: as summarize
            summary.add_line(line)
    if failure:
        raise failure[0]
    show(summary, True)
    return summary
