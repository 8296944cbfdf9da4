"""``persianllama tokenizer report``: how many tokens each tokenizer spends on the same Persian text.

Per tokenizer:
- tokens per word: tokens / whitespace-separated words of the text as given (``str.split``;
  ZWNJ is not whitespace, so می‌روند is one word). Not ``persianllama.text.words``, which drops
  punctuation: whitespace words are what published fertility figures count;
- characters per token;
- byte-fallback rate: share of tokens that stand for a raw byte rather than a whole character
  (``<0xNN>`` pieces; in byte-level vocabularies, tokens that are not valid UTF-8 alone);
- round trip: texts whose ``decode(encode(text))`` is the text itself, and the texts that come
  back only as the tokenizer's own normalization of it (ours maps ي to ی); failures are counted
  and shown, never dropped.

Special tokens (BOS/EOS) are not counted. Outputs: ``report.md``, ``report.json``, ``fertility.png``.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from persianllama.config import Count, NonNegInt
from persianllama.errors import UserError

log = logging.getLogger(__name__)


@dataclass
class ReportConfig:
    text: list[str] = field(default_factory=list)
    """Text to measure: text files (one text per line), Parquet files or corpus-builder directories."""
    tokenizers: list[str] = field(default_factory=list)
    """NAME=PATH per tokenizer: an HF tokenizer directory, a tokenizer.json, a SentencePiece .model or a tiktoken
    rank file."""
    output: str = ""
    """Directory for report.md, report.json and fertility.png."""
    normalize: bool = False
    """Give every tokenizer the text after the project's Persian normalizer (words are counted on the text as
    given either way)."""
    max_texts: Count | None = None
    """Measure only the first N texts (default: all)."""
    tiktoken_pattern: Literal["auto", "gpt2", "cl100k"] = "auto"
    """Split pattern for tiktoken rank files: 'auto' picks gpt2 below 60k ranks, cl100k (LLaMA-3) above."""
    examples: NonNegInt = 3
    """Round-trip failures shown per tokenizer."""
    fail_on_round_trip: bool = False
    """Exit with status 1 when a tokenizer does not give back some text (even up to its own normalization)."""
    batch_size: Count = 1000
    """Texts per encode_batch call."""


@dataclass
class Measurement:
    name: str
    path: str
    kind: str
    vocab_size: int
    texts: int
    words: int
    characters: int
    tokens: int
    byte_tokens: int
    round_trip_exact: int
    round_trip_normalized: int
    encode_seconds: float
    failures: list[dict] = field(default_factory=list)

    @property
    def tokens_per_word(self) -> float:
        return self.tokens / self.words if self.words else float("nan")

    @property
    def chars_per_token(self) -> float:
        return self.characters / self.tokens if self.tokens else float("nan")

    @property
    def byte_fallback_rate(self) -> float:
        return self.byte_tokens / self.tokens if self.tokens else 0.0

    @property
    def round_trip_failures(self) -> int:
        return self.texts - self.round_trip_exact - self.round_trip_normalized

    def to_dict(self) -> dict:
        return {
            "name": self.name, "path": self.path, "kind": self.kind, "vocab_size": self.vocab_size,
            "texts": self.texts, "words": self.words, "characters": self.characters, "tokens": self.tokens,
            "tokens_per_word": round(self.tokens_per_word, 4), "chars_per_token": round(self.chars_per_token, 4),
            "byte_tokens": self.byte_tokens, "byte_fallback_rate": round(self.byte_fallback_rate, 6),
            "round_trip_exact": self.round_trip_exact, "round_trip_normalized_only": self.round_trip_normalized,
            "round_trip_failures": self.round_trip_failures, "encode_seconds": round(self.encode_seconds, 3),
            "failure_examples": self.failures,
        }


@dataclass
class ReportResult:
    measurements: list[Measurement]
    markdown_table: str

    @property
    def all_round_trip(self) -> bool:
        return all(m.round_trip_failures == 0 for m in self.measurements)


def read_texts(inputs: list[str], limit: int | None = None) -> list[str]:
    from persianllama.tokenizer.corpus import resolve

    if not inputs:
        raise UserError("no text given: pass --text FILE [...]")
    texts = []
    for doc in resolve(inputs).iter_documents():
        texts.append(doc)
        if limit and len(texts) >= limit:
            break
    return texts


def count_words(text: str) -> int:
    """Whitespace words; ZWNJ (not whitespace) keeps می‌روند one word."""
    return len(text.split())


def measure(tokenizer, texts: list[str], words: int, examples: int = 3, batch_size: int = 1000,
            normalize_input: bool = False) -> Measurement:
    """Encode `texts` with a loaded tokenizer (see loaders.py) and count everything."""
    if normalize_input:
        from persianllama.text.normalize import normalize

        texts = [normalize(t) for t in texts]
    started = time.perf_counter()
    ids = []
    for start in range(0, len(texts), batch_size):
        ids += tokenizer.encode_batch(texts[start:start + batch_size])
    seconds = time.perf_counter() - started
    m = Measurement(tokenizer.name, tokenizer.path, tokenizer.kind, tokenizer.vocab_size, len(texts), words,
                    sum(len(t) for t in texts), sum(len(x) for x in ids), 0, 0, 0, seconds)
    byte_ids = tokenizer.byte_ids
    for i, (text, seq) in enumerate(zip(texts, ids)):
        if byte_ids:
            m.byte_tokens += sum(1 for t in seq if t in byte_ids)
        back = tokenizer.decode(seq)
        if back == text:
            m.round_trip_exact += 1
        elif tokenizer.normalize is not None and back == tokenizer.normalize(text):
            m.round_trip_normalized += 1
        elif len(m.failures) < examples:
            m.failures.append({"text": i, "input": text[:200], "decoded": back[:200],
                               "first_difference": _first_difference(text, back)})
    return m


def _first_difference(a: str, b: str) -> int:
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return i
    return min(len(a), len(b))


def markdown_table(measurements: list[Measurement]) -> str:
    lines = [
        "| tokenizer | kind | vocab | tokens/word | chars/token | byte fallback | round trip (exact / normalized / failed) |",
        "|---|---|---:|---:|---:|---:|---|",
    ]
    for m in measurements:
        lines.append(
            f"| {m.name} | {m.kind} | {m.vocab_size:,} | {m.tokens_per_word:.3f} | {m.chars_per_token:.2f} | "
            f"{100 * m.byte_fallback_rate:.2f}% | {m.round_trip_exact} / {m.round_trip_normalized} / "
            f"{m.round_trip_failures} |"
        )
    return "\n".join(lines)


def bar_chart(measurements: list[Measurement], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [m.name for m in measurements]
    values = [m.tokens_per_word for m in measurements]
    fig, ax = plt.subplots(figsize=(max(4.0, 1.2 * len(names) + 2), 3.6))
    bars = ax.bar(names, values, color="#3b7dd8")
    ax.bar_label(bars, labels=[f"{v:.2f}" for v in values], padding=2)
    ax.set_ylabel("tokens per word (lower is better)")
    ax.set_title(title)
    ax.set_ylim(0, max(values) * 1.15 if values else 1)
    plt.xticks(rotation=20, ha="right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def report(config: ReportConfig) -> ReportResult:
    from persianllama import config as cfg
    from persianllama.cliargs import output_dir, writing
    from persianllama.tokenizer import loaders

    config = cfg.from_dict(ReportConfig, cfg.to_dict(config))  # the field rules, for callers of the API too
    output_dir(config.output)  # before reading and encoding: a file or an unwritable place is refused now
    if not config.tokenizers:
        raise UserError("no tokenizer given: pass --tokenizer NAME=PATH [...]")
    texts = read_texts(config.text, config.max_texts)
    words = sum(count_words(t) for t in texts)
    if words == 0:
        raise UserError(f"the text has no words: {', '.join(config.text)}")
    names = [loaders.parse_spec(s)[0] for s in config.tokenizers]
    if len(set(names)) != len(names):
        raise UserError(f"two tokenizers share a name: {', '.join(names)}; use NAME=PATH")
    measurements = []
    for spec in config.tokenizers:
        tokenizer = loaders.load(spec, config.tiktoken_pattern)
        m = measure(tokenizer, texts, words, config.examples, config.batch_size, config.normalize)
        log.info("%s: %.3f tokens/word, %d round-trip failures", m.name, m.tokens_per_word, m.round_trip_failures)
        if m.round_trip_failures:
            log.warning("%s does not give back %d of %d texts (see report.json)", m.name,
                        m.round_trip_failures, m.texts)
        measurements.append(m)
    out = Path(config.output)
    table = markdown_table(measurements)
    chars = sum(len(t) for t in texts)
    summary = (f"{len(texts):,} texts, {words:,} whitespace words, {chars:,} characters from "
               f"{', '.join(config.text)}" + ("; normalized before encoding" if config.normalize else ""))
    legend = ("tokens/word: tokens per whitespace word (ZWNJ joins a word), no BOS/EOS. byte fallback: share of "
              "tokens that stand for a raw byte (<0xNN> pieces; in byte-level vocabularies, tokens that are not "
              "valid UTF-8 alone). round trip: decode(encode(text)) equals the text / equals only the tokenizer's "
              "own normalization of it / neither.")
    md = ["# Tokenizer fertility report", "", summary, "", table, "", legend, "",
          "![tokens per word](fertility.png)", ""]
    for m in measurements:
        if m.failures:
            md += [f"## Round-trip failures: {m.name} ({m.round_trip_failures} texts)", ""]
            md += [f"- text {f['text']}, first difference at character {f['first_difference']}: "
                   f"`{f['input'][:80]}` -> `{f['decoded'][:80]}`" for f in m.failures]
            md.append("")
    data = {"text": config.text, "texts": len(texts), "words": words, "characters": chars,
            "normalized_input": config.normalize, "tokenizers": [m.to_dict() for m in measurements]}
    with writing(out, "the report"):
        out.mkdir(parents=True, exist_ok=True)
        (out / "report.md").write_text("\n".join(md), encoding="utf-8")
        (out / "report.json").write_text(json.dumps(data, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
        bar_chart(measurements, out / "fertility.png", f"Tokens per word on {words:,} words")
    return ReportResult(measurements, table)
