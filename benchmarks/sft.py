"""Instruction-tuning throughput: `persianllama sft` against TRL's SFTTrainer, side by side, one run.

    python benchmarks/sft.py                          # small LLaMA, CPU or GPU, 30 steps each
    python benchmarks/sft.py --size mid --seq-len 1024 --micro-batch 8 --steps 40 --json out.json

Both train the same LoRA adapter (r=16, alpha=32, no dropout, every attention and MLP projection) on the same
freshly initialised LLaMA (``--size``) and tokenizer, on the bundled Persian conversations
(corpora/sample/instructions/conversations.jsonl), with the same chat template (the toolkit's default, whose
``{% generation %}`` markers give both the assistant-token mask), the same sequence length, micro-batch,
optimizer (torch AdamW), learning rate, precision (fp32 on CPU, bf16 on a GPU that has it) and attention kernel
(PyTorch SDPA):

- persianllama: `persianllama.sft.train.run`, conversations packed first-fit-decreasing into rows of seq_len
  tokens, each row with a block-diagonal causal mask (no attention across conversations), loss on assistant tokens;
- TRL: ``SFTTrainer(packing=True)`` (best-fit-decreasing, padding-free: a micro-batch is flattened into one
  row; transformers builds the block-diagonal mask from the restarting position ids), ``assistant_only_loss=True``.

Tokens/s counts the real (non-padding) tokens of the timed steps over the wall time between the end of the
first untimed (warm-up) steps and the end of the last step, the same way for both. Each side runs in its own
process, the two sides alternated ``--repeats`` times (best run of each counts), so a busy spell of a shared
machine does not land on one side only. TRL installs beside this project's pins (``pip install -e .[bench]``:
trl 1.16 with transformers 5.x, no separate environment needed); if it is missing, only our side runs.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

DATA = ROOT / "corpora" / "sample" / "instructions" / "conversations.jsonl"
SIZES = {  # hidden, intermediate, layers, heads
    "tiny": (64, 128, 2, 4),
    "small": (256, 688, 4, 4),
    "mid": (1024, 2816, 8, 16),
}
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def make_assets(root: Path, size: str) -> dict:
    """A byte-level BPE tokenizer trained on the conversations (with the toolkit's chat template) and a LLaMA."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    from persianllama.sft.template import DEFAULT_TEMPLATE

    rows = [json.loads(line) for line in DATA.read_text(encoding="utf-8").splitlines() if line.strip()]
    texts = [m["content"] for r in rows for m in r["messages"]]
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(texts, trainers.BpeTrainer(vocab_size=2000, special_tokens=["<unk>", "<s>", "</s>", "<pad>"],
                                                       initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                                       show_progress=False))
    tok.post_processor = processors.TemplateProcessing(single="<s> $A",
                                                       special_tokens=[("<s>", tok.token_to_id("<s>"))])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>",
                                   pad_token="<pad>")
    fast.chat_template = DEFAULT_TEMPLATE
    h, i, layers, heads = SIZES[size]
    torch.manual_seed(0)
    base = root / f"base-{size}"
    LlamaForCausalLM(LlamaConfig(hidden_size=h, intermediate_size=i, num_hidden_layers=layers,
                                 num_attention_heads=heads, num_key_value_heads=heads, vocab_size=len(fast),
                                 max_position_embeddings=4096, bos_token_id=fast.bos_token_id,
                                 eos_token_id=fast.eos_token_id, pad_token_id=fast.pad_token_id,
                                 tie_word_embeddings=False)).save_pretrained(str(base))
    fast.save_pretrained(str(base))
    return {"base": str(base), "data": str(DATA)}


def _precision(device: str) -> str:
    from persianllama.run.device import choose_precision

    return choose_precision("auto", device, key="precision")


