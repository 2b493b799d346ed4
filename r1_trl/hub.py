"""Push pipeline stages to the Hugging Face Hub: checkpoints at per-stage revisions, generated datasets, cards.

Scheme (one for models, the same for datasets):

* ``layout="branch"`` (default): one model repo ``repo_id``; stage ``s`` lives on branch ``s``. Generated
  datasets go to one dataset repo, branch ``s``, one config per generated set (``load_dataset(repo, name,
  revision=s)``).
* ``layout="repo"``: stage ``s`` goes to ``f"{repo_id}-{s}"`` (and ``f"{dataset_repo_id}-{s}"``) on ``main``.
* Intermediate checkpoints (``CheckpointPusher``) go to branch ``f"{s}-step-{N}"`` of the stage's model repo.

Where and how a run is pushed (repo ids, layout, privacy, token, license, retries) is one `HubTargets`. Two ways
in: ``push_run`` / ``push_stage`` push a (pipeline) run directory after the fact; a training stage whose recipe
sets ``push_to_hub`` pushes itself through ``StagePublisher`` (step branches during training, the final
checkpoint to the stage's revision when it ends). Both name things the same way, so when both are on the second
push only commits what changed (card, manifest): ``upload_folder`` skips files already on the branch.

The moving of bytes is ``huggingface_hub``'s and ``datasets``': ``create_repo(exist_ok=True)``,
``create_branch(exist_ok=True)`` and ``upload_folder(revision=...)`` for each commit (a model stage is one
commit: its checkpoint, card, ``manifest.json`` and the stage's ``results.json`` / ``recipe.yaml`` /
``curves.png``, assembled as a folder of symlinks; ``delete_patterns`` drops what an earlier push left on the
revision), ``HfApi.run_as_future`` for background checkpoint pushes,
``DatasetDict.push_to_hub(config_name=..., revision=...)`` for generated sets (parquet shards and the card's
``configs`` / ``dataset_info`` metadata). Local inputs that are outputs of earlier stages of the same run are
written as the Hub references those stages are pushed to, so the cards chain together.

Pushes only read the run directory. ``huggingface_hub`` retries its upload requests (pre-upload, LFS) itself
but never the commit call, nor repo/branch creation; `with_retries` adds the missing part: each whole step is
retried on transient failures (5xx, 408, 429, connection errors) with exponential backoff, which is safe
because a repeated ``upload_folder`` skips what already arrived. Anything else, or running out of attempts,
raises ``HubPushError`` naming repo and revision. ``no_push=True`` writes the same files under
``run_dir/hub/<models|datasets>/<repo_id>/<revision>/`` instead. Authentication is whatever ``huggingface_hub``
finds (``HF_TOKEN``, ``hf auth login``); the endpoint is ``HF_ENDPOINT``.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal, TypeVar

from huggingface_hub import DatasetCard, HfApi, ModelCard
from huggingface_hub.errors import HfHubHTTPError
from huggingface_hub.utils import filter_repo_objects
from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments

from r1_trl import __version__
from r1_trl.adapters import ADAPTER_CONFIG
from r1_trl.cards import (
    NOT_RECORDED,
    PIPELINE_STAGES,
    DatasetCardContext,
    GeneratedSet,
    ModelCardContext,
    Ref,
    build_dataset_card,
    build_model_card,
    describe_feature,
)
from r1_trl.rundir import (
    CURVES_FILE,
    HUB_PUSH_STAGING_PREFIX,
    MANIFEST_FILE,
    RECIPE_FILE,
    RESULTS_FILE,
    STATS_FILE,
    TRAINER_STATE_FILE,
    checkpoint_step,
    complete_checkpoints,
    read_manifest,
)

logger = logging.getLogger(__name__)

Layout = Literal["branch", "repo"]
T = TypeVar("T")
FileSource = Path | bytes  # a file to commit: a local path, or content made here (cards, lineage)
Place = Callable[[str, str], object]  # how a local file gets into a folder to upload: link or copy

# in a generated set's stats.json: the checkpoint that generated it
SOURCE_CHECKPOINT_KEY = "source_checkpoint"
PREVIEW_DIR = "hub"
STAGE_EXTRA_FILES = (RESULTS_FILE, RECIPE_FILE, CURVES_FILE)
# Trainer state that is large and only needed to resume on the same machine; not pushed for step branches.
DEFAULT_CHECKPOINT_IGNORE = (
    "optimizer.pt",
    "optimizer.bin",
    "scheduler.pt",
    "scaler.pt",
    "rng_state*.pth",
    "global_step*",
)
# Parquet shards of a generated set: one per this many bytes of Arrow data (datasets' own default, 500MB); passed
# to push_to_hub so the no-push preview shards the same way.
MAX_SHARD_BYTES = 500 * 10**6
RETRYABLE_STATUS = frozenset({408, 429, 500, 502, 503, 504})
_REVISION_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_HUB_ID = re.compile(r"^(?P<repo>[A-Za-z0-9][\w.-]*/[\w.-]+)(?:@(?P<revision>.+))?$")


class HubPushError(RuntimeError):
    """A push that could not be completed; the local run directory is untouched."""


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff: waits base_delay, 2*base_delay, ... (capped at max_delay) between attempts."""

    attempts: int = 5
    base_delay: float = 2.0
    max_delay: float = 60.0

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError(f"attempts must be >= 1, got {self.attempts}")
        if self.base_delay < 0 or self.max_delay < 0:
            raise ValueError("retry delays must be >= 0")

    def delay(self, failed_attempt: int) -> float:
        return min(self.base_delay * 2 ** (failed_attempt - 1), self.max_delay)


