"""`StopMatcher.holdback` (searched from the stops' first characters) equals its definition."""

from __future__ import annotations

import random

from reference_server.entrypoints.openai.stops import StopMatcher


def _by_definition(stops: list[str], text: str) -> int:
    """The longest suffix of `text` that is a proper prefix of some stop sequence, by brute force."""
    best = 0
    for k in range(1, len(text) + 1):
        if any(len(s) > k and s.startswith(text[-k:]) for s in stops if s):
            best = k
    return best


def test_holdback_matches_its_definition() -> None:
    rng = random.Random(1234)
    alphabet = "ab c\u00e9🦊"
    for _ in range(20000):
        stops = ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 6))) for _ in range(rng.randint(1, 4))]
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 12)))
        assert StopMatcher(stops).holdback(text) == _by_definition(stops, text), (stops, text)


def test_holdback_edge_cases() -> None:
    assert StopMatcher(["aaa"]).holdback("aaaa") == 2  # a full match is not held back by holdback
    assert StopMatcher(["abab"]).holdback("xaba") == 3
    assert StopMatcher(["abab"]).holdback("xabab") == 2
    assert StopMatcher(["ab", "b"]).holdback("a") == 1
    assert StopMatcher(["🦊x"]).holdback("the 🦊") == 1
    assert StopMatcher(["x"]).holdback("xxx") == 0  # a one-character stop never needs holding back
    assert StopMatcher([]).holdback("") == 0
