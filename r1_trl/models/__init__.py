"""Models the package builds itself (the offline default base model)."""

from r1_trl.models.tiny import TinyBaseSpec, build_tiny_tokenizer, load_or_build_tiny_base, random_tiny_model

__all__ = ["TinyBaseSpec", "build_tiny_tokenizer", "load_or_build_tiny_base", "random_tiny_model"]
