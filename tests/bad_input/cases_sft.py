"""Bad-input rows of the post-training track: `sft`, `dpo`, `chat`."""

from __future__ import annotations

import json
from pathlib import Path

from tests.bad_input.runner import Case, tiny_base

GOOD_CONV = {"messages": [{"role": "user", "content": "سلام"}, {"role": "assistant", "content": "سلام! چطور کمک کنم؟"}]}
GOOD_PAIR = {"prompt": [{"role": "user", "content": "پایتخت ایران کجاست؟"}],
             "chosen": [{"role": "assistant", "content": "تهران."}],
             "rejected": [{"role": "assistant", "content": "اصفهان."}]}


def _jsonl(path: Path, records: list) -> None:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r, ensure_ascii=False)) + "\n" for r in records),
                    encoding="utf-8")


def _inputs(tmp: Path) -> dict:
    """A tiny base, and data files good and bad, made for the row."""
    _jsonl(tmp / "chats.jsonl", [GOOD_CONV] * 3)
    _jsonl(tmp / "pairs.jsonl", [GOOD_PAIR] * 3)
    _jsonl(tmp / "no-layout.jsonl", [{"text": "بدون قالب"}, "{broken json"])
    _jsonl(tmp / "no-answer.jsonl", [{"messages": [{"role": "user", "content": "سلام"}]}])
    _jsonl(tmp / "same-replies.jsonl", [{**GOOD_PAIR, "rejected": GOOD_PAIR["chosen"]}])
    _jsonl(tmp / "prompt-ends-assistant.jsonl", [{**GOOD_PAIR, "prompt": [*GOOD_PAIR["prompt"],
                                                                         {"role": "assistant", "content": "x"}]}])
    _jsonl(tmp / "two-replies.jsonl", [{**GOOD_PAIR, "chosen": [GOOD_PAIR["chosen"][0]] * 2}])
    (tmp / "chats.txt").write_text("سلام\n", encoding="utf-8")
    (tmp / "not-an-adapter").mkdir()
    return {"base": tiny_base()}


def _nothing_written(tmp: Path, result) -> None:
    assert not (tmp / "run" / "adapter").exists() and not (tmp / "run" / "checkpoints").exists()


def sft(id: str, extra: list[str], words: list[str], data: str = "chats.jsonl") -> Case:
    argv = ["sft", "--base", "{base}", "--output", "{tmp}/run", *(["--data", "{tmp}/" + data] if data else []),
            "train.seq_len=64", *extra]
    return Case(id=f"sft-{id}", argv=argv, words=words, setup=_inputs, check=_nothing_written)


def dpo(id: str, extra: list[str], words: list[str], data: str = "pairs.jsonl") -> Case:
    argv = ["dpo", "--base", "{base}", "--output", "{tmp}/run", *(["--data", "{tmp}/" + data] if data else []),
            "train.seq_len=64", *extra]
    return Case(id=f"dpo-{id}", argv=argv, words=words, setup=_inputs, check=_nothing_written)


def chat(id: str, argv: list[str], words: list[str], env: dict | None = None) -> Case:
    return Case(id=f"chat-{id}", argv=["chat", *argv], words=words, setup=_inputs, env=env or {})


