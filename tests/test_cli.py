import json

import pytest

from r1_trl import cli
from r1_trl.models import random_tiny_model


def test_help_lists_every_command(capsys):
    assert cli.main(["--help"]) == 0
    out = capsys.readouterr().out
    for command in cli.HANDLERS:
        assert f"  {command}" in out


def test_unknown_command_fails_clearly(capsys):
    assert cli.main(["trian"]) == 2
    assert "unknown command 'trian'" in capsys.readouterr().err


def test_stage_help_documents_every_field(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["grpo", "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for field in ("--reward_funcs", "--loss_type", "--beta", "--num_generations", "--prompt_template",
                  "--dynamic_sampling", "--use_vllm"):
        assert field in out


def test_eval_writes_json_metrics(tmp_path, capsys):
    model = random_tiny_model(tmp_path / "model")
    output = tmp_path / "metrics.json"
    assert cli.main(["eval", "--model_name_or_path", str(model), "--eval_size", "4", "--num_samples", "2",
                     "--max_new_tokens", "8", "--output_file", str(output)]) == 0
    metrics = json.loads(output.read_text())
    assert {"accuracy", "pass@2", "maj@2", "format_rate", "mean_length"} <= set(metrics)
    assert metrics["num_prompts"] == 4 and 0.0 <= metrics["accuracy"] <= 1.0


def test_bad_recipe_value_names_the_field(tmp_path, capsys):
    recipe = tmp_path / "bad.yaml"
    recipe.write_text("reward_funcs: [accuracy, no_such_reward]\noutput_dir: /tmp/x\n")
    assert cli.main(["check-recipe", str(recipe)]) == 1
    assert "reward_funcs: unknown reward 'no_such_reward'" in capsys.readouterr().out


def test_eval_on_code_reports_pass_at_k(tmp_path):
    from reward_funcs.sandbox import is_usable

    if not is_usable():
        pytest.skip("the code sandbox does not work on this machine")
    model = random_tiny_model(tmp_path / "model")
    output = tmp_path / "metrics.json"
    assert cli.main(["eval", "--model_name_or_path", str(model), "--dataset_name", "humaneval", "--eval_size", "2",
                     "--num_samples", "4", "--pass_k", "2", "--max_new_tokens", "4", "--prompt_template", "none",
                     "--output_file", str(output)]) == 0
    metrics = json.loads(output.read_text())
    assert {"accuracy", "pass@1", "pass@2", "pass@4", "cons@4"} <= set(metrics)
    assert metrics["num_prompts"] == 2 and metrics["pass@4"] == 0.0  # a random model writes no passing program


def test_eval_reports_each_benchmark(tmp_path):
    model = random_tiny_model(tmp_path / "model")
    output = tmp_path / "metrics.json"
    assert cli.main(["eval", "--model_name_or_path", str(model), "--dataset_name",
                     "arithmetic+reasoning_gym:chain_sum", "--task_kwargs", '{"reasoning_gym:chain_sum": {"max_terms": 2, "max_digits": 1}}',
                     "--eval_size", "3", "--num_samples", "2", "--max_new_tokens", "4",
                     "--output_file", str(output)]) == 0
    metrics = json.loads(output.read_text())
    assert metrics["num_prompts"] == 6
    assert metrics["num_prompts/arithmetic"] == 3 and metrics["num_prompts/reasoning_gym:chain_sum"] == 3
    assert {"accuracy/arithmetic", "cons@2/reasoning_gym:chain_sum", "pass@2/arithmetic"} <= set(metrics)
