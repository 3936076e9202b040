"""Stop sequences matched over the generated text (never the prompt), incrementally.

`StopMatcher.find(text, new_from)` finds the first stop sequence to *complete* in `text`, looking
only at matches that end after `new_from` (text before it was already searched). "First" is the
match that ends earliest, as if the text arrived one character at a time; on a tie, the longer
one (starting earlier). The result does not depend on how the text was split into tokens, so a
streamed and a non-streamed request stop at the same place.

`holdback(text)` is how many trailing characters may still turn out to start a stop sequence:
a stream must not send them until more text disambiguates.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class StopMatch:
    start: int  # index of the stop sequence's first character in the text
    end: int  # index just past its last character
    sequence: str


class StopMatcher:
    def __init__(self, stops: list[str]) -> None:
        self.stops = [s for s in dict.fromkeys(stops) if s]
        self.max_len = max((len(s) for s in self.stops), default=0)

    def __bool__(self) -> bool:
        return bool(self.stops)

    def find(self, text: str, new_from: int = 0) -> StopMatch | None:
        """The first stop occurrence in `text` that ends after index `new_from`."""
        best: StopMatch | None = None
        for stop in self.stops:
            begin = max(0, new_from - len(stop) + 1)
            idx = text.find(stop, begin)
            if idx < 0:
                continue
            match = StopMatch(idx, idx + len(stop), stop)
            if best is None or (match.end, match.start) < (best.end, best.start):
                best = match
        return best

    def holdback(self, text: str) -> int:
        """Length of the longest suffix of `text` that is a proper prefix of some stop sequence."""
        n = len(text)
        best = 0
        for stop in self.stops:
            # Suffixes that could be a proper prefix of `stop` and beat `best` start at an
            # occurrence of its first character in text[n - len(stop) + 1 : n - best].
            first = stop[0]
            end = n - best
            i = text.find(first, max(0, n - len(stop) + 1), end)
            while i >= 0:
                if stop.startswith(text[i:]):
                    best = n - i
                    break
                i = text.find(first, i + 1, end)
        return best
