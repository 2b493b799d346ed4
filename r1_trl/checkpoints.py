"""A stage's model on disk: model references resolved to what loads, adapters merged, trained models saved.

A recipe's ``model_name_or_path`` may be 'tiny', a ``.gguf`` file, a Hub id at a revision, a local checkpoint
or a LoRA adapter folder; `resolve_model` turns each into a folder (or id) ``from_pretrained`` reads. Whatever
reads a checkpoint afterwards (held-out evaluation, a later stage, vLLM) goes through `full_model_path` or
`load_causal_lm`, which merge an adapter into its base: in memory for transformers generation, into a cached
folder for anything that needs a path.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from r1_trl.adapters import (
    ADAPTER_DIR,
    MERGED_CACHE,
    adapter_base,
    adapter_config,
    is_adapter,
    record_base,
    trainable_parameters,
)
from r1_trl.errors import TINY_MODEL
from r1_trl.rundir import replaced_folder

logger = logging.getLogger(__name__)


# Files of a Hub model repo that `from_pretrained` never reads: other frameworks' weights, and trainer state
# (optimizer, scheduler, RNG) that pushed checkpoints or training repos may carry.
NOT_LOADED_PATTERNS = (
    "*.h5", "*.msgpack", "*.onnx", "*.gguf", "*.ot", "*.tflite", "*.pt", "*.pth", "*.ckpt", "rng_state*",
)


def resolve_model(
    name_or_path: str, revision: str | None = None, field: str = "model_name_or_path"
) -> tuple[str, str | None]:
    """The model to load: 'tiny' -> the cached tiny base (built on first use); a `.gguf` file -> its
    cached safetensors conversion (`r1_trl.models.gguf`); a Hub repo at a revision
    ('repo@rev', or `revision` = ``model_revision``) -> its files at that revision, downloaded into the
    Hugging Face cache (see `download_revision`); a LoRA adapter folder -> a merged copy of it (see
    `full_model_path`); anything else unchanged. Returns (path or id, revision left
    to pass to ``from_pretrained``: None once resolved to a local folder).

    A revision in the name and a different explicit `revision` contradict each other. A model that cannot be
    found fails at once, naming `field` (`r1_trl.preflight.check_model_source`).
    """
    from r1_trl.preflight import check_model_source

    check_model_source(name_or_path, revision, field)
    if name_or_path == TINY_MODEL:
        from r1_trl.models import load_or_build_tiny_base

        return str(load_or_build_tiny_base()), None
    from r1_trl.models.gguf import converted_checkpoint, is_gguf_file

    if is_gguf_file(name_or_path):
        return str(converted_checkpoint(name_or_path)), None
    if Path(name_or_path).exists():
        return full_model_path(name_or_path), revision
    repo = name_or_path
    if "@" in name_or_path:
        repo, _, rev = name_or_path.partition("@")
        if not repo or not rev:
            raise ValueError(f"model_name_or_path: expected 'repo@revision', got {name_or_path!r}")
        if revision and revision != rev:
            raise ValueError(
                f"model_revision: {revision!r} contradicts the revision in model_name_or_path {name_or_path!r}"
            )
        revision = rev
    if revision is None:
        return repo, None
    return full_model_path(str(download_revision(repo, revision))), None


def download_revision(repo_id: str, revision: str) -> Path:
    """A Hub model repo at `revision` (branch, tag or commit) in the local Hugging Face cache: the snapshot
    folder with what ``from_pretrained`` reads (`NOT_LOADED_PATTERNS` are skipped).

    Everything downstream then loads a local folder, so nothing can fall back to the repo's ``main`` branch
    (TRL's trainers read the config of a model id without its revision; in the branch layout of
    ``r1_trl.hub``, ``main`` holds no model at all). Offline (``HF_HUB_OFFLINE=1``) a cached snapshot is used.
    """
    from huggingface_hub import snapshot_download

    return Path(snapshot_download(repo_id, revision=revision, ignore_patterns=list(NOT_LOADED_PATTERNS)))


# ---- saving a stage's trained model --------------------------------------------------------------------------
def save_trained_model(trainer: Any, checkpoint: Path, tokenizer: Any, args: Any = None) -> dict[str, Any]:
    """Save the trained model as ``checkpoint`` with its tokenizer (every rank calls this: ZeRO-3 gathers).

    A full-weight model is saved as is. An adapter is saved as is, or with ``merge_adapter`` into
    ``output_dir/adapter`` and merged into its base as ``checkpoint``. ``args``: the stage recipe, when the
    trainer's own arguments are not it (distill's on-policy step). Returns what was saved, for results.json.
    """
    args = args if args is not None else trainer.args
    if trainer.accelerator.is_main_process:  # what an earlier run saved there (a full model, or an adapter) goes
        for stale in (checkpoint, checkpoint.parent / ADAPTER_DIR):
            shutil.rmtree(stale, ignore_errors=True)
    trainer.accelerator.wait_for_everyone()
    if not getattr(args, "use_peft", False):
        trainer.save_model(str(checkpoint))
        if trainer.accelerator.is_main_process:
            tokenizer.save_pretrained(checkpoint)
        return {}
    merge = getattr(args, "merge_adapter", False)
    adapter_dir = checkpoint.parent / ADAPTER_DIR if merge else checkpoint
    trainer.save_model(str(adapter_dir))
    saved = {"adapter": str(adapter_dir.resolve()), "merged": merge, **trainable_parameters(trainer.model)}
    if trainer.accelerator.is_main_process:
        tokenizer.save_pretrained(adapter_dir)
        record_base(adapter_dir, args.model_name_or_path, args.model_revision)
        if merge:
            merge_into(adapter_dir, checkpoint, tokenizer)
    trainer.accelerator.wait_for_everyone()
    return saved


# What a checkpoint-N holds besides the model: the trainer's own state, not part of a saved model.
TRAINER_ONLY_FILES = ("optimizer.pt", "scheduler.pt", "scaler.pt", "trainer_state.json", "training_args.bin")


def save_model_files(saved: Path, checkpoint: Path, tokenizer: Any, args: Any) -> None:
    """Write ``checkpoint`` from the model files of a trainer's ``checkpoint-N`` (main process), as
    `save_trained_model` writes it from the trainer: the model or adapter, merged with ``merge_adapter``."""
    merge = getattr(args, "merge_adapter", False) and is_adapter(saved)
    target = checkpoint.parent / ADAPTER_DIR if merge else checkpoint
    if not merge:  # an adapter an earlier, merged run left next to the checkpoint is not this one's
        shutil.rmtree(checkpoint.parent / ADAPTER_DIR, ignore_errors=True)
    with replaced_folder(target) as staging:
        for item in saved.iterdir():
            if item.is_file() and item.name not in TRAINER_ONLY_FILES and not item.name.startswith("rng_state"):
                shutil.copy2(item, staging / item.name)
        tokenizer.save_pretrained(staging)
    if is_adapter(target):
        record_base(target, args.model_name_or_path, args.model_revision)
    if merge:
        merge_into(target, checkpoint, tokenizer)


# The transformers class an adapter's base loads as, by the adapter's PEFT ``task_type`` (a reward model's
# adapter is a SEQ_CLS one: LoRA on the backbone plus its trained one-output score head), and what it is given.
_AUTO_CLASSES: dict[str, tuple[str, dict[str, Any]]] = {
    "SEQ_CLS": ("AutoModelForSequenceClassification", {"num_labels": 1}),
}
_DEFAULT_AUTO_CLASS: tuple[str, dict[str, Any]] = ("AutoModelForCausalLM", {})


def load_adapter_model(adapter_dir: str | os.PathLike[str], dtype: Any = None, trainable: bool = False) -> Any:
    """The ``PeftModel`` of an adapter on its base (base resolved like any r1-trl model reference, and loaded with
    the class of the adapter's ``task_type``: a causal LM, or a sequence classifier for a reward model);
    ``trainable``: its adapter weights train on (a later training step of the same adapter)."""
    import transformers
    from peft import PeftModel

    base, revision = adapter_base(adapter_dir)
    class_name, init = _AUTO_CLASSES.get(adapter_config(adapter_dir).get("task_type") or "", _DEFAULT_AUTO_CLASS)
    base_path, base_revision = resolve_model(base, revision)
    kwargs: dict[str, Any] = {"revision": base_revision} if base_revision else {}
    model = getattr(transformers, class_name).from_pretrained(
        base_path, dtype=dtype if dtype is not None else "auto", **init, **kwargs
    )
    if class_name != _DEFAULT_AUTO_CLASS[0] and model.config.pad_token_id is None:
        # A sequence classifier reads its score at the last non-pad token (RewardTrainer set this on the model
        # it trained, but an adapter carries no config.json).
        from transformers import AutoTokenizer

        model.config.pad_token_id = AutoTokenizer.from_pretrained(adapter_dir).pad_token_id
    return PeftModel.from_pretrained(model, str(adapter_dir), is_trainable=trainable)


def _merged_model(adapter_dir: str | os.PathLike[str], dtype: Any = None) -> Any:
    """The adapter merged into its base, in memory (see `load_adapter_model`)."""
    return load_adapter_model(adapter_dir, dtype).merge_and_unload()


def stage_adapter_dir(checkpoint: str | os.PathLike[str]) -> Path | None:
    """The adapter a stage saved: ``checkpoint`` itself, or ``adapter/`` next to it with ``merge_adapter``."""
    for folder in (Path(checkpoint), Path(checkpoint).parent / ADAPTER_DIR):
        if is_adapter(folder):
            return folder
    return None


def merge_into(adapter_dir: str | os.PathLike[str], target: str | os.PathLike[str], tokenizer: Any = None) -> Path:
    """Write the adapter merged into its base as a full model folder ``target`` (atomically: staged, renamed)."""
    target = Path(target)
    with replaced_folder(target) as staging:
        _merged_model(adapter_dir).save_pretrained(staging)
        if tokenizer is None:
            from transformers import AutoTokenizer

            tokenizer = AutoTokenizer.from_pretrained(adapter_dir)
        tokenizer.save_pretrained(staging)
    return target


# ---- loading what a checkpoint folder holds ------------------------------------------------------------------
def load_causal_lm(path: str, **kwargs: Any) -> Any:
    """``AutoModelForCausalLM.from_pretrained``, with an adapter folder merged into its base in memory."""
    if is_adapter(path):
        return _merged_model(path, kwargs.get("dtype"))
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(path, **kwargs)


def full_model_path(path: str, cache_dir: str | os.PathLike[str] | None = None) -> str:
    """``path`` itself for a full model; for an adapter, a merged copy in the r1-trl cache, made on first use
    (a causal LM, or for a reward model's SEQ_CLS adapter a sequence classifier).

    The cache entry is keyed by the adapter's absolute path and the size and time of its weights, so a
    retrained adapter gets a fresh copy. Safe on several ranks at once: each stages its own copy and the
    first rename wins.
    """
    if not is_adapter(path):
        return path
    from r1_trl.models.tiny import default_cache_dir

    weights = sorted(Path(path).glob("adapter_model.*"))
    stamp = [str(Path(path).resolve())] + [f"{w.name}:{w.stat().st_size}:{w.stat().st_mtime_ns}" for w in weights]
    key = hashlib.sha256("|".join(stamp).encode()).hexdigest()[:16]
    target = Path(cache_dir or default_cache_dir()) / MERGED_CACHE / key
    if (target / "config.json").is_file():
        return str(target)
    logger.info("merging the adapter %s into its base for loading: %s", path, target)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{key}.staging-", dir=target.parent))
    try:
        from transformers import AutoTokenizer

        _merged_model(path).save_pretrained(staging)
        AutoTokenizer.from_pretrained(path).save_pretrained(staging)
        try:
            os.replace(staging, target)
        except OSError:  # another rank renamed its copy first
            if not (target / "config.json").is_file():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return str(target)
