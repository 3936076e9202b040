"""Secret redaction and evidence truncation.

Everything the suite writes (exchanges, messages, reports) goes through a `Redactor`
built from the run's API key: the key is replaced by ``***`` wherever it occurs (also
URL-encoded), `Authorization`-like headers are masked whatever their value, and the
userinfo of any URL (``http://user:password@host`` -> ``http://***@host``) is masked too,
so credentials embedded in --base-url never reach a message, a report or results.json.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Iterable, Mapping
from typing import Any

MASK = "***"
# scheme://userinfo@ : userinfo runs up to the first "@" before any "/", "?", "#" or whitespace.
_URL_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*://)([^/?#@\s]*)@")
MIN_URL_SECRET = 6  # shorter userinfo parts are masked inside URLs only, not wherever they occur


def redact_url(url: str) -> str:
    """`url` (or any text holding URLs) with the userinfo of every URL replaced by ``***``."""
    if "@" not in url or "://" not in url:
        return url
    return _URL_USERINFO.sub(lambda m: f"{m.group(1)}{MASK}@", url)


def url_secrets(url: str) -> list[str]:
    """The credentials in a URL's userinfo: the password, or a username used as a token (no password)."""
    try:
        parts = urllib.parse.urlsplit(url)
        password, username = parts.password, parts.username
    except ValueError:
        return []
    found = [urllib.parse.unquote(password)] if password else [urllib.parse.unquote(username)] if username else []
    return [s for s in found if len(s) >= MIN_URL_SECRET]
SECRET_HEADERS = frozenset({"authorization", "proxy-authorization", "x-api-key", "api-key", "cookie", "set-cookie"})

TEXT_LIMIT = 8 * 1024  # characters of a text body kept as evidence
STRING_LIMIT = 2 * 1024  # characters of one JSON string kept as evidence
LIST_LIMIT = 200  # items of one JSON list kept as evidence


class Redactor:
    """Masks the API key (`secret`) and the credentials of `urls` (e.g. the base URL's userinfo)."""

    def __init__(self, secret: str | None, *, urls: Iterable[str] = ()) -> None:
        self.secret = secret or None
        forms: list[str] = []
        secrets = [self.secret] if self.secret else []
        for url in urls:
            secrets.extend(url_secrets(url))
        for secret_value in secrets:
            for form in (secret_value, urllib.parse.quote(secret_value, safe=""),
                         urllib.parse.quote_plus(secret_value)):
                if form not in forms:
                    forms.append(form)
        # longest first so a form containing another is replaced whole
        self._forms = sorted(forms, key=len, reverse=True)

    def text(self, value: str) -> str:
        value = redact_url(value)
        for form in self._forms:
            if form in value:
                value = value.replace(form, MASK)
        return value

    def value(self, value: Any) -> Any:
        """Redact strings anywhere in a JSON-like structure (keys included)."""
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
