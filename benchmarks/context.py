"""What every section of a run shares: settings, one event loop, a scratch folder, the trace
settings, and the samples measured so far (for the JSON file)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._timing import Sample, Settings, Subject, measure
from .workloads import Tracing

__all__ = ["Context"]


@dataclass
class Context:
    settings: Settings
    quick: bool
    loop: asyncio.AbstractEventLoop
    workdir: Path
    tracing: Tracing
    stampede_rounds: int
    samples: dict[str, Any] = field(default_factory=dict)

    def measure(self, section: str, subjects: list[Subject]) -> dict[str, Sample]:
        """`measure` the subjects (interleaved) and keep their samples under ``section``."""
        found = measure(subjects, self.settings)
        for name, sample in found.items():
            self.samples[f"{section} / {name}"] = {
                "median_us": round(sample.median_us, 4),
                "min_us": round(sample.min_us, 4),
                "rounds": len(sample.per_op_ns),
                "iterations_per_round": sample.iterations,
            }
        return found
