"""Tokenizer stage on real Persian text: both backends side by side, LLaMA-2 extension, released tokenizers.

    python benchmarks/tokenizer.py [--shared ../shared/data] [--out runs/benchmarks/tokenizer]
                                   [--vocab-size 32000] [--ablations]

1. Training corpus (~24 MB): every Persian text in ../shared/data that is not held out: classical
   poetry, 8 Quran translations, FarsTail + ParsiNLU entailment sentences, ParsiNLU reading
   comprehension passages, reviews, questions and multiple-choice items, UD Persian sentences other
   than the Seraji test set. Lines equal to (or starting like) a held-out text are dropped. It is
   written to a temporary directory as text files (never into the repository).
2. Held-out text: the UD Persian Seraji test sentences and the PersianQA test paragraphs, 693 texts,
   31,963 whitespace words (the README's fertility figures are on the same text).
3. Both backends train the same vocabulary size on the same files: wall time, then encode
   throughput with 2 worker processes (batch API inside each; SentencePiece also pays for the
   Python normalizer it needs), and fertility on the held-out text.
4. LLaMA-2's tokenizer extended with the SentencePiece model's pieces (at most 32k): fertility,
   ids unchanged, SentencePiece vs HF agreement on the held-out Persian and on English (the
   Yusuf Ali Quran translation); beside it the plain append-with-score-0 merge converted by
   transformers, to show the disagreement it has.
5. The fertility report over ours and the released tokenizers in ../shared/data/tokenizers.

Writes OUT/summary.json and OUT/summary.md (and the report's files under OUT/report/).
"""

from __future__ import annotations

import argparse
import csv
import glob
import json
import multiprocessing as mp
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DEFAULT_SHARED = Path(os.environ.get("PERSIANLLAMA_SHARED", ROOT.parent / "shared")) / "data"


# --------------------------------------------------------------------------- data


def ud_sentences(path: Path) -> list[str]:
    prefix = "# text = "
    lines = path.read_text(encoding="utf-8").split("\n")
    return [ln[len(prefix):] for ln in lines if ln.startswith(prefix)]


def held_out(shared: Path) -> list[str]:
    texts = ud_sentences(shared / "ud_persian_seraji/fa_seraji-ud-test.conllu")
    data = json.loads((shared / "persianqa/dataset/pqa_test.json").read_text(encoding="utf-8"))
    texts += [p["context"] for article in data["data"] for p in article["paragraphs"]]
    return texts


def _jsonl(path: str) -> list[dict]:
    rows = []
    for line in Path(path).read_text(encoding="utf-8").split("\n"):
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue  # a few ParsiNLU files hold Python-style dicts on some lines
    return rows


def training_corpus(shared: Path, out: Path, quran_translations: int = 8) -> dict[str, int]:
    """Write the training text files into `out`; returns bytes per source."""
    held = held_out(shared)
    exact = {t.strip() for t in held}
    starts = {t.strip()[:60] for t in held}
    p = str(shared / "parsinlu/data")
    sources: dict[str, list[str]] = {
        "poetry": [Path(f).read_text(encoding="utf-8")
                   for f in sorted(glob.glob(str(shared / "persian_poems_ganjoor/original/*.txt")))],
        "quran": [Path(f).read_text(encoding="utf-8")
                  for f in sorted(glob.glob(f"{p}/translation/quran/fa.*.norm.txt"))[:quran_translations]],
        "entailment": [],
        "parsinlu_rc": [],
        "parsinlu_other": [],
        "ud_other": [],
    }
    for f in sorted(glob.glob(f"{p}/entailment/merged_with_farstail/*.tsv")
                    + glob.glob(str(shared / "farstail/data/*.csv"))):
        with open(f, encoding="utf-8") as fh:
            for row in csv.reader(fh, delimiter="\t", quoting=csv.QUOTE_NONE):
                sources["entailment"] += [c.replace("<sep>", "\n") for c in row[:2]]
    for f in sorted(glob.glob(f"{p}/reading_comprehension/*.jsonl")):
        for r in _jsonl(f):
            sources["parsinlu_rc"] += [r.get("passage", ""), r.get("question", "")]
    for f in sorted(glob.glob(f"{p}/sentiment-analysis/*.jsonl")):
        for r in _jsonl(f):
            sources["parsinlu_other"] += [r.get("review", ""), r.get("question", "")]
    for f in sorted(glob.glob(f"{p}/qqp/*.jsonl")):
        for r in _jsonl(f):
            sources["parsinlu_other"] += [r.get("q1", ""), r.get("q2", "")]
    for f in sorted(glob.glob(f"{p}/multiple-choice/*.jsonl")):
        for r in _jsonl(f):
            sources["parsinlu_other"] += [r.get("question", "")] + list(r.get("candidates", []))
    for f in ["ud_persian_seraji/fa_seraji-ud-dev.conllu", "ud_persian_perdt/fa_perdt-ud-dev.conllu",
              "ud_persian_perdt/fa_perdt-ud-test.conllu"]:
        sources["ud_other"] += ud_sentences(shared / f)
    sizes = {}
    out.mkdir(parents=True, exist_ok=True)
    for name, texts in sources.items():
        seen: dict[str, None] = {}
        for text in texts:
            for line in str(text).split("\n"):
                line = line.strip()
                if len(line) > 1 and line not in exact and line[:60] not in starts:
                    seen[line] = None
        body = "\n".join(seen) + "\n"
        (out / f"{name}.txt").write_text(body, encoding="utf-8")
        sizes[name] = len(body.encode("utf-8"))
    return sizes


