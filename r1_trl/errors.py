"""Names every config module shares without importing one another: the recipe error and the built-in model."""

from __future__ import annotations

TINY_MODEL = "tiny"


class RecipeError(ValueError):
    """A recipe field with an invalid value; the message starts with the field name."""
