"""`persianllama tokenizer ...` end to end through the real CLI entry point."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tokenizer_testdata import SENTENCES

from persianllama.cli import main
from persianllama.config import load
from persianllama.tokenizer.extend import ExtendConfig
from persianllama.tokenizer.train import TokenizerTrainConfig

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("command", ["train", "extend", "report"])
def test_help_lists_every_setting(command, capsys):
    with pytest.raises(SystemExit) as e:
        main(["tokenizer", command, "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert "--recipe FILE" in out and "key=value" in out
    from persianllama.tokenizer.report import ReportConfig

    cls = {"train": TokenizerTrainConfig, "extend": ExtendConfig, "report": ReportConfig}[command]
    import dataclasses

    for f in dataclasses.fields(cls):
        assert f"  {f.name}: " in out


@pytest.mark.parametrize("recipe, cls", [("persian_bpe_32k.yaml", TokenizerTrainConfig), ("extend_llama.yaml", ExtendConfig)])
def test_recipes_load(recipe, cls):
    config = load(cls, ROOT / "tokenizer" / recipe)
    assert isinstance(config, cls)


def test_train_extend_report(tmp_path, corpus_file, llama_like_base, capsys):
    bpe, sp, ext, rep = (tmp_path / n for n in ("bpe", "sp", "ext", "rep"))
    # Overrides may follow --input's files directly: they are told apart from paths.
    assert main(["tokenizer", "train", "--input", str(corpus_file), "threads=1", "--vocab-size", "400",
                 "--output", str(bpe), "multiword_fraction=0.1"]) == 0
    assert json.loads((bpe / "tokenizer.json").read_text())["model"]["type"] == "BPE"
    assert "multiword_fraction=0.1" in (bpe / "tokenizer_card.md").read_text()
    assert main(["tokenizer", "train", "--backend", "sentencepiece", "--input", str(corpus_file),
                 "--vocab-size", "400", "--output", str(sp), "threads=1"]) == 0
    assert main(["tokenizer", "extend", "--base", str(llama_like_base), "--persian", str(sp), "--output", str(ext),
                 "--max-new", "50"]) == 0
    assert len(json.loads((ext / "new_tokens.json").read_text())) == 50
    text = tmp_path / "text.txt"
    text.write_text("\n".join(SENTENCES) + "\n", encoding="utf-8")
    assert main(["tokenizer", "report", "--text", str(text), "--tokenizer", f"ours={bpe}", f"ext={ext}",
                 f"base={llama_like_base}", "--output", str(rep)]) == 0
    out = capsys.readouterr().out
    assert "| ours | hf |" in out and "| base | sentencepiece |" in out
    assert (rep / "fertility.png").is_file()


def test_recipe_and_overrides(tmp_path, corpus_file):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"input: [{corpus_file}]\nvocab_size: 300\nmultiword_fraction: 0\nthreads: 1\n")
    assert main(["tokenizer", "train", "--recipe", str(recipe), "--output", str(tmp_path / "o"),
                 "vocab_size=320"]) == 0
    assert "vocab_size=320" in (tmp_path / "o" / "tokenizer_card.md").read_text()


@pytest.mark.parametrize("argv, message", [
    (["train", "--input", "{empty}", "--output", "{out}"], "the corpus is empty"),
    (["train", "--input", "{corpus}", "--output", "{out}", "--vocab-size", "100"], "vocab_size=100 is out of range: it must be >= 260"),
    (["train", "--input", "{corpus}", "--output", "{out}", "vocab_sise=100"], "unknown key vocab_sise"),
    (["extend", "--base", "{empty}", "--persian", "{out}", "--output", "{out}"], "not a SentencePiece model"),
    (["report", "--text", "{corpus}", "--tokenizer", "x={empty}", "--output", "{out}"], "is not an HF tokenizer"),
])
def test_bad_input_exits_2_with_one_line(tmp_path, corpus_file, capsys, argv, message):
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    values = {"empty": str(empty), "out": str(tmp_path / "out"), "corpus": str(corpus_file)}
    assert main(["tokenizer"] + [a.format(**values) for a in argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert message in err[-1] and err[-1].startswith("persianllama tokenizer: error:")