# --------------------------------------------------------------------------- throughput


def _encode_worker(args: tuple[str, str, list[str]]) -> int:
    kind, path, texts = args
    if kind == "sentencepiece":
        import sentencepiece as spm

        from persianllama.text.normalize import normalize

        sp = spm.SentencePieceProcessor(model_file=path)
        return sum(len(x) for x in sp.encode([normalize(t) for t in texts], num_threads=1))
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(path)
    return sum(len(e.ids) for e in tok.encode_batch(texts, add_special_tokens=False))


def throughput(kind: str, path: str, texts: list[str], processes: int = 2) -> dict:
    """MB/s and tokens/s of encoding `texts` with `processes` workers (one thread each)."""
    os.environ["RAYON_NUM_THREADS"] = "1"
    os.environ["TOKENIZERS_PARALLELISM"] = "true"
    shards = [texts[i::processes] for i in range(processes)]
    ctx = mp.get_context("spawn")
    with ctx.Pool(processes) as pool:
        pool.map(_encode_worker, [(kind, path, s[:50]) for s in shards])  # warm up: imports, model load
        started = time.perf_counter()
        tokens = sum(pool.map(_encode_worker, [(kind, path, s) for s in shards]))
        seconds = time.perf_counter() - started
    mb = sum(len(t.encode("utf-8")) for t in texts) / 1e6
    return {"seconds": round(seconds, 2), "MB_per_s": round(mb / seconds, 2), "tokens_per_s": int(tokens / seconds),
            "processes": processes, "MB": round(mb, 2)}


# --------------------------------------------------------------------------- extension checks


def agreement(model_path: Path, hf_dir: Path, texts: list[str]) -> int:
    import sentencepiece as spm
    from transformers import AutoTokenizer

    sp = spm.SentencePieceProcessor(model_file=str(model_path))
    hf = AutoTokenizer.from_pretrained(str(hf_dir))
    a = sp.encode(texts)
    b = [e.ids for e in hf.backend_tokenizer.encode_batch(texts, add_special_tokens=False)]
    return sum(x == y for x, y in zip(a, b))


def naive_extension(base_model: Path, persian_model: Path, out: Path) -> Path:
    """The plain merge many tutorials show: append missing pieces with score 0; HF via transformers' conversion."""
    from persianllama.tokenizer import spm as spm_util

    base = spm_util.load_proto(base_model)
    have = {p.piece for p in base.pieces}
    for p in spm_util.load_proto(persian_model).pieces:
        if p.type == spm_util.NORMAL and p.piece not in have:
            new = base.pieces.add()
            new.piece, new.score, new.type = p.piece, 0.0, spm_util.NORMAL
    out.mkdir(parents=True, exist_ok=True)
    (out / "tokenizer.model").write_bytes(base.SerializeToString())
    (out / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "LlamaTokenizer"}))
    return out