@dataclass(frozen=True)
class HubRef:
    """Where something was pushed: ``str(ref)`` is ``repo@revision``, what the next stage can start from."""

    repo_id: str
    revision: str
    repo_type: str = "model"
    config_name: str | None = None

    def __str__(self) -> str:
        return f"{self.repo_id}@{self.revision}"


# ---- run directory ----------------------------------------------------------------------------------------
load_manifest = read_manifest  # the name callers of this module use


def stage_entry(manifest: Mapping[str, Any], stage: str) -> dict[str, Any]:
    stages = manifest["stages"]
    if stage not in stages:
        raise KeyError(f"stage {stage!r} is not in the manifest (stages: {', '.join(stages) or 'none'})")
    entry = stages[stage]
    if entry.get("status") != "done":
        raise ValueError(f"stage {stage!r} has status {entry.get('status')!r}; only 'done' stages are pushed")
    return entry


def ordered_stages(manifest: Mapping[str, Any]) -> list[str]:
    stages = list(manifest["stages"])
    return [s for s in PIPELINE_STAGES if s in stages] + [s for s in stages if s not in PIPELINE_STAGES]


def default_dataset_repo(repo_id: str) -> str:
    return f"{repo_id}-datasets"


# ---- where things go, how they get there, and how local inputs map to Hub references ---------------------
@dataclass(frozen=True)
class HubTargets:
    """Where and how one run is pushed: the naming scheme, plus repo settings, credentials and retries.

    `repo_id` None: checkpoints are not pushed, so they stay local paths in cards. `dataset_repo_id` defaults
    to ``f"{repo_id}-datasets"``; it is None only without a model repo (generated sets stay local paths too).
    """

    repo_id: str | None
    dataset_repo_id: str | None = None
    layout: Layout = "branch"
    private: bool | None = None
    token: str | None = None
    license: str = "apache-2.0"
    retry: RetryPolicy = field(default_factory=RetryPolicy)

    def __post_init__(self) -> None:
        if self.layout not in ("branch", "repo"):
            raise ValueError(f"layout must be 'branch' or 'repo', got {self.layout!r}")
        if self.dataset_repo_id is None and self.repo_id is not None:
            object.__setattr__(self, "dataset_repo_id", default_dataset_repo(self.repo_id))
        for repo in (self.repo_id, self.dataset_repo_id):
            if repo is not None and (repo.count("/") != 1 or not all(repo.split("/"))):
                raise ValueError(f"Hub repo ids must look like 'owner/name', got {repo!r}")

    def api(self) -> HfApi:
        return HfApi(token=self.token, library_name="r1-trl", library_version=__version__)

    def model(self, stage: str) -> HubRef:
        return self._ref(self.repo_id, stage, "model")

    def dataset(self, stage: str, name: str | None = None) -> HubRef:
        return self._ref(self.dataset_repo_id, stage, "dataset", name)

    def _ref(self, repo_id: str | None, stage: str, repo_type: str, config_name: str | None = None) -> HubRef:
        if repo_id is None:
            raise ValueError(f"no {repo_type} repo id given for stage {stage!r}")
        _check_revision_name(stage)
        if self.layout == "branch":
            return HubRef(repo_id, stage, repo_type, config_name)
        return HubRef(f"{repo_id}-{stage}", "main", repo_type, config_name)

    def step(self, stage: str, step: int) -> HubRef:
        return HubRef(self.model(stage).repo_id, f"{stage}-step-{step}")

    def resolve_model(self, value: Any, run_dir: Path, manifest: Mapping[str, Any]) -> Ref:
        """A stage's model input as a card reference; earlier stages of this run become their Hub refs."""
        if not value:
            return Ref(NOT_RECORDED, local=True)
        text = str(value)
        for stage, entry in manifest["stages"].items():
            checkpoint = entry.get("checkpoint")
            if self.repo_id and checkpoint and _is_run_artifact(text, checkpoint, run_dir):
                ref = self.model(stage)
                return Ref(ref.repo_id, ref.revision)
        return _external_ref(text, run_dir)

    def resolve_dataset(self, value: Any, run_dir: Path, manifest: Mapping[str, Any]) -> Ref:
        if isinstance(value, Mapping):
            path = value.get("path") or value.get("repo_id") or value.get("name") or "unknown"
            base = self.resolve_dataset(str(path), run_dir, manifest)
            config = value.get("config_name") or value.get("config") or value.get("subset") or base.config
            return Ref(base.ref, value.get("revision") or base.revision, base.local, config)
        text = str(value)
        for stage, entry in manifest["stages"].items():
            for name, rel_path in (entry.get("datasets") or {}).items() if self.dataset_repo_id else ():
                if _is_run_artifact(text, rel_path, run_dir):
                    ref = self.dataset(stage, name)
                    return Ref(ref.repo_id, ref.revision, config=name)
        return _external_ref(text, run_dir)

    def stage_refs(self, manifest: Mapping[str, Any]) -> dict[str, str]:
        refs = {}
        for stage, entry in manifest["stages"].items():
            if entry.get("status") != "done":
                continue
            if entry.get("checkpoint") and self.repo_id:
                refs[stage] = str(self.model(stage))
            elif entry.get("datasets") and self.dataset_repo_id:
                refs[stage] = str(self.dataset(stage))
        return refs


