"""Everything decided and refused before the base model is loaded.

Loading LLaMA-13B takes minutes; a setting that cannot work must fail before that, in one line that
says what to change. `preflight` reads only small files (config.json, the tokenizers, a checkpoint's
trainer_state.json, an adapter's config and tensor shapes) and returns the resolved `Setup` that the
trainer and the memory plan use. The refusals:

- a DeepSpeed ZeRO-3 config with 8-bit/4-bit weights (ZeRO-3 partitions parameters; bitsandbytes'
  Int8Params/Params4bit cannot be partitioned), or any DeepSpeed config (this trainer runs on one device);
- a tokenizer smaller than the base tokenizer, or one whose base ids differ (not an extension);
- a tokenizer with more tokens than the model has embedding rows when it is not an extension;
- an extended vocabulary with frozen embeddings (the new rows would never be trained), or
  ``embeddings=new_rows`` without new rows;
- an adapter to start from (``lora.init_adapter``) or a checkpoint to resume from that was trained
  with another vocabulary size, rank, target modules or base model;
- 8-bit/4-bit without bitsandbytes>=0.50, a GPU asked for where there is none, bf16 where the device
  has no bf16, fp16 on a CPU, a sequence longer than the model's context, unknown target modules;
- resume=none in a folder that already holds checkpoints (the new run would overwrite them).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from persianllama.config import to_dict
from persianllama.errors import UserError
from persianllama.lora.config import LoraConfig
from persianllama.lora.embeddings import Extension, check_extension, plan_extension
from persianllama.run import checkpoint as ckpt
from persianllama.run.batch import Batch, batch_arithmetic
from persianllama.run.device import choose_precision, device_type
from persianllama.run.resume import check_compatible

log = logging.getLogger(__name__)


@dataclass
class Setup:
    """The resolved run: what the trainer and the memory plan need, decided without loading weights."""

    cfg: LoraConfig
    device: str
    precision: str
    """Autocast dtype: fp32, bf16 or fp16."""
    dtype: str
    """Load dtype of the non-quantized weights."""
    hf_config: dict
    base_tok: Any
    tok: Any
    extension: Extension
    embeddings: str
    """full, new_rows or none (auto resolved)."""
    batch: Batch
    resume_from: Path | None = None
    resume_state: dict | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def vocab(self) -> int:
        """Embedding rows after the extension."""
        return max(len(self.tok), int(self.hf_config["vocab_size"]))

    def identity(self) -> dict:
        """What the saved adapter and optimizer state depend on: a checkpoint with other values cannot be resumed."""
        from persianllama.data.packing import tokenizer_fingerprint

        c = self.cfg
        return {"model.base": c.model.base, "vocabulary size": self.vocab, "model.quantization": c.model.quantization,
                "lora.r": c.lora.r, "lora.alpha": c.lora.alpha, "lora.target_modules": sorted(c.lora.target_modules),
                "lora.embeddings": self.embeddings, "train.optimizer": c.train.optimizer,
                "tokenizer": tokenizer_fingerprint(self.tok)}

    def settings(self) -> dict:
        """Settings a resumed run may change (each change is listed in one warning line)."""
        c = self.cfg
        t = c.train
        return {"train.lr": t.lr, "train.min_lr": t.min_lr, "train.warmup_steps": t.warmup_steps,
                "train.max_steps": t.max_steps, "train.seed": t.seed, "train.seq_len": t.seq_len,
                "train.micro_batch_size": self.batch.micro, "train.grad_accum_steps": self.batch.accum,
                "train.weight_decay": t.weight_decay, "train.grad_clip": t.grad_clip,
                **{f"data.{k}": v for k, v in to_dict(c.data).items() if k in ("corpus", "files", "val_fraction")}}


def _first_line(e: BaseException) -> str:
    return (str(e).strip() or type(e).__name__).splitlines()[0][:300]


def check_settings(cfg: LoraConfig, require_corpus: bool = True) -> None:
    """What the recipe must name (ranges and orderings of single settings were checked when it was loaded)."""
    if require_corpus and not cfg.data.corpus:
        raise UserError("no corpus: set data.corpus (the corpus builder's output, or .parquet/.txt files)")
    if not cfg.model.base:
        raise UserError("no base model: set model.base to an HF model directory or hub id")


def check_deepspeed(cfg: LoraConfig) -> None:
    if not cfg.deepspeed:
        return
    path = Path(cfg.deepspeed)
    try:
        ds = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"deepspeed={path}: file not found") from None
    except json.JSONDecodeError as e:
        raise UserError(f"deepspeed={path}: not valid JSON ({e.msg}, line {e.lineno})") from None
    stage = int((ds.get("zero_optimization") or {}).get("stage", 0))
    if stage == 3 and cfg.model.quantization != "none":
        raise UserError(
            f"deepspeed={path} uses ZeRO-3, which partitions every parameter across GPUs, but "
            f"model.quantization={cfg.model.quantization} stores the base weights as bitsandbytes "
            f"{'Int8Params' if cfg.model.quantization == '8bit' else 'Params4bit'}, which ZeRO-3 cannot partition; "
            "8-bit LoRA of a 13B model fits one GPU: drop the DeepSpeed config (or use model.quantization=none "
            "with ZeRO-3 on several GPUs)")
    raise UserError(
        f"deepspeed={path} (ZeRO-{stage}): the LoRA trainer runs on one device and does not use DeepSpeed; "
        "drop the setting (8-bit LoRA of LLaMA-13B fits one A100-80G, see `persianllama plan`)")


def resolve_device(cfg: LoraConfig) -> tuple[str, str, str]:
    """(device, autocast precision, load dtype), refusing what the device cannot do."""
    device = device_type(cfg.train.device)
    precision = choose_precision(cfg.train.precision, device, key="train.precision")
    dtype = choose_precision(cfg.model.dtype, device, key="model.dtype")
    if cfg.model.quantization != "none" or cfg.train.optimizer == "adamw8bit":
        from importlib.metadata import PackageNotFoundError, version

        try:
            v = version("bitsandbytes")
        except PackageNotFoundError:
            v = None
        if v is None or tuple(int(x) for x in v.split(".")[:2] if x.isdigit()) < (0, 50):
            what = (f"model.quantization={cfg.model.quantization}" if cfg.model.quantization != "none"
                    else "train.optimizer=adamw8bit")
            raise UserError(f"{what} needs bitsandbytes>=0.50 (found {v or 'none'}): "
                            "pip install 'bitsandbytes>=0.50,<0.51'")
    return device, precision, dtype


def read_base_config(base: str) -> dict:
    path = Path(base)
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise UserError(f"model.base={base} is not an HF model directory (no config.json)")
        cfg = json.loads((path / "config.json").read_text(encoding="utf-8"))
    else:
        from transformers import AutoConfig

        from persianllama import hub

        cfg = hub.from_pretrained(AutoConfig.from_pretrained, base, "config", context=" (model.base)").to_dict()
    if cfg.get("quantization_config"):
        q = cfg["quantization_config"]
        raise UserError(f"model.base={base} is saved already quantized ({q.get('quant_method', q)}); LoRA needs the "
                        "original fp16/bf16 checkpoint, quantized on load by model.quantization")
    for key in ("hidden_size", "num_hidden_layers", "vocab_size"):
        if key not in cfg:
            raise UserError(f"model.base={base}: config.json has no {key}; is it a causal LM such as LLaMA?")
    return cfg


def _load_tokenizer(source: str, what: str):
    from transformers import AutoTokenizer

    from persianllama import hub

    return hub.from_pretrained(AutoTokenizer.from_pretrained, source, "tokenizer", context=f" ({what})")


def resolve_vocabulary(cfg: LoraConfig, hf_config: dict) -> tuple[Any, Any, Extension, str]:
    """(base tokenizer, tokenizer, extension plan, embeddings mode), refusing mismatches."""
    m = cfg.model
    base_src = m.base_tokenizer or m.base
    base_tok = _load_tokenizer(base_src, "base tokenizer")
    tok_src = m.tokenizer or base_src
    tok = base_tok if tok_src == base_src else _load_tokenizer(tok_src, "tokenizer")
    if tok.eos_token_id is None:
        raise UserError(f"the tokenizer {tok_src} has no EOS token; packing puts one between documents")
    rows = int(hf_config["vocab_size"])
    if len(base_tok) > rows:
        raise UserError(
            f"vocabulary mismatch: the base tokenizer {base_src} has {len(base_tok)} tokens but the model {m.base} "
            f"has {rows} embedding rows; model.base_tokenizer must be the tokenizer the base model was trained with")
    check_extension(base_tok, tok, base_name=base_src, tok_name=tok_src)
    ext = plan_extension(base_tok, tok) if len(tok) > len(base_tok) else Extension(len(base_tok), len(tok))
    mode = cfg.lora.embeddings
    if mode == "auto":
        mode = "full" if ext.extended else "none"
    if ext.extended and mode == "none":
        raise UserError(
            f"the tokenizer {tok_src} adds {len(tok) - len(base_tok)} tokens to the base vocabulary, but "
            "lora.embeddings=none would leave their rows untrained; use lora.embeddings=full or new_rows")
    if mode == "new_rows" and not ext.extended:
        raise UserError("lora.embeddings=new_rows but the tokenizer adds no tokens to the base vocabulary; "
                        "use full or none")
    return base_tok, tok, ext, mode


def adapter_vocab(adapter: Path) -> int | None:
    """Embedding rows an adapter was trained with (None: it saved no embeddings)."""
    from persianllama.lora.adapter import embedding_rows

    return embedding_rows(adapter)


def check_init_adapter(cfg: LoraConfig, vocab: int, extended: bool) -> None:
    if not cfg.lora.init_adapter:
        return
    path = Path(cfg.lora.init_adapter)
    conf = path / "adapter_config.json"
    if not conf.is_file():
        raise UserError(f"lora.init_adapter={path}: no adapter_config.json (expected a PEFT adapter folder)")
    ac = json.loads(conf.read_text(encoding="utf-8"))
    rows = adapter_vocab(path)
    if rows is not None and rows != vocab:
        raise UserError(
            f"lora.init_adapter={path} was trained with a vocabulary of {rows} tokens, but this run's tokenizer "
            f"gives {vocab}; use the tokenizer the adapter was trained with (saved in the adapter folder)")
    if rows is None and extended:
        raise UserError(f"lora.init_adapter={path} saved no embeddings, so it was trained without this run's "
                        f"{vocab}-token vocabulary; start without it or use its own tokenizer")
    if int(ac.get("r", cfg.lora.r)) != cfg.lora.r:
        raise UserError(f"lora.init_adapter={path} has rank r={ac['r']} but lora.r={cfg.lora.r}; set lora.r={ac['r']}")
    targets = ac.get("target_modules")
    if isinstance(targets, list) and sorted(targets) != sorted(cfg.lora.target_modules):
        raise UserError(f"lora.init_adapter={path} targets {sorted(targets)} but lora.target_modules is "
                        f"{sorted(cfg.lora.target_modules)}; make them equal")


def resolve_resume(setup: Setup) -> tuple[Path | None, dict | None]:
    """The checkpoint to continue from (checkpoint.resume), verified against its manifest and checked against
    this run before any weights are read."""
    cfg = setup.cfg
    root = Path(cfg.out_dir) / "checkpoints"
    resume = cfg.checkpoint.resume
    if resume == "none":
        if any(ok for _, _, ok in ckpt.list_checkpoints(root)):
            raise UserError(f"{root} already holds checkpoints of an earlier run and checkpoint.resume=none would "
                            "overwrite them; use checkpoint.resume=auto to continue it, or another out_dir")
        return None, None
    found = (ckpt.find_resumable(root, verify_mode=cfg.checkpoint.verify) if resume == "auto"
             else ckpt.resolve_checkpoint(resume, verify_mode=cfg.checkpoint.verify))
    if found is None:
        return None, None
    path, state = found
    check_compatible(path, state, identity=setup.identity(), settings=setup.settings(),
                     hint="resume with the same base, tokenizer and lora settings, or start a new out_dir")
    if not (path / "adapter" / "adapter_config.json").is_file():
        raise UserError(f"checkpoint {path} has no adapter/ folder; it was not written by the LoRA trainer")
    return path, state


def preflight(cfg: LoraConfig, *, require_corpus: bool = True) -> Setup:
    """Resolve the run and refuse what cannot work; reads no weights. (`require_corpus=False`: a track whose data
    is not the corpus, such as instruction tuning.)"""
    check_settings(cfg, require_corpus)
    check_deepspeed(cfg)
    device, precision, dtype = resolve_device(cfg)
    hf = read_base_config(cfg.model.base)
    positions = int(hf.get("max_position_embeddings") or 0)
    if positions and cfg.train.seq_len > positions:
        raise UserError(f"train.seq_len={cfg.train.seq_len} is longer than the base model's context "
                        f"({positions} positions); lower train.seq_len")
    from persianllama.lora.plan import arch_from_config

    known = arch_from_config(hf, cfg.model.base).projections()
    unknown = [t for t in cfg.lora.target_modules if t not in known]
    if unknown:
        raise UserError(f"lora.target_modules: {', '.join(unknown)} is not a projection of a LLaMA layer "
                        f"(choose from {', '.join(known)})")
    base_tok, tok, ext, mode = resolve_vocabulary(cfg, hf)
    batch = batch_arithmetic(cfg.train, world_size=1)
    setup = Setup(cfg, device, precision, dtype, hf, base_tok, tok, ext, mode, batch)
    check_init_adapter(cfg, setup.vocab, ext.extended)
    setup.resume_from, setup.resume_state = resolve_resume(setup)
    if ext.extended:
        setup.notes.append(f"vocabulary {ext.base_size} -> {ext.new_size}: {ext.new_size - ext.base_size} new rows "
                           f"initialised from the mean of their base subtokens; embeddings trained: {mode}")
    return setup


def plan_inputs(setup: Setup):
    """The memory plan's inputs for a resolved run, on the device it will use."""
    from persianllama.lora.plan import arch_from_config, inputs_for

    cfg = setup.cfg
    mem, name = device_memory(cfg)
    return inputs_for(cfg, arch=arch_from_config(setup.hf_config, cfg.model.base), vocab=setup.vocab,
                      embeddings=setup.embeddings, precision=setup.precision, dtype=setup.dtype,
                      micro_batch=setup.batch.micro, device=setup.device, device_memory=mem, device_name=name)


def device_memory(cfg: LoraConfig) -> tuple[float, str]:
    """(bytes, name) of the device to plan for: the setting, the visible GPU, else an A100-80G."""
    from persianllama.lora.plan import GIB

    mem = cfg.plan.device_memory_gb * GIB if cfg.plan.device_memory_gb else None
    name = cfg.plan.device_name
    if mem is None or name is None:
        try:
            import torch

            if torch.cuda.is_available() and cfg.train.device != "cpu":
                props = torch.cuda.get_device_properties(0)
                mem = mem or float(props.total_memory)
                name = name or props.name
        except Exception:  # noqa: BLE001
            pass
    return mem or 80 * GIB, name or "A100-80G"
