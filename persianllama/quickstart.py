"""`persianllama quickstart`: every stage of the pipeline on the bundled sample, then one report.

    persianllama quickstart [--output runs/quickstart] [--fresh] [--steps corpus,tokenizer,...]

Steps, in order (each one is the command a user would run, with the sample's small settings):

1. corpus      `persianllama corpus build --recipe corpora/sample.yaml`
2. tokenizer   `persianllama tokenizer train` (byte-level BPE and SentencePiece) on the corpus; a small
               LLaMA-style SentencePiece "base" built from the repository's English text is extended
               with the Persian pieces (`tokenizer extend`); `tokenizer report` compares them
3. zero        `deepspeed --num_gpus 2 scripts/pretrain.py --config configs/tiny.yaml` (2 CPU processes;
               all GPUs when there are GPUs), then export
4. lora        `scripts/lora_adapt.sh` on a tiny LLaMA "base" built here (nothing is downloaded), 8-bit
5. sft         `persianllama sft` (LoRA) of the Zero model on the bundled Persian conversations, then chat
               answers before and after
6. sft_lora    `persianllama sft --adapter` of the LoRA model: the LoRA track's adapter continued on the
               conversations, its base in 8-bit as in the LoRA track, then chat answers before and after
7. evaluate    `persianllama evaluate` for the models on held-out sample text and the bundled task files
               (the instruction-tuned Zero model answers the generation prompts through its chat
               template), then `--compare`
8. distill     `persianllama distill`: the Zero model teaches a student half its width (forward KL on
               the teacher's distributions), next to the same student trained with CE alone for the same steps
9. report      runs/quickstart/report.md with every number, table and plot linked

A step whose outputs are already there is reused (`--fresh` starts over).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from persianllama.config import Count
from persianllama.errors import UserError

log = logging.getLogger("persianllama.quickstart")
ROOT = Path(__file__).resolve().parents[1]
# The report is written after them. sft_lora is a step of its own (not part of sft): its time shows in the report's
# step table, `--steps sft_lora` reruns it alone, and the sft step's outputs stay what they were.
STEPS = ["corpus", "tokenizer", "zero", "lora", "sft", "sft_lora", "evaluate", "distill"]


@dataclass
class QuickstartConfig:
    output: str = "runs/quickstart"
    """Where every stage writes (corpus/, tokenizer/, zero/, lora/, eval/, report.md)."""
    vocab_size: int = 2000
    """Persian BPE vocabulary size for the sample (a real run uses 32000 or more)."""
    sp_vocab_size: int = 1500
    """Persian SentencePiece vocabulary used to extend the base tokenizer."""
    base_vocab_size: int = 600
    """Size of the small English LLaMA-style SentencePiece base built here."""
    zero_steps: Count = 200
    """Pretraining steps of the tiny Zero model."""
    lora_steps: Count = 30
    """LoRA steps on the tiny base."""
    sft_steps: Count = 60
    """Instruction-tuning steps of the Zero model on the bundled Persian conversations."""
    sft_lora_steps: Count = 60
    """Instruction-tuning steps of the LoRA model (its adapter continued) on the same conversations."""
    distill_steps: Count = 100
    """Steps of each student in the distillation step (distilled, and CE only for comparison)."""
    processes: Count = 2
    """Ranks for the `deepspeed` launcher (CPU processes; on a GPU machine, GPUs)."""
    eval_limit: Count = 20
    """Examples per benchmark task in the evaluation (the sample's task files are small)."""


# ----------------------------------------------------------------------------------------------
# Helpers


def _bin(name: str) -> str:
    """A console script of this environment (deepspeed, persianllama), even if PATH lacks the venv."""
    here = Path(sys.executable).parent / name
    return str(here) if here.exists() else (shutil.which(name) or name)


def run_cmd(cmd: list[str], *, env: dict | None = None, log_file: Path | None = None) -> None:
    """Run one stage's command, streaming its output; a failure names the command and its log."""
    shown = " ".join(cmd)
    log.info("$ %s", shown)
    full_env = dict(os.environ, **(env or {}))
    full_env.setdefault("PYTHONUNBUFFERED", "1")
    if log_file:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        with open(log_file, "w", encoding="utf-8") as fh:
            proc = subprocess.Popen(cmd, cwd=ROOT, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                    text=True, bufsize=1)
            for line in proc.stdout:  # type: ignore[union-attr]
                fh.write(line)
                sys.stderr.write(line)
            rc = proc.wait()
    else:
        rc = subprocess.call(cmd, cwd=ROOT, env=full_env)
    if rc != 0:
        where = f" (log: {log_file})" if log_file else ""
        raise UserError(f"step failed with exit status {rc}: {shown}{where}")


def persianllama(*args: str, log_file: Path | None = None) -> None:
    run_cmd([sys.executable, "-m", "persianllama.cli", *args], log_file=log_file)


def english_text() -> str:
    """English prose for the small LLaMA-style base tokenizer: the repository's own documentation."""
    parts = [ROOT.joinpath("README.md").read_text(encoding="utf-8")]
    for path in sorted(ROOT.joinpath("persianllama").rglob("*.py")):
        parts.append(path.read_text(encoding="utf-8"))
    # ASCII lines only: the base stands for an English tokenizer that knows no Persian.
    return "\n".join(line for part in parts for line in part.splitlines() if line.isascii())


# ----------------------------------------------------------------------------------------------
# Steps


def step_corpus(cfg: QuickstartConfig, out: Path) -> dict:
    corpus = out / "corpus"
    persianllama("corpus", "build", "--recipe", str(ROOT / "corpora" / "sample.yaml"), "--output", str(corpus),
                 "--no-progress")
    return json.loads((corpus / "stats.json").read_text(encoding="utf-8"))


def build_base_tokenizer(cfg: QuickstartConfig, out: Path) -> Path:
    """A small English SentencePiece BPE with byte fallback, shaped like LLaMA's (the extension's base)."""
    import sentencepiece as spm

    base = out / "base_tokenizer"
    model = base / "tokenizer.model"
    if model.exists():
        return base
    base.mkdir(parents=True, exist_ok=True)
    text = base / "english.txt"
    text.write_text(english_text(), encoding="utf-8")
    spm.SentencePieceTrainer.train(
        input=str(text), model_prefix=str(base / "tokenizer"), vocab_size=cfg.base_vocab_size, model_type="bpe",
        byte_fallback=True, split_digits=True, character_coverage=0.9995, unk_id=0, bos_id=1, eos_id=2, pad_id=-1,
        add_dummy_prefix=True, remove_extra_whitespaces=False, normalization_rule_name="identity",
        minloglevel=2,
    )
    text.unlink()
    (base / "tokenizer.vocab").unlink(missing_ok=True)
    return base


def heldout_text(out: Path, n: int = 40) -> Path:
    """Sample text for the fertility report: the last `n` kept documents of the corpus, one per line."""
    path = out / "heldout.txt"
    if path.exists():
        return path
    import pyarrow.parquet as pq

    texts: list[str] = []
    for shard in sorted((out / "corpus" / "data").glob("*.parquet")):
        texts += pq.read_table(shard, columns=["text"]).column("text").to_pylist()
    lines = [" ".join(t.split()) for t in texts[-n:]]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def step_tokenizer(cfg: QuickstartConfig, out: Path) -> dict:
    corpus = out / "corpus"
    bpe, sp, ext = out / "tokenizer", out / "tokenizer_sp", out / "tokenizer_extended"
    if not (bpe / "tokenizer.json").exists():
        persianllama("tokenizer", "train", "--input", str(corpus), "--vocab-size", str(cfg.vocab_size),
                     "--output", str(bpe))
    if not (sp / "tokenizer.model").exists():
        persianllama("tokenizer", "train", "--backend", "sentencepiece", "--input", str(corpus), "--vocab-size",
                     str(cfg.sp_vocab_size), "--output", str(sp))
    base = build_base_tokenizer(cfg, out)
    if not (ext / "tokenizer.model").exists():
        persianllama("tokenizer", "extend", "--base", str(base / "tokenizer.model"), "--persian", str(sp),
                     "--output", str(ext))
    report = out / "fertility"
    if not (report / "report.json").exists():
        persianllama("tokenizer", "report", "--text", str(heldout_text(out)), "--tokenizer",
                     f"persian-bpe={bpe}", f"persian-sp={sp}", f"base={base / 'tokenizer.model'}",
                     f"base+persian={ext}", "--output", str(report))
    return json.loads((report / "report.json").read_text(encoding="utf-8"))


def step_zero(cfg: QuickstartConfig, out: Path) -> dict:
    run = out / "zero"
    if not (run / "hf" / "config.json").exists():
        launcher = [_bin("deepspeed"), "--num_gpus", str(cfg.processes), "--master_port", str(_free_port())]
        run_cmd(
            [*launcher, str(ROOT / "scripts" / "pretrain.py"), "--config", str(ROOT / "configs" / "tiny.yaml"),
             f"tokenizer={out / 'tokenizer'}", f"data.corpus=[{out / 'corpus'}]", f"out_dir={run}",
             f"data.cache_dir={out / 'cache'}", f"train.max_steps={cfg.zero_steps}",
             f"checkpoint.save_interval={max(10, cfg.zero_steps // 3)}", "log.progress_bar=false"],
            env={"OMP_NUM_THREADS": "1"}, log_file=out / "logs" / "zero.log",
        )
    return summarize(run / "metrics.jsonl")


def build_lora_base(out: Path) -> Path:
    """A tiny English "LLaMA" standing in for LLaMA-13B (nothing is downloaded): the base SentencePiece
    tokenizer as an HF tokenizer, and a randomly initialised 2-layer LlamaForCausalLM of its vocabulary."""
    base_dir = out / "lora_base"
    if (base_dir / "config.json").exists():
        return base_dir
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from persianllama.tokenizer.spm import load_proto, save_hf

    hf_tok = out / "base_tokenizer_hf"
    save_hf(load_proto(out / "base_tokenizer" / "tokenizer.model"), hf_tok)
    tok = AutoTokenizer.from_pretrained(hf_tok)
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tok), hidden_size=64, intermediate_size=172, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=256,
                         bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                         pad_token_id=tok.pad_token_id)
    LlamaForCausalLM(config).save_pretrained(base_dir)
    tok.save_pretrained(base_dir)
    return base_dir