def _check_revision_name(name: str) -> None:
    if not _REVISION_NAME.match(name):
        raise ValueError(f"{name!r} cannot be used as a Hub branch name")


def _is_run_artifact(text: str, rel_path: str, run_dir: Path) -> bool:
    """Whether an input path names `run_dir/rel_path`: relative to the run, absolute, or from before a move.

    A run directory that was moved or copied (e.g. pushed later from another machine) still records the old
    absolute paths; a path that no longer exists and ends with ``<run dir name>/<rel_path>`` counts as a match.
    """
    target = (run_dir / rel_path).resolve()
    path = Path(text).expanduser()
    candidates = [path] if path.is_absolute() else [path, run_dir / path]
    if any(candidate.resolve() == target for candidate in candidates):
        return True
    suffix = Path(run_dir.resolve().name, rel_path).parts
    return path.is_absolute() and not path.exists() and path.parts[-len(suffix) :] == suffix


def _external_ref(text: str, run_dir: Path) -> Ref:
    """A Hub ``owner/name[@revision]`` id, or else a local path / alias (kept out of the card metadata)."""
    match = _HUB_ID.match(text)
    if match and not Path(text).exists() and not (run_dir / text).exists():
        return Ref(match["repo"], match["revision"])
    return Ref(text, local=True)


# ---- retries: what huggingface_hub leaves to the caller ----------------------------------------------------
def _transport_errors() -> tuple[type[BaseException], ...]:
    found: list[type[BaseException]] = [ConnectionError, TimeoutError]
    for module_name in ("httpx2", "httpx"):  # huggingface_hub 2.x ships httpx2, 1.x uses httpx
        try:
            found.append(importlib.import_module(module_name).TransportError)
        except (ImportError, AttributeError):
            continue
    return tuple(found)


_TRANSPORT_ERRORS = _transport_errors()


def is_transient(error: BaseException) -> bool:
    """Worth retrying: an HTTP 5xx/408/429 answer or a network failure, anywhere in the exception chain."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, HfHubHTTPError):
            response = current.response
            return response is None or response.status_code in RETRYABLE_STATUS
        if isinstance(current, _TRANSPORT_ERRORS):
            return True
        current = current.__cause__ or current.__context__
    return False


def with_retries(action: Callable[[], T], *, what: str, ref: HubRef, policy: RetryPolicy) -> T:
    """Run `action`, retrying transient failures; raise `HubPushError` naming the repo and revision."""
    for attempt in range(1, policy.attempts + 1):
        try:
            return action()
        except Exception as error:  # noqa: BLE001 - every failure is reported as a HubPushError below
            transient = is_transient(error)
            if not transient or attempt == policy.attempts:
                reason = f"after {attempt} attempts" if transient else "(not retried: not a transient error)"
                raise HubPushError(
                    f"{what} to {ref.repo_type} repo {ref.repo_id!r} at revision {ref.revision!r} failed "
                    f"{reason}: {type(error).__name__}: {error}. The local run directory was not changed."
                ) from error
            delay = policy.delay(attempt)
            retry = f"retry {attempt}/{policy.attempts - 1} in {delay:.2f}s"
            logger.warning("%s to %s failed (%s); %s", what, ref, error, retry)
            time.sleep(delay)
    raise AssertionError("unreachable")


# ---- commits: a folder, uploaded to a branch ----------------------------------------------------------------
def _upload_folder(
    api: HfApi,
    ref: HubRef,
    folder: Path,
    message: str,
    target: HubTargets,
    *,
    what: str,
    mirror: bool = False,
) -> None:
    """One commit of `folder` to `ref`, creating the repo and the branch as needed; retried as a whole.

    With `mirror`, files on the revision that are not in `folder` are deleted in the same commit (a model
    revision holds exactly one checkpoint: no stale weight shards from an earlier push)."""

    def upload() -> None:
        api.create_repo(ref.repo_id, repo_type=ref.repo_type, private=target.private, exist_ok=True)
        if ref.revision != "main":
            api.create_branch(ref.repo_id, branch=ref.revision, repo_type=ref.repo_type, exist_ok=True)
        api.upload_folder(
            repo_id=ref.repo_id,
            folder_path=folder,
            repo_type=ref.repo_type,
            revision=ref.revision,
            commit_message=message,
            delete_patterns="*" if mirror else None,
        )

    with_retries(upload, what=what, ref=ref, policy=target.retry)


def _upload_files(
    ref: HubRef, files: Mapping[str, FileSource], message: str, target: HubTargets, *, what: str, mirror: bool
) -> None:
    """Commit `files` (repo path -> source) to `ref`, through a temporary folder of symlinks to them."""
    with tempfile.TemporaryDirectory(prefix="r1-trl-push-") as staging:
        folder = _materialize(Path(staging), files, _symlink)
        _upload_folder(target.api(), ref, folder, message, target, what=what, mirror=mirror)


def _materialize(folder: Path, files: Mapping[str, FileSource], place: Place) -> Path:
    """Lay `files` out under `folder` by repo path: content is written, local files are linked or copied."""
    for path, source in files.items():
        destination = folder / path
        destination.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(source, Path):
            place(str(source), str(destination))
        else:
            destination.write_bytes(source)
    return folder


def _symlink(source: str, destination: str) -> None:
    os.symlink(os.path.abspath(source), destination)


def _link_or_copy(source: str, destination: str) -> None:
    try:
        os.link(source, destination)
    except OSError:  # another filesystem
        shutil.copy2(source, destination)


def _checkpoint_files(checkpoint: Path, ignore_patterns: Sequence[str]) -> dict[str, Path]:
    """The files of a checkpoint by repo path, without those matching `ignore_patterns`."""
    paths = sorted(
        path.relative_to(checkpoint).as_posix() for path in checkpoint.rglob("*") if path.is_file()
    )
    return {
        path: checkpoint / path for path in filter_repo_objects(paths, ignore_patterns=list(ignore_patterns))
    }


def preview_dir(run_dir: Path, ref: HubRef) -> Path:
    """Where ``no_push`` writes what would be committed to `ref`."""
    return Path(run_dir) / PREVIEW_DIR / f"{ref.repo_type}s" / ref.repo_id / ref.revision


def _fresh_dir(path: Path) -> Path:
    # The preview directory is our own output: replace it so it mirrors exactly one push.
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    return path


# ---- stages -------------------------------------------------------------------------------------------------
def push_stage(
    run_dir: str | os.PathLike[str], stage: str, target: HubTargets, *, no_push: bool = False
) -> str:
    """Push a finished stage's checkpoint with its card and the run manifest; return ``"repo@revision"``."""
    run_dir = Path(run_dir)
    return _push_model(
        run_dir, load_manifest(run_dir), run_dir / MANIFEST_FILE, stage, target, no_push=no_push
    )


