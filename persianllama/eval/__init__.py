"""Persian evaluation: bits-per-byte on held-out text and Persian benchmark tasks on lm-eval.

- `bpb.evaluate_bpb`: bits per UTF-8 byte and word perplexity with rolling windows; the same
  function serves in-training validation and `persianllama evaluate`.
- `tasks/`: lm-eval task YAMLs (+ helpers) for ParsiNLU, FarsTail, PersianQA (cloze and chat-mode
  variants) and Persian<->English translation; usable with plain ``lm_eval --include_path
  persianllama/eval/tasks``.
- `builtin`: lm-eval's own Persian tasks (Belebele, Global-MMLU, INCLUDE, Global PIQA, BIG-bench
  idioms) by name, with local copies of their hub data.
- `runner`: loads a model (base, PEFT adapter, 8-bit) and calls ``lm_eval.simple_evaluate``.
- `analysis`: truncated prompts and dropped rows, per-class F1, majority-class and chance baselines.
- `leaderboard`: main metric and family of each task, the per-family summary row.
- `report`: results.json, report.md, bar chart, and ``--compare``.
- `commands`: ``--lm-eval-command`` (the same run as plain lm_eval lines) and ``--list-tasks``.

Modules import torch/transformers/lm-eval inside functions where they can, so ``--help`` stays fast.
"""
