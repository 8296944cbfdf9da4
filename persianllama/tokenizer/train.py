"""``persianllama tokenizer train``: a Persian vocabulary from a corpus, byte-level BPE or SentencePiece.

Byte-level BPE (the default), in two stages:

1. word-level merges with the `tokenizers` trainer, on the Persian pre-tokenizer's words (ZWNJ
   inside words, digits one by one, punctuation apart; see ``pretokenize.py``), up to
   ``(1 - multiword_fraction) * vocab_size``. Text files go to the Rust trainer as files;
   Parquet shards stream in record batches;
2. multi-word merges (SuperBPE's curriculum, Liu et al. 2025): the remaining vocabulary joins
   whole words that stage 1 made single tokens into frequent expressions (" در این",
   " به عنوان", " است که"). Persian writes many light-verb and prepositional phrases as
   several words, so these tokens cut tokens per word where more single-word pieces no longer
   do (1.17 vs 1.29 on the benchmark's held-out text). A token never joins part of a word,
   never crosses punctuation, a digit or a newline, and holds at most ``max_words_per_token`` words.

The saved tokenizer applies the project's Persian normalizer itself (``normalizer.py``), so
``AutoTokenizer.from_pretrained(DIR)`` on raw text gives the tokens the model trained on; it adds
``<s>`` in front of every sequence as LLaMA does and no ``</s>`` (the packers put ``</s>`` between
documents). Ids 0-3 are ``<unk> <s> </s> <pad>``: LlamaConfig's default bos/eos ids (1, 2) fit.

``--backend sentencepiece`` trains a SentencePiece BPE with LLaMA's settings (byte fallback,
digits split, identity normalization, dummy prefix) on normalized text, for merging into LLaMA's
vocabulary with ``tokenizer extend``; its HF files mirror the SentencePiece model token for token.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import re
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Literal

from persianllama.config import Count, Fraction, NonEmpty, NonNegInt, Range, RuleError
from persianllama.errors import UserError
from persianllama.tokenizer import corpus as corpus_mod
from persianllama.tokenizer.corpus import Corpus

log = logging.getLogger(__name__)

SPECIAL_TOKENS = ["<unk>", "<s>", "</s>", "<pad>"]
UNK, BOS, EOS, PAD = SPECIAL_TOKENS
BYTE_ALPHABET = 256
# Stage-2 symbols: one private-use character per stage-1 token id (Supplementary PUA-A and -B).
_SYMBOL_BASE = 0xF0000
_SYMBOL_LIMIT = 0x10FFFD - _SYMBOL_BASE
PHRASE_POOL_MIN_BYTES = 8_000_000
# SentencePiece drops sentences longer than its max_sentence_length (bytes); longer lines are cut at spaces.
SP_MAX_SENTENCE_BYTES = 8192
# SentencePiece's split_digits only knows ASCII digits; this invisible separator, put between any two
# digits of the training text (and removed by SentencePiece), keeps Persian digits single too.
SP_DELIMITER = "\u2063"
_DIGIT_PAIR = re.compile(r"(?<=\d)(?=\d)")
MIN_VOCAB = BYTE_ALPHABET + len(SPECIAL_TOKENS)
# Below this share of Arabic-script letters (of all letters) the corpus is not Persian text. The corpus
# builder keeps documents at >= 0.7 (LanguageConfig.min_arabic_script_ratio), and its output measures ~0.93
# (corpora/sample); 0.5 leaves room for Persian text that quotes much English (code, names, URLs) and
# still refuses a corpus where most letters are Latin: English input, or Persian decoded as Latin-1 and
# saved again (mojibake, which measures 0.0).
MIN_PERSIAN_SHARE = 0.5


@dataclass(frozen=True)
class _VocabRule(Range):
    """vocab_size's range, with the reason for its floor in the message."""

    def check(self, value, key: str) -> None:
        try:
            super().check(value, key)
        except RuleError as e:
            raise RuleError(f"{e} (the byte alphabet, {BYTE_ALPHABET}, plus {len(SPECIAL_TOKENS)} special "
                            "tokens: no vocabulary can be smaller)") from None


