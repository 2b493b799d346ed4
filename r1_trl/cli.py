"""``r1-trl <command>``: one entry point for every stage; recipes are YAML files parsed by TRL's parser.

Every command accepts ``--config recipe.yaml`` plus ``--<field> value`` overrides, and runs unchanged
under ``accelerate launch``. ``r1-trl <command> --help`` lists every field with its help text.
"""

from __future__ import annotations

import argparse
import json
import sys
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from r1_trl.distributed import exit_distributed, exit_without_finalizing, launched_with_several_processes
from r1_trl.stages import STAGES
from r1_trl.targets import TARGETS

STAGE_COMMANDS: dict[str, str] = {name: stage.help for name, stage in STAGES.items()}

COMMANDS: dict[str, str] = {
    "grpo": "GRPO on a recipe (alias of r1-zero; rewards by name from the reward_funcs registry).",
    "sft": "SFT on a recipe (alias of cold-start-sft; set --stage_name for other SFT stages).",
    **STAGE_COMMANDS,
    "pipeline": "Run the stages of a pipeline YAML in order (manifest, resume, --from STAGE).",
    "eval": "Held-out evaluation of a model: pass@1, cons@k, pass@k (per benchmark), format rate, length (JSON).",
    "demo": "Offline demo on the built-in tiny model: 'demo' = the whole pipeline, 'demo r1-zero' = R1-Zero only.",
    "check-recipe": "Validate a recipe YAML before any compute; errors name the field.",
    "build-tiny": "Locate (or pretrain) the tiny offline base model and print its path.",
    "push": "(Re-)push a finished run directory to the Hub: checkpoints, generated datasets, cards, lineage.",
}


@dataclass
class EvalArguments:
    """``r1-trl eval``: which model, which held-out set, how to sample."""

    model_name_or_path: str = field(default="tiny", metadata={"help": "Model path, Hub id, or 'tiny'."})
    dataset_name: str = field(default="arithmetic", metadata={
        "help": "Task, loader name, reasoning_gym:<task> or local file; several benchmarks joined by '+'."})
    task_kwargs: str | None = field(default=None, metadata={"help": "Task options as JSON (e.g. a reasoning-gym config)."})
    dataset_path: str | None = field(default=None, metadata={"help": "Override where the loader reads from."})
    split: str | None = field(default=None, metadata={"help": "Split to evaluate on (default: each benchmark's own)."})
    eval_size: int = field(default=200, metadata={"help": "Number of prompts."})
    num_samples: int = field(default=4, metadata={"help": "Samples per prompt (k)."})
    temperature: float = field(default=0.6, metadata={"help": "Sampling temperature (0: greedy)."})
    top_p: float = field(default=0.95, metadata={"help": "Nucleus sampling (the paper: 0.95)."})
    pass_k: str = field(default="", metadata={"help": "Extra k of pass@k, comma-separated (pass@1, pass@n always)."})
    max_new_tokens: int = field(default=64, metadata={"help": "Generation budget per answer."})
    prompt_template: str = field(default="r1_zero", metadata={"help": "r1_zero, chat or none."})
    language_metric: bool = field(default=False, metadata={"help": "Also report language consistency."})
    seed: int = field(default=0, metadata={"help": "Seed for problem generation and sampling."})
    output_file: str | None = field(default=None, metadata={"help": "Also write the JSON metrics here."})


@dataclass
class DemoArguments:
    """``r1-trl demo``: the offline end-to-end demo."""

    output_dir: str = field(default="outputs/demo", metadata={"help": "Where checkpoints, plots and results go."})
    max_steps: int | None = field(default=None, metadata={"help": "Override the R1-Zero recipe's GRPO steps."})


def _parse(dataclass_type: type, argv: Sequence[str], prog: str):
    import yaml
    from trl import TrlParser

    from r1_trl.configs import RecipeError
    from r1_trl.preflight import one_line

    argv = list(argv)
    recipe = argv[argv.index("--config") + 1] if "--config" in argv[:-1] else None
    parser = TrlParser(dataclass_type, prog=prog)
    try:
        (parsed,) = parser.parse_args_and_config(argv)
    except (FileNotFoundError, IsADirectoryError) as error:
        raise RecipeError(f"--config: {one_line(error)}") from error
    except yaml.YAMLError as error:
        raise RecipeError(f"--config: {recipe} is not valid YAML: {one_line(error)}") from error
    except RecipeError:
        raise
    except ValueError as error:  # TRL's parser: keys no field takes, a non-mapping recipe
        raise RecipeError(f"--config: {one_line(error)}") from error
    return parsed