def part_ours(a: argparse.Namespace, assets: dict, out: Path) -> dict:
    from persianllama.config import from_dict
    from persianllama.run.metrics import read_records
    from persianllama.sft.config import SftConfig
    from persianllama.sft.train import run

    cfg = from_dict(SftConfig, {
        "out_dir": str(out),
        "model": {"base": assets["base"], "quantization": "none", "gradient_checkpointing": a.checkpointing,
                  "attn_implementation": "sdpa"},
        "lora": {"r": 16, "alpha": 32, "dropout": 0.0, "target_modules": TARGETS},
        "data": {"files": [assets["data"]], "val_fraction": 0.0, "normalize": False, "packing": True,
                 "train_on": "assistant", "too_long": "truncate"},
        "train": {"seq_len": a.seq_len, "micro_batch_size": a.micro_batch, "global_batch_size": a.micro_batch,
                  "max_steps": a.steps, "lr": 2e-4, "min_lr": 2e-4, "warmup_steps": 0, "weight_decay": 0.0,
                  "device": a.device, "optimizer": "adamw"},
        "log": {"eval_docs": 0, "eval_at_start": False, "log_interval": 1000, "tensorboard": False},
        "checkpoint": {"save_interval": 10**6, "keep_last": 1},
    })
    run(cfg)
    train = [r for r in read_records(out / "metrics.jsonl") if r["kind"] == "train"]
    timed = [r for r in train if r["step"] > a.warmup]
    start = next(r for r in train if r["step"] == a.warmup)
    tokens = sum(r["tokens_seen"] - p["tokens_seen"] for p, r in zip([start, *timed], timed))
    seconds = timed[-1]["time"] - start["time"]
    return {"tokens": tokens, "seconds": seconds, "tokens_per_s": tokens / seconds, "loss_first": train[0]["loss"],
            "loss_last": train[-1]["loss"], "steps": len(timed)}


def part_trl(a: argparse.Namespace, assets: dict, out: Path) -> dict:
    import torch
    import trl
    from datasets import load_dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import SFTConfig, SFTTrainer

    device = "cuda" if a.device == "cuda" or (a.device == "auto" and torch.cuda.is_available()) else "cpu"
    precision = _precision(device)
    tok = AutoTokenizer.from_pretrained(assets["base"])
    model = AutoModelForCausalLM.from_pretrained(assets["base"], dtype=torch.float32, attn_implementation="sdpa")
    ds = load_dataset("json", data_files=assets["data"], split="train").select_columns(["messages"])

    class Clock(TrainerCallback):
        def __init__(self):
            self.marks: list[tuple[int, float, int]] = []

        def on_step_end(self, args, state, control, **kwargs):
            if device == "cuda":
                torch.cuda.synchronize()
            self.marks.append((state.global_step, time.perf_counter(), int(state.num_input_tokens_seen)))

    clock = Clock()
    args = SFTConfig(
        output_dir=str(out), max_length=a.seq_len, packing=True, assistant_only_loss=True,
        per_device_train_batch_size=a.micro_batch, gradient_accumulation_steps=1, max_steps=a.steps,
        learning_rate=2e-4, lr_scheduler_type="constant", warmup_steps=0, weight_decay=0.0, optim="adamw_torch",
        gradient_checkpointing=a.checkpointing, bf16=precision == "bf16", fp16=precision == "fp16",
        use_cpu=device == "cpu", logging_steps=1, save_strategy="no", report_to=[], seed=1234,
        include_num_input_tokens_seen="all", dataloader_num_workers=0, dataset_num_proc=None,
        disable_tqdm=True)
    trainer = SFTTrainer(model=model, args=args, train_dataset=ds, processing_class=tok, callbacks=[clock],
                         peft_config=LoraConfig(r=16, lora_alpha=32, lora_dropout=0.0, target_modules=TARGETS,
                                                task_type="CAUSAL_LM"))
    trainer.train()
    marks = {s: (t, n) for s, t, n in clock.marks}
    t0, n0 = marks[a.warmup]
    t1, n1 = marks[a.steps]
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    return {"tokens": n1 - n0, "seconds": t1 - t0, "tokens_per_s": (n1 - n0) / (t1 - t0), "loss_first": losses[0],
            "loss_last": losses[-1], "steps": a.steps - a.warmup, "trl": trl.__version__}


