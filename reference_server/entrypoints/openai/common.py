"""Request checks and settings shared by /v1/completions and /v1/chat/completions, driven by profile axes."""

from __future__ import annotations

import time
import uuid
from typing import Any

from reference_server.config import ServerConfig
from reference_server.engine.types import SamplingParams

from .errors import APIError, invalid_request, model_not_found, unsupported_parameter
from .generation import ChoiceJob, ChoiceProcessor
from .protocol import StreamOptions
from .stops import StopMatcher

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1

# The value clients send when they do not use an option: accepted even where the option is rejected.
_DEFAULTS: dict[str, tuple[Any, ...]] = {
    "presence_penalty": (None, 0),
    "frequency_penalty": (None, 0),
    "best_of": (None, 1),
    "logit_bias": (None, {}),
    "functions": (None, []),
}


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex}"


def now() -> int:
    return int(time.time())


def check_model(config: ServerConfig, model: str) -> None:
    if model != config.model_id:
        raise model_not_found(model)


def is_default(name: str, value: Any) -> bool:
    return value is None or any(value == d for d in _DEFAULTS[name])


def param_mode(config: ServerConfig, name: str, value: Any) -> str:
    """"default" when the request does not use the option; else the profile's mode for it.

    A non-default value of a rejected option raises the 400 here.
    """
    if is_default(name, value):
        return "default"
    mode = config.profile.param_mode(name)
    if mode == "rejected":
        raise unsupported_parameter(name)
    return mode


def check_stream_options(stream: bool, options: StreamOptions | None) -> bool:
    """include_usage requested; stream_options is only allowed with stream true."""
    if options is None:
        return False
    if not stream:
        raise invalid_request(
            "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
            "stream_options",
            "invalid_value",
        )
    return bool(options.include_usage)


def parse_stops(config: ServerConfig, stop: Any) -> StopMatcher:
    limits = config.limits
    if stop is None:
        return StopMatcher([])
    if isinstance(stop, str):
        stops = [stop]
    elif isinstance(stop, list):
        if not stop:
            raise invalid_request(
                "Invalid 'stop': empty array. Expected an array with minimum length 1, but got an empty array instead.",
                "stop",
                "empty_array",
            )
        if len(stop) > limits.max_stop_count:
            raise invalid_request(
                f"Invalid 'stop': array too long. Expected an array with maximum length {limits.max_stop_count}, "
                f"but got an array with length {len(stop)} instead.",
                "stop",
                "array_above_max_length",
            )
        for i, item in enumerate(stop):
            if not isinstance(item, str):
                raise invalid_request(
                    f"Invalid type for 'stop[{i}]': expected a string.", f"stop[{i}]", "invalid_type"
                )
        stops = list(stop)
    else:
        raise invalid_request(
            "Invalid type for 'stop': expected a string or an array of strings.", "stop", "invalid_type"
        )
    for s in stops:
        if len(s) > limits.max_stop_length:
            raise invalid_request(
                f"Invalid 'stop': a stop sequence is longer than {limits.max_stop_length} characters.",
                "stop",
                "string_above_max_length",
            )
    return StopMatcher(stops)


def check_n(config: ServerConfig, n: int | None) -> int:
    n = 1 if n is None else n
    if not 1 <= n <= config.limits.max_n:
        raise invalid_request(
            f"Invalid 'n': expected a value between 1 and {config.limits.max_n}, but got {n} instead.",
            "n",
            "integer_above_max_value" if n > 1 else "integer_below_min_value",
        )
    return n


def check_seed(seed: int | None) -> int | None:
    if seed is not None and not INT64_MIN <= seed <= INT64_MAX:
        raise invalid_request(
            f"Invalid 'seed': {seed} does not fit in a signed 64-bit integer.",
            "seed",
            "integer_above_max_value" if seed > 0 else "integer_below_min_value",
        )
    return seed


def choice_seed(seed: int | None, i: int) -> int | None:
    """Per-choice seed: choices of one request differ, and the same request repeats exactly."""
    if seed is None:
        return None
    return (seed + i - INT64_MIN) % 2**64 + INT64_MIN


def parse_logit_bias(config: ServerConfig, bias: dict[str, float] | None) -> dict[int, float]:
    if not bias or param_mode(config, "logit_bias", bias) != "supported":
        return {}
    vocab = config.vocab_size
    out: dict[int, float] = {}
    for key, value in bias.items():
        try:
            token = int(key)
        except ValueError:
            token = -1
        if token < 0 or (vocab is not None and token >= vocab) or str(token) != key.strip():
            raise invalid_request(
                f"Invalid key in 'logit_bias': {key!r} is not a token id of this model.", "logit_bias", "invalid_value"
            )
        if not -100 <= value <= 100:
            raise invalid_request(
                f"Invalid value for 'logit_bias' token {key}: {value} is outside [-100, 100].",
                "logit_bias",
                "invalid_value",
            )
        out[token] = float(value)
    return out


def penalties(config: ServerConfig, presence: float | None, frequency: float | None) -> tuple[float, float]:
    p = presence if param_mode(config, "presence_penalty", presence) == "supported" else 0.0
    f = frequency if param_mode(config, "frequency_penalty", frequency) == "supported" else 0.0
    return float(p or 0.0), float(f or 0.0)


