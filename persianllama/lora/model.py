"""Load the frozen base (8-bit, 4-bit or plain), grow its vocabulary, and attach the LoRA adapter.

Order matters: the vocabulary is extended *before* peft wraps the model, so peft's trainable copies
of the embedding and output layer start from the mean-initialised rows; k-bit preparation comes
before the adapter so the adapter's layers are built on the final (fp32) embeddings and norms.
"""

from __future__ import annotations

import logging
import warnings
from typing import Any

from persianllama.errors import UserError
from persianllama.lora.embeddings import extend_model
from persianllama.lora.preflight import Setup

log = logging.getLogger(__name__)

EMBED, OUTPUT = "embed_tokens", "lm_head"


def torch_dtype(name: str):
    """The torch dtype of a precision name (the run core's one table)."""
    from persianllama.run.device import torch_dtype as core_torch_dtype

    return core_torch_dtype(name)


def quiet_bitsandbytes() -> None:
    """bitsandbytes logs a harmless 'kernels' failure on every import on AVX512-BF16 CPUs; peft still calls
    transformers' pre-5.x checkpointing names, which warn on every run."""
    logging.getLogger("bitsandbytes").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", message=r"`(is_)?gradient_checkpointing(_enable)?` is deprecated",
                            category=FutureWarning)


def quantization_config(setup: Setup):
    from transformers import BitsAndBytesConfig

    m = setup.cfg.model
    if m.quantization == "8bit":
        return BitsAndBytesConfig(load_in_8bit=True, llm_int8_threshold=m.llm_int8_threshold)
    if m.quantization == "4bit":
        return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type=m.bnb_4bit_quant_type,
                                  bnb_4bit_use_double_quant=m.bnb_4bit_double_quant,
                                  bnb_4bit_compute_dtype=torch_dtype(setup.precision))
    return None


def load_base(setup: Setup):
    """The base model on its device, frozen, quantized as configured."""
    from transformers import AutoModelForCausalLM

    quiet_bitsandbytes()
    m = setup.cfg.model
    kwargs: dict[str, Any] = {"dtype": torch_dtype(setup.dtype)}
    q = quantization_config(setup)
    if q is not None:
        kwargs["quantization_config"] = q
        kwargs["device_map"] = {"": 0 if setup.device == "cuda" else "cpu"}
    kwargs["attn_implementation"] = "sdpa" if m.attn_implementation == "auto" else m.attn_implementation
    try:
        model = AutoModelForCausalLM.from_pretrained(m.base, **kwargs)
    except Exception as e:  # noqa: BLE001 - one line instead of a library traceback
        text = (str(e).strip() or type(e).__name__).splitlines()[0][:300]
        raise UserError(f"cannot load the base model {m.base} ({m.quantization}) on {setup.device}: {text}") from None
    if q is None:
        model.to(setup.device)
    elif not any(type(mod).__name__ in ("Linear8bitLt", "Linear4bit") for mod in model.modules()):
        raise UserError(f"model.quantization={m.quantization} but no layer of {m.base} was quantized")
    keep_4bit_trainable(model)
    model.config.use_cache = False  # no KV cache in training (and it conflicts with checkpointing)
    return model


def keep_4bit_trainable(model) -> None:
    """Stop bitsandbytes 0.50 from repacking 4-bit weights for CPU inference during validation.

    On AVX512-BF16 CPUs, the first forward of a ``Linear4bit`` in eval mode without grad converts its
    weight, for good, to a packed inference layout whose kernel (``gemv_4bit``) has no autograd: every
    later training step then silently stops propagating gradients through the frozen 4-bit layers
    (torch only warns "an autograd kernel was not registered"). Validation runs in eval mode, so
    turn the conversion off; inference elsewhere (eval stage) is unaffected.
    """
    for mod in model.modules():
        if type(mod).__name__ == "Linear4bit" and getattr(mod, "support_avx512bf16_for_cpu", False):
            mod.support_avx512bf16_for_cpu = False


def prepare(model, setup: Setup):
    """Freeze the base, upcast (k-bit), enable gradient checkpointing *and* input gradients."""
    m = setup.cfg.model
    gc_kwargs = {"use_reentrant": m.checkpointing_reentrant}
    if m.quantization != "none":
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=m.gradient_checkpointing,
                                                gradient_checkpointing_kwargs=gc_kwargs)
    else:
        for p in model.parameters():
            p.requires_grad_(False)
        if m.gradient_checkpointing:
            if hasattr(model, "activation_checkpointing_enable"):  # transformers >= 5.x's name
                model.activation_checkpointing_enable(activation_checkpointing_kwargs=gc_kwargs)
            else:
                model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=gc_kwargs)
    if m.gradient_checkpointing:
        # With every base weight frozen, no input of a checkpointed block requires grad, and reentrant
        # checkpointing then drops the whole graph ("element 0 of tensors does not require grad").
        # peft does this only for reentrant k-bit models; do it always.
        model.enable_input_require_grads()
    return model


def peft_config(setup: Setup):
    from peft import LoraConfig

    lo = setup.cfg.lora
    kwargs: dict[str, Any] = {}
    if setup.embeddings == "full":
        kwargs["modules_to_save"] = [EMBED, OUTPUT]
    elif setup.embeddings == "new_rows":
        ids = setup.extension.new_ids
        kwargs["trainable_token_indices"] = {EMBED: ids, OUTPUT: ids}
    return LoraConfig(r=lo.r, lora_alpha=lo.alpha, lora_dropout=lo.dropout, target_modules=list(lo.target_modules),
                      bias="none", task_type="CAUSAL_LM", **kwargs)


def build(setup: Setup):
    """Base + extension + adapter: the trainable model, and what the extension did."""
    import torch

    model = load_base(setup)
    ext_info = extend_model(model, setup.extension) if setup.extension.extended else None
    if ext_info and ext_info["tied_embeddings"]:
        raise UserError(f"{setup.cfg.model.base} ties its input and output embeddings; training them as LoRA "
                        "modules_to_save is not supported here (LLaMA does not tie them)")
    model = prepare(model, setup)
    torch.manual_seed(setup.cfg.train.seed)  # LoRA A's initialisation
    if setup.cfg.lora.init_adapter:
        from peft import PeftModel

        net = PeftModel.from_pretrained(model, setup.cfg.lora.init_adapter, is_trainable=True)
    else:
        from peft import get_peft_model

        net = get_peft_model(model, peft_config(setup))
    for p in net.parameters():
        # Trained weights live in fp32 whatever the base dtype: bf16 would round small AdamW updates away.
        if p.requires_grad and p.dtype != torch.float32:
            p.data = p.data.float()
    n_train = sum(p.numel() for p in net.parameters() if p.requires_grad)
    if n_train == 0:
        raise UserError("nothing to train: no parameter requires grad after attaching the adapter")
    return net, ext_info


def save_embedding_layers(setup: Setup) -> bool:
    """What peft should save besides the LoRA matrices.

    full: the trained copies already go in as modules_to_save (``...embed_tokens.weight``); peft's "auto"
    would add the frozen originals twice more. new_rows: peft saves only the new rows' values, so the
    resized embedding and output layer go in too, which tells loaders the vocabulary size.
    """
    return setup.embeddings == "new_rows"


def trainable(net) -> list[tuple[str, Any]]:
    return [(n, p) for n, p in net.named_parameters() if p.requires_grad]
