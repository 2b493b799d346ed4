from itertools import islice

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from r1_trl.models import build_tiny_tokenizer, random_tiny_model
from r1_trl.models.corpus import corpus_documents, tagged_completion
from r1_trl.models.tiny import REASONING_TAGS, TinyBaseSpec, packed_batches


def _tokenizer():
    return build_tiny_tokenizer(list(islice(corpus_documents(0, (2,), 0.3, 0.5), 500)), 512)


def test_tokenizer_round_trips_and_keeps_tags_whole():
    tokenizer = _tokenizer()
    text = " <think>\n3 * 4 = 12\n2 + 12 = 14\n</think>\n<answer>\n14\n</answer> ünïcode 你好"
    ids = tokenizer(text)["input_ids"]
    assert tokenizer.decode(ids) == text
    for tag in REASONING_TAGS:
        assert len(tokenizer(tag, add_special_tokens=False)["input_ids"]) == 1
        # tags must survive skip_special_tokens: TRL decodes completions that way
        assert tag in tokenizer.decode(tokenizer(tag)["input_ids"], skip_special_tokens=True)
    assert tokenizer.eos_token_id != tokenizer.pad_token_id


def test_chat_template_marks_assistant_tokens_for_assistant_only_loss():
    tokenizer = _tokenizer()
    messages = [{"role": "user", "content": "What is 1 + 1?"}, {"role": "assistant", "content": "2"}]
    rendered = tokenizer.apply_chat_template(messages, tokenize=True, return_assistant_tokens_mask=True,
                                             return_dict=True)
    mask = rendered["assistant_masks"]
    assistant_text = tokenizer.decode([t for t, m in zip(rendered["input_ids"], mask, strict=True) if m])
    assert assistant_text.strip().startswith("2")
    assert 0 < sum(mask) < len(mask)
    prompt = tokenizer.apply_chat_template(messages[:1], tokenize=False, add_generation_prompt=True)
    assert prompt.endswith("Assistant:")


def test_random_model_saves_and_loads_like_a_hub_model(tmp_path):
    path = random_tiny_model(tmp_path / "m")
    model = AutoModelForCausalLM.from_pretrained(path)
    tokenizer = AutoTokenizer.from_pretrained(path)
    assert model.config.model_type == "qwen2"
    out = model(**tokenizer(["What is 2 + 3?"], return_tensors="pt"))
    assert out.logits.shape[-1] == len(tokenizer)


def test_corpus_is_mostly_untagged_and_tagged_docs_are_well_formed():
    docs = list(islice(corpus_documents(3, (2,), template_share=0.3, tagged_share=0.5), 2000))
    tagged = [d for d in docs if "Assistant: <think>" in d]
    templated = [d for d in docs if d.startswith("A conversation")]
    assert 0.1 < len(tagged) / len(docs) < 0.2
    assert 0.4 < len(tagged) / len(templated) < 0.6
    assert all(d.endswith("</answer>") for d in tagged)


def test_packed_batches_have_no_padding():
    tokenizer = _tokenizer()
    batches = packed_batches(iter(["What is 1 + 1? 2"] * 1000), tokenizer, rows=4, sequence_length=16)
    batch = next(batches)
    assert batch.shape == (4, 16) and batch.dtype == torch.long
    assert (batch != tokenizer.pad_token_id).all()


def test_spec_cache_key_changes_with_the_spec():
    assert TinyBaseSpec().cache_key() != TinyBaseSpec(pretrain_steps=1).cache_key()
    assert TinyBaseSpec().cache_key() == TinyBaseSpec().cache_key()


def test_tagged_completion_format():
    from r1_trl.data.tasks.arithmetic import Problem

    problem = Problem("2 + 3 * 4", 14, ("3 * 4 = 12", "2 + 12 = 14"), 2)
    assert tagged_completion(problem) == " <think>\n3 * 4 = 12\n2 + 12 = 14\n</think>\n<answer>\n14\n</answer>"


def test_corpus_is_bilingual_and_english_dominant_in_its_prose():
    docs = list(islice(corpus_documents(5, (2,), 0.15, 0.5, english_prose_share=0.3), 4000))
    chinese_questions = [d for d in docs if "等于多少" in d]
    english_questions = [d for d in docs if "What is" in d]
    assert 0.45 < len(chinese_questions) / (len(chinese_questions) + len(english_questions)) < 0.55
    prose = [d.split("\n")[1:] for d in chinese_questions if "\n" in d and not d.startswith("A conversation")]
    sentences = [s for doc in prose for s in doc]
    english = sum(s.startswith(("First", "Then", "Check", "So the answer")) for s in sentences)
    assert 0.25 < english / len(sentences) < 0.35
    assert any(any(s.startswith("First") for s in doc) and any(s.startswith(("然后", "所以")) for s in doc)
               for doc in prose), "some Chinese solutions switch language mid-way"
    monolingual = list(islice(corpus_documents(5, (2,), 0.15, 0.5, english_prose_share=0.0), 2000))
    assert not any("等于多少" in d and "First," in d for d in monolingual)
    with pytest.raises(ValueError, match="corpus languages"):
        next(corpus_documents(5, (2,), 0.15, 0.5, languages=("fr",)))


def test_tokenizer_learns_the_chinese_phrases_of_the_corpus():
    from r1_trl.data.reasoning import readable_completion

    tokenizer = _tokenizer()
    text = readable_completion(["3 * 4 = 12", "2 + 12 = 14"], "14", "zh")
    assert len(tokenizer(text)["input_ids"]) < 0.6 * len(text.encode())
    assert "所以答案是" in {tokenizer.decode([i]) for i in tokenizer(text)["input_ids"]}
