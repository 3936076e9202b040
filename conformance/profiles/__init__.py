"""Behaviour profiles: which documented behaviour a provider follows, as data.

A profile is a YAML file::

    id: myprovider
    title: Human-readable name
    source: where the behaviour is documented
    behaviour:            # every axis in AXES must be given
      stop.output: include
      ...
    requirements:         # optional per-requirement overrides
      stream.some_id: {status: not_applicable, reason: "..."}

The reference server implements a profile from its `behaviour` alone; the suite
decides which requirements apply by matching each requirement's `applies_when`
against the same axes. Users add a provider by writing a file, not code.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

PROFILES_DIR = Path(__file__).resolve().parent

# axis -> allowed values
AXES: dict[str, tuple[str, ...]] = {
    # Returned text keeps the matched stop sequence (include) or drops it (exclude).
    "stop.output": ("include", "exclude"),
    # prompt + max_tokens over the context window: clamp max_tokens (truncate) or 400 (error).
    "max_tokens.overflow": ("truncate", "error"),
    # Whether the request parameter context_length_exceeded_behavior switches the above.
    "max_tokens.context_length_exceeded_behavior": ("honoured", "ignored"),
    # Where streamed usage appears: on the chunk carrying finish_reason (final_chunk), as an extra
    # chunk with empty choices when stream_options.include_usage is true (include_usage), or nowhere.
    "stream.usage": ("final_chunk", "include_usage", "none"),
    # Options the seed lists as unsupported: non-default value rejected with 400 (default accepted),
    # implemented (supported), or silently accepted and ignored.
    "params.presence_penalty": ("rejected", "supported", "ignored"),
    "params.frequency_penalty": ("rejected", "supported", "ignored"),
    "params.best_of": ("rejected", "supported", "ignored"),
    "params.logit_bias": ("rejected", "supported", "ignored"),
    "params.functions": ("rejected", "supported", "ignored"),
}

UNSUPPORTED_OPTIONS = ("presence_penalty", "frequency_penalty", "best_of", "logit_bias", "functions")


class ProfileError(ValueError):
    pass


@dataclass(frozen=True)
class Profile:
    id: str
    title: str
    source: str
    behaviour: dict[str, str]
    overrides: dict[str, dict[str, Any]] = field(default_factory=dict)
    path: str = "builtin"

    def param_mode(self, name: str) -> str:
        """rejected | supported | ignored for one of UNSUPPORTED_OPTIONS."""
        return self.behaviour[f"params.{name}"]


def builtin_profiles() -> list[str]:
    return sorted(p.stem for p in PROFILES_DIR.glob("*.yaml"))


def parse_profile(data: dict[str, Any], path: str) -> Profile:
    if not isinstance(data, dict) or "id" not in data or "behaviour" not in data:
        raise ProfileError(f"{path}: a profile needs at least 'id' and 'behaviour'")
    behaviour = {str(k): str(v) for k, v in (data.get("behaviour") or {}).items()}
    missing = sorted(set(AXES) - behaviour.keys())
    unknown = sorted(behaviour.keys() - set(AXES))
    if missing or unknown:
        raise ProfileError(f"{path}: behaviour axes missing {missing}, unknown {unknown}")
    for axis, value in behaviour.items():
        if value not in AXES[axis]:
            raise ProfileError(f"{path}: {axis}={value!r}; allowed: {', '.join(AXES[axis])}")
    return Profile(
        id=str(data["id"]),
        title=str(data.get("title", data["id"])),
        source=str(data.get("source", "")),
        behaviour=behaviour,
        overrides=dict(data.get("requirements") or {}),
        path=path,
    )


def load_profile(name_or_path: str) -> Profile:
    """A built-in profile by name (fireworks, openai) or a YAML file by path."""
    builtin = PROFILES_DIR / f"{name_or_path}.yaml"
    if builtin.is_file() and "/" not in name_or_path:
        return parse_profile(yaml.safe_load(builtin.read_text(encoding="utf-8")), "builtin")
    path = Path(name_or_path)
    if not path.is_file():
        raise ProfileError(
            f"unknown profile {name_or_path!r}: not a built-in ({', '.join(builtin_profiles())}) nor a file"
        )
    return parse_profile(yaml.safe_load(path.read_text(encoding="utf-8")), str(path))