def push_stage_output(
    output_dir: str | os.PathLike[str],
    stage: str,
    target: HubTargets,
    *,
    entry: Mapping[str, Any] | None = None,
) -> str:
    """Push a stage's output directory right after the stage ran (recipe ``push_to_hub``); return the ref.

    Pushes ``output_dir/checkpoint`` (or ``entry["checkpoint"]``, relative to `output_dir`) with a card and the
    stage's ``results.json`` / ``recipe.yaml`` / ``curves.png`` to the stage's revision, like `push_stage`. The
    lineage pushed as ``manifest.json`` is the run's manifest when `output_dir` is a stage directory of a
    pipeline run (this stage marked done, completed by `entry`), otherwise a manifest of this one stage built
    from `entry` (``inputs``, ``config``, ``metrics``, ``reward_funcs``, ...). Nothing local is written.
    """
    output_dir = Path(output_dir).resolve()
    manifest = stage_lineage(output_dir, stage, entry or {})
    lineage = json.dumps(manifest, indent=2, default=str).encode("utf-8")
    return _push_model(output_dir.parent, manifest, lineage, stage, target, no_push=False)


def stage_lineage(output_dir: Path, stage: str, entry: Mapping[str, Any]) -> dict[str, Any]:
    """The manifest to push with a stage that pushes itself (see `push_stage_output`)."""
    run_dir, name = output_dir.parent, output_dir.name
    manifest: dict[str, Any] | None = None
    if (run_dir / MANIFEST_FILE).is_file():
        try:
            candidate = load_manifest(run_dir)
        except ValueError:
            candidate = None
        if candidate and (candidate["stages"].get(stage) or {}).get("output_dir") == name:
            manifest = candidate
    if manifest is None:
        manifest = {
            "run_id": f"{stage}-{name}",
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "stages": {},
        }
    recorded = dict(manifest["stages"].get(stage) or {})
    merged = {**entry, **{key: value for key, value in recorded.items() if value not in (None, "", {}, [])}}
    merged.update(
        {
            "status": "done",
            "output_dir": name,
            "checkpoint": f"{name}/{entry.get('checkpoint') or 'checkpoint'}",
            # the run's records win; what only the stage knows (datasets, timings) fills the gaps
            "inputs": {**(entry.get("inputs") or {}), **(recorded.get("inputs") or {})},
            "timings": {**(entry.get("timings") or {}), **(recorded.get("timings") or {})},
        }
    )
    manifest["stages"][stage] = merged
    return manifest


def _push_model(
    run_dir: Path,
    manifest: Mapping[str, Any],
    manifest_source: FileSource,
    stage: str,
    target: HubTargets,
    *,
    no_push: bool,
) -> str:
    entry = stage_entry(manifest, stage)
    if not entry.get("checkpoint"):
        raise ValueError(f"stage {stage!r} has no checkpoint to push (a data-only stage? use push_datasets)")
    checkpoint = run_dir / entry["checkpoint"]
    if not checkpoint.is_dir():
        raise FileNotFoundError(f"checkpoint of stage {stage!r} not found at {checkpoint}")
    ref = target.model(stage)
    # the trainer's own README is replaced by our card; optimizer state does not belong in a model repo
    files: dict[str, FileSource] = dict(
        _checkpoint_files(checkpoint, (*DEFAULT_CHECKPOINT_IGNORE, "README.md"))
    )
    stage_dir = run_dir / (entry.get("output_dir") or stage)
    files.update({name: stage_dir / name for name in STAGE_EXTRA_FILES if (stage_dir / name).is_file()})
    adapter_config = files.get(ADAPTER_CONFIG)
    if isinstance(adapter_config, Path):
        files[ADAPTER_CONFIG] = hub_adapter_config(adapter_config, run_dir, manifest, target)
    files["README.md"] = str(_model_card(run_dir, manifest, stage, ref, target)).encode("utf-8")
    files[MANIFEST_FILE] = manifest_source
    if no_push:
        folder = _materialize(_fresh_dir(preview_dir(run_dir, ref)), files, shutil.copy2)
        logger.info("no_push: wrote what would be pushed to %s into %s", ref, folder)
        return str(ref)
    message = f"r1-trl: {stage} checkpoint of run {manifest.get('run_id', '?')}"
    _upload_files(ref, files, message, target, what=f"pushing the {stage} checkpoint", mirror=True)
    logger.info("pushed stage %s to %s", stage, ref)
    return str(ref)