def step_lora(cfg: QuickstartConfig, out: Path) -> dict:
    base = build_lora_base(out)
    run = out / "lora"
    if not (run / "adapter" / "adapter_config.json").exists():
        env = {"RECIPE": str(ROOT / "configs" / "lora_tiny.yaml"), "BASE_MODEL": str(base),
               "TOKENIZER": str(out / "tokenizer_extended"), "BASE_TOKENIZER": str(out / "base_tokenizer_hf"),
               "CORPUS": str(out / "corpus"), "OUTPUT_DIR": str(run), "MAX_STEPS": str(cfg.lora_steps),
               "QUANTIZATION": "8bit", "PYTHON": sys.executable}
        run_cmd(["bash", str(ROOT / "scripts" / "lora_adapt.sh"), f"data.cache_dir={out / 'cache'}"], env=env,
                log_file=out / "logs" / "lora.log")
    return summarize(run / "metrics.jsonl")


INSTRUCTIONS = ROOT / "corpora" / "sample" / "instructions" / "conversations.jsonl"
# Questions for the before/after chat table (from the bundled sample's held-out style: short, single-turn).
CHAT_PROMPTS = ["پایتخت ایران کجاست؟", "یک پیشنهاد برای خواب بهتر بده.", "این جمله را به انگلیسی ترجمه کن: «امروز هوا آفتابی است.»"]


