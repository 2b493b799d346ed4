"""LoRA/PEFT in every training stage: TRL's ``ModelConfig`` fields in the recipe, adapters saved, merged, loaded.

A recipe takes the PEFT fields of TRL's ``ModelConfig`` (``use_peft``, ``lora_r``, ``lora_alpha``,
``lora_dropout``, ``lora_target_modules``, ... and the bitsandbytes fields of QLoRA) as top-level keys, as
TRL's own ``grpo.py``/``sft.py`` scripts read them; `PeftArguments` is mixed into every stage recipe, and
`peft_config` turns it into TRL's ``get_peft_config(ModelConfig)`` for the trainer.

A stage trained with ``use_peft`` saves the adapter (``adapter_config.json`` + ``adapter_model.safetensors``)
as its ``checkpoint/``; with ``merge_adapter`` it saves the merged full model there instead and keeps the
adapter in ``adapter/`` (`r1_trl.checkpoints` saves, merges and loads them).
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from trl import ModelConfig

from r1_trl.errors import TINY_MODEL, RecipeError

logger = logging.getLogger(__name__)

ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_DIR = "adapter"  # where a stage with merge_adapter keeps its adapter, next to checkpoint/
MERGED_CACHE = "merged-adapters"  # under the r1-trl cache: merged copies of adapters that later stages load

_TRL_FIELDS = {item.name: item for item in fields(ModelConfig)}


def _trl_help(name: str, note: str = "") -> dict[str, str]:
    """TRL's own help text of a ``ModelConfig`` field (so ``--help`` reads as in TRL's scripts)."""
    text = _TRL_FIELDS[name].metadata.get("help", "")
    return {"help": f"{text} {note}".strip() + " (TRL ModelConfig)"}


@dataclass
class PeftArguments:
    """The PEFT and quantization fields of TRL's ``ModelConfig`` plus ``merge_adapter``.

    ``model_name_or_path`` and ``model_revision`` are the stage's own fields; ``dtype`` and
    ``attn_implementation`` go through ``model_init_kwargs`` as for every TRL trainer.
    """

    use_peft: bool = field(default=False, metadata=_trl_help("use_peft", "Trains a LoRA adapter instead of all weights."))
    lora_r: int = field(default=16, metadata=_trl_help("lora_r"))
    lora_alpha: int = field(default=32, metadata=_trl_help("lora_alpha"))
    lora_dropout: float = field(default=0.05, metadata=_trl_help("lora_dropout"))
    lora_target_modules: list[str] | None = field(
        default=None, metadata=_trl_help("lora_target_modules", "'all-linear' for every linear layer; None: PEFT's default for the architecture.")
    )
    lora_target_parameters: list[str] | None = field(default=None, metadata=_trl_help("lora_target_parameters"))
    lora_modules_to_save: list[str] | None = field(default=None, metadata=_trl_help("lora_modules_to_save"))
    lora_task_type: str = field(default="CAUSAL_LM", metadata=_trl_help("lora_task_type"))
    use_rslora: bool = field(default=False, metadata=_trl_help("use_rslora"))
    use_dora: bool = field(default=False, metadata=_trl_help("use_dora"))
    load_in_8bit: bool = field(default=False, metadata=_trl_help("load_in_8bit", "Needs bitsandbytes and a GPU."))
    load_in_4bit: bool = field(default=False, metadata=_trl_help("load_in_4bit", "Needs bitsandbytes and a GPU (QLoRA)."))
    bnb_4bit_quant_type: str = field(default="nf4", metadata=_trl_help("bnb_4bit_quant_type"))
    use_bnb_nested_quant: bool = field(default=False, metadata=_trl_help("use_bnb_nested_quant"))
    bnb_4bit_quant_storage: str | None = field(default=None, metadata=_trl_help("bnb_4bit_quant_storage"))
    merge_adapter: bool = field(
        default=False,
        metadata={"help": "With use_peft: save the adapter merged into its base as checkpoint/ (a full model, "
                  "for vLLM and the Hub), the adapter itself in adapter/. Off: checkpoint/ is the adapter."},
    )

    def validate_peft_fields(self) -> None:
        if self.lora_r < 1:
            raise RecipeError(f"lora_r: must be >= 1, got {self.lora_r}")
        if not 0.0 <= self.lora_dropout < 1.0:
            raise RecipeError(f"lora_dropout: must be in [0, 1), got {self.lora_dropout}")
        if self.merge_adapter and not self.use_peft:
            raise RecipeError("merge_adapter: there is no adapter to merge without use_peft: true")
        if (self.load_in_4bit or self.load_in_8bit) and not self.use_peft:
            raise RecipeError("load_in_4bit/load_in_8bit: a quantized base trains only through an adapter (use_peft: true)")
        if self.load_in_4bit and self.load_in_8bit:
            raise RecipeError("load_in_4bit: cannot be combined with load_in_8bit")
        if self.load_in_4bit or self.load_in_8bit:
            import importlib.util

            import torch

            if importlib.util.find_spec("bitsandbytes") is None or not torch.cuda.is_available():
                flag = "load_in_4bit" if self.load_in_4bit else "load_in_8bit"
                raise RecipeError(f"{flag}: quantized loading needs bitsandbytes and a GPU")
        if self.use_peft:
            import importlib.util

            if importlib.util.find_spec("peft") is None:
                raise RecipeError("use_peft: the peft package is not installed (pip install peft)")

    def model_config(self, model_name_or_path: str | None = None, dtype: str | None = None) -> ModelConfig:
        """These fields as TRL's ``ModelConfig`` (for ``get_peft_config`` / ``get_quantization_config``)."""
        values = {item.name: getattr(self, item.name) for item in fields(PeftArguments) if item.name in _TRL_FIELDS}
        return ModelConfig(model_name_or_path=model_name_or_path, dtype=dtype or "float32", **values)