def hub_adapter_config(path: Path, run_dir: Path, manifest: Mapping[str, Any], target: HubTargets) -> bytes:
    """An adapter's ``adapter_config.json`` as pushed: a base that is an earlier stage of this run (a local
    checkpoint folder) becomes that stage's pushed repo and revision, as the card names it, so the pushed
    adapter loads anywhere; a Hub base, or a local one the run does not push (``tiny``), stays as recorded."""
    config = json.loads(path.read_text(encoding="utf-8"))
    base = config.get("base_model_name_or_path")
    if base:
        ref = target.resolve_model(base, run_dir, manifest)
        if not ref.local and ref.ref != base:
            config["base_model_name_or_path"], config["revision"] = ref.ref, ref.revision
    return json.dumps(config, indent=2, sort_keys=True).encode("utf-8")


def _model_card(
    run_dir: Path, manifest: Mapping[str, Any], stage: str, ref: HubRef, target: HubTargets
) -> ModelCard:
    inputs = manifest["stages"][stage].get("inputs") or {}
    return build_model_card(
        ModelCardContext(
            manifest=manifest,
            stage=stage,
            run_dir=run_dir,
            pushed_ref=str(ref),
            base_model=target.resolve_model(inputs.get("model"), run_dir, manifest),
            datasets={
                role: target.resolve_dataset(value, run_dir, manifest)
                for role, value in (inputs.get("datasets") or {}).items()
            },
            stage_refs=target.stage_refs(manifest),
            license=target.license,
        )
    )


# ---- generated datasets -------------------------------------------------------------------------------------
def push_datasets(
    run_dir: str | os.PathLike[str], stage: str, target: HubTargets, *, no_push: bool = False
) -> dict[str, HubRef]:
    """Push every dataset a stage generated (one config each) plus a dataset card, manifest and statistics.

    Each set goes up with `DatasetDict.push_to_hub`, which writes its parquet shards and the card's ``configs``
    / ``dataset_info`` metadata; the card is then rebuilt around that metadata and committed with the run's
    manifest and the sets' ``stats.json``. The model repo of `target` names the generating checkpoint.
    """
    run_dir = Path(run_dir)
    manifest = load_manifest(run_dir)
    entry = stage_entry(manifest, stage)
    if not entry.get("datasets"):
        raise ValueError(f"stage {stage!r} generated no datasets")
    ref = target.dataset(stage)
    loaded = {name: _load_generated(run_dir / path, stage, name) for name, path in entry["datasets"].items()}
    stats = {name: _read_stats(run_dir / path) for name, path in entry["datasets"].items()}
    message = f"r1-trl: {stage} data of run {manifest.get('run_id', '?')}"
    if no_push:
        folder = _fresh_dir(preview_dir(run_dir, ref))
        hub_metadata = _write_parquet_preview(folder, loaded)
    else:
        hub_metadata = _push_parquet(ref, loaded, message, target)
    card = build_dataset_card(
        DatasetCardContext(
            manifest=manifest,
            stage=stage,
            run_dir=run_dir,
            pushed_ref=str(ref),
            source_model=target.resolve_model((entry.get("inputs") or {}).get("model"), run_dir, manifest),
            sets=tuple(
                _generated_set(
                    name, data, ref, stats[name], _set_source(stats[name], target, run_dir, manifest)
                )
                for name, data in loaded.items()
            ),
            hub_metadata=hub_metadata,
            license=target.license,
        )
    )
    files: dict[str, FileSource] = {
        "README.md": str(card).encode("utf-8"),
        MANIFEST_FILE: run_dir / MANIFEST_FILE,
    }
    files.update(
        {
            f"stats/{name}.json": run_dir / path / STATS_FILE
            for name, path in entry["datasets"].items()
            if stats[name]
        }
    )
    if no_push:
        _materialize(folder, files, shutil.copy2)
        logger.info("no_push: wrote what would be pushed to %s into %s", ref, folder)
    else:
        message = f"{message}: card, manifest and statistics"
        _upload_files(ref, files, message, target, what="pushing the card", mirror=False)
        logger.info("pushed %d datasets of stage %s to %s", len(loaded), stage, ref)
    return {name: HubRef(ref.repo_id, ref.revision, "dataset", name) for name in loaded}


def _push_parquet(ref: HubRef, loaded: Mapping[str, Any], message: str, target: HubTargets) -> dict[str, Any]:
    """`push_to_hub` every set as its own config; return the `configs` / `dataset_info` it wrote to the card."""
    for name, data in loaded.items():
        with_retries(
            lambda data=data, name=name: data.push_to_hub(
                ref.repo_id,
                config_name=name,
                revision=ref.revision,
                private=target.private,
                token=target.token,
                num_shards=_num_shards(data),
                commit_message=f"{message}: {name}",
            ),
            what=f"pushing dataset {name!r}",
            ref=ref,
            policy=target.retry,
        )
    return with_retries(
        lambda: _read_card_metadata(ref, target),
        what="reading back the dataset card",
        ref=ref,
        policy=target.retry,
    )


