"""`persianllama chat` with a real tiny model: --prompt gives an overfit SFT adapter's answers back exactly (greedy,
logical order); an interactive session read from standard input keeps the history, /reset and /system work; a base
model without a chat template is plain continuation; right-to-left replies are reordered only when asked."""

from __future__ import annotations

import io

import pytest

from persianllama.cli import main
from tests.sft.conftest import EIGHT, tiny_overrides


@pytest.fixture(scope="module")
def overfit(sft_assets, tmp_path_factory):
    """An SFT adapter that has learned the eight conversations by heart (as tests/sft/test_sft.py's)."""
    out = tmp_path_factory.mktemp("chat overfit") / "run"
    assert main(["sft", "--base", str(sft_assets.base), "--data", str(sft_assets.eight), "--output", str(out),
                 *tiny_overrides(**{"train.max_steps": 150, "data.normalize": "false"})]) == 0
    return out / "adapter"


def chat(sft_assets, *args):
    return main(["chat", "--model", str(sft_assets.base), *args])


def test_prompt_gives_each_trained_answer_back(overfit, sft_assets, capsys):
    asked = 0
    for conv in EIGHT:
        if len(conv) > 3:
            continue  # the two-turn conversation is the interactive test's
        system = [m["content"] for m in conv if m["role"] == "system"]
        question = next(m["content"] for m in conv if m["role"] == "user")
        capsys.readouterr()
        assert chat(sft_assets, "--adapter", str(overfit), "--prompt", question, "--max-new-tokens", "24",
                    *(["--system", system[0]] if system else [])) == 0
        assert capsys.readouterr().out == conv[-1]["content"] + "\n"  # logical order, nothing else on stdout
        asked += 1
    assert asked == 7


def test_interactive_session_keeps_history_and_obeys_reset_and_system(overfit, sft_assets, capsys, monkeypatch):
    saadi = EIGHT[6]
    lines = [saadi[0]["content"], saadi[2]["content"],  # the second question needs the first exchange
             "/reset", "/system کوتاه پاسخ بده.", "رنگ آسمان؟", "/system", "/nope", "/exit", "never read"]
    monkeypatch.setattr("sys.stdin", io.StringIO("".join(line + "\n" for line in lines)))
    assert chat(sft_assets, "--adapter", str(overfit), "--temperature", "0", "--max-new-tokens", "24",
                "--bidi", "auto") == 0
    out = capsys.readouterr().out.splitlines()
    # each reply follows its question (echoed, as stdin is not a terminal) in logical order: auto bidi is off here
    assert out[out.index(">>> " + lines[0]) + 1] == "سعدی."
    assert out[out.index(">>> " + lines[1]) + 1] == "گلستان."
    assert out[out.index(">>> /reset") + 1] == "(conversation reset)"
    assert out[out.index(">>> رنگ آسمان؟") + 1] == "آبی."  # the answer it learned under that system message
    assert out[out.index(">>> /system") + 1] == "system: کوتاه پاسخ بده."
    assert out[out.index(">>> /nope") + 1].startswith("unknown command /nope")
    assert out[-1] == ">>> /exit" and "never read" not in "\n".join(out)


def test_reset_drops_the_history_the_second_answer_needs(overfit, sft_assets):
    from persianllama.eval.loading import load_model
    from persianllama.sft.chat import ChatSession, Sampling

    lm = load_model(str(sft_assets.base), adapter=str(overfit), device="cpu")
    session = ChatSession(lm.model, lm.tokenizer, Sampling(24, 0.0, 0.9))
    pieces: list[str] = []
    assert session.reply(EIGHT[6][0]["content"], pieces.append) == "سعدی." == "".join(pieces)
    assert session.reply(EIGHT[6][2]["content"], lambda _: None) == "گلستان."
    assert len(session.messages) == 4
    session.reset()
    assert session.messages == [] and session._prompt_ids("در کدام کتاب؟", 10_000) == \
        list(lm.tokenizer.apply_chat_template([{"role": "user", "content": "در کدام کتاب؟"}],
                                              add_generation_prompt=True, tokenize=True, return_dict=True)["input_ids"])


def test_base_model_without_template_is_plain_continuation(sft_assets, capsys):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(sft_assets.base))
    assert not tok.chat_template
    text = "تهران پایتخت"
    assert chat(sft_assets, "--prompt", text, "--max-new-tokens", "8") == 0
    got = capsys.readouterr().out
    model = AutoModelForCausalLM.from_pretrained(str(sft_assets.base)).eval()
    enc = tok(text, return_tensors="pt")
    with torch.no_grad():
        ids = model.generate(**enc, max_new_tokens=8, do_sample=False, pad_token_id=tok.eos_token_id)
    assert got == tok.decode(ids[0, enc["input_ids"].shape[1]:], skip_special_tokens=True) + "\n"


def test_bidi_reorders_only_when_asked(monkeypatch):
    from bidi import get_display

    from persianllama.sft.chat import Display, visual_lines, want_bidi

    line = "سعدی شاعر قرن هفتم است و گلستان را در ۶۵۶ نوشت."
    shown = visual_lines(line, 30)
    assert len(shown) == 2 and all(len(s) == 30 for s in shown)  # wrapped, then right-aligned
    assert shown[0].strip() == get_display("سعدی شاعر قرن هفتم است و", base_dir="R")
    assert shown[0].strip().startswith("و") and "۶۵۶" in shown[1]  # visual order; digits keep their own order
    assert visual_lines("hello world", 30) == ["hello world"]  # a left-to-right line is left as it is
    streamed = io.StringIO()
    d = Display(streamed, bidi=True, width=30)
    for ch in line + "\n" + line:  # token by token: the same lines as the whole text
        d.write(ch)
    d.finish()
    assert streamed.getvalue() == "".join(s + "\n" for s in shown * 2)
    plain = io.StringIO()
    d = Display(plain, bidi=False)
    d.write(line)
    d.finish()
    assert plain.getvalue() == line + "\n"

    class Tty(io.StringIO):
        def isatty(self):
            return True

    assert not want_bidi("auto", io.StringIO(), {})  # a pipe or a file: logical order
    assert want_bidi("auto", Tty(), {"TERM": "xterm-256color"})
    assert not want_bidi("auto", Tty(), {"VTE_VERSION": "7600"})  # GNOME Terminal does bidi itself
    assert not want_bidi("auto", Tty(), {"KONSOLE_VERSION": "230804"})
    assert want_bidi("on", io.StringIO(), {}) and not want_bidi("off", Tty(), {})
