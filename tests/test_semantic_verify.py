"""The decision rule of verified semantic matching, driven by scripted judges on
synthetic streams whose true error is known."""

from __future__ import annotations

import math
import random
from collections.abc import Callable

import pytest

from llm_middleware.errors import ConfigurationError
from llm_middleware.semantic.verify import (
    MISS,
    SERVE,
    VERIFY,
    Observation,
    Verifier,
    upper_bound,
    within,
)

Truth = Callable[[int, float, random.Random], bool]


def run_stream(
    verifier: Verifier,
    truth: Truth,
    *,
    entries: int,
    queries: int,
    seed: int,
    distinct: int = 3,
) -> dict[str, int]:
    """Candidates of ``entries`` stored entries, each asked again and again by a few
    ``distinct`` queries (fixed similarities); ``truth(entry, similarity, rng)`` is
    the scripted judge. Returns what was served, verified and wrongly served."""
    rng = random.Random(seed)
    sims = {(e, q): rng.uniform(0.80, 1.0) for e in range(entries) for q in range(distinct)}
    observations: dict[int, tuple[Observation, ...]] = {}
    counts = {"served": 0, "wrong": 0, "verified": 0, "missed": 0, "explored": 0}
    for _ in range(queries):
        entry, query = rng.randrange(entries), rng.randrange(distinct)
        similarity = sims[entry, query]
        correct = truth(entry, similarity, rng)
        seen = observations.get(entry, ())
        decision = verifier.decide(seen, similarity)
        if decision.action == SERVE:
            counts["served"] += 1
            counts["wrong"] += not correct
        elif decision.action == VERIFY:
            counts["verified"] += 1
            counts["explored"] += decision.explore
            observations[entry] = verifier.learn(seen, similarity, correct)
        else:
            counts["missed"] += 1
    return counts


def thresholds(seed: int, entries: int) -> list[float]:
    rng = random.Random(seed)
    return [rng.uniform(0.80, 1.0) for _ in range(entries)]


def test_a_new_verifier_serves_nothing_it_has_not_verified() -> None:
    verifier = Verifier(0.02, rng=random.Random(1))
    for similarity in (0.5, 0.9, 0.999):
        decision = verifier.decide((), similarity)
        assert decision.action == VERIFY and decision.seen == 0


def test_an_entry_learns_to_serve_a_repeated_candidate() -> None:
    """Entries whose matches are right above a threshold of their own: after enough
    verified repeats, a repeat of a verified match is served."""
    cut = thresholds(3, 200)
    verifier = Verifier(0.02, rng=random.Random(2))
    counts = run_stream(verifier, lambda e, s, _: s >= cut[e], entries=200, queries=6000, seed=4)
    assert counts["served"] > 1500  # most repeats of right matches end up served
    assert counts["wrong"] == 0  # the truth is exactly monotone: nothing served is wrong
    assert counts["explored"] > 0  # and a sampled fraction is still verified
    seen, wrong = verifier.evidence()["at"]
    assert seen > 0 and upper_bound(wrong, seen, 0.99) <= 0.02


def test_an_entry_refuses_what_it_saw_answered_wrongly() -> None:
    verifier = Verifier(0.02, rng=random.Random(5))
    seen = verifier.learn((), 0.93, False)
    decision = verifier.decide(seen, 0.92)
    assert decision.action == MISS and decision.bucket == "refused"
    assert verifier.decide(seen, 0.95).action == VERIFY  # above it: not known yet


def test_serving_needs_the_pooled_bound_not_one_lucky_observation() -> None:
    verifier = Verifier(0.02, rng=random.Random(6))
    seen = verifier.learn((), 0.91, True)
    decision = verifier.decide(seen, 0.91)
    assert decision.action == VERIFY and decision.bucket == "at"
    assert decision.seen == 0  # the observation was evidence for its band, not for "at"


def test_the_prior_lets_a_new_entry_serve_where_matches_are_always_right() -> None:
    """Where every candidate above 0.9 is right, verified candidates of other
    entries are evidence for an entry that has seen nothing."""
    verifier = Verifier(0.02, rng=random.Random(7))
    rng = random.Random(8)
    for _ in range(600):
        verifier.learn((), rng.uniform(0.96, 0.98), True)
    decision = verifier.decide((), 0.97)
    assert decision.action in (SERVE, VERIFY)
    served = sum(verifier.decide((), 0.97).action == SERVE for _ in range(400))
    assert 340 < served < 400  # served, with a few explored (explore=0.02 by default)