def _num_shards(data: Any) -> dict[str, int]:
    return {split: ds.data.nbytes // MAX_SHARD_BYTES + 1 for split, ds in data.items()}


def _load_generated(path: Path, stage: str, name: str) -> Any:
    """A generated dataset saved with `save_to_disk`, as a `DatasetDict` (a plain `Dataset` becomes "train")."""
    import datasets  # heavy import, only needed for dataset pushes

    if not path.is_dir():
        raise FileNotFoundError(f"dataset {name!r} of stage {stage!r} not found at {path}")
    data = datasets.load_from_disk(str(path))
    return data if isinstance(data, datasets.DatasetDict) else datasets.DatasetDict({"train": data})


def _read_stats(dataset_path: Path) -> dict[str, Any]:
    path = dataset_path / STATS_FILE
    if not path.is_file():
        return {}
    stats = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(stats, dict):
        raise ValueError(f"{path} must hold a JSON object, got {type(stats).__name__}")
    return stats


def _generated_set(
    name: str, data: Any, ref: HubRef, stats: dict[str, Any], source: Ref | None = None
) -> GeneratedSet:
    features = next(iter(data.values())).features
    return GeneratedSet(
        name=name,
        repo_id=ref.repo_id,
        revision=ref.revision,
        split_rows={split: len(ds) for split, ds in data.items()},
        features={column: describe_feature(feature) for column, feature in features.items()},
        stats=stats,
        source=source,
    )


def _set_source(
    stats: Mapping[str, Any], target: HubTargets, run_dir: Path, manifest: Mapping[str, Any]
) -> Ref | None:
    """The checkpoint a set's ``stats.json`` names as its generator (``source_checkpoint``, e.g. the trained
    model of a stage's evaluation details), as the Hub revision it is pushed to when it is a stage checkpoint."""
    checkpoint = stats.get(SOURCE_CHECKPOINT_KEY)
    return target.resolve_model(checkpoint, run_dir, manifest) if checkpoint else None


def _read_card_metadata(ref: HubRef, target: HubTargets) -> dict[str, Any]:
    """The `configs` / `dataset_info` metadata that `push_to_hub` wrote into the repo's README."""
    with tempfile.TemporaryDirectory(prefix="r1-trl-card-") as cache_dir:
        path = target.api().hf_hub_download(
            ref.repo_id, "README.md", repo_type="dataset", revision=ref.revision, cache_dir=cache_dir
        )
        return DatasetCard.load(Path(path)).data.to_dict()


def _write_parquet_preview(folder: Path, loaded: Mapping[str, Any]) -> dict[str, Any]:
    """Write what `push_to_hub` would for each set: its parquet shards (`Dataset.to_parquet`, named and split as
    `push_to_hub` does with `_num_shards`), and the card metadata: ``configs`` in the Hub's documented format,
    ``dataset_info`` serialized by datasets' own `DatasetInfosDict`."""
    from datasets import DatasetInfo, SplitDict, SplitInfo
    from datasets.info import DatasetInfosDict
    from huggingface_hub import DatasetCardData

    infos = {}
    for name, data in loaded.items():
        splits, download_size = SplitDict(), 0
        for split, num_shards in _num_shards(data).items():
            ds = data[split]
            for index in range(num_shards):
                shard = folder / name / f"{split}-{index:05d}-of-{num_shards:05d}.parquet"
                shard.parent.mkdir(parents=True, exist_ok=True)
                ds.shard(num_shards=num_shards, index=index, contiguous=True).to_parquet(str(shard))
                download_size += shard.stat().st_size
            splits.add(SplitInfo(name=split, num_bytes=ds.data.nbytes, num_examples=len(ds)))
        features = next(iter(data.values())).features
        dataset_size = sum(info.num_bytes for info in splits.values())
        infos[name] = DatasetInfo(
            config_name=name,
            features=features,
            splits=splits,
            download_size=download_size,
            dataset_size=dataset_size,
        )
    configs = [
        {"config_name": name, "data_files": [{"split": split, "path": f"{name}/{split}-*"} for split in data]}
        for name, data in sorted(loaded.items())
    ]
    card_data = DatasetCardData(configs=configs)
    DatasetInfosDict(infos).to_dataset_card_data(card_data)
    return card_data.to_dict()


# ---- whole runs ---------------------------------------------------------------------------------------------
def push_run(
    run_dir: str | os.PathLike[str],
    repo_id: str,
    dataset_repo_id: str | None = None,
    *,
    layout: Layout = "branch",
    private: bool | None = None,
    token: str | None = None,
    license: str = "apache-2.0",  # noqa: A002 - the Hub metadata field is called license
    no_push: bool = False,
    retry: RetryPolicy | None = None,
    stages: Sequence[str] | None = None,
    step_branches: bool = False,
) -> dict[str, dict[str, Any]]:
    """(Re-)push every finished stage of a run (or only `stages`): its generated datasets, then its checkpoint;
    with `step_branches` (``r1-trl push``) also the saved ``checkpoint-N`` its recipe pushed to step branches
    and whose push never finished (a kill, a Hub outage): a finished stage is not rerun, so nothing else would.
    A step push that fails again is logged and listed in ``failed_checkpoints``, never raised.

    Returns ``{stage: {"datasets": {name: HubRef}, "model": "repo@revision"}}`` for the stages pushed.
    """
    run_dir = Path(run_dir)
    manifest = load_manifest(run_dir)
    unknown = sorted(set(stages or ()) - set(manifest["stages"]))
    if unknown:
        raise KeyError(f"stages {unknown} are not in the manifest of {run_dir}")
    target = HubTargets(
        repo_id,
        dataset_repo_id,
        layout,
        private=private,
        token=token,
        license=license,
        retry=retry or RetryPolicy(),
    )
    pushed: dict[str, dict[str, Any]] = {}
    for stage in ordered_stages(manifest):
        if stages is not None and stage not in stages:
            continue
        entry = manifest["stages"][stage]
        if entry.get("status") != "done":
            logger.warning("skipping stage %s: status %r", stage, entry.get("status"))
            continue
        result: dict[str, Any] = {}
        if entry.get("datasets"):
            result["datasets"] = push_datasets(run_dir, stage, target, no_push=no_push)
        if entry.get("checkpoint"):
            result["model"] = push_stage(run_dir, stage, target, no_push=no_push)
            if step_branches and not no_push and _pushes_step_branches(entry):
                result.update(push_unpushed_checkpoints(run_dir / (entry.get("output_dir") or stage), stage, target))
        if result:
            pushed[stage] = result
    if not pushed:
        raise ValueError(f"run {run_dir} has no finished stage with a checkpoint or generated data to push")
    return pushed


def _pushes_step_branches(entry: Mapping[str, Any]) -> bool:
    """Whether a stage's recipe pushed its ``checkpoint-N`` to step branches (push_to_hub, hub_push_checkpoints)."""
    config = entry.get("config") or {}
    return bool(config.get("push_to_hub")) and config.get("hub_push_checkpoints", True) is not False


def push_unpushed_checkpoints(output_dir: str | os.PathLike[str], stage: str, target: HubTargets) -> dict[str, Any]:
    """Push the saved ``checkpoint-N`` of a finished stage whose step branch does not hold them (a push a kill
    interrupted, or one that failed for good): the step branches a rerun of the stage would push. Blocks;
    returns ``{"checkpoints": [repo@revision pushed], "failed_checkpoints": [...]}`` (empty lists left out)."""
    pusher = CheckpointPusher(target, stage)
    pusher.queue_unpushed(output_dir)
    try:
        pusher.wait()
    except HubPushError as error:
        logger.error("%s: %s; the local checkpoints are intact", stage, error)
    found = {"checkpoints": pusher.pushed, "failed_checkpoints": pusher.failed}
    return {key: sorted(refs, key=_step_number) for key, refs in found.items() if refs}


# ---- intermediate checkpoints during training ----------------------------------------------------------------
class CheckpointPusher(TrainerCallback):
    """Push every saved ``checkpoint-N`` to branch ``{stage}-step-{N}`` in the background.

    `on_save` only hard-links the checkpoint into a private snapshot (so checkpoint rotation cannot delete
    files under an upload) and queues its ``upload_folder`` on `HfApi.run_as_future`'s background worker, which
    runs uploads one at a time. `wait()` blocks until all queued pushes finished and raises `HubPushError` if
    any failed; `on_train_end` waits too but only logs failures, so a Hub outage never fails a finished training
    run. With `preview_root` set (no-push mode) the snapshots are copied to
    ``preview_root/models/<repo>/<stage>-step-<N>/`` instead of being uploaded.
    """

    def __init__(
        self,
        target: HubTargets,
        stage: str,
        *,
        ignore_patterns: tuple[str, ...] = DEFAULT_CHECKPOINT_IGNORE,
        preview_root: str | os.PathLike[str] | None = None,
    ) -> None:
        self.target = target
        self.stage = stage
        self.ignore_patterns = ignore_patterns
        self.preview_root = Path(preview_root) if preview_root is not None else None
        self.api = target.api()
        self.pushes: list[tuple[HubRef, Future[None]]] = []
        self.pushed: list[str] = []  # "repo@revision" of every finished push
        self.failed: list[str] = []  # ... and of every push that failed for good
        self.errors: list[BaseException] = []

    def on_train_begin(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        """A resumed run first pushes the saved checkpoints whose push a killed run did not finish."""
        if not state.is_world_process_zero or self.preview_root is not None:
            return
        self.queue_unpushed(args.output_dir)

    def queue_unpushed(self, output_dir: str | os.PathLike[str]) -> list[int]:
        """Queue the pushes of the complete ``checkpoint-N`` in ``output_dir`` whose step branch lacks them."""
        saved = {checkpoint_step(path): Path(path) for path in complete_checkpoints(output_dir)}
        steps = sorted(self._unpushed(saved))
        for step in steps:
            logger.warning("CheckpointPusher: %s was saved but its push did not finish; pushing it now",
                           saved[step].name)  # fmt: skip
            self._queue(saved[step], step)
        return steps

    def _unpushed(self, saved: Mapping[int, Path]) -> list[int]:
        """The steps in `saved` whose branch on the Hub does not hold their checkpoint: a push creates the
        branch first and commits the files second, so a killed push can leave the branch without them."""
        missing = []
        for step in saved:
            ref = self.target.step(self.stage, step)
            try:
                found = self.api.get_paths_info(ref.repo_id, [TRAINER_STATE_FILE], revision=ref.revision,
                                                repo_type=ref.repo_type)  # fmt: skip
            except HfHubHTTPError as error:
                if error.response is None or error.response.status_code != 404:
                    logger.warning("CheckpointPusher: cannot check %s (%s); saved checkpoints are not re-pushed",
                                   ref, error)  # fmt: skip
                    return []
                found = []  # no such repo or branch: never pushed
            except _TRANSPORT_ERRORS as error:
                logger.warning("CheckpointPusher: the Hub is unreachable (%s); saved checkpoints are not re-pushed",
                               error)  # fmt: skip
                return []
            if not found:
                missing.append(step)
        return missing

    def on_save(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        if not state.is_world_process_zero:
            return
        checkpoint = Path(args.output_dir) / f"checkpoint-{state.global_step}"
        if not checkpoint.is_dir():
            logger.warning("CheckpointPusher: %s does not exist, nothing to push", checkpoint)
            return
        self._queue(checkpoint, state.global_step)

    def _queue(self, checkpoint: Path, step: int) -> None:
        ref = self.target.step(self.stage, step)
        snapshot = _snapshot(checkpoint, self.ignore_patterns)
        self.pushes.append((ref, self.api.run_as_future(self._push_snapshot, snapshot, ref)))

    def on_train_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        try:
            self.wait()
        except HubPushError as error:
            logger.error("CheckpointPusher: %s", error)

    def wait(self) -> list[str]:
        """Block until every queued push finished; return their ``repo@revision`` or raise on failures."""
        done, failures = [], []
        for ref, future in self.pushes:
            try:
                future.result()
                done.append(str(ref))
            except Exception as error:  # noqa: BLE001 - collected and re-raised together
                failures.append(error)
                self.failed.append(str(ref))
        self.pushes = []
        self.pushed.extend(done)
        if failures:
            self.errors.extend(failures)
            raise HubPushError(
                f"{len(failures)} intermediate checkpoint push(es) failed: " + "; ".join(map(str, failures))
            )
        return done

    def _push_snapshot(self, snapshot: Path, ref: HubRef) -> None:
        try:
            if self.preview_root is not None:
                preview = _fresh_dir(self.preview_root / f"{ref.repo_type}s" / ref.repo_id / ref.revision)
                shutil.copytree(snapshot, preview, dirs_exist_ok=True)
                return
            message = f"r1-trl: {self.stage} {snapshot.name}"
            what = f"uploading {snapshot.name}"
            _upload_folder(self.api, ref, snapshot, message, self.target, what=what, mirror=True)
        finally:
            shutil.rmtree(snapshot.parent, ignore_errors=True)


def _snapshot(checkpoint: Path, ignore_patterns: Sequence[str]) -> Path:
    """Hard-link (or copy, across filesystems) a checkpoint into a temporary folder next to it."""
    holder = Path(tempfile.mkdtemp(prefix=HUB_PUSH_STAGING_PREFIX, dir=checkpoint.parent))
    return _materialize(
        holder / checkpoint.name, _checkpoint_files(checkpoint, ignore_patterns), _link_or_copy
    )


# ---- a training stage that pushes itself (recipe push_to_hub) ------------------------------------------------
class StagePublisher:
    """The Hub pushes of a training stage whose recipe sets ``push_to_hub``.

    `callbacks` hands the trainer a `CheckpointPusher` (unless `push_checkpoints` is off), so every
    ``checkpoint-N`` the trainer saves goes to branch ``{stage}-step-{N}`` in the background while training
    goes on. After training, `wait_for_checkpoints` waits for those uploads and `push_final` pushes the final
    checkpoint with its card and lineage to the stage's revision (`push_stage_output`), blocking until it is on
    the Hub. Failures are retried with the target's policy; one that persists is logged and reported, never
    raised: the trained model and every local checkpoint stay as they are, to be pushed again later
    (`r1-trl push RUN_DIR` for pipeline runs, `push_stage_output` for a stage run on its own).
    """

    def __init__(self, target: HubTargets, stage: str, *, push_checkpoints: bool = True) -> None:
        self.target = target
        self.stage = stage
        self.ref = target.model(stage)  # checks that there is a model repo and the stage name can be a branch
        self.checkpoint_pusher = CheckpointPusher(target, stage) if push_checkpoints else None

    def callbacks(self) -> list[TrainerCallback]:
        return [self.checkpoint_pusher] if self.checkpoint_pusher is not None else []

    def wait_for_checkpoints(self) -> dict[str, Any]:
        """Block until the intermediate pushes are done; where the final checkpoint goes and what was pushed."""
        summary: dict[str, Any] = {"model": str(self.ref), "checkpoints": [], "failed_checkpoints": []}
        pusher = self.checkpoint_pusher
        if pusher is None:
            return summary
        try:
            pusher.wait()
        except HubPushError as error:
            logger.error("%s: %s; the local checkpoints are intact", self.stage, error)
        summary["checkpoints"] = sorted(pusher.pushed, key=_step_number)
        summary["failed_checkpoints"] = sorted(pusher.failed, key=_step_number)
        return summary

    def push_final(self, output_dir: str | os.PathLike[str], entry: Mapping[str, Any]) -> str | None:
        """Push the stage's output directory to `ref`; None on success, else the error (already logged)."""
        try:
            push_stage_output(output_dir, self.stage, self.target, entry=entry)
        except HubPushError as error:
            logger.error("%s: %s", self.stage, error)
            return str(error)
        return None


def _step_number(ref: str) -> int:
    return int(ref.rsplit("-", 1)[-1])
