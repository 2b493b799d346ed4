"""The public reading of completions and gold answers that the rewards use, for code outside ``reward_funcs``.

The training stages and the evaluation read completions exactly as the rewards do (same text of a
conversational completion, same final answer), so a metric and the reward it reports on never disagree.
These names are re-exported from the private modules that implement them; import them from here.

    >>> from reward_funcs.extraction import completion_answer, completion_to_text, gold_choice
    >>> completion_answer(completion_to_text([{"role": "assistant", "content": "<answer>14</answer>"}]))
    '14'
    >>> gold_choice("(B)")
    'B'
"""

from reward_funcs._math_extract import completion_answer, gold_choice
from reward_funcs._text import Completion, completion_to_text

__all__ = ["Completion", "completion_answer", "completion_to_text", "gold_choice"]
