"""Checks of a run's inputs before any compute, so a typo fails in a second with the field and the value.

`check_model_source`: the model a recipe names exists as a local model folder, or (a Hub id) is in the local
Hugging Face cache when offline, or answers one short Hub request (`HUB_PROBE_SECONDS`) when online: a missing
path never turns into a Hub lookup, and an unreachable Hub never into a minute of retries.
`one_line`: a YAML or argument error as one line for the command line.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from r1_trl.errors import TINY_MODEL, RecipeError

logger = logging.getLogger(__name__)

HUB_PROBE_SECONDS = 5.0
MODEL_FILES = ("config.json", "adapter_config.json")  # what makes a folder (or a Hub repo) a model


def looks_local(name: str) -> bool:
    """A filesystem path rather than a Hub id (``name`` or ``owner/name``, optionally ``@revision``)."""
    return name.startswith(("/", "./", "../", "~", ".\\")) or name.split("@")[0].count("/") > 1 or name.endswith("/")


def hub_offline() -> bool:
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE) or os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes")


def cached_on_this_machine(repo_id: str, revision: str | None) -> bool:
    from huggingface_hub import try_to_load_from_cache

    return any(isinstance(try_to_load_from_cache(repo_id, name, revision=revision), str) for name in MODEL_FILES)


def check_model_source(name: str, revision: str | None = None, field: str = "model_name_or_path") -> None:
    """Raise `RecipeError` naming ``field`` unless ``name`` (``repo@revision`` allowed) can be loaded."""
    if not name or name == TINY_MODEL:
        return
    path = Path(name).expanduser()
    if path.exists():
        if path.is_dir() and not any((path / file).is_file() for file in MODEL_FILES):
            raise RecipeError(f"{field}: {name!r} is a folder without a model (no config.json or adapter_config.json)")
        return
    if looks_local(name):
        raise RecipeError(f"{field}: no such local model folder {name!r}")
    repo_id, _, named_revision = name.partition("@")
    revision = named_revision or revision
    if hub_offline():
        if not cached_on_this_machine(repo_id, revision):
            raise RecipeError(f"{field}: {name!r} is neither a local folder nor in the Hugging Face cache "
                              "(HF_HUB_OFFLINE is set)")  # fmt: skip
        return
    _probe_hub(repo_id, revision, name, field)


def _probe_hub(repo_id: str, revision: str | None, name: str, field: str) -> None:
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HFValidationError, RepositoryNotFoundError, RevisionNotFoundError

    from r1_trl.hub import is_transient

    try:
        HfApi().model_info(repo_id, revision=revision, timeout=HUB_PROBE_SECONDS)
    except RevisionNotFoundError:
        raise RecipeError(f"{field}: the Hub model {repo_id!r} has no revision {revision!r}") from None
    except RepositoryNotFoundError:
        raise RecipeError(f"{field}: {name!r} is neither a local folder nor a model on the Hub "
                          "(private or gated? log in with `hf auth login`)") from None  # fmt: skip
    except HFValidationError:
        raise RecipeError(f"{field}: {name!r} is neither a local folder nor a valid Hub model id") from None
    except Exception as error:  # noqa: BLE001 - only the Hub's reachability matters here
        if not is_transient(error):
            return  # e.g. a gated repo: loading it reports the reason
        if cached_on_this_machine(repo_id, revision):
            logger.warning("%s: the Hub is unreachable (%s); using the cached %s (set HF_HUB_OFFLINE=1 to skip "
                           "the Hub)", field, type(error).__name__, name)  # fmt: skip
            return
        raise RecipeError(f"{field}: {name!r} is not a local folder, not in the Hugging Face cache, and the Hub "
                          f"is unreachable ({type(error).__name__})") from None  # fmt: skip


def check_config_models(config: object) -> None:
    """`check_model_source` for every model field a stage recipe has (the model, a distillation teacher)."""
    for field, revision_field in (("model_name_or_path", "model_revision"), ("teacher_model", "teacher_model_revision")):
        value = getattr(config, field, None)
        if isinstance(value, str) and value:
            check_model_source(value, getattr(config, revision_field, None), field)


def one_line(error: BaseException) -> str:
    """An error's message on one line (YAML errors: what and where)."""
    import yaml

    if isinstance(error, yaml.MarkedYAMLError):
        mark = error.problem_mark
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        return f"{error.problem or error.context or 'invalid YAML'}{where}"
    if isinstance(error, FileNotFoundError) and error.filename:
        return f"no such file {str(error.filename)!r}"
    return " ".join(str(error).split())
