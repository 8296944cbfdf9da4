"""Bad input to `persianllama corpus build`: settings refused at load time, outputs refused before any work,
inputs named when missing, and broken records counted while every good one is kept (checked in stats.json)."""

from __future__ import annotations

import bz2
import json
import sys
from pathlib import Path
from xml.sax.saxutils import escape

import pytest
import zstandard

from tests.bad_input.runner import Case, Result
from tests.conftest import PERSIAN_DOCS

SAMPLE_OSCAR = "{repo}/corpora/sample/oscar/fa_meta_part_1.jsonl.zst"
BUILD = ["corpus", "build", "--no-progress"]
OSCAR_BUILD = [*BUILD, "--source", "oscar", "--input", SAMPLE_OSCAR, "--output", "{tmp}/out"]
# Handled rows run a whole build: without near dedup it has fewer stages, and the rows stay quick.
QUICK = ["dedup.near=false"]


# --- inputs written by the rows --------------------------------------------------------------------


def oscar_record(i: int, text: str, **changes) -> dict:
    rec = {"content": text,
           "warc_headers": {"warc-record-id": f"<urn:uuid:{i:08d}-0000-0000-0000-000000000000>",
                            "warc-target-uri": f"https://example.ir/{i}"},
           "metadata": {"identification": {"label": "fa", "prob": 0.95}, "harmful_pp": 2000.0,
                        "quality_warnings": None, "categories": None}}
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(rec.get(key), dict):
            rec[key] = {**rec[key], **value}
        else:
            rec[key] = value
    return rec


def jsonl(records: list) -> bytes:
    return b"".join(r if isinstance(r, bytes) else json.dumps(r, ensure_ascii=False).encode() + b"\n"
                    for r in records)


def write_oscar(tmp: Path, name: str, records: list, compress: bool = False) -> Path:
    path = tmp / name
    data = jsonl(records)
    path.write_bytes(zstandard.ZstdCompressor().compress(data) if compress else data)
    return path


def wiki_page(i: int, title: str, text: str, raw: str | None = None) -> str:
    """A main-namespace page; `raw` replaces the escaped text verbatim (to make the page malformed)."""
    body = escape(text) if raw is None else raw
    return (f"  <page>\n    <title>{escape(title)}</title>\n    <ns>0</ns>\n    <id>{i}</id>\n    <revision>\n"
            f"      <id>{i * 10}</id>\n      <text xml:space=\"preserve\">{body}</text>\n    </revision>\n  </page>\n")


def wiki_dump(pages: list[str]) -> bytes:
    return ('<mediawiki xmlns="http://www.mediawiki.org/xml/export-0.11/" version="0.11" xml:lang="fa">\n'
            + "".join(pages) + "</mediawiki>\n").encode()


def stats(tmp: Path) -> dict:
    return json.loads((tmp / "out" / "stats.json").read_text(encoding="utf-8"))


def recipe(tmp: Path, text: str) -> dict:
    path = tmp / "recipe.yaml"
    path.write_text(text, encoding="utf-8")
    return {"recipe": path}


# --- setups and checks of the handled rows ----------------------------------------------------------


def wrong_typed_records(tmp: Path) -> dict:
    return {"oscar": write_oscar(tmp, "shapes.jsonl", [
        oscar_record(1, PERSIAN_DOCS[0]),
        oscar_record(2, PERSIAN_DOCS[1], metadata=[1]),
        oscar_record(3, PERSIAN_DOCS[2], warc_headers=5),
        oscar_record(4, PERSIAN_DOCS[3], metadata={"identification": "fa"}),
        oscar_record(5, PERSIAN_DOCS[4], metadata="x"),
        oscar_record(6, PERSIAN_DOCS[5]),
    ])}


def check_wrong_typed(tmp: Path, result: Result) -> None:
    s = stats(tmp)
    assert s["read"]["broken_by_reason"] == {"wrong_type": 4}
    assert sorted(d["where"] for d in s["read"]["broken_details"]) == ["line 2", "line 3", "line 4", "line 5"]
    assert s["read"]["documents"] == 2 and s["kept"]["documents"] == 2


