"""Load the model under evaluation: a base checkpoint, optionally in 8-bit, optionally with a PEFT
adapter that extended the vocabulary. Every failure is a `UserError` naming the path and the fix.

Vocabulary rules (sizes always come from the files, never from constants):
- the tokenizer may not have more tokens than the model has embedding rows (they would index past
  the embedding matrix);
- an adapter saved with its embedding layers (vocabulary extension: ``modules_to_save`` or
  ``save_embedding_layers``) fixes the vocabulary size: the base is resized to it before the
  adapter is attached, and the tokenizer must be the extended one (more tokens than the base has
  rows, at most as many as the adapter has).

Names go through :mod:`persianllama.hub`: a local folder is checked for what it must hold before
anything loads, a hub id that cannot be reached (offline, or no such repository) is one line saying
which and how to pass a local folder, and an adapter given by hub id is fetched as a snapshot.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from persianllama import hub
from persianllama.errors import UserError

log = logging.getLogger("persianllama.eval")

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model")


@dataclass
class LoadedModel:
    model: Any
    tokenizer: Any
    info: dict[str, Any] = field(default_factory=dict)


_first_line = hub.first_line


def pick_device(device: str | None) -> str:
    import torch

    if device:
        return device
    return "cuda" if torch.cuda.is_available() else "cpu"


def _torch_dtype(dtype: str):
    import torch

    if dtype == "auto":
        return "auto"
    from persianllama.run.device import TORCH_DTYPES

    name = TORCH_DTYPES.get(dtype, dtype)  # fp32/bf16/fp16 (the torch names are accepted too)
    if name not in TORCH_DTYPES.values():
        raise UserError(f"dtype {dtype!r} is not one of auto, fp32, bf16, fp16")
    return getattr(torch, name)


def load_tokenizer(source: str):
    from transformers import AutoTokenizer

    return hub.from_pretrained(AutoTokenizer.from_pretrained, source, "tokenizer")


def adapter_embedding_rows(adapter_dir: str | Path) -> int | None:
    """Rows of the input embedding saved inside a PEFT adapter, or None if it saved none (the adapter-folder
    module's reading, shared with the LoRA track and merge)."""
    from persianllama.lora.adapter import embedding_rows

    return embedding_rows(adapter_dir)


def _read_adapter_config(adapter: str | Path) -> dict:
    path = hub.check_local(adapter, "adapter")
    cfg = path / "adapter_config.json"
    try:
        return json.loads(cfg.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise UserError(f"{cfg}: not valid JSON ({e.msg} at line {e.lineno})") from None


def load_model(
    model: str,
    *,
    adapter: str | None = None,
    tokenizer: str | None = None,
    load_in_8bit: bool = False,
    dtype: str = "auto",
    device: str | None = None,
) -> LoadedModel:
    """Base model (+ adapter) and the tokenizer to evaluate it with, in eval mode on `device`."""
    from transformers import AutoModelForCausalLM

    device = pick_device(device)
    hub.check(model, "model")  # a missing or half-copied model is named before the tokenizer loads
    adapter_name = adapter
    if adapter:  # a local folder, or the snapshot of a hub id (adapters are small and read as files)
        adapter = str(hub.local_dir(adapter, "adapter"))
    adapter_cfg = _read_adapter_config(adapter) if adapter else None
    if tokenizer:
        tok_source = tokenizer
    elif adapter and any((Path(adapter) / f).is_file() for f in TOKENIZER_FILES):
        tok_source = adapter  # an extended tokenizer is saved next to its adapter
    else:
        tok_source = model
        if Path(model).is_dir() and not any((Path(model) / f).is_file() for f in hub.TOKENIZER_FILES):
            raise UserError(f"{model}: the model folder holds no tokenizer (none of {', '.join(hub.TOKENIZER_FILES)}); "
                            "pass --tokenizer DIR_OR_HUB_ID")
    tok = load_tokenizer(tok_source)

    kwargs: dict[str, Any] = {"dtype": _torch_dtype(dtype)}
    if load_in_8bit:
        logging.getLogger("bitsandbytes").setLevel(logging.ERROR)
        try:
            import bitsandbytes  # noqa: F401
            from transformers import BitsAndBytesConfig
        except Exception as e:  # noqa: BLE001
            raise UserError(f"--load-in-8bit needs bitsandbytes>=0.50 ({_first_line(e)})") from None
        kwargs["quantization_config"] = BitsAndBytesConfig(load_in_8bit=True)
        kwargs["device_map"] = {"": device}
    where = f" in 8-bit on {device}" if load_in_8bit else ""
    base = hub.from_pretrained(AutoModelForCausalLM.from_pretrained, model, "model", where, **kwargs)
    if load_in_8bit and not any("8bit" in type(m).__name__ for m in base.modules()):
        raise UserError(f"cannot load model {model} in 8-bit on {device}: no layer was quantized")
    if not load_in_8bit:
        try:
            base = base.to(device)
        except Exception as e:  # noqa: BLE001 - e.g. cuda asked for on a machine without it
            raise UserError(f"cannot move model {model} to device {device}: {_first_line(e)}") from None

    n_tokens = len(tok)
    rows = base.get_input_embeddings().weight.shape[0]
    info: dict[str, Any] = {
        "model": model,
        "adapter": adapter_name,
        "tokenizer": tok_source,
        "load_in_8bit": load_in_8bit,
        "dtype": str(next(base.parameters()).dtype),
        "device": device,
        "tokenizer_size": n_tokens,
        "base_embedding_rows": rows,
    }
    if adapter:
        adapter_rows = adapter_embedding_rows(adapter)
        info["adapter_embedding_rows"] = adapter_rows
        info["adapter_base_model"] = (adapter_cfg or {}).get("base_model_name_or_path")
        if adapter_rows is not None and adapter_rows != rows:
            if not rows < n_tokens <= adapter_rows:
                raise UserError(
                    f"vocabulary mismatch: adapter {adapter} was trained with {adapter_rows} token "
                    f"embeddings "
                    f"(base {model} has {rows}), but tokenizer {tok_source} has {n_tokens} tokens; "
                    f"pass the adapter's extended tokenizer with --tokenizer"
                )
            base.resize_token_embeddings(
                adapter_rows, mean_resizing=False
            )  # the adapter's rows replace these
            rows = adapter_rows
        elif n_tokens > rows:
            raise UserError(
                f"vocabulary mismatch: tokenizer {tok_source} has {n_tokens} tokens but adapter {adapter} "
                f"saved no embeddings and base {model} has only {rows}; an adapter that extends the "
                f"vocabulary must be saved "
                f"with its embedding layers (modules_to_save=['embed_tokens', 'lm_head'])"
            )
        from peft import PeftModel

        try:
            net = PeftModel.from_pretrained(base, adapter, is_trainable=False)
        except Exception as e:  # noqa: BLE001
            raise UserError(f"cannot load adapter {adapter} onto {model}: {_first_line(e)}") from None
    else:
        if n_tokens > rows:
            raise UserError(
                f"vocabulary mismatch: tokenizer {tok_source} has {n_tokens} tokens but model {model} "
                f"has {rows} token embeddings; evaluate an extended tokenizer with the model or "
                f"adapter trained for it"
            )
        net = base
    net.eval()
    info["embedding_rows"] = rows
    info["parameters"] = sum(p.numel() for p in net.parameters())
    return LoadedModel(net, tok, info)