CASES = [
    sft("no-data", [], ["no instruction data", "--data"], data=""),
    sft("data-missing", [], ["nope.jsonl", "no such file"], data="nope.jsonl"),
    sft("data-not-jsonl", [], ["chats.txt", "not .jsonl, .json or .parquet"], data="chats.txt"),
    sft("bad-records-only", [], ["no usable conversation", "no-layout.jsonl:1: no_layout", "no-layout.jsonl:2"],
        data="no-layout.jsonl"),
    sft("no-answer", [], ["no usable conversation", "no_answer"], data="no-answer.jsonl"),
    sft("preference-file", [], ["no usable conversation", "no_layout"], data="pairs.jsonl"),
    sft("wrong-format-forced", ["data.format=alpaca"], ["no usable conversation", "data.format=alpaca"]),
    sft("format-unknown", ["data.format=chatml"], ["data.format", "chatml"]),
    sft("train-on-unknown", ["data.train_on=prompt"], ["data.train_on", "prompt"]),
    sft("val-fraction-1", ["data.val_fraction=1"], ["data.val_fraction=1", "in [0, 1)"]),
    sft("nothing-fits", ["train.seq_len=4"], ["no conversation fits train.seq_len=4", "too_long=truncate"]),
    sft("template-file-missing", ["data.chat_template={tmp}/nope.jinja"], ["data.chat_template", "nope.jinja"]),
    sft("adapter-missing", ["--adapter", "{tmp}/no-adapter"], ["--adapter", "no-adapter", "no such folder"]),
    sft("steps-text", ["--steps", "many"], ["--steps", "many", "not an integer"]),
    dpo("no-data", [], ["no preference data", "--data"], data=""),
    dpo("data-missing", [], ["nope.jsonl", "no such file"], data="nope.jsonl"),
    dpo("bad-records-only", [], ["no usable preference pair", "no-layout.jsonl:1: no_layout", "no-layout.jsonl:2"],
        data="no-layout.jsonl"),
    dpo("conversation-file", [], ["no usable preference pair", "chosen and rejected"], data="chats.jsonl"),
    dpo("same-replies", [], ["no usable preference pair", "same_replies"], data="same-replies.jsonl"),
    dpo("prompt-ends-with-assistant", [], ["no usable preference pair", "role_order", "prompt ends with the user"],
        data="prompt-ends-assistant.jsonl"),
    dpo("reply-of-two-messages", [], ["no usable preference pair", "bad_reply", "2 messages"],
        data="two-replies.jsonl"),
    dpo("beta-0", ["dpo.beta=0"], ["dpo.beta=0", "> 0"]),
    dpo("beta-text", ["--beta", "strong"], ["--beta", "strong", "not a number"]),
    dpo("beta-nan", ["--beta", "nan"], ["dpo.beta", "finite"]),
    dpo("label-smoothing-half", ["dpo.label_smoothing=0.5"], ["dpo.label_smoothing=0.5", "in [0, 0.5)"]),
    dpo("reference-batch-0", ["dpo.reference_batch_size=0"], ["dpo.reference_batch_size=0", ">= 1"]),
    dpo("too-long-unknown", ["data.too_long=cut"], ["data.too_long", "cut"]),
    dpo("nothing-fits", ["train.seq_len=4"], ["no trainable preference pair: 3 too_long", "train.seq_len=4", "data.too_long=truncate"]),
    dpo("adapter-missing", ["--adapter", "{tmp}/no-adapter"], ["--adapter", "no-adapter", "no such folder"]),
    dpo("adapter-not-peft", ["--adapter", "{tmp}/not-an-adapter"], ["not-an-adapter", "no adapter_config.json"]),
    dpo("lr-below-min-lr", ["train.lr=1e-5", "train.min_lr=1e-3"], ["train.min_lr=0.001 must be <= lr=1e-05"]),
    chat("prompt-without-model", ["--prompt", "سلام"], ["--model is required"]),
    chat("model-missing", ["--model", "{tmp}/no-model", "--prompt", "سلام"], ["no-model"]),
    chat("model-hub-id-offline", ["--model", "nobody-xyz/does-not-exist", "--prompt", "سلام"],
         ["nobody-xyz/does-not-exist", "offline"], env={"HF_HUB_OFFLINE": "1"}),
    chat("adapter-not-peft", ["--model", "{base}", "--adapter", "{tmp}/not-an-adapter", "--prompt", "سلام"],
         ["not-an-adapter", "adapter"]),
    chat("empty-prompt", ["--model", "{base}", "--prompt", "  "], ["--prompt is empty"]),
    chat("empty-system", ["--model", "{base}", "--system", "", "--prompt", "سلام"], ["--system is empty"]),
    chat("max-new-tokens-0", ["--model", "{base}", "--max-new-tokens", "0"], ["--max-new-tokens", ">= 1"]),
    chat("temperature-negative", ["--model", "{base}", "--temperature", "-1"], ["--temperature", ">= 0"]),
    chat("top-p-0", ["--model", "{base}", "--top-p", "0"], ["--top-p", "in (0, 1]"]),
    chat("top-p-text", ["--model", "{base}", "--top-p", "most"], ["--top-p", "'most' is not a number"]),
    chat("bidi-unknown", ["--model", "{base}", "--bidi", "rtl"], ["--bidi", "invalid choice", "rtl"]),
]
