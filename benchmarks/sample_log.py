"""A synthetic two-hour application log of ``cache.result`` events, as a JSON-set-up
application writes them: ``python -m benchmarks.sample_log app.log``.

The cache warms up (the hit rate climbs from about 20 % to 85 %), five functions share
the calls, one call in five asks something time-sensitive (``never``). The picture in
docs/operations.md is ``llm-middleware stats app.log --html report.html`` of this log, as
``chromium --headless --hide-scrollbars --window-size=800,1320 --screenshot`` shows it.
"""

from __future__ import annotations

import argparse
import json
import random
from datetime import datetime, timezone
from typing import Any

__all__ = ["sample_events"]

START = datetime(2026, 11, 30, 9, 0, tzinfo=timezone.utc).timestamp()
FUNCTIONS = [
    "app.support.answer",
    "app.docs.explain",
    "app.code.review",
    "app.chat.smalltalk",
    "app.search.summarize",
]


def sample_events(calls: int = 3000, seed: int = 7) -> list[dict[str, Any]]:
    """``calls`` closing events, one every 2.4 s."""
    pick = random.Random(seed)
    events = []
    for n in range(calls):
        when = datetime.fromtimestamp(START + n * 2.4, timezone.utc)
        policy = pick.choice(["long", "long", "medium", "short", "never"])
        event: dict[str, Any] = {"outcome": "miss", "tier": None, "saved_ms": 0.0}
        if policy == "never":
            event["outcome"] = "bypass"
        elif pick.random() < min(0.85, 0.2 + n / calls):
            event = {
                "outcome": "hit",
                "tier": pick.choice(["L1", "L1", "L1", "L2", "L3"]),
                "saved_ms": round(pick.uniform(400, 3000), 3),
                "saved_tokens": pick.randint(100, 900),
            }
        events.append(
            {
                "call_id": f"5eed-{n}",
                "fn": pick.choice(FUNCTIONS),
                "key": f"llmmw3:~:{n:032x}",
                "policy": policy,
                "saved_tokens": 0,
                **event,
                "event": "cache.result",
                "level": "info",
                "timestamp": when.isoformat().replace("+00:00", "Z"),
            }
        )
    return events


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("path", help="where to write the log")
    parser.add_argument("--calls", type=int, default=3000)
    args = parser.parse_args()
    with open(args.path, "w") as handle:
        handle.writelines(json.dumps(event) + "\n" for event in sample_events(args.calls))


if __name__ == "__main__":
    main()
