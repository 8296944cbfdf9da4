"""Bad input of `persianllama tokenizer train / extend / report`: settings out of range, outputs that cannot
be written, corpora that are not UTF-8 or not Persian, hub ids that cannot be reached. Every row builds
its few-kilobyte inputs in `setup`; only the rows that must train (a full disk, --allow-non-persian)
train a 300-token vocabulary, in about a second."""

from __future__ import annotations

from pathlib import Path

from tests.bad_input.runner import Case

# Persian sentences written for these rows.
SENTENCES = [
    "امروز صبح باران آرامی بر شهر بارید و خیابان‌ها خیس شدند.",
    "کتاب‌های تازهٔ کتابخانه را روی قفسهٔ دوم گذاشته‌اند.",
    "بچه‌ها در حیاط مدرسه فوتبال بازی می‌کنند و معلم تماشا می‌کند.",
    "قطار ساعت هشت از ایستگاه مرکزی به سوی مشهد حرکت کرد.",
    "مادربزرگ هر شب برای نوه‌هایش قصه‌های قدیمی می‌گوید.",
    "در بازار میوه، انار و سیب امسال ارزان‌تر از پارسال است.",
]
ENGLISH = [
    "The committee met on Tuesday to discuss the new library hours.",
    "Children played football in the school yard while the teacher watched.",
]
MISSING_ID = "nobody-xyz/does-not-exist"


def _write(path: Path, lines: list[str], repeat: int = 8) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines * repeat) + "\n", encoding="utf-8")
    return path


def corpus(tmp: Path) -> dict:
    """A small Persian corpus file, a plain file (to pass as an output) and an empty folder."""
    (tmp / "empty").mkdir(exist_ok=True)
    (tmp / "a-file.txt").write_text("not a folder\n", encoding="utf-8")
    return {"corpus": _write(tmp / "fa.txt", SENTENCES), "file": tmp / "a-file.txt", "empty": tmp / "empty"}


def not_utf8(tmp: Path) -> dict:
    """Line 3 of a Persian corpus in Windows-1256 (the usual legacy Persian encoding)."""
    path = tmp / "corpus" / "legacy.txt"
    path.parent.mkdir()
    good = "\n".join(SENTENCES[:2]).encode("utf-8") + b"\n"
    path.write_bytes(good + SENTENCES[2].encode("cp1256", errors="replace") + b"\n" + good)
    return {**corpus(tmp), "bad": path, "bad_dir": path.parent}


def english(tmp: Path) -> dict:
    return {**corpus(tmp), "en": _write(tmp / "en.txt", ENGLISH)}


def mojibake(tmp: Path) -> dict:
    """Persian UTF-8 read as Latin-1 and saved again as UTF-8: valid UTF-8, but no Persian letters left."""
    text = "\n".join(SENTENCES * 8).encode("utf-8").decode("latin-1")
    (tmp / "mojibake.txt").write_text(text, encoding="utf-8")
    return {**corpus(tmp), "moji": tmp / "mojibake.txt"}


def full_disk(tmp: Path) -> dict:
    """An output folder whose card file is /dev/full: writing it fails with ENOSPC, as on a full disk."""
    out = tmp / "out"
    out.mkdir()
    (out / "tokenizer_card.md").symlink_to("/dev/full")
    return {**corpus(tmp), "out": out}


def int_column(tmp: Path) -> dict:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"text": [1, 2, 3]}), tmp / "numbers.parquet")
    return {**corpus(tmp), "parquet": tmp / "numbers.parquet"}


def _untouched(name: str):
    def check(tmp: Path, result) -> None:
        assert (tmp / name).read_text(encoding="utf-8") == "not a folder\n"
    return check


def _nothing_written(folder: str):
    def check(tmp: Path, result) -> None:
        assert not (tmp / folder).exists(), f"{folder} was written before the input was refused"
    return check


