#!/usr/bin/env bash
# Post-training: instruction-tune a model on Persian chat data (LoRA on a frozen base; 8-bit/4-bit optional).
#
#   BASE_MODEL=runs/zero/hf DATA=corpora/sample/instructions/conversations.jsonl OUTPUT_DIR=runs/sft scripts/sft.sh
#   BASE_MODEL=/models/llama-2-13b ADAPTER=runs/lora-13b/adapter DATA=chats.jsonl RECIPE=configs/sft_13b_lora.yaml \
#       scripts/sft.sh model.quantization=8bit
#   scripts/sft.sh --help                         # every setting with its default, rule and help line
#
# Environment variables (unset or empty: the recipe's value). Each maps to one setting; arguments after them are
# passed through, so a key=value argument wins over the variable.
#
#   RECIPE       recipe YAML                                   (configs/sft_tiny.yaml)
#   BASE_MODEL   the model to tune: HF directory or hub id     (model.base)
#   ADAPTER      continue from this LoRA adapter on its base   (lora.init_adapter; its tokenizer is used)
#   TOKENIZER    tokenizer                                     (model.tokenizer)
#   DATA         one data file/folder or HF dataset id         (data.files)
#   OUTPUT_DIR   run folder: adapter/, hf/, checkpoints/       (out_dir)
#   MAX_STEPS    optimizer steps                               (train.max_steps)
#   RESUME       auto | none | a checkpoint folder             (checkpoint.resume)
#   PYTHON       the Python to run                             (.venv/bin/python if present, else python3)
#
# Every value is passed to Python as one quoted argument and never evaluated by the shell. SIGTERM makes the
# run save a checkpoint and exit 143; run the same command again to resume.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
RECIPE="${RECIPE:-$root/configs/sft_tiny.yaml}"
if [[ -z "${PYTHON:-}" ]]; then
    if [[ -x "$root/.venv/bin/python" ]]; then PYTHON="$root/.venv/bin/python"; else PYTHON="python3"; fi
fi

args=(sft --recipe "$RECIPE")
add() { if [[ -n "${2:-}" ]]; then args+=("$1" "$2"); fi; }
add --base "${BASE_MODEL:-}"
add --adapter "${ADAPTER:-}"
add --tokenizer "${TOKENIZER:-}"
add --data "${DATA:-}"
add --output "${OUTPUT_DIR:-}"
add --steps "${MAX_STEPS:-}"
add --resume "${RESUME:-}"

export TOKENIZERS_PARALLELISM="${TOKENIZERS_PARALLELISM:-false}"
exec "$PYTHON" -m persianllama.cli "${args[@]}" "$@"
