"""`SemanticMatch`: the opt-in fuzzy levels (normalized text, then semantic) and
the error rate they are held to."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from typing import Any

from ..errors import ConfigurationError
from ..policy import CachePolicy
from .calibration import NEVER, CalibrationTable
from .embedder import Embedder
from .index import SemanticIndex
from .verify import Verifier

__all__ = ["SemanticMatch"]

Judge = Callable[[Any, Any], bool]


class SemanticMatch:
    """Let a prompt be answered by a stored answer to a prompt of the same meaning.

    Only the intent text is ever fuzzy: the function, namespace, model, every other
    argument and all earlier turns must match exactly. The levels, in order after
    the exact key: the normalized text (NFKC, case-fold, whitespace, trailing
    ``?!.``), then the most similar stored prompt whose similarity reaches the
    threshold calibrated for ``max_wrong``.

    - ``max_wrong``: the fraction of semantic serves allowed to be another
      question's answer (default 0.01); the threshold comes from the embedder's
      calibration table (shipped for the default embedder, or ``calibration=``: a
      `CalibrationTable` or the path of one written by ``llm-middleware semantic
      calibrate``).
    - ``embedder``: any `Embedder` (default: all-MiniLM-L6-v2 in numpy).
    - ``policies``: the policies whose answers may be shared this way (default
      LONG only; never NEVER).
    - ``shadow``: find the match, but call the LLM anyway and serve the fresh
      answer; ``cache.result`` and ``stats()`` then say whether the match would
      have been right (by ``judge``: default equal answers, or equal normal forms
      of their text).
    - ``verify``: learn online, per stored entry, when a candidate may be served
      within ``max_wrong`` (instead of the calibrated threshold): ``True`` or
      ``"normalized"`` (answers equal, or their texts equal in normal form),
      ``"exact"`` (equal answers), or a ``Callable[[str, str], bool]`` judging
      the stored answer's text against the fresh one. A candidate the entry's
      evidence cannot yet vouch for is answered by the LLM and judged: a
      ``verify`` outcome, counted apart in ``stats()`` and ``cache.result``.
      ``explore``: the fraction of servable candidates verified anyway.
    - ``max_partitions``, ``max_entries``: bounds of the in-process index (LRU
      partitions, oldest entries first out); ``shared_entries``: how many of a
      partition's newest entries are shared through the cache's tiers (0: none).
    """

    def __init__(
        self,
        max_wrong: float = 0.01,
        *,
        embedder: Embedder | None = None,
        calibration: CalibrationTable | str | os.PathLike[str] | None = None,
        policies: Iterable[CachePolicy] = (CachePolicy.LONG,),
        shadow: bool = False,
        judge: Judge | None = None,
        verify: bool | str | Callable[[str, str], bool] | None = None,
        explore: float = 0.02,
        max_partitions: int = 1024,
        max_entries: int = 10_000,
        shared_entries: int = 1000,
        hnsw_above: int = 20_000,
    ) -> None:
        if not isinstance(max_wrong, (int, float)) or not 0 < max_wrong < 1:
            raise ConfigurationError(f"max_wrong must be between 0 and 1, got {max_wrong!r}")
        allowed = frozenset(policies)
        if not allowed or not all(isinstance(p, CachePolicy) for p in allowed):
            raise ConfigurationError("policies= takes CachePolicy values (default: LONG)")
        if CachePolicy.NEVER in allowed:
            raise ConfigurationError("semantic matching never applies to CachePolicy.NEVER")
        for name, value in (("max_partitions", max_partitions), ("max_entries", max_entries)):
            if not isinstance(value, int) or value < 1:
                raise ConfigurationError(f"{name} must be a positive int, got {value!r}")
        if not isinstance(shared_entries, int) or shared_entries < 0:
            raise ConfigurationError(f"shared_entries must be an int >= 0, got {shared_entries!r}")
        if judge is not None and not callable(judge):
            raise ConfigurationError(
                f"judge= takes a callable (stored, fresh) -> bool, not {judge!r}"
            )
        verify_judge = _verify_judge(verify)
        if verify_judge is not None and shadow:
            raise ConfigurationError("shadow=True and verify= exclude each other")
        if embedder is None:
            from .minilm import MiniLMEmbedder

            embedder = MiniLMEmbedder()
        elif not isinstance(embedder, Embedder):
            raise ConfigurationError(f"embedder= takes an Embedder, not {embedder!r}")
        if calibration is None:
            table = CalibrationTable.shipped(embedder.name)
            if table is None:
                raise ConfigurationError(
                    f"no calibration table for embedder {embedder.name!r}: compute one with "
                    "`llm-middleware semantic calibrate --pairs FILE` and pass calibration="
                )
        elif isinstance(calibration, CalibrationTable):
            table = calibration
        else:
            table = CalibrationTable.load(os.fspath(calibration))
        if table.embedder != embedder.name:
            raise ConfigurationError(
                f"calibration table is for {table.embedder!r}, the embedder is {embedder.name!r}"
            )
        self.max_wrong = float(max_wrong)
        self.embedder = embedder
        self.table = table
        self.threshold = table.threshold(self.max_wrong)
        self.policies = allowed
        self.shadow = bool(shadow)
        self.judge = judge
        self.shared_entries = shared_entries
        self.verify_judge = verify_judge
        self.verifier = None if verify_judge is None else Verifier(self.max_wrong, explore=explore)
        self.index = SemanticIndex(
            embedder.dimension,
            max_partitions=max_partitions,
            max_entries=max_entries,
            hnsw_above=hnsw_above,
        )

    @property
    def serves_semantic(self) -> bool:
        """False when the calibration found no threshold for ``max_wrong`` and no
        verification learns one (only the normalized level then serves)."""
        return self.threshold < NEVER or self.verifier is not None

    def __repr__(self) -> str:
        policies = ",".join(sorted(p.name for p in self.policies))
        return (
            f"SemanticMatch(max_wrong={self.max_wrong}, embedder={self.embedder.name!r}, "
            f"threshold={self.threshold:.4f}, policies={policies}, shadow={self.shadow}, "
            f"verify={self.verifier is not None})"
        )


def _verify_judge(verify: object) -> Callable[[str, str], bool] | str | None:
    """``verify=`` as a judge: ``"exact"``, ``"normalized"``, a callable, or ``None``."""
    if verify is None or verify is False:
        return None
    if verify is True:
        return "normalized"
    if verify in ("exact", "normalized"):
        return str(verify)
    if callable(verify):
        return verify
    raise ConfigurationError(
        f"verify= takes True, 'exact', 'normalized' or a callable (stored, fresh) -> bool, "
        f"not {verify!r}"
    )
