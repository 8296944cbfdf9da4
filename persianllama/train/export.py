"""Export a DeepSpeed checkpoint as a Hugging Face model directory with a model card.

The output loads with ``AutoModelForCausalLM.from_pretrained`` and ``AutoTokenizer.from_pretrained``:

    config.json  generation_config.json  model.safetensors (sharded when large)
    tokenizer files   README.md (model card)   persianllama_training.json (the checkpoint's state)

Weights come from DeepSpeed's fp32 master copy (``zero_to_fp32``, which merges the ZeRO shards of
every rank) and are cast to the training precision unless told otherwise. The model is assembled on
PyTorch's meta device and the merged tensors are assigned into it, so exporting a 7B model needs
memory for the fp32 state dict and nothing more.
"""

from __future__ import annotations

import contextlib
import json
import logging
from pathlib import Path

from persianllama.errors import UserError
from persianllama.run.checkpoint import DEEPSPEED_ALLOWED, resolve_checkpoint, safe_torch_load
from persianllama.run.device import TORCH_DTYPES as DTYPES
from persianllama.run.outputs import prepare_output

log = logging.getLogger(__name__)


@contextlib.contextmanager
def _safe_zero_to_fp32():
    """DeepSpeed's zero_to_fp32 calls ``torch.load(weights_only=False)``; give that module a torch whose
    `load` is `safe_torch_load`, for the duration of the export only."""
    import torch
    from deepspeed.utils import zero_to_fp32

    class SafeTorch:
        def __getattr__(self, name):
            return getattr(torch, name)

        @staticmethod
        def load(f, map_location=None, weights_only=None, mmap=None, **kwargs):
            return safe_torch_load(f, allow=DEEPSPEED_ALLOWED, map_location=map_location, mmap=mmap)

    saved = zero_to_fp32.torch
    zero_to_fp32.torch = SafeTorch()
    try:
        yield zero_to_fp32
    finally:
        zero_to_fp32.torch = saved


def fp32_state_dict(ckpt: Path, zero_stage: int) -> dict:
    """Full fp32 weights of a checkpoint: DeepSpeed's fp32 master copy, merged over the ZeRO shards.

    ZeRO stage 0 in fp32 keeps no separate master copy (the module's weights are the weights); with
    bf16 it does, and `zero_to_fp32` reads it.
    """
    import torch

    model_file = ckpt / "mp_rank_00_model_states.pt"
    module = None
    if zero_stage == 0 and model_file.is_file():
        saved = safe_torch_load(model_file, allow=DEEPSPEED_ALLOWED)
        module = saved["module"]
        if all(v.dtype == torch.float32 for v in module.values() if v.is_floating_point()):
            return module
        masters = _stage0_masters(module, saved.get("optimizer"))
        if masters is not None:
            return masters
    try:
        with _safe_zero_to_fp32() as z:
            sd = z.get_fp32_state_dict_from_zero_checkpoint(str(ckpt.parent), tag=ckpt.name)
        return {k: v.float() for k, v in sd.items()}
    except UserError:
        raise
    except Exception as e:  # zero_to_fp32 raises many types for files it does not expect
        if module is None:
            raise UserError(f"cannot read the weights of checkpoint {ckpt}: {e}") from e
        log.warning("no fp32 master copy in %s (%s); exporting the module's own weights", ckpt, e)
        return {k: v.float() for k, v in module.items()}


def _stage0_masters(module: dict, optimizer) -> dict | None:
    """bf16/fp16 without ZeRO: the fp32 master weights, per optimizer group, back under their names.

    The groups are `persianllama.train.model.param_groups`' (matrices, then the rest), each in
    parameter order; tied weights appear once. None if the layout does not match.
    """
    groups = (optimizer or {}).get("fp32_groups")
    if not groups:
        return None
    seen, names = set(), []
    for name, t in module.items():
        if t.data_ptr() not in seen:  # a tied weight is saved once, under two names
            seen.add(t.data_ptr())
            names.append(name)
    order = [n for n in names if module[n].dim() >= 2] + [n for n in names if module[n].dim() < 2]
    flat = [t for g in groups for t in g]
    if len(flat) != len(order) or any(t.numel() != module[n].numel() for n, t in zip(order, flat)):
        return None
    out = {n: t.view(module[n].shape).float() for n, t in zip(order, flat)}
    for name, t in module.items():  # the second name of a tied weight
        out.setdefault(name, next(out[n] for n in names if module[n].data_ptr() == t.data_ptr()))
    return out


def _tokenizer_dir(state: dict, ckpt: Path, override: str | None) -> Path:
    for cand in (override, state.get("tokenizer_dir"), state.get("tokenizer_source")):
        if cand and Path(cand).is_dir():
            return Path(cand)
    raise UserError(f"the tokenizer of {ckpt} was not found (looked at {state.get('tokenizer_dir')}); "
                    "pass --tokenizer DIR")