def step_sft(cfg: QuickstartConfig, out: Path) -> dict:
    """Instruction-tune the Zero model (LoRA) on the bundled conversations, then answer a few questions before
    and after, through the saved chat template."""
    run = out / "sft"
    if not (run / "adapter" / "adapter_config.json").exists():
        persianllama("sft", "--recipe", str(ROOT / "configs" / "sft_tiny.yaml"), "--base", str(out / "zero" / "hf"),
                     "--data", str(INSTRUCTIONS), "--output", str(run), f"train.max_steps={cfg.sft_steps}",
                     "train.seq_len=128", log_file=out / "logs" / "sft.log")
    answers = run / "chat_answers.json"
    if not answers.exists():
        from persianllama import atomic

        atomic.write_json(answers, chat_before_after(out / "zero" / "hf", run / "adapter"))
    return {**summarize(run / "metrics.jsonl"), "answers": json.loads(answers.read_text(encoding="utf-8"))}


def chat_before_after(base: Path, adapter: Path, max_new_tokens: int = 40) -> list[dict]:
    """Greedy answers of the base model and of base + SFT adapter to CHAT_PROMPTS, both under the adapter's chat
    template (the format the tuned model was trained on)."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(adapter))
    model = AutoModelForCausalLM.from_pretrained(str(base)).eval()
    tuned = PeftModel.from_pretrained(model, str(adapter)).eval()
    rows = []
    for q in CHAT_PROMPTS:
        with tuned.disable_adapter():
            before = greedy_answer(tuned, tok, q, max_new_tokens)
        rows.append({"prompt": q, "before": before, "after": greedy_answer(tuned, tok, q, max_new_tokens)})
    return rows


def greedy_answer(model, tok, question: str, max_new_tokens: int = 40) -> str:
    """The model's greedy reply to one user message, through `tok`'s chat template."""
    import torch

    enc = tok.apply_chat_template([{"role": "user", "content": question}], add_generation_prompt=True,
                                  return_tensors="pt", return_dict=True)
    enc = {k: v.to(next(model.parameters()).device) for k, v in enc.items()}
    with torch.no_grad():
        ids = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False)
    return tok.decode(ids[0, enc["input_ids"].shape[1]:], skip_special_tokens=True).strip()


def step_sft_lora(cfg: QuickstartConfig, out: Path) -> dict:
    """Instruction-tune the LoRA model: its adapter (out/lora/adapter) continued on the bundled conversations with
    the base in 8-bit as in the LoRA track (`persianllama sft --adapter`), then the same questions before and
    after, through the new chat template."""
    from persianllama.lora.adapter import read_config

    base, lora_adapter, run = out / "lora_base", out / "lora" / "adapter", out / "sft_lora"
    if not (lora_adapter / "adapter_config.json").is_file():
        raise UserError(f"no LoRA adapter in {lora_adapter}; run the lora step first (--steps lora,sft_lora)")
    if not (run / "adapter" / "adapter_config.json").exists():
        ac = read_config(lora_adapter)  # continuing an adapter: its rank and targets, not the recipe's
        persianllama("sft", "--recipe", str(ROOT / "configs" / "sft_tiny.yaml"), "--base", str(base),
                     "--adapter", str(lora_adapter), "--data", str(INSTRUCTIONS), "--output", str(run),
                     f"train.max_steps={cfg.sft_lora_steps}", "train.seq_len=128", "model.quantization=8bit",
                     f"lora.r={ac['r']}", f"lora.alpha={ac['lora_alpha']}",
                     f"lora.target_modules=[{','.join(ac['target_modules'])}]", log_file=out / "logs" / "sft_lora.log")
    answers = run / "chat_answers.json"
    if not answers.exists():
        from persianllama import atomic

        atomic.write_json(answers, chat_adapters_before_after(base, lora_adapter, run / "adapter"))
    return {**summarize(run / "metrics.jsonl"), "answers": json.loads(answers.read_text(encoding="utf-8"))}


def chat_adapters_before_after(base: Path, before: Path, after: Path, max_new_tokens: int = 40) -> list[dict]:
    """Greedy answers of base + `before` adapter and of base + `after` adapter (which continued it) to CHAT_PROMPTS,
    the base in 8-bit, both under `after`'s chat template and its (extended) tokenizer."""
    from persianllama.eval.loading import load_model
    from persianllama.lora.model import quiet_bitsandbytes

    quiet_bitsandbytes()
    rows = [{"prompt": q} for q in CHAT_PROMPTS]
    for name, adapter in (("before", before), ("after", after)):
        loaded = load_model(str(base), adapter=str(adapter), tokenizer=str(after), load_in_8bit=True)
        for row in rows:
            row[name] = greedy_answer(loaded.model, loaded.tokenizer, row["prompt"], max_new_tokens)
        del loaded
    return rows


