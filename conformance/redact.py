"""Secret redaction and evidence truncation.

Everything the suite writes (exchanges, messages, reports) goes through a `Redactor`
built from the run's API key: the key is replaced by ``***`` wherever it occurs (also
URL-encoded), and `Authorization`-like headers are masked whatever their value.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Mapping
from typing import Any

MASK = "***"
SECRET_HEADERS = frozenset({"authorization", "proxy-authorization", "x-api-key", "api-key", "cookie", "set-cookie"})

TEXT_LIMIT = 8 * 1024  # characters of a text body kept as evidence
STRING_LIMIT = 2 * 1024  # characters of one JSON string kept as evidence
LIST_LIMIT = 200  # items of one JSON list kept as evidence


class Redactor:
    def __init__(self, secret: str | None) -> None:
        self.secret = secret or None
        forms: list[str] = []
        if self.secret:
            forms.append(self.secret)
            for quoted in (urllib.parse.quote(self.secret, safe=""), urllib.parse.quote_plus(self.secret)):
                if quoted not in forms:
                    forms.append(quoted)
        # longest first so a form containing another is replaced whole
        self._forms = sorted(forms, key=len, reverse=True)

    def text(self, value: str) -> str:
        for form in self._forms:
            if form in value:
                value = value.replace(form, MASK)
        return value

    def value(self, value: Any) -> Any:
        """Redact strings anywhere in a JSON-like structure (keys included)."""
        if not self._forms:
            return value
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, Mapping):
            return {self.text(str(k)): self.value(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self.value(v) for v in value]
        return value

    def headers(self, headers: Mapping[str, str] | Any) -> dict[str, str]:
        out: dict[str, str] = {}
        items = headers.multi_items() if hasattr(headers, "multi_items") else list(dict(headers).items())
        for name, val in items:
            lname = name.lower()
            if lname in SECRET_HEADERS:
                scheme = val.split(" ", 1)[0] if " " in val else ""
                masked = f"{scheme} {MASK}" if scheme else MASK
            else:
                masked = self.text(val)
            out[lname] = masked if lname not in out else f"{out[lname]}, {masked}"
        return out


def truncate_text(text: str, limit: int = TEXT_LIMIT) -> str:
    if len(text) <= limit:
        return text
    tail = min(200, limit // 4)
    return f"{text[: limit - tail]}…[{len(text) - limit} characters omitted]…{text[-tail:]}"


def shrink(value: Any, *, string_limit: int = STRING_LIMIT, list_limit: int = LIST_LIMIT) -> Any:
    """A copy of a JSON value small enough to keep as evidence (long strings and lists cut)."""
    if isinstance(value, str):
        return truncate_text(value, string_limit)
    if isinstance(value, Mapping):
        return {k: shrink(v, string_limit=string_limit, list_limit=list_limit) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        items = list(value)
        if len(items) > list_limit:
            head, tail = items[: list_limit - 10], items[-10:]
            omitted = len(items) - len(head) - len(tail)
            items = [*head, f"…[{omitted} items omitted]…", *tail]
        return [shrink(v, string_limit=string_limit, list_limit=list_limit) for v in items]
    return value


def truncate_events(events: list[str], head: int = 200, tail: int = 20, string_limit: int = STRING_LIMIT) -> list[str]:
    """First `head` and last `tail` events, each cut to `string_limit` characters."""
    if len(events) > head + tail:
        kept = [*events[:head], f"…[{len(events) - head - tail} events omitted]…", *events[-tail:]]
    else:
        kept = list(events)
    return [truncate_text(e, string_limit) for e in kept]
