"""The requirement catalogue: YAML files under conformance/requirements/, one per area.

File format (one file per area, named `<area>.yaml`)::

    area: stop
    title: Stop sequences
    requirements:
      - id: stop.included            # stable dotted id; first segment is the area
        level: MUST                  # MUST | SHOULD | MAY (RFC 2119)
        statement: >-               # one line, RFC 2119 wording
          The returned text MUST end with the first stop sequence ...
        applies_when:                # optional: behaviour axes of the profile (see profiles.py)
          stop.output: include       # scalar = equality, list = any of
        source:
          url: seed:fireworks-openai-compatibility.txt   # or an https:// URL, or openapi:ComponentName
          quote: "the returned string includes the stop word ..."

Ids never change meaning once published; a changed behaviour gets a new id.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from conformance.results import Level, Source

REQUIREMENTS_DIR = Path(__file__).resolve().parent / "requirements"

AREAS = (
    "schema", "stop", "max_tokens", "stream", "usage", "params", "errors",
    "auth", "n", "logprobs", "echo", "models", "sdk", "determinism",
)


@dataclass(frozen=True)
class Requirement:
    id: str
    area: str
    level: Level
    statement: str
    source: Source
    applies_when: dict[str, Any] = field(default_factory=dict)

    def applies_to(self, behaviour: dict[str, Any]) -> tuple[bool, str]:
        """Whether this requirement applies under a profile's behaviour axes, and why not."""
        for axis, wanted in self.applies_when.items():
            actual = behaviour.get(axis)
            allowed = wanted if isinstance(wanted, list) else [wanted]
            if actual not in allowed:
                return False, f"profile has {axis}={actual!r}; requirement applies when {axis} is {' or '.join(map(repr, allowed))}"
        return True, ""


class CatalogueError(ValueError):
    pass


def _parse(path: Path) -> list[Requirement]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    area = data.get("area")
    if area != path.stem or area not in AREAS:
        raise CatalogueError(f"{path.name}: area {area!r} must match the file name and be one of {AREAS}")
    out = []
    for raw in data.get("requirements") or []:
        rid = raw.get("id", "")
        if not rid.startswith(area + "."):
            raise CatalogueError(f"{path.name}: id {rid!r} must start with {area + '.'!r}")
        missing = {"level", "statement", "source"} - raw.keys()
        if missing:
            raise CatalogueError(f"{rid}: missing {sorted(missing)}")
        out.append(
            Requirement(
                id=rid,
                area=area,
                level=Level(raw["level"]),
                statement=" ".join(str(raw["statement"]).split()),
                source=Source(**raw["source"]),
                applies_when=dict(raw.get("applies_when") or {}),
            )
        )
    return out


@functools.cache
def load_catalogue(directory: Path = REQUIREMENTS_DIR) -> dict[str, Requirement]:
    """All requirements by id, in file order (areas in AREAS order)."""
    result: dict[str, Requirement] = {}
    files = sorted(directory.glob("*.yaml"), key=lambda p: AREAS.index(p.stem) if p.stem in AREAS else 99)
    for path in files:
        for req in _parse(path):
            if req.id in result:
                raise CatalogueError(f"duplicate requirement id {req.id}")
            result[req.id] = req
    return result