def test_a_prior_that_is_often_wrong_is_not_verified_where_it_cannot_pay() -> None:
    verifier = Verifier(0.02, verify_above=0.5, rng=random.Random(9))
    for i in range(50):
        verifier.learn((), 0.85, i % 5 == 0)  # one right in five
    assert verifier.decide((), 0.85).action == MISS
    for i in range(50):
        verifier.learn((), 0.95, i % 5 != 0)  # four right in five
    assert verifier.decide((), 0.95).action == VERIFY


@pytest.mark.parametrize("delta", [0.01, 0.02, 0.05])
@pytest.mark.parametrize("noise", [0.0, 0.01, 0.03])
def test_the_achieved_wrong_rate_stays_within_the_bound(delta: float, noise: float) -> None:
    """Monotone per-entry truth with a known fraction ``noise`` of answers judged
    wrong at random: whatever is served is wrong at most a fraction delta."""
    cut = thresholds(11, 300)

    def truth(entry: int, similarity: float, rng: random.Random) -> bool:
        return similarity >= cut[entry] and rng.random() >= noise

    verifier = Verifier(delta, rng=random.Random(12))
    counts = run_stream(verifier, truth, entries=300, queries=20_000, seed=13)
    if noise < delta / 2:
        assert counts["served"] > 1000  # the bound leaves room: the rule uses it
    assert counts["wrong"] <= delta * max(counts["served"], 1)


@pytest.mark.parametrize("delta", [0.01, 0.05])
def test_a_stream_where_similarity_says_nothing_is_never_served_wrongly(delta: float) -> None:
    """A third of all answers wrong, at random: no bucket can show the bound."""
    verifier = Verifier(delta, rng=random.Random(14))
    counts = run_stream(
        verifier, lambda e, s, rng: rng.random() >= 0.3, entries=100, queries=5000, seed=15
    )
    assert counts["wrong"] <= delta * max(counts["served"], 1)
    assert counts["served"] < 50


def test_observations_are_bounded_to_the_newest() -> None:
    verifier = Verifier(0.02, max_observations=4, rng=random.Random(16))
    seen: tuple[Observation, ...] = ()
    for i in range(20):
        seen = verifier.learn(seen, 0.80 + i / 100, True)
    assert len(seen) == 4
    assert [o.similarity for o in seen] == pytest.approx([0.96, 0.97, 0.98, 0.99])


def test_upper_bound_is_clopper_pearson() -> None:
    # no error in n: the bound solves (1 - p)^n = 1 - confidence
    assert upper_bound(0, 100, 0.99) == pytest.approx(1 - 0.01 ** (1 / 100), rel=1e-6)
    assert upper_bound(0, 0, 0.99) == 1.0
    assert upper_bound(5, 5, 0.99) == 1.0
    # one error in n: P(X <= 1) at the bound equals 1 - confidence
    p = upper_bound(1, 200, 0.95)
    cdf = (1 - p) ** 200 + 200 * p * (1 - p) ** 199
    assert cdf == pytest.approx(0.05, rel=1e-6)
    assert upper_bound(2, 400, 0.99) > upper_bound(2, 400, 0.95) > 2 / 400
    assert not math.isnan(upper_bound(0, 10**6, 0.99))
    for wrong, seen in ((0, 228), (0, 229), (1, 400), (3, 900)):
        assert within(wrong, seen, 0.02, 0.99) == (upper_bound(wrong, seen, 0.99) <= 0.02)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_wrong": 0},
        {"max_wrong": 1.5},
        {"explore": 0},
        {"confidence": 1},
        {"max_observations": 0},
    ],
)
def test_bad_settings_are_refused_at_once(kwargs: dict[str, float]) -> None:
    settings: dict[str, float] = {"max_wrong": 0.02, **kwargs}
    with pytest.raises(ConfigurationError):
        Verifier(**settings)  # type: ignore[arg-type]