def _card_says_below(tmp: Path, result) -> None:
    card = (tmp / "en-tok" / "tokenizer_card.md").read_text(encoding="utf-8")
    assert "| Persian share | 0.000 of " in card and "below it: trained with --allow-non-persian" in card


TRAIN = ["tokenizer", "train", "--input", "{corpus}", "--output", "{tmp}/tok", "threads=1"]

CASES = [
    # --- settings, checked when they are loaded (flags, recipe and key=value alike)
    Case("tokenizer-train-vocab-negative", TRAIN + ["--vocab-size", "-5"], words=["vocab_size=-5", ">= 260"],
         setup=corpus, check=_nothing_written("tok")),
    Case("tokenizer-train-vocab-below-bytes", TRAIN + ["--vocab-size", "100"],
         words=["vocab_size=100", ">= 260", "byte alphabet"], setup=corpus),
    Case("tokenizer-train-vocab-not-integer", TRAIN + ["--vocab-size", "3.5e4"],
         words=["--vocab-size='3.5e4'", "not an integer"], setup=corpus),
    Case("tokenizer-train-multiword-fraction-one", TRAIN + ["multiword_fraction=1"],
         words=["multiword_fraction=1", "[0, 1)"], setup=corpus),
    Case("tokenizer-train-multiword-fraction-nan", TRAIN + ["multiword_fraction=.nan"],
         words=["multiword_fraction", "not a finite number"], setup=corpus),
    Case("tokenizer-train-threads-negative", TRAIN + ["threads=-2"], words=["threads=-2", ">= 0"], setup=corpus),
    Case("tokenizer-train-min-frequency-zero", TRAIN + ["min_frequency=0"], words=["min_frequency=0", ">= 1"],
         setup=corpus),
    Case("tokenizer-train-one-word-multiword-tokens", TRAIN + ["max_words_per_token=1"],
         words=["max_words_per_token=1", ">= 2", "multiword_fraction"], setup=corpus),
    Case("tokenizer-train-coverage-zero", ["tokenizer", "train", "--backend", "sentencepiece", "--input", "{corpus}",
                                           "--output", "{tmp}/tok", "sp_character_coverage=0"],
         words=["sp_character_coverage=0", "(0, 1]"], setup=corpus),
    Case("tokenizer-train-persian-share-above-one", TRAIN + ["min_persian_share=2"],
         words=["min_persian_share=2", "[0, 1]"], setup=corpus),
    Case("tokenizer-train-empty-text-column", TRAIN + ["text_column="], words=["text_column", "not be empty"],
         setup=corpus),
    # --- outputs, checked before any training
    Case("tokenizer-train-output-is-a-file", ["tokenizer", "train", "--input", "{bad}", "--output", "{file}"],
         words=["--output", "a-file.txt is a file"], setup=not_utf8, check=_untouched("a-file.txt")),
    Case("tokenizer-train-output-under-a-file", TRAIN[:5] + ["{file}/tok"],
         words=["a-file.txt is a file, so no folder can be made under it"], setup=corpus),
    Case("tokenizer-train-disk-full", ["tokenizer", "train", "--input", "{corpus}", "--output", "{out}",
                                       "--vocab-size", "300", "threads=1"],
         words=["--output", "no space left on the device while writing the tokenizer"], setup=full_disk),
    # --- the corpus
    Case("tokenizer-train-not-utf8", ["tokenizer", "train", "--input", "{bad}", "--output", "{tmp}/tok"],
         words=["legacy.txt line 3 is not valid UTF-8", "iconv"], setup=not_utf8, check=_nothing_written("tok")),
    Case("tokenizer-train-not-utf8-in-a-corpus-folder",
         ["tokenizer", "train", "--backend", "sentencepiece", "--input", "{corpus}", "{bad_dir}",
          "--output", "{tmp}/tok"],
         words=["legacy.txt line 3 is not valid UTF-8"], setup=not_utf8),
    Case("tokenizer-train-english-corpus", ["tokenizer", "train", "--input", "{en}", "--output", "{tmp}/tok"],
         words=["not Persian text", "0.000 of", "min_persian_share=0.5", "--allow-non-persian"], setup=english,
         check=_nothing_written("tok")),
    Case("tokenizer-train-mojibake-corpus", ["tokenizer", "train", "--input", "{moji}", "--output", "{tmp}/tok"],
         words=["not Persian text", "--allow-non-persian"], setup=mojibake),
    Case("tokenizer-train-english-allowed", ["tokenizer", "train", "--input", "{en}", "--output", "{tmp}/en-tok",
                                             "--vocab-size", "300", "threads=1", "--allow-non-persian"],
         exit=0, setup=english, check=_card_says_below),
    Case("tokenizer-train-parquet-numbers", ["tokenizer", "train", "--input", "{parquet}", "--output", "{tmp}/t"],
         words=["numbers.parquet", "column 'text' holds int64, not text"], setup=int_column),
    # --- extend
    Case("tokenizer-extend-max-new-zero", ["tokenizer", "extend", "--base", "{corpus}", "--persian", "{corpus}",
                                           "--output", "{tmp}/ext", "--max-new", "0"],
         words=["max_new=0", ">= 1"], setup=corpus),
    Case("tokenizer-extend-model-max-length-negative",
         ["tokenizer", "extend", "--base", "{corpus}", "--persian", "{corpus}", "--output", "{tmp}/ext",
          "model_max_length=-1"], words=["model_max_length=-1", ">= 1"], setup=corpus),
    Case("tokenizer-extend-output-is-a-file", ["tokenizer", "extend", "--base", "{corpus}", "--persian",
                                               "{corpus}", "--output", "{file}"],
         words=["a-file.txt is a file"], setup=corpus, check=_untouched("a-file.txt")),
    Case("tokenizer-extend-base-hub-id-offline",
         ["tokenizer", "extend", "--base", MISSING_ID, "--persian", "{corpus}", "--output", "{tmp}/ext"],
         words=[f"tokenizer {MISSING_ID}", "offline", "HF_HUB_OFFLINE=1", f"hf download {MISSING_ID} --local-dir"],
         setup=corpus, env={"HF_HUB_OFFLINE": "1"}),
    # --- report
    Case("tokenizer-report-hub-id-offline",
         ["tokenizer", "report", "--text", "{corpus}", "--tokenizer", f"x={MISSING_ID}", "--output", "{tmp}/r"],
         words=[f"tokenizer x: {MISSING_ID}: no such local folder", "offline", "hf download"],
         setup=corpus, env={"HF_HUB_OFFLINE": "1"}),
    Case("tokenizer-report-folder-without-tokenizer",
         ["tokenizer", "report", "--text", "{corpus}", "--tokenizer", "x={empty}", "--output", "{tmp}/r"],
         words=["not a tokenizer folder", "tokenizer.json", "it is empty"], setup=corpus),
    Case("tokenizer-report-batch-size-zero",
         ["tokenizer", "report", "--text", "{corpus}", "--tokenizer", "x={empty}", "--output", "{tmp}/r",
          "batch_size=0"], words=["batch_size=0", ">= 1"], setup=corpus),
    Case("tokenizer-report-max-texts-negative",
         ["tokenizer", "report", "--text", "{corpus}", "--tokenizer", "x={empty}", "--output", "{tmp}/r",
          "max_texts=-1"], words=["max_texts=-1", ">= 1"], setup=corpus),
    Case("tokenizer-report-text-not-utf8",
         ["tokenizer", "report", "--text", "{bad}", "--tokenizer", "x={empty}", "--output", "{tmp}/r"],
         words=["legacy.txt line 3 is not valid UTF-8"], setup=not_utf8),
    Case("tokenizer-report-output-is-a-file",
         ["tokenizer", "report", "--text", "{corpus}", "--tokenizer", "x={empty}", "--output", "{file}"],
         words=["a-file.txt is a file"], setup=corpus, check=_untouched("a-file.txt")),
]