def overflow_mode(config: ServerConfig, requested: str | None) -> str:
    """truncate | error: the profile default, or the request's context_length_exceeded_behavior if honoured."""
    if config.axis("max_tokens.context_length_exceeded_behavior") == "honoured" and requested is not None:
        if requested not in ("truncate", "error"):
            raise invalid_request(
                f"Invalid value for 'context_length_exceeded_behavior': {requested!r}. "
                "Supported values are: 'truncate' and 'error'.",
                "context_length_exceeded_behavior",
                "invalid_value",
            )
        return requested
    return config.axis("max_tokens.overflow")


def check_max_tokens(value: int | None, param: str) -> None:
    if value is not None and value < 1:
        raise invalid_request(
            f"Invalid '{param}': integer below minimum value. Expected a value >= 1, but got {value} instead.",
            param,
            "integer_below_min_value",
        )


def resolve_max_tokens(
    config: ServerConfig, prompt_tokens: int, requested: int | None, mode: str, *, chat: bool
) -> int:
    """The completion budget for one prompt, after the context-window rules of the profile."""
    context = config.context_length
    where, param = ("messages", "messages") if chat else ("prompt", "prompt")
    limit = config.max_prompt_tokens
    if limit < context and prompt_tokens > limit:
        raise APIError(
            400,
            f"This server accepts at most {limit} prompt tokens per request. "
            f"However, your {where} resulted in {prompt_tokens} tokens. Please reduce the length of the {where}.",
            param=param,
            code="context_length_exceeded",
        )
    if prompt_tokens >= context:
        raise APIError(
            400,
            f"This model's maximum context length is {context} tokens. However, your {where} resulted in "
            f"{prompt_tokens} tokens. Please reduce the length of the {where}.",
            param=param,
            code="context_length_exceeded",
        )
    room = context - prompt_tokens
    if requested is None:
        return room
    if prompt_tokens + requested <= context:
        return requested
    if mode == "truncate":
        return room
    raise APIError(
        400,
        f"This model's maximum context length is {context} tokens. However, you requested "
        f"{prompt_tokens + requested} tokens ({prompt_tokens} in the {where}, {requested} in the completion). "
        f"Please reduce the length of the {where} or completion.",
        param=param,
        code="context_length_exceeded",
    )


def check_request_tokens(
    config: ServerConfig, budgets: list[int], samples: int, n: int, max_tokens_param: str
) -> None:
    """The completion tokens one request may generate (every choice of every prompt) within the limit."""
    limit = config.limits.max_request_tokens
    total = sum(budgets) * samples
    if limit is None or total <= limit:
        return
    choices = len(budgets) * samples
    if samples > n:
        param = "best_of"
    elif samples > 1:
        param = "n"
    elif len(budgets) > 1:
        param = "prompt"
    else:
        param = max_tokens_param
    raise invalid_request(
        f"This request could generate {total} completion tokens ({choices} choices of up to "
        f"{max(budgets)} tokens); this server allows at most {limit} per request. "
        f"Please reduce '{param}' or '{max_tokens_param}'.",
        param,
        "request_tokens_above_max",
    )


def sampling_params(
    *,
    max_new_tokens: int,
    temperature: float | None,
    top_p: float | None,
    top_k: int | None,
    seed: int | None,
    presence_penalty: float,
    frequency_penalty: float,
    logit_bias: dict[int, float],
    top_logprobs: int,
    ignore_eos: bool | None,
) -> SamplingParams:
    t = 1.0 if temperature is None else float(temperature)
    p = 1.0 if top_p is None else float(top_p)
    if p <= 0.0:  # top_p 0 keeps only the most likely token
        t = 0.0
        p = 1.0
    return SamplingParams(
        max_new_tokens=max_new_tokens,
        temperature=t,
        top_p=p,
        top_k=int(top_k or 0),
        seed=seed,
        presence_penalty=presence_penalty,
        frequency_penalty=frequency_penalty,
        logit_bias=logit_bias,
        top_logprobs=top_logprobs,
        ignore_eos=bool(ignore_eos),
    )


def choice_job(
    cfg: ServerConfig,
    req: Any,
    *,
    index: int,
    prompt_ids: list[int],
    budget: int,
    seed: int | None,
    stops: Any,
    presence_penalty: float,
    frequency_penalty: float,
    logit_bias: dict[int, float],
    top_logprobs: int,
    prompt_index: int = 0,
) -> ChoiceJob:
    """One choice of a completions or chat request: its sampling parameters and text processor.

    `req` is either endpoint's request model; both carry temperature, top_p, top_k and ignore_eos.
    """
    params = sampling_params(
        max_new_tokens=budget,
        temperature=req.temperature,
        top_p=req.top_p,
        top_k=req.top_k,
        seed=seed,
        presence_penalty=presence_penalty,
        frequency_penalty=frequency_penalty,
        logit_bias=logit_bias,
        top_logprobs=top_logprobs,
        ignore_eos=req.ignore_eos,
    )
    processor = ChoiceProcessor(
        index, cfg.tokenizer, prompt_ids, stops, cfg.axis("stop.output") == "include", cfg.eos_token_ids
    )
    return ChoiceJob(index, prompt_ids, params, processor, prompt_index=prompt_index)
