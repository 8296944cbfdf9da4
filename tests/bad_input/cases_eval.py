"""Bad input of `persianllama evaluate`: settings out of range, outputs that cannot be written, model /
tokenizer / adapter names that are neither a usable local folder nor a reachable hub id.

The tiny model (a 2-layer LLaMA and a BPE tokenizer trained here on sentences written for these rows,
as tests/eval/conftest.py builds them) is made once per session, in a temporary folder."""

from __future__ import annotations

import atexit
import functools
import json
import shutil
import tempfile
from pathlib import Path

from tests.bad_input.runner import Case

MISSING_ID = "nobody-xyz/does-not-exist"
SENTENCES = [
    "امروز هوا آفتابی است و بچه‌ها در پارک بازی می‌کنند.",
    "کتاب‌های زیادی در کتابخانهٔ شهر نگهداری می‌شود.",
    "مادرم هر روز صبح چای تازه دم می‌کند.",
    "تهران پایتخت ایران است و جمعیت زیادی دارد.",
    "قطار ساعت هشت صبح از ایستگاه حرکت می‌کند.",
    "شهر اصفهان به خاطر پل‌ها و مسجدهای زیبایش مشهور است.",
]


@functools.cache
def tiny_model_dir() -> Path:
    """A saved tiny LLaMA with its tokenizer (built once per session; removed at exit)."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    root = Path(tempfile.mkdtemp(prefix="persianllama-bad-input-eval-"))
    atexit.register(shutil.rmtree, root, True)
    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(SENTENCES * 3, trainer=trainers.BpeTrainer(
        vocab_size=300, special_tokens=["<pad>", "<s>", "</s>"], show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    hf_tok = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>")
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(
        vocab_size=len(hf_tok), hidden_size=16, intermediate_size=32, num_hidden_layers=2, num_attention_heads=2,
        num_key_value_heads=1, max_position_embeddings=128, bos_token_id=1, eos_token_id=2, pad_token_id=0))
    model.save_pretrained(root / "model")
    hf_tok.save_pretrained(root / "model")
    return root / "model"


def basics(tmp: Path) -> dict:
    """Held-out text, a plain file (to pass as an output) and an empty folder."""
    (tmp / "held-out.txt").write_text("\n\n".join(SENTENCES) + "\n", encoding="utf-8")
    (tmp / "a-file.txt").write_text("not a folder\n", encoding="utf-8")
    (tmp / "empty").mkdir(exist_ok=True)
    return {"text": tmp / "held-out.txt", "file": tmp / "a-file.txt", "empty": tmp / "empty"}


def with_model(tmp: Path) -> dict:
    return {**basics(tmp), "model": tiny_model_dir()}


def model_without_weights(tmp: Path) -> dict:
    folder = tmp / "half-copied"
    folder.mkdir()
    shutil.copy(tiny_model_dir() / "config.json", folder)
    return {**basics(tmp), "half": folder}


def model_missing_shard(tmp: Path) -> dict:
    folder = tmp / "sharded"
    folder.mkdir()
    shutil.copy(tiny_model_dir() / "config.json", folder)
    (folder / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": {
        "model.embed_tokens.weight": "model-00001-of-00002.safetensors",
        "lm_head.weight": "model-00002-of-00002.safetensors"}}))
    shutil.copy(tiny_model_dir() / "model.safetensors", folder / "model-00001-of-00002.safetensors")
    return {**basics(tmp), "sharded": folder}


def model_without_tokenizer(tmp: Path) -> dict:
    folder = tmp / "weights-only"
    folder.mkdir()
    for name in ("config.json", "model.safetensors"):
        shutil.copy(tiny_model_dir() / name, folder)
    return {**basics(tmp), "bare": folder}


def adapter_without_weights(tmp: Path) -> dict:
    folder = tmp / "adapter"
    folder.mkdir()
    (folder / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "r": 4}))
    return {**with_model(tmp), "adapter": folder}


def full_disk(tmp: Path) -> dict:
    """An output folder whose report.md is /dev/full: writing it fails with ENOSPC, as on a full disk."""
    out = tmp / "out"
    out.mkdir()
    (out / "report.md").symlink_to("/dev/full")
    return {**with_model(tmp), "out": out}


def _untouched(tmp: Path, result) -> None:
    assert (tmp / "a-file.txt").read_text(encoding="utf-8") == "not a folder\n"


def nli_file(tmp: Path) -> dict:
    """A FarsTail-format test file (tab-separated premise, hypothesis, label)."""
    rows = ["premise\thypothesis\tlabel"] + [f"{s}\t{s}\te" for s in SENTENCES[:3]]
    (tmp / "Test-word.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    return {**with_model(tmp), "nli": tmp / "Test-word.csv"}


def misaligned_parallel(tmp: Path) -> dict:
    folder = tmp / "quran"
    folder.mkdir()
    (folder / "fa.makarem.txt").write_text("\n".join(SENTENCES[:3]) + "\n", encoding="utf-8")
    (folder / "en.one.txt").write_text("one\ntwo\n", encoding="utf-8")
    return {**with_model(tmp), "parallel": folder}


def parallel_without_fa(tmp: Path) -> dict:
    (tmp / "pairs.tsv").write_text("persian\ten\nسلام\thello\n", encoding="utf-8")
    return {**with_model(tmp), "pairs": tmp / "pairs.tsv"}


EVAL = ["evaluate", "--model", "{empty}", "--output", "{tmp}/o", "--device", "cpu"]
BPB = ["--tasks", "persian_bpb", "--data", "text={text}", "--output", "{tmp}/o", "--device", "cpu"]
OFFLINE = {"HF_HUB_OFFLINE": "1"}

CASES = [
    # --- settings, checked when they are loaded (flags, recipe and key=value alike), before any data or model
    Case("eval-limit-zero", EVAL + ["--limit", "0"], words=["limit=0", ">= 1"], setup=basics),
    Case("eval-limit-negative", EVAL + ["--limit", "-3"], words=["limit=-3", ">= 1"], setup=basics),
    Case("eval-limit-not-a-number", EVAL + ["--limit", "ten"], words=["--limit='ten'", "not an integer"],
         setup=basics),
    Case("eval-batch-size-zero", EVAL + ["--batch-size", "0"], words=["batch_size=0", ">= 1"], setup=basics),
    Case("eval-max-length-zero", EVAL + ["--max-length", "0"], words=["max_length=0", ">= 1"], setup=basics),
    Case("eval-num-fewshot-negative", EVAL + ["--num-fewshot", "-1"], words=["num_fewshot=-1", ">= 0"],
         setup=basics),
    Case("eval-bpb-stride-above-max-length", EVAL + ["--max-length", "32", "bpb_stride=64"],
         words=["bpb_stride=64", "<= max_length=32"], setup=basics),
    Case("eval-bootstrap-negative", EVAL + ["bootstrap_iters=-5"], words=["bootstrap_iters=-5", ">= 0"],
         setup=basics),
    Case("eval-seed-negative", EVAL + ["seed=-1"], words=["seed=-1", "[0, 4294967295]"], setup=basics),
    Case("eval-max-gen-tokens-zero", EVAL + ["max_gen_tokens=0"], words=["max_gen_tokens=0", ">= 1"],
         setup=basics),
    # --- outputs, checked before anything loads
    Case("eval-output-is-a-file", ["evaluate", "--model", MISSING_ID, "--output", "{file}"],
         words=["--output", "a-file.txt is a file"], setup=basics, check=_untouched),
    Case("eval-compare-output-is-a-file", ["evaluate", "--compare", "{empty}", "--output", "{file}"],
         words=["--output", "a-file.txt is a file"], setup=basics, check=_untouched),
    Case("eval-disk-full", ["evaluate", "--model", "{model}", "--tasks", "persian_bpb", "--data", "text={text}",
                            "--output", "{out}", "--device", "cpu", "--batch-size", "2"],
         words=["--output", "no space left on the device while writing the evaluation outputs"], setup=full_disk),
    # --- hub ids that cannot be reached
    Case("eval-model-hub-id-offline", ["evaluate", "--model", MISSING_ID, *BPB],
         words=[f"model {MISSING_ID}: no such local folder", "offline (HF_HUB_OFFLINE=1 is set)",
                f"hf download {MISSING_ID} --local-dir DIR"], setup=basics, env=OFFLINE),
    Case("eval-model-hub-id-unreachable", ["evaluate", "--model", MISSING_ID, *BPB],
         words=["offline (127.0.0.1:9 cannot be reached)", "hf download"], setup=basics,
         env={"HF_HUB_OFFLINE": "0", "TRANSFORMERS_OFFLINE": "0", "HF_ENDPOINT": "http://127.0.0.1:9"}),
    Case("eval-model-hub-id-real-endpoint", ["evaluate", "--model", MISSING_ID, *BPB],
         # this machine is offline, so the line says so; with network the hub says there is no such repository
         words=[f"model {MISSING_ID}: no such local folder"], setup=basics,
         env={"HF_HUB_OFFLINE": "0", "TRANSFORMERS_OFFLINE": "0"}),
    Case("eval-tokenizer-hub-id-offline", ["evaluate", "--model", "{model}", "--tokenizer", MISSING_ID, *BPB],
         words=[f"tokenizer {MISSING_ID}: no such local folder", "offline"], setup=with_model, env=OFFLINE),
    Case("eval-adapter-hub-id-offline", ["evaluate", "--model", "{model}", "--adapter", MISSING_ID, *BPB],
         words=[f"adapter {MISSING_ID}: no such local folder", "offline"], setup=with_model, env=OFFLINE),
    # --- local folders that are not what they are passed as
    Case("eval-model-folder-empty", ["evaluate", "--model", "{empty}", *BPB],
         words=["empty: not a model folder: no config.json (it is empty)"], setup=basics),
    Case("eval-model-without-weights", ["evaluate", "--model", "{half}", *BPB],
         words=["half-copied: not a model folder: config.json but no weights"], setup=model_without_weights),
    Case("eval-model-missing-shard", ["evaluate", "--model", "{sharded}", *BPB],
         words=["model.safetensors.index.json names 1 shard file(s) that are not there",
                "model-00002-of-00002.safetensors"], setup=model_missing_shard),
    Case("eval-model-without-tokenizer", ["evaluate", "--model", "{bare}", *BPB],
         words=["weights-only: the model folder holds no tokenizer", "--tokenizer"], setup=model_without_tokenizer),
    Case("eval-model-is-a-file", ["evaluate", "--model", "{text}", *BPB],
         words=["model", "held-out.txt is a file; pass the folder that holds config.json"], setup=basics),
    Case("eval-adapter-without-weights", ["evaluate", "--model", "{model}", "--adapter", "{adapter}", *BPB],
         words=["adapter_config.json but no adapter_model.safetensors or adapter_model.bin"],
         setup=adapter_without_weights),
    Case("eval-tokenizer-folder-empty", ["evaluate", "--model", "{model}", "--tokenizer", "{empty}", *BPB],
         words=["empty: not a tokenizer folder"], setup=with_model),
    # --- tasks, data keys and modes added with the honest-metrics / chat / built-in / translation work
    Case("eval-data-unknown-key", ["evaluate", "--model", "{model}", "--tasks", "farstail", "--data", "farstial={tmp}",
                                   "--output", "{tmp}/o"],
         words=["--data farstial=", "unknown data key", "farstail"], setup=with_model),
    Case("eval-unknown-task-names-builtins", ["evaluate", "--model", "{model}", "--tasks", "belebele_pes",
                                              "--output", "{tmp}/o"],
         words=["unknown task 'belebele_pes'", "lm-eval's persian tasks", "belebele_pes_arab"], setup=with_model),
    Case("eval-chat-template-missing", ["evaluate", "--model", "{model}", "--tasks", "farstail_chat", "--data",
                                        "farstail={nli}", "--apply-chat-template", "--output", "{tmp}/o",
                                        "--device", "cpu"],
         words=["--apply-chat-template", "has no chat template"], setup=nli_file),
    Case("eval-fewshot-multiturn-without-chat", EVAL + ["fewshot_as_multiturn=true"],
         words=["fewshot_as_multiturn=true needs apply_chat_template=true"], setup=basics),
    Case("eval-context-too-short-for-generation", ["evaluate", "--model", "{model}", "--tasks", "persian_generation",
                                                   "--max-length", "32", "--output", "{tmp}/o", "--device", "cpu"],
         words=["persian_generation generates up to 64 tokens", "32-token context", "--max-length"], setup=with_model),
    Case("eval-builtin-offline", ["evaluate", "--model", "{model}", "--tasks", "belebele_pes_Arab", "--output",
                                  "{tmp}/o", "--device", "cpu"],
         words=["belebele_pes_arab: its data (hub facebook/belebele, config pes_arab) cannot be loaded",
                "--data belebele_pes_arab=dir"], setup=with_model,
         env={"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}),
    Case("eval-builtin-local-copy-missing", ["evaluate", "--model", "{model}", "--tasks", "belebele_pes_Arab",
                                             "--data", "belebele_pes_Arab={tmp}/nope", "--output", "{tmp}/o"],
         words=["--data belebele_pes_arab=", "no such file or directory (local copy of hub facebook/belebele"],
         setup=with_model),
    Case("eval-builtin-local-copy-not-data", ["evaluate", "--model", "{model}", "--tasks", "belebele_pes_Arab",
                                              "--data", "belebele_pes_Arab={text}", "--output", "{tmp}/o"],
         words=["expected a .parquet, .jsonl, .json or .csv file"], setup=with_model),
    Case("eval-translation-misaligned", ["evaluate", "--model", "{model}", "--tasks", "persian_translation_en_fa",
                                         "--data", "translation={parallel}", "--output", "{tmp}/o"],
         words=["quran", "not line-aligned", "fa.makarem.txt 3", "en.one.txt 2"], setup=misaligned_parallel),
    Case("eval-translation-tsv-without-fa", ["evaluate", "--model", "{model}", "--tasks", "persian_translation_fa_en",
                                             "--data", "translation={pairs}", "--output", "{tmp}/o"],
         words=["pairs.tsv:1", "needs tab-separated columns 'fa' and 'en'"], setup=parallel_without_fa),
    Case("eval-translation-no-source", ["evaluate", "--model", "{model}", "--tasks", "persian_translation",
                                        "--output", "{tmp}/o"],
         words=["no parallel text for the translation tasks", "--data translation=path"], setup=with_model,
         env={"PERSIANLLAMA_EVAL_DATA": ""}),
    Case("eval-lm-eval-command-without-tasks", ["evaluate", "--model", "{model}", "--lm-eval-command"],
         words=["--lm-eval-command needs --model and --tasks"], setup=with_model),
    Case("eval-list-tasks-bad-local-copy", ["evaluate", "--list-tasks", "--data", "global_mmlu_full_fa={empty}"],
         words=["no test*.parquet/.jsonl/.csv file"], setup=basics),
]