TASKS_DIR = ROOT / "corpora" / "sample" / "tasks"
EVAL_TASKS = "persian_bpb,persian_nlu,persian_generation"


def step_distill(cfg: QuickstartConfig, out: Path) -> dict:
    """The Zero model teaches a student of half its width (forward KL on its full distribution, online); the same
    student trained with CE alone for the same steps is the comparison. a = 0.9, T = 1: on this sample a = 0.5 or
    T = 2, or the top-32 cache (the tail bucket holds much of a tiny teacher's mass), taught less in 100 steps."""
    runs = {"kd": ["kd.alpha=0.9", "kd.temperature=1"], "ce": ["kd.alpha=0"]}
    summaries = {}
    for name, kd in runs.items():
        run = out / "distill" / name
        if not (run / "distill_summary.json").exists():
            persianllama("distill", "--teacher", str(out / "zero" / "hf"), "--student-config",
                         str(ROOT / "configs" / "tiny.yaml"), "--tokenizer", str(out / "tokenizer"),
                         "--corpus", str(out / "corpus"), "--output", str(run), "model.hidden_size=32",
                         "model.intermediate_size=86", f"train.max_steps={cfg.distill_steps}",
                         f"data.cache_dir={out / 'cache'}", f"checkpoint.save_interval={cfg.distill_steps}",
                         "log.progress_bar=false", "ds_config=" + str(ROOT / "ds_configs" / "zero0.json"), *kd,
                         log_file=out / "logs" / f"distill_{name}.log")
        summaries[name] = json.loads((run / "distill_summary.json").read_text(encoding="utf-8"))
    return {"runs": summaries, "teacher": summarize(out / "zero" / "metrics.jsonl")}