@dataclass
class TokenizerTrainConfig:
    input: list[str] = field(default_factory=list)
    """Corpus: corpus-builder output directories (Parquet shards with a text column), .parquet files, or UTF-8
    text files (one document per line)."""
    output: str = ""
    """Directory for the tokenizer (HF files, tokenizer.model for sentencepiece, tokenizer_card.md)."""
    vocab_size: Annotated[int, _VocabRule(MIN_VOCAB)] = 32000
    """Vocabulary size including the 4 special tokens (and, for sentencepiece, its 256 byte pieces)."""
    backend: Literal["bpe", "sentencepiece"] = "bpe"
    """'bpe': byte-level BPE with the `tokenizers` library (default); 'sentencepiece': SentencePiece BPE,
    LLaMA-style, for `tokenizer extend`."""
    multiword_fraction: Annotated[float, Range(0, 1, hi_open=True)] = 0.25
    """bpe: share of the vocabulary learned after the word-level merges as multi-word tokens (whole words
    joined, e.g. ' در این'); 0 keeps every token inside one word."""
    max_words_per_token: Count = 4
    """bpe: most words one multi-word token may join (at least 2 unless multiword_fraction=0)."""
    min_frequency: Count = 2
    """bpe: a merge needs a pair seen at least this often."""
    normalize: bool = True
    """Apply the project's Persian normalizer to the training text (and, in the saved HF tokenizer, to every
    text it encodes). Turn off only for text normalized some other way on purpose."""
    text_column: Annotated[str, NonEmpty()] = "text"
    """Column that holds the text in Parquet inputs."""
    sp_character_coverage: Annotated[float, Range(0, 1, lo_open=True)] = 0.9999
    """sentencepiece: share of characters covered by pieces; the rarest rest falls back to bytes."""
    sp_input_sentence_size: NonNegInt = 5_000_000
    """sentencepiece: lines sampled for training (SentencePiece holds them in memory); 0 = all."""
    threads: NonNegInt = 0
    """Worker threads/processes; 0 = every available CPU."""
    model_max_length: Count = 4096
    """Context length written to tokenizer_config.json."""
    seed: Annotated[int, Range(0, 2**32 - 1)] = 0
    """Seed for SentencePiece's sentence sampling."""
    min_persian_share: Fraction = MIN_PERSIAN_SHARE
    """Refuse a corpus whose letters are less than this share Arabic-script (Persian) letters, measured on a
    sample spread over every file: English or mis-decoded text would spend the vocabulary on non-Persian pieces."""
    allow_non_persian: bool = False
    """Train even when the corpus is below min_persian_share (a warning, and the card says so)."""

    def __post_init__(self) -> None:
        if self.multiword_fraction > 0 and self.max_words_per_token < 2:
            raise RuleError(f"max_words_per_token={self.max_words_per_token} must be >= 2 while "
                            f"multiword_fraction={self.multiword_fraction} > 0 (or set multiword_fraction=0)")


@dataclass
class TrainResult:
    output: Path
    vocab_size: int
    seconds: float
    stages: dict[str, float]
    multiword_tokens: int = 0
    documents: int | None = None
    characters: int | None = None
    persian: PersianShare | None = None


def min_vocab_size(backend: str) -> int:
    """The byte alphabet plus the special tokens: no vocabulary can be smaller."""
    return MIN_VOCAB


def check_config(config: TokenizerTrainConfig) -> TokenizerTrainConfig:
    """The settings with every field rule applied (for callers of the API too; the CLI's `load` did it)."""
    from persianllama import config as cfg

    config = cfg.from_dict(TokenizerTrainConfig, cfg.to_dict(config))
    if not config.output:
        raise UserError("--output is required")
    if config.multiword_fraction > 0 and config.vocab_size * (1 - config.multiword_fraction) > _SYMBOL_LIMIT:
        raise UserError(f"multi-word training supports up to {_SYMBOL_LIMIT} word-level tokens; lower vocab_size "
                        "or set multiword_fraction=0")
    return config