def peft_config(args: Any) -> Any:
    """TRL's ``get_peft_config`` of a stage recipe: a ``LoraConfig``, or None without ``use_peft``."""
    if not getattr(args, "use_peft", False):
        return None
    from trl import get_peft_config

    return get_peft_config(args.model_config(getattr(args, "model_name_or_path", None)))


def apply_quantization(args: Any) -> None:
    """QLoRA: put TRL's bitsandbytes config and device map into ``model_init_kwargs`` (trainers load the base)."""
    if not (getattr(args, "load_in_4bit", False) or getattr(args, "load_in_8bit", False)):
        return
    from trl import get_kbit_device_map, get_quantization_config

    init = dict(args.model_init_kwargs or {})
    dtype = init.get("dtype") if isinstance(init.get("dtype"), str) and init.get("dtype") != "auto" else "bfloat16"
    init["quantization_config"] = get_quantization_config(args.model_config(dtype=dtype))
    init["device_map"] = get_kbit_device_map()
    args.model_init_kwargs = init


def trainable_parameters(model: Any) -> dict[str, int]:
    """Trainable and total parameter counts of a (possibly PEFT-wrapped) model."""
    def count(parameter: Any) -> int:
        return getattr(parameter, "ds_numel", None) or parameter.numel()  # ZeRO-3 partitions hold no elements

    trainable = sum(count(p) for p in model.parameters() if p.requires_grad)
    total = sum(count(p) for p in model.parameters())
    return {"trainable_parameters": trainable, "total_parameters": total}


# ---- what a checkpoint folder holds --------------------------------------------------------------------------
def is_adapter(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a saved PEFT adapter (a folder with ``adapter_config.json``)."""
    return Path(path, ADAPTER_CONFIG).is_file()


def adapter_config(path: str | os.PathLike[str]) -> dict[str, Any]:
    return json.loads(Path(path, ADAPTER_CONFIG).read_text(encoding="utf-8"))


def adapter_base(path: str | os.PathLike[str]) -> tuple[str, str | None]:
    """(base model, revision) an adapter was trained on, as its ``adapter_config.json`` records them."""
    config = adapter_config(path)
    return config["base_model_name_or_path"], config.get("revision")


def describe_adapter(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """What a model card says about an adapter checkpoint: type, rank, alpha, targets, base; None for a full model."""
    if not is_adapter(path):
        return None
    config = adapter_config(path)
    targets = config.get("target_modules")
    return {
        "peft_type": config.get("peft_type", "LORA"),
        "r": config.get("r"),
        "lora_alpha": config.get("lora_alpha"),
        "target_modules": sorted(targets) if isinstance(targets, list) else targets,
        "base_model": config.get("base_model_name_or_path"),
        "base_revision": config.get("revision"),
    }


def record_base(path: str | os.PathLike[str], model_name_or_path: str, revision: str | None) -> None:
    """Record in ``adapter_config.json`` the base as the recipe names it (a Hub id, not the local cache folder
    the trainer loaded), so a pushed adapter loads anywhere. Local and built-in bases keep the loaded path."""
    if model_name_or_path == TINY_MODEL or Path(model_name_or_path).exists():
        return
    repo, _, named_revision = model_name_or_path.partition("@")
    config_path = Path(path, ADAPTER_CONFIG)
    config = json.loads(config_path.read_text(encoding="utf-8"))
    config["base_model_name_or_path"] = repo
    config["revision"] = named_revision or revision
    config_path.write_text(json.dumps(config, indent=2, sort_keys=True), encoding="utf-8")


def stage_adapter(output_dir: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The adapter a stage trained (``checkpoint/`` itself, or ``adapter/`` when merged), described; else None."""
    for folder, merged in ((Path(output_dir, "checkpoint"), False), (Path(output_dir, ADAPTER_DIR), True)):
        described = describe_adapter(folder)
        if described is not None:
            return {**described, "path": str(folder.resolve()), "merged": merged}
    return None