def stage_command(stage: str) -> Callable[[Sequence[str]], int]:
    def run_stage(argv: Sequence[str]) -> int:
        from r1_trl.configs import RecipeError
        from r1_trl.preflight import check_config_models

        module = STAGES[stage].load()
        argv = list(argv)
        if "stage_name" in getattr(module.CONFIG_CLASS, "__dataclass_fields__", {}) and "--stage_name" not in argv:
            argv += ["--stage_name", stage]
        config = _parse(module.CONFIG_CLASS, argv, f"r1-trl {stage}")
        output_dir = Path(config.output_dir)
        existed = output_dir.exists()
        try:
            check_config_models(config)  # before anything is computed or written
            results = module.run(config)
        except RecipeError:
            if not existed:
                _remove_if_empty(output_dir)
            raise
        _print_before_after(results)
        return 0

    return run_stage


def _remove_if_empty(folder: Path) -> None:
    """Remove a folder a failed run created if nothing but empty folders is in it."""
    if folder.is_dir() and not any(path.is_file() for path in folder.rglob("*")):
        import shutil

        shutil.rmtree(folder, ignore_errors=True)


def cmd_pipeline(argv: Sequence[str]) -> int:
    from r1_trl.pipeline import load_plan, run_pipeline, summary_table

    parser = argparse.ArgumentParser(prog="r1-trl pipeline", description=COMMANDS["pipeline"])
    parser.add_argument("--config", required=True, help="Pipeline YAML (run_dir, stages with recipes and inputs).")
    parser.add_argument("--run_dir", default=None, help="Override the run directory.")
    parser.add_argument("--from", dest="from_stage", default=None, help="Re-run this stage and every later one.")
    parser.add_argument("--only", action="append", default=None, help="Run only this stage (repeatable).")
    args = parser.parse_args(list(argv))
    manifest = run_pipeline(load_plan(args.config, args.run_dir), from_stage=args.from_stage, only=args.only)
    print(summary_table(manifest))
    return 0


def cmd_eval(argv: Sequence[str]) -> int:
    from transformers import AutoTokenizer

    from r1_trl.data.builders import PromptSpec, build_eval_dataset
    from r1_trl.evaluation import EvalSettings, evaluate_model
    from r1_trl.stages.common import resolve_model

    args: EvalArguments = _parse(EvalArguments, argv, "r1-trl eval")
    model_path, revision = resolve_model(args.model_name_or_path)
    spec = PromptSpec(dataset_name=args.dataset_name, dataset_path=args.dataset_path, template=args.prompt_template,
                      eval_size=args.eval_size, seed=args.seed, task_kwargs=json.loads(args.task_kwargs or "{}"))
    dataset = build_eval_dataset(spec, args.split)
    tokenizer = AutoTokenizer.from_pretrained(model_path, revision=revision)
    settings = EvalSettings(num_samples=args.num_samples, temperature=args.temperature, top_p=args.top_p,
                            pass_k=tuple(int(k) for k in args.pass_k.split(",") if k.strip()),
                            max_new_tokens=args.max_new_tokens, seed=args.seed, language_metric=args.language_metric)
    metrics = evaluate_model(model_path, tokenizer, dataset, settings, show_progress=True)
    text = json.dumps(metrics, indent=2)
    print(text)
    if args.output_file:
        Path(args.output_file).write_text(text)
    return 0


def cmd_demo(argv: Sequence[str]) -> int:
    from r1_trl.demo import run_pipeline_demo, run_r1_zero_demo

    which = "pipeline"
    if argv and not argv[0].startswith("-"):
        which, argv = argv[0], argv[1:]
    if which not in ("pipeline", "r1-zero"):
        print(f"unknown demo {which!r}; available: pipeline (default), r1-zero", file=sys.stderr)
        return 2
    args: DemoArguments = _parse(DemoArguments, argv, f"r1-trl demo {which}")
    if which == "r1-zero":
        run_r1_zero_demo(args.output_dir, max_steps=args.max_steps)
    else:
        run_pipeline_demo(args.output_dir)
    return 0


def cmd_check_recipe(argv: Sequence[str]) -> int:
    from r1_trl.recipe_checks import check_recipe

    parser = argparse.ArgumentParser(prog="r1-trl check-recipe", description=COMMANDS["check-recipe"])
    parser.add_argument("recipes", nargs="+", help="Recipe YAML files.")
    parser.add_argument("--target", choices=TARGETS, default="local",
                        help="Machine to validate for: 'local' (this one, default) or 'gpu' (a GPU machine with "
                        "vLLM: every check but the presence of the GPU and of vLLM).")
    parser.add_argument("--num_processes", type=int, default=None,
                        help="Processes of the launch to validate batch sizes and tensor parallelism for "
                        "(default: the '--num_processes N' of the recipe's header comment, else 1).")
    args = parser.parse_args(list(argv))
    failures = 0
    for recipe in args.recipes:
        error = check_recipe(recipe, args.target, args.num_processes)
        checked_for = _checked_for(recipe, args.target, args.num_processes)
        if error:
            failures += 1
            print(f"FAIL {recipe}{checked_for}: {error}")
        else:
            print(f"ok   {recipe}{checked_for}")
    return 1 if failures else 0