@dataclass
class PersianShare:
    """Arabic-script share of the letters in a sample of the corpus (persianllama.corpus.language's counts)."""

    share: float
    letters: int
    characters: int
    files: int
    lowest: tuple[str, float] | None = None
    """The file with the lowest share, when there are several."""

    def text(self) -> str:
        return (f"{self.share:.3f} of {self.letters:,} letters are Arabic-script (sample of {self.characters:,} "
                f"characters from {self.files} file(s))")


def _letter_counts(text: str) -> tuple[int, int]:
    """(Arabic-script letters, all letters) with the corpus builder's own letter classes."""
    from persianllama.corpus.language import _ARABIC_SCRIPT, _LATIN, _OTHER_LETTER_SCRIPTS

    arabic = _ARABIC_SCRIPT.subn("", text)[1]
    return arabic, arabic + _LATIN.subn("", text)[1] + _OTHER_LETTER_SCRIPTS.subn("", text)[1]


def persian_share(corpus: Corpus) -> PersianShare:
    """How Persian the corpus is, from a sample spread over its files (see Corpus.sample)."""
    total_ar = total = chars = 0
    per_file = []
    samples = corpus.sample()
    for path, text in samples:
        ar, letters = _letter_counts(text)
        total_ar, total, chars = total_ar + ar, total + letters, chars + len(text)
        if letters:
            per_file.append((str(path), ar / letters))
    lowest = min(per_file, key=lambda x: x[1]) if len(per_file) > 1 else None
    return PersianShare(total_ar / total if total else 0.0, total, chars, len(samples), lowest)


def check_persian(config: TokenizerTrainConfig, corpus: Corpus) -> PersianShare:
    """Refuse (or, with allow_non_persian, warn about) a corpus that is not mostly Persian letters."""
    found = persian_share(corpus)
    if found.share >= config.min_persian_share:
        if found.lowest and found.lowest[1] < config.min_persian_share:
            log.warning("%s: only %.3f of its letters are Arabic-script (the corpus as a whole: %.3f); is it meant "
                        "to be in the corpus?", found.lowest[0], found.lowest[1], found.share)
        return found
    lowest = (f"; lowest: {found.lowest[0]} at {found.lowest[1]:.3f}"
              if found.lowest and found.lowest[1] < config.min_persian_share else "")
    message = (f"the corpus is not Persian text: {found.text()}, below min_persian_share="
               f"{config.min_persian_share}{lowest}")
    if not config.allow_non_persian:
        raise UserError(f"{message}; check --input, or pass --allow-non-persian to train on it anyway")
    log.warning("%s; training anyway (--allow-non-persian)", message)
    return found


def _set_threads(threads: int) -> int:
    n = threads or corpus_mod.cpu_count()
    # tokenizers reads this once, when its thread pool starts.
    os.environ.setdefault("RAYON_NUM_THREADS", str(n))
    return n


def train(config: TokenizerTrainConfig) -> TrainResult:
    """Train, save and describe a tokenizer as `config` says.

    Everything that can be wrong with the input is refused before training: settings, the output folder
    (a file, or unwritable), the corpus (missing, empty, not UTF-8, not Persian)."""
    from persianllama.cliargs import output_dir, writing

    config = check_config(config)
    out = output_dir(config.output)
    corpus = corpus_mod.resolve(config.input, config.text_column)
    share = check_persian(config, corpus)
    threads = _set_threads(config.threads)
    log.info("training a %d-token %s vocabulary on %d files (%.1f MB; %s)", config.vocab_size, config.backend,
             len(corpus.files), corpus.bytes_on_disk / 1e6, share.text())
    started = time.perf_counter()
    with writing(out, "the tokenizer"):
        if config.backend == "bpe":
            result = train_bpe(config, corpus, threads)
        else:
            result = train_sentencepiece(config, corpus, threads)
        result.seconds = time.perf_counter() - started
        result.persian = share
        out.mkdir(parents=True, exist_ok=True)
        from persianllama.tokenizer.card import write_card

        write_card(out / "tokenizer_card.md", f"Persian {config.backend} tokenizer",
                   card_rows(config, corpus, result), card_notes(config))
    log.info("wrote %s (%d tokens) in %.1f s", out, result.vocab_size, result.seconds)
    return result


