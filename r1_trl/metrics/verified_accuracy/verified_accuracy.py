"""verified_accuracy: pass@1 of k sampled completions per prompt, each verified against the prompt's reference."""

import datasets
import evaluate

from r1_trl.evaluation import reference_metrics

_DESCRIPTION = """The share of correct completions per prompt (pass@1 as the mean over the k samples), averaged
over prompts. A completion is correct when its final answer equals the gold (math-verify; letters for
multiple choice), when its last Python block passes all tests (verifier="code", in r1-trl's sandbox), or when
the reasoning-gym entry's verifier gives it full marks (verifier="reasoning_gym"). Same code as `r1-trl eval`."""

_KWARGS_DESCRIPTION = """
Args:
    predictions: list of lists of str, the k completions of every prompt (same k for all).
    references: list of str, one per prompt: the gold answer, a verification_info JSON (code) or a
        reasoning-gym entry JSON (reasoning_gym).
    verifier: "accuracy" (default), "code" or "reasoning_gym".
Returns:
    accuracy: float in [0, 1].
Examples:
    >>> metric = r1_trl.metrics.load("verified_accuracy")  # evaluate.load of the module shipped in the package
    >>> metric.compute(predictions=[["<answer>4</answer>", "<answer>5</answer>"]], references=["4"])
    {'accuracy': 0.5}
"""

_CITATION = """@article{deepseekai2025r1, title={DeepSeek-R1: Incentivizing Reasoning Capability in LLMs via
Reinforcement Learning}, author={DeepSeek-AI}, journal={arXiv preprint arXiv:2501.12948}, year={2025}}"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class VerifiedAccuracy(evaluate.Metric):
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
        return {"accuracy": reference_metrics(predictions, references, verifier)["accuracy"]}