def validation_text(out: Path) -> Path:
    """The Zero run's held-out validation documents (never trained on): bits-per-byte for every model."""
    found = sorted((out / "cache").glob("*/val.jsonl"))
    if not found:
        raise UserError(f"no validation documents under {out / 'cache'}; run the zero step first")
    return found[0]


def evaluate_one(cfg: QuickstartConfig, out: Path, name: str, label: str, model_args: list[str]) -> Path:
    run = out / "eval" / name
    if not (run / "results.json").exists():
        persianllama("evaluate", *model_args, "--tasks", EVAL_TASKS, "--data-dir", str(TASKS_DIR),
                     "--data", f"text={validation_text(out)}", "--limit", str(cfg.eval_limit), "--output", str(run), f"label={label}",
                     log_file=out / "logs" / f"eval_{name}.log")
    return run


def step_evaluate(cfg: QuickstartConfig, out: Path) -> dict:
    runs = []
    if (out / "zero" / "hf" / "config.json").exists():
        runs.append(evaluate_one(cfg, out, "zero", "Zero (tiny, from scratch)", ["--model", str(out / "zero" / "hf")]))
    lora = out / "lora"
    if (lora / "adapter" / "adapter_config.json").exists():
        runs.append(evaluate_one(cfg, out, "lora", "LoRA (tiny base + adapter, 8-bit)", [
            "--model", str(out / "lora_base"), "--adapter", str(lora / "adapter"),
            "--tokenizer", str(out / "tokenizer_extended"), "--load-in-8bit"]))
        runs.append(evaluate_one(cfg, out, "lora_base", "untouched base (8-bit)", [
            "--model", str(out / "lora_base"), "--tokenizer", str(out / "base_tokenizer_hf"), "--load-in-8bit"]))
    sft = out / "sft"
    if (sft / "adapter" / "adapter_config.json").exists() and (out / "zero" / "hf" / "config.json").exists():
        # A chat model: the evaluation gives it the generation prompts through its chat template.
        runs.append(evaluate_one(cfg, out, "sft", "Zero + SFT (chat model)", [
            "--model", str(out / "zero" / "hf"), "--adapter", str(sft / "adapter")]))
    if not runs:
        raise UserError("no model to evaluate: run the zero (and lora) steps first")
    compare = out / "eval" / "compare"
    persianllama("evaluate", "--compare", *map(str, runs), "--output", str(compare))
    return {"runs": [str(r) for r in runs], "compare": str(compare)}


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def summarize(metrics: Path) -> dict:
    """A training run's numbers for the report, read through the run core's metrics schema."""
    from persianllama.run.metrics import summarize as core_summarize

    return core_summarize(metrics)


