"""The built-in ``tiny`` model: a byte-level BPE tokenizer and a small Llama trained on Aesop's Fables.

The reference server must run without downloading anything, so the project builds its own model
on first use: a tokenizer trained with the ``tokenizers`` library and a ~1M-parameter
``LlamaForCausalLM`` trained for a few hundred AdamW steps on ``corpus/aesop.txt`` plus chat
transcripts made from it. Greedy output is English-ish text (mostly regurgitated fables), which
is all the conformance suite needs from it.

The build is deterministic (fixed seeds, thread count and data order: the same files, byte for
byte, on the same machine and library versions) and cached on disk under
``$OPENAI_CONFORMANCE_CACHE`` or ``~/.cache/openai-conformance/`` in a folder named by a hash of
the builder version, the corpus and the hyperparameters, so that changing any of them rebuilds.
A build happens in a temporary folder that is renamed into place, under a file lock, so parallel
processes (pytest-xdist workers) can ask for the model at the same time.

``python -m reference_server.model.tiny [--force] [--out DIR]`` builds it and prints the folder.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import math
import os
import random
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

TINY_MODEL_ID = "tiny"
TINY_CONTEXT_LENGTH = 256

# Bump whenever a change to this file changes what the build produces.
BUILDER_VERSION = "1"

CORPUS_PATH = Path(__file__).with_name("corpus") / "aesop.txt"

BOS, EOS, UNK, PAD = "<s>", "</s>", "<unk>", "<pad>"
SYSTEM, USER, ASSISTANT, END = "<|system|>", "<|user|>", "<|assistant|>", "<|end|>"
SPECIAL_TOKENS = [BOS, EOS, UNK, PAD, SYSTEM, USER, ASSISTANT, END]

# Each turn is "<|role|>\n{content}<|end|>\n"; content may be a string or a list of text parts.
CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "{%- if message['content'] is string -%}{%- set content = message['content'] -%}"
    "{%- elif message['content'] is none -%}{%- set content = '' -%}"
    "{%- else -%}{%- set content = message['content'] | selectattr('type', 'equalto', 'text')"
    " | map(attribute='text') | join('') -%}{%- endif -%}"
    "{%- if message['role'] in ['system', 'user', 'assistant'] -%}{%- set role = message['role'] -%}"
    "{%- else -%}{%- set role = 'user' -%}{%- endif -%}"
    "{{- '<|' + role + '|>\\n' + content + '<|end|>\\n' -}}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<|assistant|>\\n' -}}{%- endif -%}"
)


@dataclass(frozen=True)
class TinyHyperparameters:
    vocab_size: int = 1024
    hidden_size: int = 128
    intermediate_size: int = 512
    num_hidden_layers: int = 3
    num_attention_heads: int = 4
    max_position_embeddings: int = TINY_CONTEXT_LENGTH
    steps: int = 240
    batch_size: int = 12
    seq_len: int = 128
    learning_rate: float = 4e-3
    warmup_steps: int = 20
    weight_decay: float = 0.01
    seed: int = 1234
    threads: int = 2


def default_cache_root() -> Path:
    env = os.environ.get("OPENAI_CONFORMANCE_CACHE")
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "openai-conformance"


def _corpus_text() -> str:
    return CORPUS_PATH.read_text(encoding="utf-8")


def build_key(hp: TinyHyperparameters) -> str:
    """Hash naming the cache folder: builder version, corpus, hyperparameters, library versions."""
    import tokenizers
    import torch
    import transformers

    h = hashlib.sha256()
    h.update(f"builder={BUILDER_VERSION}\n".encode())
    h.update(hashlib.sha256(CORPUS_PATH.read_bytes()).hexdigest().encode())
    h.update(json.dumps(asdict(hp), sort_keys=True).encode())
    h.update(CHAT_TEMPLATE.encode())
    h.update(f"{torch.__version__}|{transformers.__version__}|{tokenizers.__version__}".encode())
    return h.hexdigest()[:16]


# --------------------------------------------------------------------------------------------
# Corpus handling
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Fable:
    title: str
    body: str  # story paragraphs
    moral: str | None

    @property
    def text(self) -> str:
        parts = [self.title, self.body] + ([self.moral] if self.moral else [])
        return "\n\n".join(parts)


def parse_fables(text: str) -> list[Fable]:
    """Split the corpus into fables: a title line, story paragraphs, an optional one-line moral."""

    def is_title(block: str) -> bool:
        return "\n" not in block and len(block) < 70 and not any(c in block for c in '.!?"')

    blocks = [b.strip() for b in text.split("\n\n") if b.strip()]
    fables: list[Fable] = []
    i = 0
    while i < len(blocks):
        if not is_title(blocks[i]):
            i += 1
            continue
        title = blocks[i]
        j = i + 1
        paras: list[str] = []
        while j < len(blocks) and not is_title(blocks[j]):
            paras.append(blocks[j])
            j += 1
        moral = None
        if len(paras) >= 2 and len(paras[-1]) < 140:
            moral = paras.pop()
        if paras:
            fables.append(Fable(title, "\n\n".join(paras), moral))
        i = j
    return fables


def _sentences(text: str, n: int) -> str:
    out: list[str] = []
    buf = ""
    for ch in text:
        buf += ch
        if ch in ".!?" and len(buf.strip()) > 20:
            out.append(buf.strip())
            buf = ""
            if len(out) == n:
                break
    return " ".join(out) if out else text.strip()


def render_chat(messages: list[dict[str, str]], add_generation_prompt: bool = False) -> str:
    """Python twin of CHAT_TEMPLATE for the simple string-content case (used to make training data)."""
    text = "".join(f"<|{m['role']}|>\n{m['content']}{END}\n" for m in messages)
    return text + (f"{ASSISTANT}\n" if add_generation_prompt else "")


def chat_samples(fables: list[Fable]) -> list[str]:
    """Chat transcripts made from the corpus so that chat requests get English answers too."""
    rng = random.Random(7)
    systems = [
        "You are a helpful assistant.",
        "You are a storyteller who knows the fables of Aesop.",
        "Answer briefly.",
    ]
    greetings = ["Hello!", "Hi there.", "Good morning.", "Hello, who are you?", "Can you help me?"]
    replies = [
        "Hello! I know many fables of Aesop. Shall I tell you one?",
        "I am a small model that tells old fables. Ask me for a story.",
        "Gladly. Ask me for a fable and I will tell it.",
    ]
    out: list[str] = []
    for k, fable in enumerate(fables):
        msgs: list[dict[str, str]] = []
        if k % 3 == 0:
            msgs.append({"role": "system", "content": systems[k % len(systems)]})
        asks = [
            f"Tell me the fable of {fable.title}.",
            f"Tell me a story about {fable.title.lower().removeprefix('the ')}.",
            "Tell me a story.",
            "Tell me a fable.",
        ]
        msgs.append({"role": "user", "content": asks[k % len(asks)]})
        msgs.append({"role": "assistant", "content": _sentences(fable.body, 2)})
        out.append(render_chat(msgs))
        if fable.moral:
            q = f"What is the moral of {fable.title}?"
            out.append(
                render_chat([{"role": "user", "content": q}, {"role": "assistant", "content": fable.moral}])
            )
    for k in range(len(greetings) * 2):
        msgs = [
            {"role": "user", "content": greetings[k % len(greetings)]},
            {"role": "assistant", "content": replies[k % len(replies)]},
        ]
        if k % 2:
            msgs.insert(0, {"role": "system", "content": systems[k % len(systems)]})
        out.append(render_chat(msgs))
    rng.shuffle(out)
    return out


# --------------------------------------------------------------------------------------------
# Building
# --------------------------------------------------------------------------------------------


def _train_tokenizer(text: str, hp: TinyHyperparameters) -> Any:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.normalizer = None
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=hp.vocab_size,
        min_frequency=2,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(text.split("\n\n"), trainer=trainer)
    return tok


def _wrap_tokenizer(tok: Any) -> Any:
    from transformers import PreTrainedTokenizerFast

    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=BOS,
        eos_token=EOS,
        unk_token=UNK,
        pad_token=PAD,
        additional_special_tokens=[SYSTEM, USER, ASSISTANT, END],
        clean_up_tokenization_spaces=False,
        model_max_length=TINY_CONTEXT_LENGTH,
        add_bos_token=False,
        add_eos_token=False,
    )
    fast.chat_template = CHAT_TEMPLATE
    return fast


@contextlib.contextmanager
def _build_environment(threads: int) -> Iterator[None]:
    import torch
    from transformers.utils import logging as hf_logging

    old_threads = torch.get_num_threads()
    bars = hf_logging.is_progress_bar_enabled()
    torch.set_num_threads(threads)
    hf_logging.disable_progress_bar()
    try:
        with torch.random.fork_rng(devices=[]):
            yield
    finally:
        torch.set_num_threads(old_threads)
        if bars:
            hf_logging.enable_progress_bar()


def _write_model(out: Path, hp: TinyHyperparameters, log: bool = False) -> dict[str, float]:
    """Train tokenizer and model and write them into ``out`` (an existing, empty folder)."""
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    text = _corpus_text()
    fables = parse_fables(text)
    tok = _train_tokenizer(text, hp)
    fast = _wrap_tokenizer(tok)
    eos_id = tok.token_to_id(EOS)
    end_id = tok.token_to_id(END)

    # Training stream: fables (each ended by </s>) and chat transcripts, in a fixed shuffled order.
    docs = [f.text + EOS for f in fables] + chat_samples(fables)
    random.Random(hp.seed).shuffle(docs)
    ids: list[int] = []
    for d in docs:
        ids.extend(tok.encode(d).ids)
    data = torch.tensor(ids, dtype=torch.long)

    with _build_environment(hp.threads):
        torch.manual_seed(hp.seed)
        extra: dict[str, Any] = {"attn_implementation": "eager"}
        config = LlamaConfig(
            vocab_size=tok.get_vocab_size(),
            hidden_size=hp.hidden_size,
            intermediate_size=hp.intermediate_size,
            num_hidden_layers=hp.num_hidden_layers,
            num_attention_heads=hp.num_attention_heads,
            num_key_value_heads=hp.num_attention_heads,
            max_position_embeddings=hp.max_position_embeddings,
            rms_norm_eps=1e-5,
            tie_word_embeddings=True,
            bos_token_id=tok.token_to_id(BOS),
            eos_token_id=eos_id,
            pad_token_id=tok.token_to_id(PAD),
            **extra,
        )
        model: Any = LlamaForCausalLM(config)
        model = model.to(torch.float32)
        model.train()
        decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
        no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
        opt = torch.optim.AdamW(
            [{"params": decay, "weight_decay": hp.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
            lr=hp.learning_rate,
            betas=(0.9, 0.95),
            foreach=False,
        )
        gen = torch.Generator().manual_seed(hp.seed)
        seq = min(hp.seq_len, len(ids) - 1)
        losses: list[float] = []
        for step in range(hp.steps):
            if step < hp.warmup_steps:
                lr = hp.learning_rate * (step + 1) / hp.warmup_steps
            else:
                frac = (step - hp.warmup_steps) / max(1, hp.steps - hp.warmup_steps)
                lr = hp.learning_rate * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * frac)))
            for g in opt.param_groups:
                g["lr"] = lr
            starts = torch.randint(0, len(ids) - seq, (hp.batch_size,), generator=gen)
            batch = torch.stack([data[s : s + seq + 1] for s in starts.tolist()])
            logits = model(input_ids=batch[:, :-1]).logits
            loss = torch.nn.functional.cross_entropy(
                logits.reshape(-1, logits.size(-1)), batch[:, 1:].reshape(-1)
            )
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            losses.append(loss.item())
            if log and (step % 50 == 0 or step == hp.steps - 1):
                print(f"step {step:4d} loss {loss.item():.3f} lr {lr:.2e}", file=sys.stderr)

        model.eval()
        for p in model.parameters():
            p.requires_grad_(False)
        model.generation_config = GenerationConfig(
            bos_token_id=tok.token_to_id(BOS),
            eos_token_id=[eos_id, end_id],
            pad_token_id=tok.token_to_id(PAD),
            do_sample=False,
        )
        model.save_pretrained(out, safe_serialization=True)
        fast.save_pretrained(out)
    n = min(20, len(losses))
    stats = {
        "tokens": float(len(ids)),
        "final_loss": sum(losses[-n:]) / n if losses else float("nan"),
        "first_loss": losses[0] if losses else float("nan"),
    }
    (out / "build_info.json").write_text(
        json.dumps(
            {
                "builder_version": BUILDER_VERSION,
                "hyperparameters": asdict(hp),
                "corpus_sha256": hashlib.sha256(CORPUS_PATH.read_bytes()).hexdigest(),
                "training_tokens": len(ids),
                "final_loss": round(stats["final_loss"], 4),
            },
            indent=2,
            sort_keys=True,
        )
        + "\n"
    )
    return stats


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    try:
        import fcntl
    except ImportError:  # pragma: no cover - non-POSIX: build without a lock (rename is still atomic)
        yield
        return
    with open(path, "a+b") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def build_tiny_model(
    cache_dir: Path | None = None,
    *,
    force: bool = False,
    steps: int | None = None,
    log: bool = False,
) -> Path:
    """Return the folder of the built-in tiny model, building it first if it is not cached.

    ``cache_dir`` is the cache root (default ``$OPENAI_CONFORMANCE_CACHE`` or
    ``~/.cache/openai-conformance``); the model lives in ``<root>/tiny-<key>``. ``force`` rebuilds
    even when cached. ``steps`` overrides the number of training steps (for cheap test builds;
    it is part of the cache key).
    """
    hp = TinyHyperparameters()
    if steps is not None:
        hp = TinyHyperparameters(steps=steps, warmup_steps=min(hp.warmup_steps, max(1, steps // 5)))
    root = Path(cache_dir) if cache_dir is not None else default_cache_root()
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"{TINY_MODEL_ID}-{build_key(hp)}"
    if final.is_dir() and not force:
        return final
    with _file_lock(root / f".{final.name}.lock"):
        if final.is_dir() and not force:  # another process built it while we waited
            return final
        tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-", dir=root))
        try:
            _write_model(tmp, hp, log=log)
            umask = os.umask(0)
            os.umask(umask)
            for p in [tmp, *tmp.iterdir()]:
                p.chmod((0o777 if p.is_dir() else 0o666) & ~umask)
            if final.exists():
                trash = Path(tempfile.mkdtemp(prefix=f".{final.name}.old-", dir=root))
                os.replace(final, trash / "old")
                shutil.rmtree(trash, ignore_errors=True)
            os.replace(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return final


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m reference_server.model.tiny", description="Build the built-in tiny model."
    )
    parser.add_argument("--force", action="store_true", help="rebuild even if a cached build exists")
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="cache root to build under (default: $OPENAI_CONFORMANCE_CACHE or ~/.cache/openai-conformance)",
    )
    parser.add_argument("--steps", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    path = build_tiny_model(args.out, force=args.force, steps=args.steps, log=True)
    print(path)
    print(f"done in {time.perf_counter() - t0:.1f}s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
