"""Prompt datasets: synthetic tasks, reasoning-gym, Hub loaders and benchmarks, templates."""

# Importing the benchmark loaders registers them in r1_trl.data.loaders.LOADERS.
from r1_trl.data import benchmarks  # noqa: F401
