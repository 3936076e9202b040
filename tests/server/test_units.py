"""Unit tests of the text machinery: stop matching/holdback, incremental detokenization, config."""

from __future__ import annotations

from typing import Any, Literal

from reference_server.engine.types import TokenEvent
from reference_server.entrypoints.openai.detokenize import IncrementalDetokenizer, TokenText, decode
from reference_server.entrypoints.openai.generation import ChoiceProcessor
from reference_server.entrypoints.openai.stops import StopMatcher


def test_stop_first_to_complete_wins() -> None:
    m = StopMatcher(["abc", "b"])
    match = m.find("xabc")
    assert match is not None and (match.start, match.end, match.sequence) == (2, 3, "b")
    assert StopMatcher(["bc", "abcd"]).find("abcd").sequence == "bc"  # type: ignore[union-attr]
    assert StopMatcher(["zz"]).find("abc") is None
    # only matches ending after new_from are reported
    assert StopMatcher(["ab"]).find("abxab", new_from=3) is not None
    assert StopMatcher(["ab"]).find("ab", new_from=2) is None


def test_holdback_is_longest_suffix_that_prefixes_a_stop() -> None:
    m = StopMatcher(["hello", "lo!"])
    assert m.holdback("say hel") == 3
    assert m.holdback("say hell") == 4
    assert m.holdback("xlo") == 2
    assert m.holdback("xyz") == 0
    assert StopMatcher([]).holdback("abc") == 0


def test_detokenizer_concatenation_equals_decode(loaded: Any) -> None:
    tok = loaded.tokenizer
    for text in ["The fox and the grapes.", " héllo wörld, 日本語 ✓ 🦊!", "a\n\nb  c"]:
        ids = tok.encode(text, add_special_tokens=False)
        prompt = tok.encode("Once upon a time", add_special_tokens=False)
        d = IncrementalDetokenizer(tok, prompt)
        out = "".join(d.step(i) for i in ids) + d.flush()
        assert out == decode(tok, ids)
        assert "\ufffd" not in out


def test_token_text_bytes_roundtrip(loaded: Any) -> None:
    tok = loaded.tokenizer
    tt = TokenText(tok)
    text = "héllo 🦊 fox"
    ids = tok.encode(text, add_special_tokens=False)
    assert b"".join(tt.get(i)[1] for i in ids).decode("utf-8") == text


def _events(ids: list[int], last: Literal["stop", "length"] = "length") -> list[TokenEvent]:
    return [TokenEvent(t, -0.5, [], last if k == len(ids) - 1 else None) for k, t in enumerate(ids)]


def test_processor_streamed_pieces_never_leak_a_stop_prefix(loaded: Any) -> None:
    tok = loaded.tokenizer
    ids = tok.encode(" the lion and the mouse went home", add_special_tokens=False)
    for include in (True, False):
        proc = ChoiceProcessor(0, tok, [], StopMatcher(["mouse w"]), include, frozenset())
        pieces = []
        for ev in _events(ids):
            pieces.append(proc.feed(ev))
            if proc.finished:
                break
        released = "".join(p.text for p in pieces)
        assert proc.finish_reason == "stop"
        expected = " the lion and the mouse w" if include else " the lion and the "
        assert released == proc.final_text == expected
        for k in range(len(pieces)):  # nothing past the cut is ever released, even transiently
            assert expected.startswith("".join(p.text for p in pieces[: k + 1]))
