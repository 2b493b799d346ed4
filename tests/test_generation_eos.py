"""Sampling stops at every end token the model declares, not only the tokenizer's EOS."""

from transformers import AutoModelForCausalLM, AutoTokenizer

from r1_trl.generation import SamplingSettings, generate
from r1_trl.models.tiny import random_tiny_model


def test_generation_stops_at_the_eos_tokens_of_the_generation_config(tmp_path):
    path = random_tiny_model(tmp_path / "model")
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path)
    greedy = SamplingSettings(num_samples=1, max_new_tokens=8, temperature=0.0)
    prompt = ["What is 2 + 3?"]
    free = generate(model, tokenizer, prompt, greedy)[0][0]
    ids = tokenizer(free, add_special_tokens=False)["input_ids"]
    assert len(ids) > 2, free  # the untrained model rambles up to the budget
    # A chat model lists its end-of-turn token in generation_config.eos_token_id besides the tokenizer's EOS.
    model.generation_config.eos_token_id = [tokenizer.eos_token_id, ids[0]]
    stopped = generate(model, tokenizer, prompt, greedy)[0][0]
    assert free.startswith(stopped) and len(stopped) < len(free), (free, stopped)  # ends at its first token