def track_section(summary: dict, curve: Path, curve_label: str, extra: str = "",
                  heldout: str = "held-out documents") -> list[str]:
    """Training loss first -> last (training records only) and the validations, as the shared writer recorded them."""
    lines = []
    if "train_loss_first" in summary:
        lines.append(f"Training loss {summary['train_loss_first']:.3f} at step {summary['train_loss_first_step']} -> "
                     f"{summary['train_loss_last']:.3f} at step {summary['train_loss_last_step']}{extra}.")
    first, last = summary.get("eval_first"), summary.get("eval_last")
    if last:
        start = (f" (step {first['step']}: bits/byte {first['bits_per_byte']:.4f}, loss {first['loss']:.4f})"
                 if first and first["step"] != last["step"] else "")
        lines.append(f"Validation on {heldout} at step {last['step']}: bits/byte "
                     f"{last['bits_per_byte']:.4f}, loss {last['loss']:.4f}, word perplexity "
                     f"{last['word_perplexity']:.1f}{start}.")
    if curve.exists():
        lines += ["", f"![{curve_label}]({curve.parent.name}/{curve.name})"]
    return lines


# ----------------------------------------------------------------------------------------------
# Report


def generation_samples(out: Path, runs: list[Path], n: int = 3) -> list[str]:
    """A few greedy Persian continuations per model, from the eval harness's generation samples (a chat model's
    are its answers to the prompts given through its chat template, and say so)."""
    lines = ["", "### Generated continuations (greedy, first prompts of the generation task)", ""]
    for run in runs:
        path = run / "samples" / "persian_generation.jsonl"
        if not path.exists():
            continue
        meta = json.loads((run / "results.json").read_text(encoding="utf-8")).get("persianllama", {})
        label = meta.get("label", run.name)
        fmt = (" (a chat model: each prompt given as a user message through its chat template)"
               if meta.get("generation_chat_template") else "")
        lines += [f"**{label}**{fmt}", ""]
        for row in [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines()[:n]]:
            cont = " ".join(str(row.get("filtered_resps", [""])[0]).split())
            lines.append(f"- «{row['doc']['prompt']}» → {cont[:200]}")
        lines.append("")
    return lines if len(lines) > 4 else []


def answers_table(answers: list[dict]) -> list[str]:
    lines = ["| prompt | before | after |", "|---|---|---|"]
    for a in answers:
        cell = [str(a[k]).replace("|", "\\|").replace("\n", " ")[:160] or "(empty)"
                for k in ("prompt", "before", "after")]
        lines.append("| " + " | ".join(cell) + " |")
    return lines


def headline(out: Path, results: dict) -> list[str]:
    """The numbers printed at the end of the run."""
    lines = []
    corpus = results.get("corpus", {})
    if "kept" in corpus:
        lines.append(f"corpus: kept {corpus['kept']['documents']} of {corpus['read']['documents']} documents "
                     f"({corpus['kept']['words']:,} words)")
    fert = out / "fertility" / "report.json"
    if fert.exists():
        rows = json.loads(fert.read_text(encoding="utf-8"))
        rows = rows.get("tokenizers", rows) if isinstance(rows, dict) else rows
        try:
            lines.append("tokens per word: " + ", ".join(f"{r['name']} {r['tokens_per_word']:.2f}" for r in rows))
        except (TypeError, KeyError):
            pass
    for name in ("zero", "lora", "lora_base"):
        res = out / "eval" / name / "results.json"
        if res.exists():
            data = json.loads(res.read_text(encoding="utf-8"))
            bpb = data["results"].get("persian_bpb", {}).get("bits_per_byte,none")
            label = data.get("persianllama", {}).get("label", name)
            if bpb is not None:
                lines.append(f"{label}: {bpb:.3f} bits per byte on held-out sample text")
    runs = (results.get("distill") or {}).get("runs") or {}
    if runs.get("kd", {}).get("kl_to_teacher") is not None and runs.get("ce", {}).get("kl_to_teacher") is not None:
        lines.append(f"distilled student: KL to the Zero model {runs['kd']['kl_to_teacher']:.3f} "
                     f"(CE only: {runs['ce']['kl_to_teacher']:.3f}) nats/token")
    return lines