# --------------------------------------------------------------------------- main


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shared", type=Path, default=DEFAULT_SHARED)
    ap.add_argument("--out", type=Path, default=ROOT / "runs/benchmarks/tokenizer")
    ap.add_argument("--vocab-size", type=int, default=32000)
    ap.add_argument("--max-new", type=int, default=32000)
    ap.add_argument("--ablations", action="store_true",
                    help="also train a plain GPT-2-style byte-level BPE and ours without multi-word tokens")
    args = ap.parse_args()
    if not (args.shared / "persianqa").is_dir():
        print(f"skipped: {args.shared} not found (set --shared or PERSIANLLAMA_SHARED)")
        return 0
    import logging

    logging.basicConfig(level=logging.WARNING)
    os.environ.setdefault("PERSIANLLAMA_QUIET", "1")
    from persianllama.text.normalize import normalize
    from persianllama.tokenizer import loaders
    from persianllama.tokenizer.extend import ExtendConfig, extend
    from persianllama.tokenizer.report import ReportConfig, count_words, measure, report
    from persianllama.tokenizer.train import TokenizerTrainConfig, train

    args.out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="tokenizer-bench-"))
    summary: dict = {"vocab_size": args.vocab_size, "cpus": len(os.sched_getaffinity(0))}
    try:
        corpus_dir = work / "corpus"
        sizes = training_corpus(args.shared, corpus_dir)
        summary["corpus_MB"] = round(sum(sizes.values()) / 1e6, 2)
        summary["corpus_sources_MB"] = {k: round(v / 1e6, 2) for k, v in sizes.items()}
        texts = held_out(args.shared)
        words = sum(count_words(t) for t in texts)
        heldout_file = work / "heldout.txt"
        heldout_file.write_text("\n".join(texts) + "\n", encoding="utf-8")
        summary["held_out"] = {"texts": len(texts), "words": words}
        print(f"corpus {summary['corpus_MB']} MB, held-out {len(texts)} texts / {words} words", flush=True)

        # Throughput text: the held-out text plus ~5 MB of the training corpus, as documents.
        bench_texts = texts + [ln for ln in (corpus_dir / "entailment.txt").read_text().split("\n") if ln][:20000]
        bench_texts += [ln for ln in (corpus_dir / "parsinlu_rc.txt").read_text().split("\n") if ln]

        runs = {"bpe": TokenizerTrainConfig(backend="bpe"), "sentencepiece": TokenizerTrainConfig(backend="sentencepiece")}
        if args.ablations:
            runs["bpe, word-level only"] = TokenizerTrainConfig(backend="bpe", multiword_fraction=0.0)
        backends = {}
        for name, config in runs.items():
            config.input = [str(corpus_dir)]
            config.vocab_size = args.vocab_size
            config.output = str(work / name.replace(", ", "_").replace(" ", "_"))
            started = time.perf_counter()
            result = train(config)
            seconds = time.perf_counter() - started
            tok = loaders.load(f"{name}={config.output}")
            m = measure(tok, texts, words)
            entry = {"train_seconds": round(seconds, 1), "stages": {k: round(v, 1) for k, v in result.stages.items()},
                     "vocab": result.vocab_size, "tokens_per_word": round(m.tokens_per_word, 4),
                     "round_trip_failures": m.round_trip_failures}
            entry["throughput_hf"] = throughput("hf", str(Path(config.output) / "tokenizer.json"), bench_texts)
            if config.backend == "sentencepiece":
                entry["throughput_sentencepiece"] = throughput(
                    "sentencepiece", str(Path(config.output) / "tokenizer.model"), bench_texts)
                entry["tokens_per_word_normalized_input"] = round(
                    measure(loaders.load(f"sp={config.output}/tokenizer.model"), texts, words,
                            normalize_input=True).tokens_per_word, 4)
            backends[name] = entry
            print(name, json.dumps(entry, ensure_ascii=False), flush=True)
        if args.ablations:
            backends["plain byte-level BPE (GPT-2 split, no normalizer)"] = plain_bpe(corpus_dir, args.vocab_size,
                                                                                       texts, words)
        summary["backends"] = backends

        # Extension of LLaMA-2.
        llama = args.shared / "tokenizers/llama2_sentencepiece/tokenizer.model"
        ext_dir = work / "llama2_extended"
        result = extend(ExtendConfig(base=str(llama), persian=str(work / "sentencepiece"), output=str(ext_dir),
                                     max_new=args.max_new))
        english_file = args.shared / "parsinlu/data/translation/quran/en.yusufali.txt"
        english = [ln for ln in english_file.read_text(encoding="utf-8").split("\n") if ln.strip()]
        ext = loaders.load(f"ext={ext_dir / 'tokenizer.model'}")
        base = loaders.load(f"llama2={llama}")
        ext_entry = {
            "base_size": result.base_size, "extended_size": result.new_size, "new_pieces": len(result.added),
            "seconds": round(result.seconds, 1),
            "tokens_per_word": round(measure(ext, texts, words).tokens_per_word, 4),
            "tokens_per_word_normalized_input": round(measure(ext, texts, words, normalize_input=True)
                                                      .tokens_per_word, 4),
            "llama2_tokens_per_word": round(measure(base, texts, words).tokens_per_word, 4),
            "sp_hf_agree_persian": f"{agreement(ext_dir / 'tokenizer.model', ext_dir, texts)}/{len(texts)}",
            "sp_hf_agree_persian_normalized": f"{agreement(ext_dir / 'tokenizer.model', ext_dir, [normalize(t) for t in texts])}/{len(texts)}",
            "sp_hf_agree_english": f"{agreement(ext_dir / 'tokenizer.model', ext_dir, english)}/{len(english)}",
            "english_unchanged_vs_llama2": f"{sum(a == b for a, b in zip(base.encode_batch(english), ext.encode_batch(english)))}/{len(english)}",
        }
        naive = naive_extension(llama, work / "sentencepiece/tokenizer.model", work / "naive")
        ext_entry["naive_score0"] = {
            "tokens_per_word": round(measure(loaders.load(f"naive={naive / 'tokenizer.model'}"), texts, words)
                                     .tokens_per_word, 4),
            "sp_hf_agree_persian": f"{agreement(naive / 'tokenizer.model', naive, texts)}/{len(texts)}",
        }
        summary["extension"] = ext_entry
        print("extension", json.dumps(ext_entry, ensure_ascii=False), flush=True)

        # Fertility report beside released tokenizers.
        released = args.shared / "tokenizers"
        specs = [f"ours-bpe={work / 'bpe'}", f"ours-sp={work / 'sentencepiece'}", f"llama2+fa={ext_dir}",
                 f"llama2={llama}", f"llama3={released / 'llama3_tiktoken/tokenizer.model'}",
                 f"mistral-v0.3={released / 'mistral_v03'}", f"gpt2={released / 'gpt2'}"]
        specs = [s for s in specs if Path(s.split("=", 1)[1]).exists()]
        rep = report(ReportConfig(text=[str(heldout_file)], tokenizers=specs, output=str(args.out / "report")))
        summary["report"] = {m.name: {"tokens_per_word": round(m.tokens_per_word, 4),
                                      "chars_per_token": round(m.chars_per_token, 3),
                                      "byte_fallback_rate": round(m.byte_fallback_rate, 5),
                                      "round_trip_failures": m.round_trip_failures} for m in rep.measurements}
        print(rep.markdown_table, flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    (args.out / "summary.json").write_text(json.dumps(summary, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    (args.out / "summary.md").write_text(summary_markdown(summary), encoding="utf-8")
    print(f"\nwrote {args.out}/summary.md")
    return 0


def plain_bpe(corpus_dir: Path, vocab_size: int, texts: list[str], words: int) -> dict:
    """The reference point: GPT-2's split pattern, no normalizer, one stage."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=2, show_progress=False,
                                  special_tokens=["<unk>", "<s>", "</s>", "<pad>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    started = time.perf_counter()
    tok.train(sorted(str(p) for p in corpus_dir.glob("*.txt")), trainer)
    seconds = time.perf_counter() - started
    tokens = sum(len(e.ids) for e in tok.encode_batch(texts, add_special_tokens=False))
    return {"train_seconds": round(seconds, 1), "tokens_per_word": round(tokens / words, 4)}


def summary_markdown(s: dict) -> str:
    sources = ", ".join(f"{k} {v}" for k, v in s["corpus_sources_MB"].items())
    lines = ["# Tokenizer benchmark", "",
             (f"Training corpus {s['corpus_MB']} MB ({sources}); held-out {s['held_out']['texts']} texts, "
              f"{s['held_out']['words']} words; {s['cpus']} CPUs."), "",
             ("| backend | vocab | train s | tokens/word (held-out) | encode MB/s (2 proc, HF) "
              "| encode MB/s (2 proc, SentencePiece) |"),
             "|---|---:|---:|---:|---:|---:|"]
    for name, b in s["backends"].items():
        hf = b.get("throughput_hf", {}).get("MB_per_s", "")
        native = b.get("throughput_sentencepiece", {}).get("MB_per_s", "")
        lines.append(f"| {name} | {b.get('vocab', '')} | {b['train_seconds']} | {b['tokens_per_word']} | {hf} | {native} |")
    e = s["extension"]
    lines += ["", "## LLaMA-2 extended", "", "```json", json.dumps(e, ensure_ascii=False, indent=2), "```", "",
              "## Fertility report", "", "```json", json.dumps(s["report"], ensure_ascii=False, indent=2), "```", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
