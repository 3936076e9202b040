"""Incremental detokenization that is safe for byte-level BPE merges and multi-byte UTF-8.

A token may hold part of a UTF-8 character (byte-level BPE) and a tokenizer's decoding of a
token may depend on its neighbours (leading-space handling). So each step decodes a small window
of ids (a few tokens of context, starting in the prompt) and returns only the new characters,
holding them back while the decoded text ends in an incomplete character (U+FFFD).
Every `step` result concatenated with `flush()` is the generated text.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

REPLACEMENT = "\ufffd"
_PROMPT_CONTEXT = 6

# Where transformers defines the plain fast-tokenizer decoding (4.x and 5.x module names).
_PLAIN_DECODE_MODULES = frozenset({"transformers.tokenization_utils_base"})
_PLAIN_FAST_MODULES = frozenset({"transformers.tokenization_utils_fast", "transformers.tokenization_utils_tokenizers"})


def _defined_in(cls: type, name: str) -> str | None:
    for klass in cls.__mro__:
        if name in vars(klass):
            return klass.__module__
    return None


def fast_decoder(tokenizer: Any) -> Callable[[list[int]], str] | None:
    """The Rust tokenizer's own `decode`, where the transformers wrapper adds nothing to it.

    For a plain `PreTrainedTokenizerFast` (transformers' own `decode` and `_decode`, not a
    model-specific override), `tokenizer.decode(ids, skip_special_tokens=True,
    clean_up_tokenization_spaces=False)` is exactly `tokenizer._tokenizer.decode(ids,
    skip_special_tokens=True)` after converting the ids to a list; calling the latter skips
    about ten microseconds of Python per call. Anything else (a slow tokenizer, a subclass that
    post-processes, an instance with a patched `decode`) gets None: use `tokenizer.decode`.
    """
    try:
        from tokenizers import Tokenizer
    except ImportError:  # pragma: no cover - tokenizers is a server dependency
        return None
    backend = getattr(tokenizer, "_tokenizer", None)
    if not isinstance(backend, Tokenizer):
        return None
    if "decode" in vars(tokenizer) or "_decode" in vars(tokenizer):
        return None
    cls = type(tokenizer)
    if _defined_in(cls, "decode") not in _PLAIN_DECODE_MODULES or _defined_in(cls, "_decode") not in _PLAIN_FAST_MODULES:
        return None
    backend_decode = backend.decode

    def plain(ids: list[int]) -> str:
        if not ids:
            return ""
        text: str = backend_decode(ids, skip_special_tokens=True)
        return text

    return plain


def decode(tokenizer: Any, ids: list[int]) -> str:
    if not ids:
        return ""
    text: str = tokenizer.decode(ids, skip_special_tokens=True, clean_up_tokenization_spaces=False)
    return text


def decoder_for(tokenizer: Any) -> Callable[[list[int]], str]:
    """`ids -> decode(tokenizer, ids)`, by the fastest route that gives the same text."""
    plain = fast_decoder(tokenizer)
    if plain is not None:
        return plain
    return lambda ids: decode(tokenizer, ids)


class IncrementalDetokenizer:
    def __init__(
        self, tokenizer: Any, prompt_ids: list[int], decoder: Callable[[list[int]], str] | None = None
    ) -> None:
        self.tokenizer = tokenizer
        self._decode = decoder if decoder is not None else decoder_for(tokenizer)
        self.ids: list[int] = list(prompt_ids[-_PROMPT_CONTEXT:])
        self.prefix_offset = 0
        self.read_offset = len(self.ids)

    def _delta(self, final: bool) -> str:
        ids = self.ids
        window = ids[self.prefix_offset :]
        if not window:
            return ""
        prefix_ids = ids[self.prefix_offset : self.read_offset]
        prefix_text = self._decode(prefix_ids) if prefix_ids else ""
        new_text = self._decode(window)
        if len(new_text) > len(prefix_text) and (final or not new_text.endswith(REPLACEMENT)):
            if not new_text.startswith(prefix_text):  # should not happen with clean_up disabled
                common = 0
                while common < len(prefix_text) and prefix_text[common] == new_text[common]:
                    common += 1
                delta = new_text[common:]
            else:
                delta = new_text[len(prefix_text) :]
            self.prefix_offset = self.read_offset
            self.read_offset = len(self.ids)
            return delta
        return ""

    def step(self, token_id: int) -> str:
        """Add one generated token; the text that is now certain."""
        self.ids.append(int(token_id))
        return self._delta(final=False)

    def flush(self) -> str:
        """Whatever is still held back (an incomplete character decodes as U+FFFD)."""
        return self._delta(final=True)


_BYTE_DECODER: dict[str, int] | None = None


def _byte_decoder() -> dict[str, int]:
    """The inverse of GPT-2's bytes_to_unicode table used by byte-level BPE vocabularies."""
    global _BYTE_DECODER
    if _BYTE_DECODER is None:
        bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
        cs = bs[:]
        n = 0
        for b in range(256):
            if b not in bs:
                bs.append(b)
                cs.append(256 + n)
                n += 1
        _BYTE_DECODER = {chr(c): b for b, c in zip(bs, cs, strict=True)}
    return _BYTE_DECODER


class TokenText:
    """Per-token text and UTF-8 bytes, for logprobs (cached per token id)."""

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer
        self._cache: dict[int, tuple[str, bytes]] = {}
        self.byte_level = self._detect_byte_level()

    def _detect_byte_level(self) -> bool:
        try:
            backend = self.tokenizer.backend_tokenizer
            return "ByteLevel" in str(backend.decoder)
        except Exception:
            return False

    def get(self, token_id: int) -> tuple[str, bytes]:
        hit = self._cache.get(token_id)
        if hit is None:
            hit = self._compute(token_id)
            self._cache[token_id] = hit
        return hit

    def _compute(self, token_id: int) -> tuple[str, bytes]:
        piece = self.tokenizer.convert_ids_to_tokens(int(token_id))
        raw: bytes | None = None
        if isinstance(piece, str):
            table = _byte_decoder()
            if self.byte_level and all(ch in table for ch in piece):
                raw = bytes(table[ch] for ch in piece)
            elif len(piece) == 6 and piece.startswith("<0x") and piece.endswith(">"):
                try:
                    raw = bytes([int(piece[3:5], 16)])
                except ValueError:
                    raw = None
            elif "\u2581" in piece:
                raw = piece.replace("\u2581", " ").encode("utf-8")
        if raw is None:
            raw = decode(self.tokenizer, [int(token_id)]).encode("utf-8")
        return raw.decode("utf-8", errors="replace"), raw

    def text(self, token_id: int) -> str:
        return self.get(token_id)[0]

    def bytes_list(self, token_id: int) -> list[int]:
        return list(self.get(token_id)[1])
