"""cons_at_k: majority-vote (self-consistency) accuracy over k samples per prompt."""

import datasets
import evaluate

from r1_trl.evaluation import reference_metrics

_DESCRIPTION = """cons@k: for each prompt, the most frequent extracted final answer among its k samples (ties: the
first seen; code: the program) is the prediction, correct when a sample giving it is verified correct. Averaged
over prompts. DeepSeek-R1 reports cons@64 on AIME. Same code as `r1-trl eval`."""

_KWARGS_DESCRIPTION = """
Args:
    predictions: list of lists of str, the k completions of every prompt (same k for all).
    references: list of str, one per prompt (see verified_accuracy).
    verifier: "accuracy" (default), "code" or "reasoning_gym".
Returns:
    cons@k: float in [0, 1].
Examples:
    >>> metric = r1_trl.metrics.load("cons_at_k")  # evaluate.load of the module shipped in the package
    >>> metric.compute(predictions=[["<answer>5</answer>", "<answer>4</answer>", "<answer>4</answer>"]], references=["4"])
    {'cons@3': 1.0}
"""

_CITATION = """@article{wang2022selfconsistency, title={Self-Consistency Improves Chain of Thought Reasoning in
Language Models}, author={Wang, Xuezhi and others}, journal={arXiv preprint arXiv:2203.11171}, year={2022}}"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class ConsAtK(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {"predictions": datasets.Sequence(datasets.Value("string")), "references": datasets.Value("string")}
            ),
        )

    def _compute(self, predictions, references, verifier="accuracy"):
        k = len(predictions[0])
        return {f"cons@{k}": reference_metrics(predictions, references, verifier)[f"cons@{k}"]}
