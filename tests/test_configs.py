import pytest

from r1_trl.configs import R1GRPOConfig, R1SFTConfig, RecipeError


def grpo(**overrides):
    base = dict(output_dir="/tmp/r1-trl-test", use_cpu=True, report_to="none", per_device_train_batch_size=8,
                num_generations=4)
    return R1GRPOConfig(**{**base, **overrides})


def test_defaults_are_cpu_safe_and_keep_trl_fields():
    config = grpo(loss_type="grpo", beta=0.001, epsilon_high=0.28)
    assert config.bf16 is False  # no GPU here
    assert (config.loss_type, config.beta, config.epsilon_high) == ("grpo", 0.001, 0.28)
    assert config.reward_funcs == ["accuracy", "format"]


@pytest.mark.parametrize(
    ("overrides", "field_name"),
    [
        ({"reward_funcs": ["accuracy", "no_such_reward"]}, "reward_funcs"),
        ({"reward_funcs": []}, "reward_funcs"),
        ({"reward_weights": [1.0]}, "reward_weights"),
        ({"reward_kwargs": {"cosine_scaled": {}}}, "reward_kwargs"),
        ({"reward_kwargs": "{not json"}, "reward_kwargs"),
        ({"prompt_template": "llama"}, "prompt_template"),
        ({"model_name_or_path": ""}, "model_name_or_path"),
        ({"dataset_name": ""}, "dataset_name"),
        ({"eval_size": 0}, "eval_size"),
        ({"train_size": 0}, "train_size"),
        ({"hub_layout": "tree"}, "hub_layout"),
        ({"use_vllm": True}, "use_vllm"),
        ({"per_device_train_batch_size": 6, "num_generations": 4}, "num_generations"),
    ],
)
def test_bad_fields_fail_before_compute_naming_the_field(overrides, field_name):
    with pytest.raises(RecipeError, match=field_name):
        grpo(**overrides)


def test_unknown_reward_lists_known_ones():
    with pytest.raises(RecipeError, match="known: .*accuracy"):
        grpo(reward_funcs=["acuracy"])


def test_reward_kwargs_json_string_from_the_command_line():
    config = grpo(reward_funcs=["accuracy", "cosine_scaled"], reward_kwargs='{"cosine_scaled": {"max_len": 64}}')
    assert config.reward_kwargs == {"cosine_scaled": {"max_len": 64}}


def test_sft_config_shares_the_stage_fields():
    config = R1SFTConfig(output_dir="/tmp/r1-trl-test", use_cpu=True, report_to="none", prompt_template="chat")
    assert config.bf16 is False and config.prompt_template == "chat"
    with pytest.raises(RecipeError, match="prompt_template"):
        R1SFTConfig(output_dir="/tmp/x", prompt_template="nope")