def _checked_for(recipe: str, target: str, num_processes: int | None) -> str:
    """' (target gpu, 8 processes)': what a recipe was checked for, unless this process as it is."""
    from r1_trl.targets import header_num_processes

    try:
        processes = num_processes if num_processes is not None else header_num_processes(recipe)
    except (OSError, ValueError):  # an unreadable recipe: check_recipe reports it
        processes = None
    if target == "local" and processes is None:
        return ""
    processes = processes or 1
    return f" (target {target}, {processes} process{'es' if processes > 1 else ''})"


def cmd_build_tiny(argv: Sequence[str]) -> int:
    from r1_trl.models import load_or_build_tiny_base

    parser = argparse.ArgumentParser(prog="r1-trl build-tiny", description=COMMANDS["build-tiny"])
    parser.add_argument("--rebuild", action="store_true",
                        help="Pretrain from scratch into the cache even though a bundled copy exists (~5 CPU-minutes).")
    args = parser.parse_args(list(argv))
    print(load_or_build_tiny_base(use_bundled=not args.rebuild))
    return 0


def cmd_push(argv: Sequence[str]) -> int:
    from r1_trl.hub import push_run

    parser = argparse.ArgumentParser(prog="r1-trl push", description=COMMANDS["push"])
    parser.add_argument("run_dir", help="A run directory holding manifest.json.")
    parser.add_argument("--repo-id", required=True, help="Model repo (owner/name); stages go to branches of it.")
    parser.add_argument("--dataset-repo-id", default=None, help="Dataset repo (default: <repo-id>-datasets).")
    parser.add_argument("--layout", choices=("branch", "repo"), default="branch",
                        help="'branch': one branch per stage; 'repo': one repo per stage.")
    parser.add_argument("--private", action="store_true", help="Create private repos.")
    parser.add_argument("--no-push", action="store_true", help="Write the exact Hub layout under RUN_DIR/hub only.")
    parser.add_argument("--stage", action="append", default=None, help="Only this stage (repeatable).")
    args = parser.parse_args(list(argv))
    pushed = push_run(args.run_dir, args.repo_id, args.dataset_repo_id, layout=args.layout,
                      private=args.private or None, no_push=args.no_push, stages=args.stage, step_branches=True)
    for stage, refs in pushed.items():
        print(f"{stage}: model {refs.get('model')}; datasets {sorted(refs.get('datasets', {}))}")
        for key in ("checkpoints", "failed_checkpoints"):
            if refs.get(key):
                print(f"{stage}: {key.replace('_', ' ')} {', '.join(map(str, refs[key]))}")
    return 0


def _print_before_after(results: dict) -> None:
    if "before" not in results:
        return
    from r1_trl.demo import before_after_table

    print(before_after_table(results))


HANDLERS: dict[str, Callable[[Sequence[str]], int]] = {
    **{stage: stage_command(stage) for stage in STAGE_COMMANDS},
    "grpo": stage_command("r1-zero"),
    "sft": stage_command("cold-start-sft"),
    "pipeline": cmd_pipeline,
    "eval": cmd_eval,
    "demo": cmd_demo,
    "check-recipe": cmd_check_recipe,
    "build-tiny": cmd_build_tiny,
    "push": cmd_push,
}


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv  # full tracebacks for input errors too
    argv = [arg for arg in argv if arg != "--debug"]
    if not argv or argv[0] in ("-h", "--help"):
        lines = ["usage: r1-trl <command> [--config recipe.yaml] [--field value ...]", "", "commands:"]
        lines += [f"  {name:<20}{text}" for name, text in COMMANDS.items()]
        lines += ["", "Run 'r1-trl <command> --help' for every field of that command; --debug shows tracebacks of "
                  "input errors."]
        print("\n".join(lines))
        return 0 if argv else 2
    command, rest = argv[0], argv[1:]
    if command not in HANDLERS:
        print(f"r1-trl: unknown command {command!r}; commands: {', '.join(HANDLERS)}", file=sys.stderr)
        return 2
    from r1_trl.configs import RecipeError

    try:
        status = HANDLERS[command](rest)
    except RecipeError as error:  # bad input: one line naming the field and the value
        if debug:
            raise
        from r1_trl.preflight import one_line

        print(f"r1-trl {command}: error: {one_line(error)}", file=sys.stderr)
        if launched_with_several_processes():
            exit_without_finalizing(2)
        return 2
    except Exception:
        if not launched_with_several_processes():
            raise
        # The other ranks may be waiting in a collective: no barrier. The launcher ends them when this
        # rank exits non-zero.
        traceback.print_exc()
        exit_without_finalizing(1)
    return exit_distributed(status)


if __name__ == "__main__":
    sys.exit(main())