def distill_section(distill: dict | None) -> list[str]:
    if not distill or not distill.get("runs"):
        return []
    kd, ce = distill["runs"].get("kd", {}), distill["runs"].get("ce", {})
    teacher = (distill.get("teacher") or {}).get("eval_last") or {}

    def row(name: str, s: dict) -> str:
        val = s.get("val") or {}
        kl = s.get("kl_to_teacher")
        return (f"| {name} | {val.get('bits_per_byte', float('nan')):.4f} | "
                f"{'' if kl is None else f'{kl:.4f}'} | {s.get('step')} |")

    lines = ["", "## 7. Distillation (the Zero model teaches a student half its width)", "",
             "`persianllama distill`: loss (1 - a) CE + a T^2 KL(teacher || student) with a = 0.9, T = 1, on the "
             "teacher's full distributions ([distill/kd/hf](distill/kd/hf)); the same student with CE only (a = 0) "
             "for the same steps beside it. KL is measured on the held-out documents at T = 1.", "",
             "| student | held-out bits/byte | KL(teacher || student), nats/token | steps |", "|---|---|---|---|",
             row("distilled (KD)", kd), row("CE only", ce)]
    if teacher.get("bits_per_byte") is not None:
        lines.append(f"| (the teacher: Zero model) | {teacher['bits_per_byte']:.4f} | 0 | |")
    if kd.get("kl_to_teacher") is not None and ce.get("kl_to_teacher") is not None:
        closer = "closer to" if kd["kl_to_teacher"] < ce["kl_to_teacher"] else "not closer to"
        lines += ["", f"The distilled student ends {closer} the teacher than the CE-only one "
                      f"({kd['kl_to_teacher']:.4f} vs {ce['kl_to_teacher']:.4f} nats/token).", "",
                  "![distillation loss curve (CE and KD terms)](distill/kd/loss_curve.png)"]
    return lines


def write_report(cfg: QuickstartConfig, out: Path, results: dict, seconds: dict) -> Path:
    lines = ["# PersianLLaMA quickstart report", "",
             f"Generated {time.strftime('%Y-%m-%d %H:%M')} by `persianllama quickstart` on the bundled sample "
             "(`corpora/sample/`). Every number below comes from this run.", ""]
    lines += ["| step | status | seconds (this run; 0 = reused) |", "|---|---|---:|"]
    for step in STEPS:
        status = results.get(step, {}).get("_status", "not run")
        lines.append(f"| {step} | {status} | {seconds.get(step, 0):.0f} |")
    corpus = results.get("corpus")
    if corpus and "read" in corpus:
        r, k = corpus["read"], corpus["kept"]
        lines += ["", "## 1. Corpus", "",
                  f"Read {r['documents']:,} documents ({r['broken_records']} broken records), "
                  f"dropped {corpus['dropped_total']:,}, kept **{k['documents']:,}** "
                  f"({k['words']:,} words, {k['characters']:,} characters): "
                  + ", ".join(f"{s} {n}" for s, n in k["per_source"].items()) + ".", "",
                  "| filter | dropped |", "|---|---:|"]
        for name, counts in corpus["dropped"].items():
            lines.append(f"| {name} | " + ", ".join(f"{reason} {n}" for reason, n in counts.items()) + " |")
        lines += ["", "Data card: [corpus/README.md](corpus/README.md)", "",
                  "![document lengths](corpus/lengths.png)"]
    tok = results.get("tokenizer")
    if tok and (out / "fertility" / "report.md").exists():
        table = (out / "fertility" / "report.md").read_text(encoding="utf-8").split("\n", 1)[-1].strip()
        table = "\n".join(ln for ln in table.splitlines() if not ln.startswith("!["))  # its image, relinked below
        lines += ["", "## 2. Tokenizers (fertility on sample text)", "", table, "",
                  "![fertility](fertility/fertility.png)"]
    zero = results.get("zero")
    if zero and zero.get("steps"):
        lines += ["", "## 3. Zero track (tiny model, DeepSpeed, 2 processes)", ""]
        lines += track_section(zero, out / "zero" / "loss_curve.png", "Zero loss curve")
    lora = results.get("lora")
    if lora and lora.get("steps"):
        lines += ["", "## 4. LoRA track (tiny base in 8-bit, extended tokenizer)", ""]
        lines += track_section(lora, out / "lora" / "loss_curve.png", "LoRA loss curve",
                               "; adapter in [lora/adapter](lora/adapter)")
    sft, sft_lora = results.get("sft"), results.get("sft_lora")
    if sft and sft.get("steps"):
        lines += ["", "## 5. Instruction tuning (the Zero model, LoRA, bundled Persian conversations)", ""]
        lines += track_section(sft, out / "sft" / "loss_curve.png", "SFT loss curve",
                               "; adapter with its chat template in [sft/adapter](sft/adapter)",
                               heldout="the assistant replies of held-out conversations")
        if sft.get("answers"):
            lines += ["", "Greedy answers under the saved chat template, before and after tuning (a tiny model: "
                      "the point is the format it learned, not the facts):", ""]
            lines += answers_table(sft["answers"])
    if sft_lora and sft_lora.get("steps"):
        if not (sft and sft.get("steps")):
            lines += ["", "## 5. Instruction tuning (bundled Persian conversations)", ""]
        lines += ["", "### Instruction tuning of the LoRA model (its adapter continued, base in 8-bit)", ""]
        lines += track_section(sft_lora, out / "sft_lora" / "loss_curve.png", "SFT (LoRA model) loss curve",
                               "; the LoRA track's adapter continued, with its chat template, in "
                               "[sft_lora/adapter](sft_lora/adapter)",
                               heldout="the assistant replies of held-out conversations")
        if sft_lora.get("answers"):
            lines += ["", "Greedy answers of the LoRA model (tiny base + LoRA-track adapter) and of the same model "
                      "after instruction tuning, both under the new chat template:", ""]
            lines += answers_table(sft_lora["answers"])
    ev = results.get("evaluate")
    if ev and ev.get("compare") and (Path(ev["compare"]) / "report.md").exists():
        body = (Path(ev["compare"]) / "report.md").read_text(encoding="utf-8").split("\n", 1)[-1].strip()
        body = "\n".join(ln for ln in body.splitlines() if not ln.startswith("!["))
        body = body.replace("\n## ", "\n### ")  # the compare report's sections sit under this report's section
        if body.startswith("## "):
            body = "#" + body
        lines += ["", "## 6. Evaluation (held-out sample text and the bundled task files)", "", body, "",
                  "![evaluation](eval/compare/chart.png)"]
        lines += generation_samples(out, [Path(r) for r in ev.get("runs", [])])
    lines += distill_section(results.get("distill"))
    path = out / "report.md"
    from persianllama import atomic

    atomic.write_text(path, "\n".join(lines) + "\n")
    return path