def string_category(tmp: Path) -> dict:
    return {"oscar": write_oscar(tmp, "labels.jsonl", [
        oscar_record(1, PERSIAN_DOCS[0], metadata={"categories": "adult"}),
        oscar_record(2, PERSIAN_DOCS[1], metadata={"quality_warnings": "tiny"}),
        oscar_record(3, PERSIAN_DOCS[2]),
    ])}


def check_string_category(tmp: Path, result: Result) -> None:
    s = stats(tmp)
    assert s["dropped"]["oscar_metadata"] == {"oscar_category_adult": 1, "oscar_warning_tiny": 1}
    assert s["read"]["broken_records"] == 0 and s["kept"]["documents"] == 1


def broken_json_lines(tmp: Path) -> dict:
    return {"oscar": write_oscar(tmp, "mixed.jsonl.zst", [
        oscar_record(1, PERSIAN_DOCS[0]), b"{not json\n", b'{"content": "\xff\xfe"}\n', b"[1, 2]\n",
        b'{"foo": 1}\n', oscar_record(2, PERSIAN_DOCS[1])], compress=True)}


def check_broken_json_lines(tmp: Path, result: Result) -> None:
    s = stats(tmp)
    assert s["read"]["broken_by_reason"] == {"invalid_json": 1, "invalid_utf8": 1, "not_an_object": 1,
                                             "no_text_field": 1}
    assert s["kept"]["documents"] == 2


