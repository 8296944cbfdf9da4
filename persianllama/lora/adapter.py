"""What a PEFT adapter folder holds, read without loading a model: used by the LoRA track, merge and eval.

An adapter folder (``OUT/adapter``, or any PEFT ``save_pretrained`` output) holds ``adapter_config.json``,
``adapter_model.safetensors`` (LoRA matrices; with a vocabulary extension also the embedding and output
weights), usually the tokenizer it was trained with, and, when written by this toolkit,
``persianllama_base.json``: the base model it was trained on (name and fingerprint), so that a merge into a
different base of the same shape is refused.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from persianllama.errors import UserError

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model")
BASE_RECORD = "persianllama_base.json"
_SHAPE_KEYS = ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
               "num_key_value_heads", "vocab_size", "model_type", "tie_word_embeddings")
_SAMPLE = 1 << 16


def read_config(adapter: str | Path) -> dict:
    path = Path(adapter) / "adapter_config.json"
    if not path.is_file():
        raise UserError(f"{adapter}: no adapter_config.json (expected a PEFT adapter folder, e.g. OUT/adapter)")
    try:
        cfg = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise UserError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(cfg, dict):
        raise UserError(f"{path}: not a PEFT adapter config (not a JSON object)")
    return cfg


def tensor_shapes(adapter: str | Path) -> dict[str, list[int]]:
    """Name -> shape of every tensor in the adapter's weights (the safetensors header only)."""
    adapter = Path(adapter)
    st = adapter / "adapter_model.safetensors"
    if st.is_file():
        from safetensors import safe_open

        try:
            with safe_open(str(st), framework="pt") as f:
                return {k: list(f.get_slice(k).get_shape()) for k in f.keys()}
        except Exception as e:  # noqa: BLE001 - a truncated or foreign file: one line naming it
            raise UserError(f"{st} cannot be read as safetensors ({str(e).splitlines()[0][:120]}); is the copy "
                            "complete?") from None
    if (adapter / "adapter_model.bin").is_file():
        from persianllama.run.checkpoint import safe_torch_load

        return {k: list(v.shape) for k, v in safe_torch_load(adapter / "adapter_model.bin").items()}
    raise UserError(f"{adapter}: no adapter_model.safetensors (or .bin); is this a PEFT adapter folder?")


def embedding_rows(adapter: str | Path) -> int | None:
    """Embedding rows the adapter was trained with (None: it saved no embeddings)."""
    for key, shape in tensor_shapes(adapter).items():
        if ("embed_tokens" in key and key.endswith("weight") and len(shape) == 2 and "lora_" not in key
                and "trainable_tokens" not in key):
            return shape[0]
    return None


def has_tokenizer(folder: str | Path) -> bool:
    return any((Path(folder) / f).is_file() for f in TOKENIZER_FILES)


def tokenizer_source(adapter: str | Path, fallback: str) -> str:
    """The tokenizer saved beside the adapter (what it was trained with), else `fallback` (the base's)."""
    return str(adapter) if has_tokenizer(adapter) else fallback


# --- the base an adapter belongs to ---------------------------------------------------------------------


def _weight_files(base: Path) -> list[Path]:
    files = sorted(base.glob("*.safetensors"))
    return files or sorted(base.glob("*.bin"))


def base_fingerprint(base: str) -> dict | None:
    """Name, shape and a weights fingerprint of a local base model folder (None for a hub id not on disk).

    The weights part hashes each weight file's size, its first and last 64 KiB (the safetensors header
    and tensor data): two bases of the same shape with different weights differ, and it costs no full read."""
    path = Path(base)
    if not (path / "config.json").is_file():
        try:
            from huggingface_hub import snapshot_download

            path = Path(snapshot_download(base, local_files_only=True, allow_patterns=["config.json", "*.safetensors"]))
        except Exception:  # noqa: BLE001 - not in the local cache: nothing to fingerprint
            return None
    try:
        cfg = json.loads((path / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    shape = {k: cfg.get(k) for k in _SHAPE_KEYS}
    import xxhash

    h = xxhash.xxh3_128()
    for f in _weight_files(path):
        size = f.stat().st_size
        h.update(f"{f.name}:{size}".encode())
        with open(f, "rb") as fh:
            h.update(fh.read(_SAMPLE))
            if size > 2 * _SAMPLE:
                fh.seek(size - _SAMPLE)
                h.update(fh.read(_SAMPLE))
    return {"base": str(base), "shape": shape,
            "shape_sha256": hashlib.sha256(json.dumps(shape, sort_keys=True).encode()).hexdigest(),
            "weights_xxh3_128": h.hexdigest()}


def write_base_record(adapter: Path, base: str) -> None:
    from persianllama.atomic import write_json

    fp = base_fingerprint(base)
    if fp is not None:
        write_json(Path(adapter) / BASE_RECORD, fp)


def check_base(adapter: str | Path, base: str, *, force: bool = False) -> str | None:
    """Refuse a base other than the one the adapter was trained on (unless `force`); return a note for the log."""
    rec_file = Path(adapter) / BASE_RECORD
    if not rec_file.is_file():
        return f"{adapter} does not record its base model (not written by this toolkit): base not checked"
    try:
        rec = json.loads(rec_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise UserError(f"{rec_file}: not valid JSON; restore it from the training run, or pass --force") from None
    now = base_fingerprint(base)
    if now is None:
        return f"cannot fingerprint {base} (not a local folder): base not checked against {rec.get('base')}"
    if now["shape_sha256"] != rec.get("shape_sha256"):
        what = ", ".join(f"{k} {rec.get('shape', {}).get(k)} vs {now['shape'].get(k)}" for k in _SHAPE_KEYS
                         if rec.get("shape", {}).get(k) != now["shape"].get(k))
        problem = f"has another shape ({what})"
    elif now["weights_xxh3_128"] != rec.get("weights_xxh3_128"):
        problem = "has the same shape but other weights"
    else:
        return None
    msg = (f"the adapter {adapter} was trained on {rec.get('base')}, and the base {base} {problem}; merging it "
           "there would give a broken model (pass --force to merge anyway)")
    if force:
        import logging

        logging.getLogger(__name__).warning("%s: merging anyway (--force)", msg)
        return None
    raise UserError(msg)