# --------------------------------------------------------------------------- byte-level BPE


def _bpe_tokenizer(config: TokenizerTrainConfig):
    from tokenizers import Tokenizer, decoders, models

    from persianllama.tokenizer.normalizer import persian_normalizer
    from persianllama.tokenizer.pretokenize import persian_pre_tokenizer

    tok = Tokenizer(models.BPE())
    if config.normalize:
        tok.normalizer = persian_normalizer()
    tok.pre_tokenizer = persian_pre_tokenizer()
    tok.decoder = decoders.ByteLevel()
    return tok


def train_bpe(config: TokenizerTrainConfig, corpus: Corpus, threads: int) -> TrainResult:
    import json

    from tokenizers import Tokenizer, pre_tokenizers, trainers

    stages: dict[str, float] = {}
    multiword = round(config.vocab_size * config.multiword_fraction)
    word_level_size = max(config.vocab_size - multiword, min_vocab_size("bpe"))
    multiword = config.vocab_size - word_level_size

    t0 = time.perf_counter()
    tok = _bpe_tokenizer(config)
    trainer = trainers.BpeTrainer(
        vocab_size=word_level_size,
        min_frequency=config.min_frequency,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=_show_progress(),
    )
    if corpus.parquet_files:
        tok.train_from_iterator(corpus.iter_batches(), trainer)
    else:
        # The Rust trainer reads, normalizes and pre-tokenizes files in parallel: several times
        # faster than feeding it Python strings.
        tok.train([str(p) for p in corpus.text_files], trainer)
    stages["word-level merges"] = time.perf_counter() - t0
    log.info("stage 1: %d tokens in %.1f s", tok.get_vocab_size(), stages["word-level merges"])

    documents = characters = None
    added = 0
    if multiword > 0 and tok.get_vocab_size() >= word_level_size:
        t0 = time.perf_counter()
        # Worker processes pay a start-up cost (imports) that only a large corpus repays.
        workers = threads if corpus.bytes_on_disk > PHRASE_POOL_MIN_BYTES else 1
        phrases, documents, characters = count_phrases(corpus, config.normalize, workers)
        stages["phrase counts"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        spec = json.loads(tok.to_str())
        new_merges = multiword_merges(tok, phrases, multiword, config)
        vocab, merges = spec["model"]["vocab"], spec["model"]["merges"]
        for left, right in new_merges:
            merged = left + right
            if merged not in vocab:
                vocab[merged] = len(vocab)
                added += 1
            merges.append([left, right])
        from persianllama.tokenizer.pretokenize import PHRASE_PATTERN

        _set_split_pattern(spec, PHRASE_PATTERN)
        tok = Tokenizer.from_str(json.dumps(spec, ensure_ascii=False))
        stages["multi-word merges"] = time.perf_counter() - t0
        log.info("stage 2: %d multi-word tokens in %.1f s", added, stages["multi-word merges"])
    elif multiword > 0:
        log.warning("the corpus gave only %d word-level tokens; no multi-word stage", tok.get_vocab_size())

    save_bpe(tok, Path(config.output), config.model_max_length)
    return TrainResult(Path(config.output), tok.get_vocab_size(), 0.0, stages, added, documents, characters)


def _set_split_pattern(spec: dict, pattern: str) -> None:
    for step in spec["pre_tokenizer"]["pretokenizers"]:
        if step["type"] == "Split":
            step["pattern"] = {"Regex": pattern}
            return
    raise RuntimeError("no Split step in the pre-tokenizer")  # pragma: no cover


def save_bpe(tok, out: Path, model_max_length: int) -> None:
    """tokenizer.json + tokenizer_config.json loadable by ``AutoTokenizer.from_pretrained(out)``."""
    from tokenizers import processors
    from transformers import PreTrainedTokenizerFast

    tok.post_processor = processors.TemplateProcessing(
        single=f"{BOS}:0 $A:0",
        pair=f"{BOS}:0 $A:0 {BOS}:1 $B:1",
        special_tokens=[(BOS, tok.token_to_id(BOS))],
    )
    hf = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=BOS,
        eos_token=EOS,
        unk_token=UNK,
        pad_token=PAD,
        add_bos_token=True,
        add_eos_token=False,
        model_max_length=model_max_length,
        clean_up_tokenization_spaces=False,
    )
    hf.save_pretrained(str(out))
    set_bos_eos_flags(out)


