"""The Hypothesis strategies that draw stop sequences from an endpoint's output."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from conformance import strategies as S
from conformance.checks.stop import first_stop

TEXT = " jumps over the lazy dog. The dog"


@given(st.data())
def test_stop_sets_have_unambiguous_cut(data: st.DataObject) -> None:
    stops = data.draw(S.stop_sets(TEXT))
    assert 1 <= len(stops) <= 4
    present = [s for s in stops if s in TEXT]
    assert present and first_stop(TEXT, stops) is not None
    spans = sorted((TEXT.find(s), TEXT.find(s) + len(s)) for s in present)
    assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:], strict=False))


def test_candidates() -> None:
    assert all(TEXT.count(s) >= 1 and TEXT.find(s, TEXT.find(s) + 1) >= 0 for s in S.repeated_candidates(TEXT))
    bounds = S.token_boundaries([" jumps", " over", " the", " lazy", " dog", ".", " The", " dog"], TEXT)
    assert bounds is not None
    mids = S.mid_token_candidates(TEXT, bounds)
    assert mids and all(TEXT.find(m) + len(m) not in bounds for m in mids)
    assert S.prompt_only_stops("The quick brown fox", "the lazy dog") == ["The", "brown", "fox", "quick"]
