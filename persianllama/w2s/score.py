"""Class scores from a causal LM's own output layer: no new classification head.

Each class is a label word of the task (the eval harness's choices: "درست", "نادرست", "نامشخص" ...). A class's
score is how likely the model finds its label word after the prompt:

- ``last_token``: one forward pass per row; the logit, at the prompt's last token, of the label word's first
  token. Used when the label words start with different tokens in this model's tokenizer.
- ``label_sequence``: one sequence per (row, label word); the sum of the log-probabilities of the word's tokens
  after the prompt (lm-eval's multiple-choice log-likelihood, so an untrained model's accuracy here is the
  harness's zero-shot ``acc``). Needed when two label words share their first token (sentiment's "خیلی منفی" and
  "خیلی مثبت" do in most tokenizers); C times the compute.

Softmax over the class scores is the model's class distribution (the weak model's soft labels, the strong
model's predictions in the confidence loss).

Why label words and not a new head on the last hidden state: a fresh head starts random and must be learned from
half the labels, which blurs the comparison between a weak and a strong *pretrained* model (the reference code
adds such a head; with LoRA on small Persian data the head would dominate). Label words start from what the
model already knows, need no extra parameters beside the LoRA matrices (so an adapter folder is the whole
result, loadable by `persianllama chat`/merge like any other), work the same for any causal LM, a base or a base +
PEFT adapter, and each model reads the words with its own tokenizer, so weak and strong models may have different
vocabularies.
"""

from __future__ import annotations

from typing import Literal

Scoring = Literal["auto", "last_token", "label_sequence"]


def resolve_mode(scoring: str, choice_tokens: list[list[int]]) -> str:
    """The scoring a model uses: auto is last_token when the label words' first tokens differ."""
    distinct = len({w[0] for w in choice_tokens}) == len(choice_tokens)
    if scoring == "auto":
        return "last_token" if distinct else "label_sequence"
    if scoring == "last_token" and not distinct:
        from persianllama.errors import UserError

        raise UserError("scoring=last_token: two label words start with the same token in this tokenizer, so "
                        "their first tokens cannot tell the classes apart; use scoring=label_sequence (or auto)")
    return scoring


def class_logits(net, inputs: dict, mode: str, n_classes: int):
    """``[rows, classes]`` scores of a collated micro-batch (`persianllama.w2s.data.collate`), in fp32."""
    import torch

    out = net(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"])
    logits = out.logits
    if mode == "last_token":
        rows = torch.arange(logits.shape[0], device=logits.device)
        last = logits[rows, inputs["last"]]  # [rows, vocab]
        return last[:, inputs["choice_ids"]].float()
    target = inputs["labels"][:, 1:]  # logits[t] predicts token t + 1
    r, t = (target != -100).nonzero(as_tuple=True)  # only the label words' positions
    picked = logits[:, :-1][r, t].float()  # [positions, vocab]
    logp = picked.gather(-1, target[r, t].unsqueeze(-1)).squeeze(-1) - torch.logsumexp(picked, dim=-1)
    scores = torch.zeros(logits.shape[0], device=logits.device, dtype=torch.float32).index_add(0, r, logp)
    return scores.view(-1, n_classes)
