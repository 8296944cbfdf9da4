"""Build the LLaMA model (`transformers.LlamaForCausalLM`) and count its FLOPs per token."""

from __future__ import annotations

import importlib.util
import logging

from persianllama.train.config import ModelConfig
from persianllama.train.preflight import Sizes

log = logging.getLogger(__name__)


def llama_intermediate(hidden: int, multiple_of: int = 256) -> int:
    """LLaMA's SwiGLU width: 2/3 of 4 x hidden, rounded up to `multiple_of`."""
    width = int(2 * 4 * hidden / 3)
    return multiple_of * ((width + multiple_of - 1) // multiple_of)


def choose_attention(requested: str, device: str, precision: str) -> str:
    """flash_attention_2 needs the flash-attn package, a CUDA GPU and half precision; SDPA works everywhere."""
    if requested != "auto":
        return requested
    if device == "cuda" and precision in ("bf16", "fp16") and importlib.util.find_spec("flash_attn"):
        return "flash_attention_2"
    return "sdpa"


def llama_config(model: ModelConfig, sizes: Sizes, tokenizer, attn: str):
    """A `LlamaConfig` from the recipe, with vocabulary and special ids from the tokenizer."""
    from transformers import AutoConfig, LlamaConfig

    if model.init_from:
        cfg = AutoConfig.from_pretrained(model.init_from)
    else:
        cfg = LlamaConfig(
            vocab_size=sizes.vocab_size,
            hidden_size=model.hidden_size,
            intermediate_size=model.intermediate_size or llama_intermediate(model.hidden_size),
            num_hidden_layers=model.num_layers,
            num_attention_heads=model.num_heads,
            num_key_value_heads=model.num_kv_heads or model.num_heads,
            max_position_embeddings=sizes.max_positions,
            rms_norm_eps=model.rms_norm_eps,
            rope_theta=model.rope_theta,
            tie_word_embeddings=model.tie_word_embeddings,
            initializer_range=model.initializer_range,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        )
    cfg._attn_implementation = attn
    cfg.use_cache = False  # training: no KV cache
    return cfg


def build_model(hf_config, *, init_from: str | None = None, zero3_init_config: dict | None = None,
                activation_checkpointing: bool = False):
    """The model in fp32 (DeepSpeed casts it to the training precision).

    Under ZeRO-3 (`zero3_init_config` given) each rank builds only its shard of the parameters
    (`deepspeed.zero.Init`), so a 13B model never sits whole in one process's memory.
    """
    import torch
    from transformers import AutoModelForCausalLM

    hf_ds = None
    if zero3_init_config is not None:
        # transformers wraps construction and loading in deepspeed.zero.Init while this object is set.
        from transformers.integrations import HfDeepSpeedConfig

        hf_ds = HfDeepSpeedConfig(zero3_init_config)
    try:
        if init_from:
            model = AutoModelForCausalLM.from_pretrained(init_from, config=hf_config, dtype=torch.float32)
        else:
            model = AutoModelForCausalLM.from_config(hf_config, dtype=torch.float32)
    finally:
        if hf_ds is not None:  # later model constructions in this process (export) are plain again
            from transformers.integrations.deepspeed import unset_hf_deepspeed_config

            unset_hf_deepspeed_config()
            del hf_ds
    if activation_checkpointing:
        kwargs = {"use_reentrant": False}
        if hasattr(model, "activation_checkpointing_enable"):  # transformers >= 5.x
            model.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
        else:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
    model.config.use_cache = False
    return model


def count_params(hf_config) -> dict[str, int]:
    """Parameter counts from the config alone (ZeRO-3 shards make counting tensors misleading)."""
    h = hf_config.hidden_size
    layers = hf_config.num_hidden_layers
    heads = hf_config.num_attention_heads
    kv = getattr(hf_config, "num_key_value_heads", None) or heads
    head_dim = getattr(hf_config, "head_dim", None) or h // heads
    inter = hf_config.intermediate_size
    vocab = hf_config.vocab_size
    attn = h * heads * head_dim + 2 * h * kv * head_dim + heads * head_dim * h
    mlp = 3 * h * inter
    per_layer = attn + mlp + 2 * h  # two RMSNorms
    embed = vocab * h
    head = 0 if hf_config.tie_word_embeddings else vocab * h
    total = embed + layers * per_layer + h + head
    return {"total": total, "embedding": embed, "non_embedding": total - embed,
            "matmul": layers * (attn + mlp) + vocab * h}


def flops_per_token(hf_config, seq_len: int) -> float:
    """Training FLOPs per token (forward + backward), PaLM's estimate: 6 N + 12 L h T.

    N counts the weights that multiply activations (attention, MLP and the output projection; the
    embedding lookup and norms are free); 12 L h T is attention's score and value products at
    context T. Activation recomputation is not counted: this is model FLOPs utilisation (MFU), not
    hardware FLOPs utilisation.
    """
    n = count_params(hf_config)["matmul"]
    return 6.0 * n + 12.0 * hf_config.num_hidden_layers * hf_config.hidden_size * seq_len


def param_groups(model, weight_decay: float) -> list[dict]:
    """AdamW groups: decay the matrices, not the norms (1-D)."""
    decay, no_decay = [], []
    for _, p in model.named_parameters():
        if not p.requires_grad:
            continue
        # Under ZeRO-3 a parameter's local tensor is empty; its true shape is ds_shape.
        shape = getattr(p, "ds_shape", p.shape)
        (decay if len(shape) >= 2 else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
