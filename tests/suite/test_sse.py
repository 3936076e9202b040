"""SSE parser: good streams, and every kind of malformed framing, never raising."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from conformance.sse import SSEParser, parse_sse

GOOD = b'data: {"a":1}\n\ndata: {"b":2}\n\ndata: [DONE]\n\n'


def test_good_stream():
    r = parse_sse(GOOD)
    assert r.chunks == [{"a": 1}, {"b": 2}] and r.done and r.framing_errors == [] and r.after_done == []


def test_crlf_and_comments_and_fields():
    r = parse_sse(b': ping\r\nevent: message\r\nid: 1\r\ndata: {"a":1}\r\n\r\nretry: 10\r\n\r\ndata: [DONE]\r\n\r\n')
    assert r.chunks == [{"a": 1}] and r.done and r.framing_errors == []


def test_split_anywhere_gives_same_result():
    for cut in range(1, len(GOOD)):
        parser = SSEParser()
        parser.feed(GOOD[:cut])
        parser.feed(GOOD[cut:])
        r = parser.close()
        assert r.chunks == [{"a": 1}, {"b": 2}] and r.done and not r.framing_errors, cut
    crlf = GOOD.replace(b"\n", b"\r\n")
    for cut in range(1, len(crlf)):
        parser = SSEParser()
        parser.feed(crlf[:cut])
        parser.feed(crlf[cut:])
        assert not parser.close().framing_errors, cut


def test_missing_done():
    r = parse_sse(b'data: {"a":1}\n\n')
    assert r.chunks == [{"a": 1}] and not r.done
    assert any("[DONE]" in e for e in r.framing_errors)


def test_merged_events_without_blank_line():
    r = parse_sse(b'data: {"a":1}\ndata: {"b":2}\n\ndata: [DONE]\n\n')
    assert r.chunks == [{"a": 1}, {"b": 2}]  # recovered
    assert any("blank-line separator" in e for e in r.framing_errors)


def test_multiline_json_is_valid():
    r = parse_sse(b'data: {"a":\ndata: 1}\n\ndata: [DONE]\n\n')
    assert r.chunks == [{"a": 1}] and not r.framing_errors


def test_bad_json():
    r = parse_sse(b'data: {"a":\n\ndata: [DONE]\n\n')
    assert r.chunks == [] and r.done
    assert any("invalid JSON" in e and "line 1" in e for e in r.framing_errors)


def test_non_object_json():
    r = parse_sse(b"data: 42\n\ndata: [DONE]\n\n")
    assert r.chunks == [] and any("not an object" in e for e in r.framing_errors)


def test_data_after_done():
    r = parse_sse(b'data: [DONE]\n\ndata: {"late":1}\n\n')
    assert r.done and r.chunks == [] and r.after_done == ['{"late":1}']
    assert any("after" in e for e in r.framing_errors)


def test_line_without_data_prefix():
    r = parse_sse(b'{"a":1}\n\ndata: [DONE]\n\n')
    assert any("expected 'data: ' prefix" in e and "line 1" in e for e in r.framing_errors)


def test_unterminated_last_event():
    r = parse_sse(b'data: {"a":1}\n\ndata: [DONE]')
    assert r.done
    assert any("no line terminator" in e or "not terminated" in e for e in r.framing_errors)


def test_invalid_utf8():
    r = parse_sse(b'data: {"a":"\xff"}\n\ndata: [DONE]\n\n')
    assert any("UTF-8" in e for e in r.framing_errors) and len(r.chunks) == 1


def test_error_count_is_bounded():
    r = parse_sse(b"junk\n" * 1000)
    assert len(r.framing_errors) <= 52


@given(st.binary(max_size=300), st.integers(min_value=0, max_value=300))
def test_never_raises(data, cut):
    parser = SSEParser()
    parser.feed(data[:cut])
    parser.feed(data[cut:])
    result = parser.close()
    assert isinstance(result.framing_errors, list)
