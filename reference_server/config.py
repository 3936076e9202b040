"""Server configuration: the engine and tokenizer to serve, the behaviour profile, and request limits."""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from conformance.profiles import Profile

if TYPE_CHECKING:
    from reference_server.engine.types import Engine
    from reference_server.model.loader import LoadedModel

SERVER_VERSION = "0.1.0"


@dataclass(frozen=True)
class Limits:
    max_body_bytes: int = 1 << 20  # 1 MiB
    max_messages: int = 2048
    max_n: int = 128  # the OpenAPI maximum of `n`
    max_stop_count: int = 4  # the OpenAPI maximum of `stop` items
    max_stop_length: int = 256  # characters per stop sequence
    max_prompts: int = 128  # prompts in one completions request
    max_prompt_tokens: int | None = None  # None: the model's context length
    # Completion tokens one request may ask for: choices (prompts x n, or best_of) x max_tokens,
    # after the context-window rules (a request without max_tokens counts the room it may fill).
    max_request_tokens: int | None = 1 << 16  # None: no limit


@dataclass
class ServerConfig:
    engine: Engine
    tokenizer: Any  # a transformers tokenizer
    model_id: str
    context_length: int
    profile: Profile
    chat_template: str | None = None
    api_key: str | None = None
    public_docs: bool = False  # with a key set: /openapi.json, /docs and /redoc open without it too
    limits: Limits = field(default_factory=Limits)
    eos_token_ids: frozenset[int] = frozenset()
    vocab_size: int | None = None
    # Whether the app's lifespan starts and stops the engine (False when several apps share one).
    manage_engine: bool = True
    created: int = field(default_factory=lambda: int(time.time()))
    owned_by: str = "reference-server"

    @classmethod
    def from_loaded(cls, loaded: LoadedModel, engine: Engine, profile: Profile, **kw: Any) -> ServerConfig:
        return cls(
            engine=engine,
            tokenizer=loaded.tokenizer,
            model_id=loaded.model_id,
            context_length=loaded.context_length,
            profile=profile,
            chat_template=loaded.chat_template,
            eos_token_ids=frozenset(loaded.eos_token_ids),
            vocab_size=getattr(engine, "vocab_size", None),
            **kw,
        )

    @property
    def max_prompt_tokens(self) -> int:
        limit = self.limits.max_prompt_tokens
        return self.context_length if limit is None else min(limit, self.context_length)

    @property
    def system_fingerprint(self) -> str:
        """Stable for a given model, profile behaviour and server version."""
        behaviour = ",".join(f"{k}={v}" for k, v in sorted(self.profile.behaviour.items()))
        text = f"{self.model_id}|{self.profile.id}|{behaviour}|{SERVER_VERSION}"
        return "fp_" + hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]

    def axis(self, name: str) -> str:
        return self.profile.behaviour[name]
