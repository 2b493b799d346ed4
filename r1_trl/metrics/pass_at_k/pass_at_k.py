"""pass_at_k: the unbiased pass@k estimator (Chen et al., 2021) over n verified samples per prompt."""

import datasets
import evaluate

from r1_trl.evaluation import reference_metrics, reported_ks

_DESCRIPTION = """pass@k = E[1 - C(n - c, k) / C(n, k)] over prompts, with n samples per prompt of which c are
correct (verified as in verified_accuracy). pass@1 and pass@n are always reported, plus every k asked
(k <= n). Same code as `r1-trl eval`."""

_KWARGS_DESCRIPTION = """
Args:
    predictions: list of lists of str, the n completions of every prompt (same n for all).
    references: list of str, one per prompt (see verified_accuracy).
    k: list of int, the k to report besides 1 and n.
    verifier: "accuracy" (default), "code" or "reasoning_gym".
Returns:
    pass@k for each reported k.
Examples:
    >>> metric = r1_trl.metrics.load("pass_at_k")  # evaluate.load of the module shipped in the package
    >>> metric.compute(predictions=[["<answer>4</answer>", "<answer>5</answer>"]], references=["4"])
    {'pass@1': 0.5, 'pass@2': 1.0}
"""

_CITATION = """@article{chen2021codex, title={Evaluating Large Language Models Trained on Code},
author={Chen, Mark and others}, journal={arXiv preprint arXiv:2107.03374}, year={2021}}"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class PassAtK(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {"predictions": datasets.Sequence(datasets.Value("string")), "references": datasets.Value("string")}
            ),
        )

    def _compute(self, predictions, references, k=(), verifier="accuracy"):
        metrics = reference_metrics(predictions, references, verifier, pass_k=tuple(k))
        return {f"pass@{j}": metrics[f"pass@{j}"] for j in reported_ks(len(predictions[0]), tuple(k))}