# ----------------------------------------------------------------------------------------------
# Entry point

STEP_FUNCS = {"corpus": step_corpus, "tokenizer": step_tokenizer, "zero": step_zero, "lora": step_lora,
              "sft": step_sft, "sft_lora": step_sft_lora, "evaluate": step_evaluate, "distill": step_distill}


def run(cfg: QuickstartConfig, steps: list[str], fresh: bool = False) -> Path:
    out = Path(cfg.output)
    if not out.is_absolute():
        out = ROOT / out
    if fresh and out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    results: dict = {}
    seconds: dict = {}
    for i, step in enumerate(STEPS, 1):
        if step not in steps:
            continue
        log.info("== quickstart step %d/%d: %s", i, len(STEPS), step)
        t = time.time()
        results[step] = STEP_FUNCS[step](cfg, out) or {}
        results[step]["_status"] = "done"
        seconds[step] = time.time() - t
    report = write_report(cfg, out, results, seconds)
    print(f"\nquickstart: report at {report}")
    for line in headline(out, results):
        print("  " + line)
    print(f"quickstart: chat with, compare and inspect it all: persianllama serve --runs {os.path.relpath(out)}")
    return report


def register(sub: argparse._SubParsersAction) -> None:
    from persianllama.config import describe

    p = sub.add_parser("quickstart", help="run every stage on the bundled sample and write a report",
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       description=__doc__.split("\n\n")[0],
                       epilog="settings (key=value):\n" + describe(QuickstartConfig))
    p.add_argument("--output", help="output directory (default runs/quickstart)")
    p.add_argument("--fresh", action="store_true", help="delete earlier outputs and start over")
    p.add_argument("--steps", default=",".join(STEPS), help="comma-separated steps to run")
    p.add_argument("overrides", nargs="*", metavar="key=value")
    p.set_defaults(func=_main)


def _main(args: argparse.Namespace) -> int:
    from persianllama import config as cfglib

    cfg = cfglib.load(QuickstartConfig, None, args.overrides, output=args.output)
    steps = [s.strip() for s in args.steps.split(",") if s.strip()]
    unknown = sorted(set(steps) - set(STEP_FUNCS))
    if unknown:
        raise UserError(f"unknown step(s) {', '.join(unknown)}; steps are {', '.join(STEP_FUNCS)}")
    run(cfg, steps, fresh=args.fresh)
    return 0