def export(source: str | Path, out: str | Path | None = None, *, dtype: str = "auto",
           tokenizer: str | None = None, overwrite: bool = False, card=None) -> Path:
    """Write the HF directory for `source` (a run folder, its checkpoints/ or a step_N folder); return it.

    A non-empty `out` is refused unless `overwrite`; a folder holding the checkpoints, the tokenizer or a
    run is never replaced (`persianllama.run.outputs.prepare_output`)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, GenerationConfig

    ckpt, state = resolve_checkpoint(source)
    state = {k: v for k, v in state.items() if k != "manifest"}
    out = Path(out) if out else ckpt.parent.parent / "hf"
    precision = state.get("precision", "fp32") if dtype == "auto" else dtype
    if precision not in DTYPES:
        raise UserError(f"export dtype must be auto, fp32, bf16 or fp16, got {dtype}")
    torch_dtype = getattr(torch, DTYPES[precision])
    tok_dir = _tokenizer_dir(state, ckpt, tokenizer)
    target = prepare_output(out, inputs=[ckpt.parent, tok_dir], overwrite=overwrite, what="export")

    model_cfg = dict(state["model_config"])
    config = AutoConfig.for_model(model_cfg.pop("model_type", "llama"), **model_cfg)
    config.use_cache = True  # inference
    config.dtype = DTYPES[precision]

    log.info("exporting %s (step %s) to %s as %s", ckpt, state.get("step"), out, precision)
    sd = {k: v.to(torch_dtype) for k, v in fp32_state_dict(ckpt, int(state.get("zero_stage", 0))).items()}
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config, dtype=torch_dtype)
    result = model.load_state_dict(sd, strict=False, assign=True)
    tied = {"lm_head.weight"} if config.tie_word_embeddings else set()
    missing = set(result.missing_keys) - tied
    if missing or result.unexpected_keys:
        raise UserError(f"checkpoint {ckpt} does not match its model config: missing {sorted(missing)[:5]}, "
                        f"unexpected {sorted(result.unexpected_keys)[:5]}")
    if config.tie_word_embeddings:
        model.tie_weights()

    try:
        tmp = target.tmp
        model.save_pretrained(str(tmp), safe_serialization=True)
        tok = AutoTokenizer.from_pretrained(str(tok_dir))
        tok.save_pretrained(str(tmp))
        GenerationConfig(bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                         pad_token_id=tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id,
                         ).save_pretrained(str(tmp))
        (tmp / "persianllama_training.json").write_text(json.dumps(state, indent=2, ensure_ascii=False) + "\n",
                                                        encoding="utf-8")
        name = out.parent.name if out.name == "hf" else out.name
        (tmp / "README.md").write_text((card or model_card)(state, config, precision, name), encoding="utf-8")
    except BaseException:
        target.abort()
        raise
    return target.commit()


def _n(x) -> str:
    return f"{x:,}" if isinstance(x, int) else "?"


def _fmt(x, digits: int = 4) -> str:
    return "not measured" if x is None else f"{x:.{digits}f}"


def model_card(state: dict, config, precision: str, name: str) -> str:
    """A Hugging Face model card: what the model is, what it saw, how well it does on held-out text."""
    ev = state.get("last_eval") or {}
    data = state.get("data") or {}
    params = state.get("model_params") or {}
    corpus = data.get("corpus") or []
    corpus_txt = "\n".join(f"  - `{c}`" for c in corpus[:10]) + ("\n  - ..." if len(corpus) > 10 else "")
    eval_step = state.get("last_eval_step")
    total = params.get("total")
    return f"""---
language:
- fa
library_name: transformers
pipeline_tag: text-generation
tags:
- persian
- llama
- persianllama
---

# {name}

A LLaMA-architecture causal language model pretrained from scratch on Persian text with
PersianLLaMA (the Zero track: `deepspeed scripts/pretrain.py`).

## Training data

- Corpus:
{corpus_txt or "  - (not recorded)"}
- Packed into blocks of {state.get("seq_len")} tokens: {_n(data.get("train_tokens"))} training tokens from
  {_n(data.get("train_docs"))} documents (EOS between documents, no padding).
- Held out for validation, by document: {data.get("val_docs", "?")} documents.

## Training

| | |
|---|---|
| optimizer steps | {state.get("step")} |
| tokens seen | {_n(state.get("tokens_seen"))} |
| sequences per step | {state.get("global_batch_size")} x {state.get("seq_len")} tokens |
| precision | {state.get("precision")} (exported as {precision}) |
| DeepSpeed | ZeRO stage {state.get("zero_stage")}, {state.get("world_size")} rank(s) |
| learning rate | {state.get("lr")} peak, warmup {state.get("warmup_steps")} steps, cosine to {state.get("min_lr")} |

## Validation (held-out documents)

| | |
|---|---|
| loss (nats/token) | {_fmt(ev.get("loss"))} |
| bits per byte | {_fmt(ev.get("bits_per_byte"))} |
| word perplexity | {_fmt(ev.get("word_perplexity"), 2)} |
| measured at step | {eval_step if eval_step is not None else "n/a"} on {ev.get("documents", 0)} documents |

Bits per byte divides the total loss by the UTF-8 bytes of the text, so it compares models whose
tokenizers differ.

## Model

| | |
|---|---|
| parameters | {_n(total)} |
| layers / hidden / heads / kv heads | {config.num_hidden_layers} / {config.hidden_size} / {config.num_attention_heads} / {config.num_key_value_heads} |
| MLP width | {config.intermediate_size} |
| vocabulary | {config.vocab_size} |
| context | {config.max_position_embeddings} |

## Use

```python
from transformers import AutoModelForCausalLM, AutoTokenizer

tok = AutoTokenizer.from_pretrained("{name}")
model = AutoModelForCausalLM.from_pretrained("{name}")
ids = tok("زبان فارسی", return_tensors="pt")
print(tok.decode(model.generate(**ids, max_new_tokens=40)[0]))
```
"""


def describe_export(out: Path) -> str:
    info = json.loads((out / "persianllama_training.json").read_text(encoding="utf-8"))
    return f"{out}: step {info.get('step')}, {info.get('tokens_seen', 0):,} tokens seen"