def truncated_zst(tmp: Path) -> dict:
    blob = zstandard.ZstdCompressor().compress(jsonl([oscar_record(i, t) for i, t in enumerate(PERSIAN_DOCS * 300)]))
    path = tmp / "cut.jsonl.zst"
    path.write_bytes(blob[: len(blob) * 2 // 3])
    return {"oscar": path}


def check_truncated_zst(tmp: Path, result: Result) -> None:
    s = stats(tmp)
    assert s["read"]["broken_by_reason"].get("truncated") == 1
    assert s["read"]["documents"] > 0  # every complete record before the cut was read
    assert set(s["kept"]["per_source"]) == {"oscar"}


def malformed_wiki_page(tmp: Path) -> dict:
    pages = [wiki_page(1, "کتابخانه", PERSIAN_DOCS[0]),
             wiki_page(2, "نابرابری", "", raw="اگر x < y باشد و x & y عدد باشند"),
             wiki_page(3, "باغچه", PERSIAN_DOCS[1])]
    path = tmp / "fawiki-bad.xml.bz2"
    path.write_bytes(bz2.compress(wiki_dump(pages)))
    return {"wiki": path}


def check_malformed_wiki_page(tmp: Path, result: Result) -> None:
    s = stats(tmp)
    assert s["read"]["broken_by_reason"] == {"invalid_xml": 1}
    assert s["read"]["broken_details"][0]["where"].startswith("page 2 / byte offset ")
    assert s["kept"]["per_source"] == {"wikipedia": 2}  # the pages before and after the bad one


def truncated_wiki(tmp: Path) -> dict:
    data = wiki_dump([wiki_page(i, f"نوشتار {i}", PERSIAN_DOCS[i % 6] + f" نسخهٔ {i}.") for i in range(1, 7)])
    path = tmp / "fawiki-cut.xml.bz2"
    fourth = [i for i in range(len(data)) if data.startswith(b"<page>", i)][3]
    path.write_bytes(bz2.compress(data[: fourth + 40]))  # cut inside page 4
    return {"wiki": path}


def check_truncated_wiki(tmp: Path, result: Result) -> None:
    s = stats(tmp)
    assert s["read"]["broken_by_reason"] == {"truncated": 1}
    assert s["read"]["broken_details"][0]["where"].startswith("page 4 / byte offset ")
    assert s["read"]["documents"] == 3 and s["kept"]["documents"] == 3


def curated_short_article(tmp: Path) -> dict:
    article = " ".join(PERSIAN_DOCS[0].split()[:40]) + "."
    web_page = " ".join(PERSIAN_DOCS[1].split()[:40]) + "."
    path = tmp / "fawiki.xml"
    path.write_bytes(wiki_dump([wiki_page(1, "کوتاه", article)]))
    return {"wiki": path, "oscar": write_oscar(tmp, "short.jsonl", [oscar_record(1, web_page),
                                                                    oscar_record(2, PERSIAN_DOCS[2])])}


def check_curated_short_article(tmp: Path, result: Result) -> None:
    s = stats(tmp)
    assert s["kept"]["per_source"] == {"oscar": 1, "wikipedia": 1}
    assert s["dropped"]["quality"] == {"gopher_too_few_words": 1}


def output_not_created(tmp: Path, result: Result) -> None:
    assert not (tmp / "out").exists(), "the refused build created its output"


# --- the table ---------------------------------------------------------------------------------------

CASES = [
    # settings, refused when loaded (recipe, flags and key=value alike)
    Case("corpus-workers-negative-flag", [*OSCAR_BUILD, "--workers", "-2"], words=["executor.workers", ">= 1"],
         check=output_not_created),
    Case("corpus-workers-zero-flag", [*OSCAR_BUILD, "--workers", "0"], words=["executor.workers", ">= 1"]),
    Case("corpus-workers-zero-recipe", [*OSCAR_BUILD, "--recipe", "{recipe}"], words=["executor.workers", ">= 1"],
         setup=lambda tmp: recipe(tmp, "executor:\n  workers: 0\n")),
    Case("corpus-num-buckets-zero", [*OSCAR_BUILD, "dedup.num_buckets=0"], words=["dedup.num_buckets", ">= 1"]),
    Case("corpus-ngrams-not-a-number", [*OSCAR_BUILD, "dedup.n_grams=five"], words=["dedup.n_grams", "integer"]),
    Case("corpus-min-words-negative", [*OSCAR_BUILD, "quality.min_words=-1"], words=["quality.min_words", ">= 0"]),
    Case("corpus-min-words-above-max", [*OSCAR_BUILD, "quality.min_words=500", "quality.max_words=100"],
         words=["quality.min_words=500", "max_words=100"]),
    Case("corpus-word-length-order", [*OSCAR_BUILD, "quality_curated.min_avg_word_length=12"],
         words=["quality_curated.min_avg_word_length", "max_avg_word_length"]),
    Case("corpus-fraction-above-one", [*OSCAR_BUILD, "language.min_arabic_script_ratio=1.5"],
         words=["language.min_arabic_script_ratio", "[0, 1]"]),
    Case("corpus-fraction-negative", [*OSCAR_BUILD, "quality.dup_line_frac=-0.1"],
         words=["quality.dup_line_frac", "[0, 1]"]),
    Case("corpus-fraction-nan", [*OSCAR_BUILD, "quality.short_line_thr=nan"],
         words=["quality.short_line_thr", "finite"]),
    Case("corpus-lid-percent-above-100", [*OSCAR_BUILD, "language.min_lid_percent=101"],
         words=["language.min_lid_percent", "[0, 100]"]),
    Case("corpus-invalid-regex", [*OSCAR_BUILD, "boilerplate.patterns=['(unclosed']"],
         words=["boilerplate.patterns[0]", "regular expression"]),
    Case("corpus-blocked-categories-unbalanced", [*OSCAR_BUILD, "oscar.blocked_categories=[adult"],
         words=["oscar.blocked_categories", "brackets"]),
    Case("corpus-unknown-quality-warning", [*OSCAR_BUILD, "oscar.drop_quality_warnings=[tiny, loud]"],
         words=["oscar.drop_quality_warnings[1]", "loud"]),
    Case("corpus-harmful-pp-negative", [*OSCAR_BUILD, "oscar.max_harmful_pp=-5"],
         words=["oscar.max_harmful_pp", ">= 0"]),
    Case("corpus-top-ngrams-bad-size", [*OSCAR_BUILD, "quality.top_n_grams={{0: 0.2}}"],
         words=["quality.top_n_grams", "n-gram size"]),
    Case("corpus-dup-ngrams-share-above-one", [*OSCAR_BUILD, "quality.dup_n_grams={{5: 3}}"],
         words=["quality.dup_n_grams.5=3", "[0, 1]"]),
    Case("corpus-unknown-key", [*OSCAR_BUILD, "quality.min_wrds=3"], words=["unknown key quality.min_wrds"]),
    Case("corpus-shard-size-zero", [*OSCAR_BUILD, "shard_size_mb=0"], words=["shard_size_mb", ">= 1"]),
    Case("corpus-examples-negative", [*OSCAR_BUILD, "examples_per_reason=-1"], words=["examples_per_reason"]),
    Case("corpus-free-space-factor-negative", [*OSCAR_BUILD, "free_space_factor=-1"], words=["free_space_factor"]),
    Case("corpus-hf-shards-zero", [*BUILD, "--recipe", "{recipe}", "--output", "{tmp}/out"],
         words=["sources[0].hf_shards", ">= 1"],
         setup=lambda tmp: recipe(tmp, "sources:\n  - kind: oscar\n    inputs: [x]\n    hf_shards: 0\n")),
    Case("corpus-unknown-profile", [*BUILD, "--recipe", "{recipe}", "--output", "{tmp}/out"],
         words=["sources[0].profile", "news"],
         setup=lambda tmp: recipe(tmp, "sources:\n  - kind: oscar\n    inputs: [x]\n    profile: news\n")),
    Case("corpus-one-name-two-profiles", [*BUILD, "--recipe", "{recipe}", "--output", "{tmp}/out"],
         words=["sources[1]", "own name"],
         setup=lambda tmp: recipe(tmp, "sources:\n  - {kind: oscar, inputs: [a], name: web}\n"
                                       "  - {kind: wikipedia, inputs: [b], name: web}\n")),
    Case("corpus-recipe-not-a-mapping", [*BUILD, "--recipe", "{recipe}", "--output", "{tmp}/out"],
         words=["must be a mapping"], setup=lambda tmp: recipe(tmp, "- just\n- a list\n")),
    Case("corpus-recipe-missing", [*BUILD, "--recipe", "{tmp}/nope.yaml", "--output", "{tmp}/out"],
         words=["recipe not found", "nope.yaml"]),
    # outputs, refused before any work
    Case("corpus-output-is-a-file", [*BUILD, "--source", "oscar", "--input", SAMPLE_OSCAR, "--output", "{file}"],
         words=["is an existing file"],
         setup=lambda tmp: {"file": (tmp / "corpus.txt", (tmp / "corpus.txt").write_text("x"))[0]},
         check=lambda tmp, r: (tmp / "corpus.txt").read_text() == "x" or pytest.fail("file changed")),
    Case("corpus-output-under-a-file", [*BUILD, "--source", "oscar", "--input", SAMPLE_OSCAR, "--output",
                                        "{file}/sub/out"], words=["is a file", "cannot be created"],
         setup=lambda tmp: {"file": (tmp / "f.txt", (tmp / "f.txt").write_text("x"))[0]}),
    Case("corpus-output-unwritable", [*BUILD, "--source", "oscar", "--input", SAMPLE_OSCAR, "--output",
                                      "/sys/persianllama-corpus-test"], words=["not writable"],
         marks=[pytest.mark.skipif(not sys.platform.startswith("linux"), reason="needs Linux's read-only /sys")]),
    Case("corpus-output-not-enough-space", [*OSCAR_BUILD, "free_space_factor=1e15"],
         words=["not enough free space", "free_space_factor"], check=output_not_created),
    Case("corpus-no-output", [*BUILD, "--source", "oscar", "--input", SAMPLE_OSCAR], words=["--output"]),
    # inputs
    Case("corpus-input-missing", [*BUILD, "--source", "oscar", "--input", "{tmp}/missing.jsonl", "--output",
                                  "{tmp}/out"], words=["input not found", "missing.jsonl"], check=output_not_created),
    Case("corpus-input-empty", [*BUILD, "--source", "oscar", "--input", "{empty}", "--output", "{tmp}/out"],
         words=["input is empty", "empty.jsonl.zst"],
         setup=lambda tmp: {"empty": (tmp / "empty.jsonl.zst", (tmp / "empty.jsonl.zst").write_bytes(b""))[0]}),
    Case("corpus-input-wrong-kind", [*BUILD, "--source", "wikipedia", "--input", SAMPLE_OSCAR, "--output",
                                     "{tmp}/out"], words=["not a wikipedia input"]),
    Case("corpus-input-without-source", [*BUILD, "--input", SAMPLE_OSCAR, "--output", "{tmp}/out"],
         words=["--input needs --source"]),
    Case("corpus-glob-matches-nothing", [*BUILD, "--source", "oscar", "--input", "{tmp}/*.jsonl.zst", "--output",
                                         "{tmp}/out"], words=["no file matches"]),
    Case("corpus-folder-without-inputs", [*BUILD, "--source", "oscar", "--input", "{tmp}", "--output",
                                          "{tmp}/out"], words=["no oscar files"]),
    Case("corpus-nothing-readable", [*BUILD, "--source", "oscar", "--input", "{oscar}", "--output", "{tmp}/out"],
         words=["could not read any document", "bad.jsonl", "wrong_type"],
         setup=lambda tmp: {"oscar": write_oscar(tmp, "bad.jsonl", [oscar_record(1, PERSIAN_DOCS[0], metadata=[1]),
                                                                    b"{oops\n"])}),
    Case("corpus-wiki-not-xml", [*BUILD, "--source", "wikipedia", "--input", "{wiki}", "--output", "{tmp}/out"],
         words=["could not read any document", "invalid_xml"],
         setup=lambda tmp: {"wiki": (tmp / "notes.xml", (tmp / "notes.xml").write_text("not a dump\n"))[0]}),
    # broken records, counted and skipped; every good record kept
    Case("corpus-oscar-wrong-typed-records", [*BUILD, "--source", "oscar", "--input", "{oscar}", "--output",
                                              "{tmp}/out", *QUICK], exit=0, setup=wrong_typed_records,
         check=check_wrong_typed),
    Case("corpus-oscar-string-labels", [*BUILD, "--source", "oscar", "--input", "{oscar}", "--output", "{tmp}/out",
                                        *QUICK], exit=0, setup=string_category, check=check_string_category),
    Case("corpus-oscar-broken-lines", [*BUILD, "--source", "oscar", "--input", "{oscar}", "--output", "{tmp}/out",
                                       *QUICK], exit=0, setup=broken_json_lines, check=check_broken_json_lines),
    Case("corpus-oscar-truncated-zst", [*BUILD, "--source", "oscar", "--input", "{oscar}", "--output", "{tmp}/out",
                                        *QUICK], exit=0, setup=truncated_zst, check=check_truncated_zst),
    Case("corpus-wiki-malformed-page", [*BUILD, "--source", "wikipedia", "--input", "{wiki}", "--output",
                                        "{tmp}/out", *QUICK], exit=0, setup=malformed_wiki_page,
         check=check_malformed_wiki_page),
    Case("corpus-wiki-truncated-bz2", [*BUILD, "--source", "wikipedia", "--input", "{wiki}", "--output",
                                       "{tmp}/out", *QUICK], exit=0, setup=truncated_wiki, check=check_truncated_wiki),
    Case("corpus-curated-short-article-kept", [*BUILD, "--recipe", "{recipe}", "--output", "{tmp}/out", *QUICK],
         exit=0, check=check_curated_short_article,
         setup=lambda tmp: (lambda p: recipe(tmp, f"sources:\n  - {{kind: wikipedia, inputs: ['{p['wiki']}']}}\n"
                                                  f"  - {{kind: oscar, inputs: ['{p['oscar']}']}}\n"))(
             curated_short_article(tmp))),
]
