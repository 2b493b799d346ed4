"""The offline default base model: a few-layer Qwen2 with a tokenizer built locally, briefly pretrained.

It saves with ``save_pretrained`` and loads back with ``AutoModelForCausalLM``/``AutoTokenizer`` like
any Hub model, so every stage runs the code path a real model takes. The built base is cached on disk
(``$R1_TRL_CACHE`` or ``~/.cache/r1-trl``) keyed by its spec, so tests and the demo build it once.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import islice
from pathlib import Path

import torch
from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, trainers
from tqdm.auto import tqdm
from transformers import AutoModelForCausalLM, PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

from r1_trl.models.corpus import corpus_documents

logger = logging.getLogger(__name__)

EOS_TOKEN = "<|endoftext|>"
PAD_TOKEN = "<|pad|>"
REASONING_TAGS = ("<think>", "</think>", "<answer>", "</answer>")

# Renders system/user/assistant turns; {% generation %} marks what assistant_only_loss trains on.
CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "{%- if message['role'] == 'system' -%}System: {{ message['content'] }}\n"
    "{%- elif message['role'] == 'user' -%}User: {{ message['content'] }}\n"
    "{%- elif message['role'] == 'assistant' -%}Assistant:{% generation %} {{ message['content'] }}"
    "{{ eos_token }}{% endgeneration %}\n"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}Assistant:{%- endif -%}"
)


@dataclass(frozen=True)
class TinyBaseSpec:
    """Everything that determines the built base; its hash names the cache entry."""

    hidden_size: int = 128
    num_layers: int = 3
    num_heads: int = 4
    num_kv_heads: int = 2
    intermediate_size: int = 384
    vocab_size: int = 512
    levels: tuple[int, ...] = (1, 2)
    template_share: float = 0.15
    tagged_share: float = 0.5
    languages: tuple[str, ...] = ("en", "zh")
    english_prose_share: float = 0.3
    pretrain_steps: int = 1000
    batch_size: int = 32
    sequence_length: int = 128
    peak_lr: float = 3e-3
    seed: int = 0
    version: int = 2

    def cache_key(self) -> str:
        payload = json.dumps(dataclasses.asdict(self), sort_keys=True).encode()
        return "tiny-qwen2-" + hashlib.sha256(payload).hexdigest()[:12]


def spec_documents(spec: TinyBaseSpec, seed: int) -> Iterator[str]:
    return corpus_documents(
        seed, spec.levels, spec.template_share, spec.tagged_share, spec.languages, spec.english_prose_share
    )


def build_tiny_tokenizer(texts: list[str], vocab_size: int = 512) -> PreTrainedTokenizerFast:
    """Byte-level BPE trained on ``texts``; digits stay single tokens, reasoning tags are whole tokens."""
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False)]
    )
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[EOS_TOKEN, PAD_TOKEN],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer=trainer)
    # Not "special": TRL decodes completions with skip_special_tokens=True and the rewards need the tags.
    tokenizer.add_tokens([AddedToken(tag, special=False, normalized=False) for tag in REASONING_TAGS])
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, eos_token=EOS_TOKEN, pad_token=PAD_TOKEN, model_max_length=1024
    )
    fast.chat_template = CHAT_TEMPLATE
    return fast


def tiny_config(spec: TinyBaseSpec, tokenizer: PreTrainedTokenizerFast) -> Qwen2Config:
    return Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=spec.hidden_size,
        intermediate_size=spec.intermediate_size,
        num_hidden_layers=spec.num_layers,
        num_attention_heads=spec.num_heads,
        num_key_value_heads=spec.num_kv_heads,
        max_position_embeddings=1024,
        tie_word_embeddings=True,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=None,
    )


def random_tiny_model(
    output_dir: str | Path, spec: TinyBaseSpec | None = None, seed: int = 0
) -> Path:
    """Save an untrained tiny model + tokenizer to ``output_dir`` (for fast plumbing tests); returns the path."""
    spec = spec or TinyBaseSpec()
    torch.manual_seed(seed)
    texts = list(islice(spec_documents(spec, seed), 2000))
    tokenizer = build_tiny_tokenizer(texts, spec.vocab_size)
    model = Qwen2ForCausalLM(tiny_config(spec, tokenizer))
    output_dir = Path(output_dir)
    model.save_pretrained(output_dir)
    tokenizer.save_pretrained(output_dir)
    return output_dir


def pretrain(
    spec: TinyBaseSpec, output_dir: str | Path, show_progress: bool = True
) -> dict[str, float]:
    """Build tokenizer + model and pretrain on the synthetic corpus; save both to ``output_dir``."""
    torch.manual_seed(spec.seed)
    documents = spec_documents(spec, spec.seed)
    tokenizer = build_tiny_tokenizer(list(islice(documents, 4000)), spec.vocab_size)
    model = Qwen2ForCausalLM(tiny_config(spec, tokenizer))
    optimizer = torch.optim.AdamW(model.parameters(), lr=spec.peak_lr, weight_decay=0.01, betas=(0.9, 0.95))
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=spec.peak_lr, total_steps=spec.pretrain_steps)
    model.train()
    started = time.perf_counter()
    loss_value = math.nan
    progress = tqdm(range(spec.pretrain_steps), desc="pretraining tiny base", disable=not show_progress)
    batches = packed_batches(documents, tokenizer, spec.batch_size, spec.sequence_length)
    for _ in progress:
        input_ids = next(batches)
        loss = model(input_ids=input_ids, labels=input_ids).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        loss_value = loss.item()
        progress.set_postfix(loss=f"{loss_value:.3f}")
    model.eval()
    output_dir = Path(output_dir)
    model.save_pretrained(output_dir)
    tokenizer.save_pretrained(output_dir)
    stats = {"final_loss": loss_value, "seconds": time.perf_counter() - started, "parameters": model.num_parameters()}
    (output_dir / "tiny_base.json").write_text(
        json.dumps({"spec": dataclasses.asdict(spec), "pretraining": stats}, indent=2)
    )
    return stats


def packed_batches(
    documents: Iterator[str], tokenizer: PreTrainedTokenizerFast, rows: int, sequence_length: int
) -> Iterator[torch.Tensor]:
    """Concatenate EOS-separated documents and cut them into full rows: no compute spent on padding."""
    buffer: list[int] = []
    needed = rows * sequence_length
    while True:
        while len(buffer) < needed:
            buffer.extend(tokenizer(next(documents) + tokenizer.eos_token)["input_ids"])
        yield torch.tensor(buffer[:needed]).view(rows, sequence_length)
        buffer = buffer[needed:]


def default_cache_dir() -> Path:
    return Path(os.environ.get("R1_TRL_CACHE", Path.home() / ".cache" / "r1-trl"))


BUNDLED_BASE = Path(__file__).with_name("tiny_base")
# Other specs the package uses by default (the distillation student), named by their cache key.
BUNDLED_OTHERS = Path(__file__).with_name("bundled")


def bundled_spec(path: Path = BUNDLED_BASE) -> TinyBaseSpec | None:
    """The spec a bundled base was built from (``r1-trl build-tiny --rebuild`` regenerates the default)."""
    info = path / "tiny_base.json"
    if not info.is_file():
        return None
    fields = json.loads(info.read_text())["spec"]
    fields["levels"] = tuple(fields["levels"])
    if "languages" in fields:
        fields["languages"] = tuple(fields["languages"])
    return TinyBaseSpec(**fields)


def bundled_path(spec: TinyBaseSpec) -> Path | None:
    for candidate in (BUNDLED_BASE, BUNDLED_OTHERS / spec.cache_key()):
        if bundled_spec(candidate) == spec:
            return candidate
    return None


def load_or_build_tiny_base(
    spec: TinyBaseSpec | None = None,
    cache_dir: str | Path | None = None,
    show_progress: bool = True,
    use_bundled: bool = True,
) -> Path:
    """Path of the pretrained tiny base for ``spec``.

    Order: the copy bundled with the package (built from the default spec, so a fresh install needs
    no pretraining), then the on-disk cache, then a fresh build into the cache (atomic, so an
    interrupted build never leaves a half-written model behind).
    """
    spec = spec or TinyBaseSpec()
    bundled = bundled_path(spec) if use_bundled else None
    if bundled is not None:
        return bundled
    cache_root = Path(cache_dir) if cache_dir else default_cache_dir()
    target = cache_root / spec.cache_key()
    if (target / "tiny_base.json").exists():
        return target
    cache_root.mkdir(parents=True, exist_ok=True)
    logger.info("building the tiny base model into %s (once; cached afterwards)", target)
    staging = Path(tempfile.mkdtemp(prefix=".building-", dir=cache_root))
    try:
        pretrain(spec, staging, show_progress=show_progress)
        try:
            staging.rename(target)
        except OSError:  # another process finished first
            if not (target / "tiny_base.json").exists():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def load_model_and_tokenizer(path: str | Path) -> tuple[AutoModelForCausalLM, PreTrainedTokenizerFast]:
    from transformers import AutoTokenizer

    return AutoModelForCausalLM.from_pretrained(path), AutoTokenizer.from_pretrained(path)