def set_bos_eos_flags(out: Path) -> None:
    """State in tokenizer_config.json what the post-processor does: BOS in front, no EOS."""
    import json

    path = out / "tokenizer_config.json"
    config = json.loads(path.read_text(encoding="utf-8"))
    config.update(add_bos_token=True, add_eos_token=False)
    path.write_text(json.dumps(config, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")


def _phrase_worker(args: tuple[list[str], bool]) -> tuple[Counter, int, int]:
    from persianllama.text.normalize import normalize
    from persianllama.tokenizer.pretokenize import phrase_splitter

    docs, do_normalize = args
    split = phrase_splitter()
    counts: Counter = Counter()
    chars = 0
    for doc in docs:
        if do_normalize:
            doc = normalize(doc)
        chars += len(doc)
        for piece, _ in split.pre_tokenize_str(doc):
            if " " in piece.strip(" "):
                counts[piece] += 1
    return counts, len(docs), chars


def count_phrases(corpus: Corpus, do_normalize: bool, workers: int) -> tuple[Counter, int, int]:
    """Counts of every multi-word phrase (a pre-token of the phrase pattern), streaming the corpus."""
    from tqdm import tqdm

    phrases: Counter = Counter()
    documents = characters = 0
    jobs = ((batch, do_normalize) for batch in corpus.iter_batches(2000))
    progress = tqdm(desc="counting phrases", unit=" docs", disable=not _show_progress())
    if workers > 1:
        ctx = mp.get_context("spawn")
        with ctx.Pool(workers) as pool:
            results: Iterable = pool.imap_unordered(_phrase_worker, jobs)
            for counts, n, chars in results:
                phrases.update(counts)
                documents, characters = documents + n, characters + chars
                progress.update(n)
    else:
        for job in jobs:
            counts, n, chars = _phrase_worker(job)
            phrases.update(counts)
            documents, characters = documents + n, characters + chars
            progress.update(n)
    progress.close()
    return phrases, documents, characters


def multiword_merges(tok, phrases: Counter, budget: int, config: TokenizerTrainConfig) -> list[tuple[str, str]]:
    """Stage 2: BPE over sequences of whole-word tokens, as (left, right) byte-level token strings.

    Each stage-1 token becomes one private-use character, so the Rust trainer does the counting
    and merging; a word that stage 1 splits into several tokens breaks the sequence, which is
    what keeps multi-word tokens to whole words.
    """
    import regex
    from tokenizers import Tokenizer, models, trainers

    from persianllama.tokenizer.pretokenize import WORD_PATTERN

    word_re = regex.compile(WORD_PATTERN)
    word_counts: Counter = Counter()
    split_phrases = []
    for phrase, n in phrases.items():
        words = word_re.findall(phrase)
        split_phrases.append((words, n))
        for w in words:
            word_counts[w] += n
    # Encode each distinct word with the stage-1 model alone (the text is already normalized).
    model_only = Tokenizer.from_str(tok.to_str())
    model_only.normalizer = None
    words = list(word_counts)
    single = {}
    for w, enc in zip(words, model_only.encode_batch(words, add_special_tokens=False)):
        if len(enc.ids) == 1:
            single[w] = chr(_SYMBOL_BASE + enc.ids[0])
    sequences: Counter = Counter()
    for words_in_phrase, n in split_phrases:
        run: list[str] = []
        for w in words_in_phrase + [None]:  # None closes the last run
            symbol = single.get(w) if w is not None else None
            if symbol is None:
                if len(run) > 1:
                    sequences["".join(run)] += n
                run = []
            else:
                run.append(symbol)
    if not sequences:
        return []
    alphabet = sorted({ch for s in sequences for ch in s})
    stage2 = Tokenizer(models.BPE())
    trainer = trainers.BpeTrainer(
        vocab_size=len(alphabet) + budget,
        min_frequency=config.min_frequency,
        initial_alphabet=alphabet,
        max_token_length=config.max_words_per_token,
        show_progress=_show_progress(),
    )

    def batches() -> Iterator[list[str]]:
        for seq, n in sequences.items():
            yield [seq] * n

    stage2.train_from_iterator(batches(), trainer, length=len(sequences))
    id_to_token = {i: t for t, i in tok.get_vocab().items()}

    def back(symbols: str) -> str:
        return "".join(id_to_token[ord(ch) - _SYMBOL_BASE] for ch in symbols)

    import json

    merges = json.loads(stage2.to_str())["model"]["merges"]
    return [(back(a), back(b)) for a, b in (m if isinstance(m, list) else m.split(" ") for m in merges)]


def _show_progress() -> bool:
    return logging.getLogger().isEnabledFor(logging.INFO) and os.environ.get("PERSIANLLAMA_QUIET") != "1"


# --------------------------------------------------------------------------- SentencePiece


def sentencepiece_lines(corpus: Corpus, do_normalize: bool) -> Iterator[str]:
    """Normalized training lines for SentencePiece, cut at spaces below its sentence-length limit,
    with :data:`SP_DELIMITER` between digits."""
    from persianllama.text.normalize import normalize

    for doc in corpus.iter_documents():
        if do_normalize:
            doc = normalize(doc)
        for line in doc.split("\n"):
            if not line.strip():
                continue
            while len(line.encode("utf-8")) > SP_MAX_SENTENCE_BYTES:
                cut = line.rfind(" ", 0, SP_MAX_SENTENCE_BYTES // 4)
                cut = cut if cut > 0 else SP_MAX_SENTENCE_BYTES // 4
                yield line[:cut]
                line = line[cut:].lstrip(" ")
            if line:
                yield _DIGIT_PAIR.sub(SP_DELIMITER, line)


def train_sentencepiece(config: TokenizerTrainConfig, corpus: Corpus, threads: int) -> TrainResult:
    import io

    import sentencepiece as sp

    from persianllama.tokenizer import spm
    from persianllama.tokenizer.normalizer import persian_normalizer

    counts = {"documents": 0, "characters": 0}

    def lines() -> Iterator[str]:
        for line in sentencepiece_lines(corpus, config.normalize):
            counts["documents"] += 1
            counts["characters"] += len(line)
            yield line

    model = io.BytesIO()
    sp.set_random_generator_seed(config.seed)
    t0 = time.perf_counter()
    try:
        sp.SentencePieceTrainer.train(
            sentence_iterator=lines(),
            model_writer=model,
            model_type="bpe",
            vocab_size=config.vocab_size,
            byte_fallback=True,
            character_coverage=config.sp_character_coverage,
            split_digits=True,
            pretokenization_delimiter=SP_DELIMITER,
            allow_whitespace_only_pieces=True,
            remove_extra_whitespaces=False,
            add_dummy_prefix=True,
            normalization_rule_name="identity",
            unk_id=0, bos_id=1, eos_id=2, pad_id=3,
            unk_piece=UNK, bos_piece=BOS, eos_piece=EOS, pad_piece=PAD,
            input_sentence_size=config.sp_input_sentence_size,
            shuffle_input_sentence=True,
            max_sentence_length=SP_MAX_SENTENCE_BYTES,
            num_threads=threads,
            seed_sentencepiece_size=1_000_000,
            minloglevel=0 if _show_progress() else 2,
        )
    except RuntimeError as e:
        raise UserError(f"SentencePiece could not train: {str(e).splitlines()[-1]}") from e
    seconds = time.perf_counter() - t0
    from sentencepiece import sentencepiece_model_pb2

    proto = sentencepiece_model_pb2.ModelProto()
    proto.ParseFromString(model.getvalue())
    normalizer = persian_normalizer() if config.normalize else None
    spm.save_hf(proto, Path(config.output), normalizer=normalizer, model_max_length=config.model_max_length)
    return TrainResult(Path(config.output), len(proto.pieces), 0.0, {"sentencepiece training": seconds},
                       documents=counts["documents"], characters=counts["characters"])


# --------------------------------------------------------------------------- card


def card_rows(config: TokenizerTrainConfig, corpus: Corpus, result: TrainResult) -> list[tuple[str, str]]:
    files = "<br>".join(corpus_mod.describe_files(corpus))
    size = f"{corpus.bytes_on_disk / 1e6:.2f} MB on disk in {len(corpus.files)} files"
    if result.documents is not None:
        unit = "documents" if config.backend == "bpe" else "lines"
        size += f"; {result.documents:,} {unit}, {result.characters:,} characters"
        size += " after normalization" if config.normalize else ""
    stages = ", ".join(f"{k} {v:.1f} s" for k, v in result.stages.items())
    rows = [
        ("Backend", "byte-level BPE (`tokenizers`)" if config.backend == "bpe"
         else "SentencePiece BPE (byte fallback), HF mirror in tokenizer.json"),
        ("Vocabulary", (f"{result.vocab_size} tokens (asked for {config.vocab_size})"
                        + (f"; {result.multiword_tokens} multi-word tokens" if config.backend == "bpe" else ""))),
        ("Special tokens", (f"{UNK}=0 {BOS}=1 {EOS}=2 {PAD}=3; `<s>` is added in front of every sequence, "
                            "`</s>` is not (append it between documents)")),
        ("Training corpus", " ".join(f"`{p}`" for p in corpus.inputs)),
        ("Persian share", _share_row(config, result.persian)),
        ("Files", files),
        ("Size", size),
        ("Training time", f"{result.seconds:.1f} s ({stages})"),
        ("Settings", ", ".join(f"{k}={v}" for k, v in _settings(config).items())),
    ]
    return rows


def _share_row(config: TokenizerTrainConfig, found: PersianShare | None) -> str:
    if found is None:
        return "not measured"
    row = f"{found.text()}; threshold {config.min_persian_share}"
    if found.share < config.min_persian_share:
        row += " **(below it: trained with --allow-non-persian)**"
    return row


def _settings(config: TokenizerTrainConfig) -> dict:
    keys = ["vocab_size", "min_frequency", "normalize", "text_column"]
    keys += (["multiword_fraction", "max_words_per_token"] if config.backend == "bpe"
             else ["sp_character_coverage", "sp_input_sentence_size", "seed"])
    return {k: getattr(config, k) for k in keys}


def card_notes(config: TokenizerTrainConfig) -> list[str]:
    notes = ["## Use", "", "```python", "from transformers import AutoTokenizer",
             "tok = AutoTokenizer.from_pretrained(DIR)  # no other arguments needed",
             "ids = tok(\"متن فارسی\")[\"input_ids\"]  # starts with <s> (id 1)", "```"]
    if config.normalize:
        notes += ["", "## Normalization", "",
                  ("The project's Persian normalizer (`persianllama.text.normalize`) was applied to the training "
                   "text and is part of `tokenizer.json`, so raw text can be passed as is: Arabic ي/ك become ی/ک, "
                   "diacritics and bidi marks are dropped, separated affixes are joined with ZWNJ. Decoding gives "
                   "back the normalized text.")]
        if config.backend == "sentencepiece":
            notes += ["", ("`tokenizer.model` used on its own (SentencePiece, or merged into LLaMA's) does not "
                           "normalize: pass it normalized text.")]
    if config.backend == "bpe":
        from persianllama.tokenizer.pretokenize import PATTERN, PHRASE_PATTERN

        pattern = PHRASE_PATTERN if config.multiword_fraction > 0 else PATTERN
        notes += ["", "## Pre-tokenizer", "", ("Split (isolated) on this Oniguruma pattern, then GPT-2's byte "
                  "mapping; ZWNJ stays inside words, each digit is its own piece, punctuation is apart:"), "",
                  "```", pattern, "```"]
    return notes
