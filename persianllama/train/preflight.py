"""The Zero track's checks before any long work starts: required settings, vocabulary and context sizes.

(Device, precision and batch arithmetic are the run core's: `persianllama.run`.) Each check turns a bad
setting into one `UserError` that names the setting, the value, and what to change. Nothing here allocates
a model, starts a process group or reads the corpus, so a bad run fails within seconds instead of after
packing, a JIT build, or a rendezvous timeout.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from persianllama.errors import UserError
from persianllama.train.config import ModelConfig, PretrainConfig

# --- model sizes -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sizes:
    vocab_size: int
    max_positions: int


def model_sizes(model: ModelConfig, tokenizer, seq_len: int, tokenizer_path: str = "") -> Sizes:
    """Vocabulary and context length, checked against the tokenizer and train.seq_len."""
    n_tok = len(tokenizer)
    where = f" ({tokenizer_path})" if tokenizer_path else ""
    if model.init_from:
        from transformers import AutoConfig

        path = Path(model.init_from)
        if not (path / "config.json").is_file():
            raise UserError(f"model.init_from={path} is not an HF model directory (no config.json)")
        hf = AutoConfig.from_pretrained(str(path))
        vocab, positions = int(hf.vocab_size), int(hf.max_position_embeddings)
        if vocab < n_tok:
            raise UserError(
                f"vocabulary mismatch: the model in {path} has {vocab} embedding rows but the tokenizer{where} has "
                f"{n_tok} tokens, so ids {vocab}..{n_tok - 1} have no embedding; resize the model's embeddings "
                "to the tokenizer (the tokenizer stage's extend step) or use the tokenizer it was trained with"
            )
    else:
        if model.vocab_size is not None:
            vocab = model.vocab_size
            if vocab < n_tok:
                raise UserError(
                    f"vocabulary mismatch: model.vocab_size={vocab} but the tokenizer{where} has {n_tok} tokens, "
                    f"so ids {vocab}..{n_tok - 1} would have no embedding; leave model.vocab_size unset to take it "
                    "from the tokenizer"
                )
        else:
            m = max(1, model.pad_vocab_to_multiple_of)
            vocab = (n_tok + m - 1) // m * m
        positions = model.max_position_embeddings or seq_len
    if seq_len > positions:
        raise UserError(
            f"train.seq_len={seq_len} is above the model's max_position_embeddings={positions}; lower "
            "train.seq_len or raise model.max_position_embeddings"
        )
    return Sizes(vocab, positions)


def check_required(cfg: PretrainConfig) -> None:
    """What the recipe must name (ranges and orderings of single settings were checked when it was loaded)."""
    if not cfg.tokenizer:
        raise UserError("no tokenizer: set tokenizer=DIR (the tokenizer stage's output) in the recipe or as key=value")
    if not cfg.data.corpus:
        raise UserError("no corpus: set data.corpus=DIR (the corpus builder's output, or .parquet/.txt files)")