def run_part(name: str, a: argparse.Namespace, assets: dict) -> dict | None:
    """One side in its own process (threads, memory and TRL's model patches do not leak into the other)."""
    with tempfile.TemporaryDirectory(prefix=f"bench-sft-{name}-") as tmp:
        result = Path(tmp) / "result.json"
        cmd = [sys.executable, __file__, "--run-part", name, "--assets", json.dumps(assets), "--result", str(result),
               *a.passthrough]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            print(f"{name}: failed (exit {proc.returncode}):\n" + "\n".join(proc.stderr.strip().splitlines()[-15:]))
            return None
        return json.loads(result.read_text())


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", default="small", choices=list(SIZES))
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--warmup", type=int, default=5, help="untimed first steps")
    p.add_argument("--seq-len", type=int, default=512)
    p.add_argument("--micro-batch", type=int, default=4)
    p.add_argument("--checkpointing", action="store_true", help="gradient checkpointing in both (default off)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads in each side (default 1)")
    p.add_argument("--repeats", type=int, default=2, help="runs of each side, alternated; the best counts")
    p.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    p.add_argument("--run-part", choices=["ours", "trl"], help=argparse.SUPPRESS)
    p.add_argument("--assets", help=argparse.SUPPRESS)
    p.add_argument("--result", help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.warmup < 1 or a.steps <= a.warmup or a.repeats < 1:
        p.error("need --steps > --warmup >= 1 and --repeats >= 1")
    a.passthrough = ["--steps", str(a.steps), "--warmup", str(a.warmup), "--seq-len", str(a.seq_len),
                     "--micro-batch", str(a.micro_batch), "--device", a.device, "--threads", str(a.threads),
                     *(["--checkpointing"] if a.checkpointing else [])]

    import torch

    torch.set_num_threads(a.threads)
    if a.run_part:
        import logging

        logging.basicConfig(level=logging.WARNING)
        with tempfile.TemporaryDirectory(prefix="bench-sft-run-") as tmp:
            fn = part_ours if a.run_part == "ours" else part_trl
            out = fn(a, json.loads(a.assets), Path(tmp) / "run")
        Path(a.result).write_text(json.dumps(out))
        return 0

    device = "cuda" if a.device == "cuda" or (a.device == "auto" and torch.cuda.is_available()) else "cpu"
    where = torch.cuda.get_device_name() if device == "cuda" else f"CPU, {a.threads} thread(s)"
    h, i, layers, heads = SIZES[a.size]
    with tempfile.TemporaryDirectory(prefix="bench-sft-") as tmp:
        assets = make_assets(Path(tmp), a.size)
        print(f"SFT throughput: LLaMA {a.size} (hidden {h}, {layers} layers), LoRA r=16 on every projection, "
              f"seq_len {a.seq_len}, micro-batch {a.micro_batch}, {a.steps} steps ({a.warmup} untimed), packing and "
              f"assistant-only loss in both, {_precision(device)} on {where}; best of {a.repeats} alternated runs")
        try:
            import trl  # noqa: F401

            sides = ["ours", "trl"]
        except ImportError:
            print("trl: not installed (pip install -e .[bench]); only persianllama measured")
            sides = ["ours"]
        runs: dict[str, list] = {name: [] for name in sides}
        for _ in range(a.repeats):  # alternated, so a busy spell of a shared machine hits both sides
            for name in sides:
                r = run_part(name, a, assets)
                if r:
                    runs[name].append(r)
        results = {name: max(rs, key=lambda r: r["tokens_per_s"]) if rs else None for name, rs in runs.items()}
        results.setdefault("trl", None)
    for name, r in results.items():
        if r:
            label = "persianllama sft" if name == "ours" else f"TRL SFTTrainer {r['trl']}"
            print(f"  {label:<22} {r['tokens_per_s']:10,.0f} tokens/s  ({r['tokens']:,} tokens in {r['seconds']:.2f} s; "
                  f"loss {r['loss_first']:.3f} -> {r['loss_last']:.3f})")
    if results["ours"] and results.get("trl"):
        ratio = results["ours"]["tokens_per_s"] / results["trl"]["tokens_per_s"]
        print(f"  ratio                  {ratio:10.2f}x  (persianllama / TRL)")
        results["ratio"] = ratio
    if a.json:
        Path(a.json).write_text(json.dumps({"size": a.size, "seq_len": a.seq_len, "micro_batch": a.micro_batch,
                                            "device": where, **results}, indent=2))
    return 0 if results["ours"] else 1


if __name__ == "__main__":
    sys.exit(main())
