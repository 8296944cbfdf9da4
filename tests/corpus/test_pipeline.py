"""End-to-end builds through the real datatrove executors: the bundled sample, resume after kill -9,
determinism, bad inputs, HF dataset inputs."""

from __future__ import annotations

import bz2
import errno
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import zstandard

from persianllama.cli import main
from tests.conftest import PERSIAN_DOCS, ROOT, SAMPLE

pytestmark = pytest.mark.slow


def oscar_line(text: str, i: int, **meta) -> bytes:
    rec = {"content": text, "warc_headers": {"warc-record-id": f"<urn:uuid:{i:08d}-0000-0000-0000-000000000000>",
                                             "warc-target-uri": f"https://example.ir/{i}"},
           "metadata": {"identification": {"label": "fa", "prob": 0.95}, "quality_warnings": meta.get("w"),
                        "categories": meta.get("c"), "harmful_pp": 2000.0}}
    return json.dumps(rec, ensure_ascii=False).encode() + b"\n"


def small_oscar(path: Path, n_files: int = 2) -> list[Path]:
    """Shards of the same Persian documents with one line changed per shard (near duplicates across shards),
    plus an exact copy and a blocked category in each."""
    paths = []
    for f in range(n_files):
        rows = []
        for i, text in enumerate(PERSIAN_DOCS[:3]):
            rows.append(oscar_line(f"{text}\nنسخهٔ {f}{i} از این نوشته برای آزمون ساخته شده است.", f * 100 + i))
        rows.append(oscar_line(PERSIAN_DOCS[0] + "\nنسخهٔ 00 از این نوشته برای آزمون ساخته شده است.", f * 100 + 50))
        rows.append(oscar_line(PERSIAN_DOCS[1], f * 100 + 60, c=["adult"]))
        p = path / f"fa_meta_part_{f + 1}.jsonl.zst"
        p.write_bytes(zstandard.ZstdCompressor().compress(b"".join(rows)))
        paths.append(p)
    return paths


def build(*args: str) -> int:
    return main(["corpus", "build", "--no-progress", *args, "quality.min_words=20"])


def rows(out: Path) -> list[tuple]:
    tables = [pq.read_table(p) for p in sorted((out / "data").glob("*.parquet"))]
    return [(r["id"], r["text"], r["source"]) for t in tables for r in t.to_pylist()]


@pytest.fixture(scope="module")
def sample_build(tmp_path_factory) -> tuple[Path, str]:
    """The bundled sample built once with corpora/sample.yaml: (output dir, what the command printed)."""
    import contextlib
    import io

    out = tmp_path_factory.mktemp("sample") / "corpus"
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert main(["corpus", "build", "--recipe", str(ROOT / "corpora" / "sample.yaml"), "--output", str(out),
                     "--no-progress"]) == 0
    return out, printed.getvalue()


def test_bundled_sample_end_to_end(sample_build):
    out, summary = sample_build
    assert "kept" in summary and "data card" in summary
    stats = json.loads((out / "stats.json").read_text())
    r = stats["read"]
    assert r["documents"] > 150 and r["broken_records"] == 0
    assert r["skipped_by_reader"] == {"disambiguation": 1, "namespace": 7, "redirect": 4}
    d = stats["dropped"]
    # Every kind of noise bundled in the sample is caught by the block that exists for it.
    assert {"script_ar", "script_ur", "script_ps", "script_ckb", "script_mostly_latin"} <= set(d["language"])
    assert d["oscar_metadata"]["oscar_warning_tiny"] == 5 and d["oscar_metadata"]["oscar_category_gambling"] == 3
    assert sum(d["quality"].values()) >= 4
    assert d["exact_dedup"]["exact_duplicate"] >= 6 and d["near_dedup"]["near_duplicate"] >= 5
    kept = stats["kept"]
    assert kept["documents"] == r["documents"] - stats["dropped_total"]
    assert kept["per_source"]["wikipedia"] == 60  # every article: copies of articles on the web lose
    # Per-source filter settings: Wikipedia is curated (25+ words, no web-only rules), OSCAR is web.
    settings = stats["settings_by_source"]
    assert settings["wikipedia"]["profile"] == "curated" and not settings["wikipedia"]["boilerplate_removal"]
    assert settings["wikipedia"]["quality"]["min_words"] == 25
    assert settings["wikipedia"]["quality"]["fineweb_line_rules"] is False
    assert settings["oscar"]["profile"] == "web" and settings["oscar"]["boilerplate_removal"]
    assert settings["oscar"]["quality"]["min_words"] == 50 and settings["oscar"]["quality"]["fineweb_line_rules"]

    import datasets

    ds = datasets.load_dataset("parquet", data_files=str(out / "**" / "*.parquet"), split="train")
    assert len(ds) == kept["documents"]
    assert {"text", "id", "source", "title", "url"} <= set(ds.column_names)
    assert len(set(ds["id"])) == len(ds)
    assert all("{{" not in t and "[[" not in t and "ي" not in t and "ك" not in t for t in ds["text"])
    card = (out / "README.md").read_text()
    for heading in ("## Numbers", "## Filters by source", "## Dropped, by filter and reason",
                    "## Examples of kept documents", "## Examples of dropped documents", "lengths.png"):
        assert heading in card
    assert "| wikipedia | wikipedia | curated | no | `quality_curated` | 25 | off |" in card
    assert "| oscar | oscar | web | yes | `quality` | 50 | on |" in card
    assert (out / "lengths.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_same_input_same_output_and_rerun_is_a_no_op(tmp_path):
    inputs = [str(p) for p in small_oscar(tmp_path)]
    a, b = tmp_path / "a", tmp_path / "b"
    assert build("--source", "oscar", "--input", *inputs, "--output", str(a)) == 0
    assert build("--source", "oscar", "--input", *inputs, "--output", str(b), "--workers", "2") == 0
    assert rows(a) == rows(b) and len(rows(a)) == 3
    stats = json.loads((a / "stats.json").read_text())
    assert stats["dropped"]["exact_dedup"] == {"exact_duplicate": 2}
    assert stats["dropped"]["near_dedup"] == {"near_duplicate": 3}
    assert stats["dropped"]["oscar_metadata"] == {"oscar_category_adult": 2}
    before = {p: p.stat().st_mtime_ns for p in (a / "data").glob("*.parquet")}
    assert build("--source", "oscar", "--input", *inputs, "--output", str(a)) == 0
    assert {p: p.stat().st_mtime_ns for p in (a / "data").glob("*.parquet")} == before
    assert json.loads((a / "stats.json").read_text())["kept"] == stats["kept"]


def test_killed_build_resumes_to_the_same_output(tmp_path):
    inputs = [str(p) for p in small_oscar(tmp_path, n_files=3)]
    ref = tmp_path / "ref"
    assert build("--source", "oscar", "--input", *inputs, "--output", str(ref)) == 0
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "persianllama.cli", "corpus", "build", "--no-progress", "--source", "oscar",
           "--input", *inputs, "--output", str(out), "quality.min_words=20"]
    # kill -9 the build at several points: after the clean stage, then after MinHash signatures.
    for marker in ("logs/exact-signatures/completions", "logs/minhash-buckets/completions"):
        # Its own process group, killed whole: the build and its worker processes die at once, as when
        # a scheduler or the OOM killer ends a job.
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True)
        deadline = time.time() + 120
        while proc.poll() is None and time.time() < deadline:
            if (out / ".work" / marker).exists():
                break
            time.sleep(0.005)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    # A half-written file left by a killed writer must not survive the resume.
    final = out / ".work" / "final"
    final.mkdir(parents=True, exist_ok=True)
    (final / "000_00000.parquet").write_bytes(b"PAR1 garbage")
    assert build("--source", "oscar", "--input", *inputs, "--output", str(out)) == 0
    assert rows(out) == rows(ref)
    got, want = (json.loads((d / "stats.json").read_text()) for d in (out, ref))
    for key in ("read", "dropped", "kept"):
        assert got[key] == want[key]


def test_bad_records_are_counted_and_good_ones_kept(tmp_path):
    good = b"".join(oscar_line(t, i) for i, t in enumerate(PERSIAN_DOCS))  # 6 lines
    path = tmp_path / "broken.jsonl"
    half_line = oscar_line(PERSIAN_DOCS[1], 99)[:45]  # a record cut inside a Persian character
    path.write_bytes(oscar_line(PERSIAN_DOCS[0], 98) + half_line + b"\n{not json\n" + b'{"content": "\xff"}\n' + good)
    wiki = tmp_path / "fawiki-cut.xml.bz2"
    xml = (SAMPLE / "wikipedia" / "fawiki-20240101-pages-articles-sample.xml.bz2").read_bytes()
    text = bz2.decompress(xml)
    wiki.write_bytes(bz2.compress(text[: len(text) // 2]))  # the dump stops mid-page
    out = tmp_path / "out"
    assert build("--source", "oscar", "--input", str(path), "--output", str(out)) == 0
    stats = json.loads((out / "stats.json").read_text())["read"]
    # The half line (cut inside a record, maybe inside a character) and the two broken lines.
    assert sum(stats["broken_by_reason"].values()) == 3
    assert {"invalid_json", "invalid_utf8"} <= set(stats["broken_by_reason"])
    assert {d["where"] for d in stats["broken_details"]} == {"line 2", "line 3", "line 4"}
    assert stats["documents"] == 1 + 6  # every whole record is kept

    out2 = tmp_path / "out2"
    assert build("--source", "wikipedia", "--input", str(wiki), "--output", str(out2)) == 0
    wstats = json.loads((out2 / "stats.json").read_text())["read"]
    assert wstats["broken_by_reason"] == {"truncated": 1} and 20 < wstats["documents"] < 60


def test_nothing_readable_fails_with_the_reason(tmp_path, capsys):
    path = tmp_path / "all_bad.jsonl"
    path.write_bytes(b"{oops\n[1]\n")
    assert build("--source", "oscar", "--input", str(path), "--output", str(tmp_path / "o")) == 2
    err = capsys.readouterr().err
    assert "could not read any document" in err and "all_bad.jsonl" in err and "invalid_json" in err


def test_missing_empty_and_wrong_inputs_are_named(tmp_path, capsys):
    empty = tmp_path / "empty.jsonl.zst"
    empty.write_bytes(b"")
    cases = [
        (["--source", "oscar", "--input", str(tmp_path / "missing.jsonl")], "input not found"),
        (["--source", "oscar", "--input", str(empty)], "input is empty"),
        (["--source", "wikipedia", "--input", str(SAMPLE / "oscar" / "fa_meta_part_1.jsonl.zst")],
         "not a wikipedia input"),
        (["--input", str(empty)], "--input needs --source"),
        (["--source", "oscar"], "--source needs --input"),
    ]
    for args, message in cases:
        assert build(*args, "--output", str(tmp_path / "o")) == 2
        assert message in capsys.readouterr().err


def test_other_settings_on_the_same_output_are_refused_then_fresh(tmp_path, capsys):
    inputs = [str(p) for p in small_oscar(tmp_path, n_files=1)]
    out = str(tmp_path / "o")
    assert build("--source", "oscar", "--input", *inputs, "--output", out) == 0
    assert main(["corpus", "build", "--no-progress", "--source", "oscar", "--input", *inputs, "--output", out,
                 "quality.min_words=5"]) == 2
    assert "--fresh" in capsys.readouterr().err
    assert main(["corpus", "build", "--no-progress", "--source", "oscar", "--input", *inputs, "--output", out,
                 "quality.min_words=5", "--fresh"]) == 0


def test_hf_dataset_inputs(tmp_path):
    """`wikimedia/wikipedia`-style and OSCAR-2301-style rows from local parquet datasets."""
    import datasets

    wiki_dir = tmp_path / "wikipedia_fa"
    datasets.Dataset.from_list([
        {"id": str(i), "url": f"https://fa.wikipedia.org/wiki?curid={i}", "title": f"عنوان {i}", "text": t}
        for i, t in enumerate(PERSIAN_DOCS[:3])
    ]).to_parquet(str(wiki_dir / "data" / "train-00000-of-00001.parquet"))
    (wiki_dir / "README.md").write_text("---\nlanguage: [fa]\n---\n")
    oscar_dir = tmp_path / "oscar_2301"
    datasets.Dataset.from_list([
        {"id": i, "text": t,
         "meta": {"warc_headers": {"warc-target-uri": f"https://w.ir/{i}"}, "categories": ["adult"] if i == 2 else None,
                  "quality_warnings": None, "identification": {"label": "fa", "prob": 1.0}}}
        for i, t in enumerate(PERSIAN_DOCS[3:])
    ]).save_to_disk(str(oscar_dir))
    out = tmp_path / "out"
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"sources:\n  - kind: wikipedia\n    inputs: ['{wiki_dir}']\n"
                      f"  - kind: oscar\n    inputs: ['{oscar_dir}']\n    hf_shards: 2\n")
    assert build("--recipe", str(recipe), "--output", str(out)) == 0
    got = rows(out)
    assert sorted(s for _, _, s in got) == ["oscar", "oscar", "wikipedia", "wikipedia", "wikipedia"]
    stats = json.loads((out / "stats.json").read_text())
    assert stats["dropped"]["oscar_metadata"] == {"oscar_category_adult": 1}
    assert len(stats["inputs"]) == 3  # one wikipedia unit, two OSCAR shards


def test_sample_with_a_malformed_page_and_wrong_typed_records_keeps_every_other_document(sample_build, tmp_path):
    """The done-when check of the hardening: one malformed Wikipedia page and two OSCAR records of the wrong
    shape, inserted into the bundled sample, cost those three records and nothing else."""
    clean_out, _ = sample_build
    xml = bz2.decompress((SAMPLE / "wikipedia" / "fawiki-20240101-pages-articles-sample.xml.bz2").read_bytes())
    ends = [m.end() for m in re.finditer(b"</page>", xml)]
    cut = ends[len(ends) // 2]
    bad_page = ("\n  <page>\n    <title>نابرابری</title>\n    <ns>0</ns>\n    <id>999999</id>\n    <revision>\n"
                "      <id>9999990</id>\n      <text xml:space=\"preserve\">اگر x < y باشد آنگاه x & y "
                "هر دو عدد هستند و این نوشته دربارهٔ نابرابری در ریاضیات است.</text>\n    </revision>\n  </page>")
    wiki = tmp_path / "fawiki-bad.xml.bz2"
    wiki.write_bytes(bz2.compress(xml[:cut] + bad_page.encode() + xml[cut:]))

    lines = zstandard.ZstdDecompressor().decompressobj().decompress(
        (SAMPLE / "oscar" / "fa_meta_part_1.jsonl.zst").read_bytes()).splitlines(keepends=True)
    wrong = [json.loads(lines[3]), json.loads(lines[40])]
    wrong[0]["metadata"] = [1]
    wrong[1]["warc_headers"] = 5
    lines.insert(30, json.dumps(wrong[0], ensure_ascii=False).encode() + b"\n")
    lines.insert(60, json.dumps(wrong[1], ensure_ascii=False).encode() + b"\n")
    oscar = tmp_path / "fa_meta_bad.jsonl.zst"
    oscar.write_bytes(zstandard.ZstdCompressor().compress(b"".join(lines)))

    recipe = tmp_path / "bad.yaml"
    recipe.write_text(f"sources:\n  - kind: wikipedia\n    inputs: ['{wiki}']\n"
                      f"  - kind: oscar\n    inputs: ['{oscar}']\nexecutor:\n  workers: 2\n")
    out = tmp_path / "out"
    assert main(["corpus", "build", "--recipe", str(recipe), "--output", str(out), "--no-progress"]) == 0
    assert sorted(rows(out)) == sorted(rows(clean_out))  # every other document, the same rows
    stats = json.loads((out / "stats.json").read_text())
    assert stats["read"]["broken_by_reason"] == {"invalid_xml": 1, "wrong_type": 2}
    where = {(os.path.basename(d["file"]), d["where"].split(" / ")[0]) for d in stats["read"]["broken_details"]}
    page_no = xml[:cut].count(b"<page>") + 1
    assert where == {("fawiki-bad.xml.bz2", f"page {page_no}"), ("fa_meta_bad.jsonl.zst", "line 31"),
                     ("fa_meta_bad.jsonl.zst", "line 61")}
    clean = json.loads((clean_out / "stats.json").read_text())
    assert stats["kept"] == clean["kept"] and stats["dropped"] == clean["dropped"]
    assert "## Broken records" in (out / "README.md").read_text()


@pytest.mark.parametrize("where", ["clean stage", "data card"])
def test_no_space_left_is_one_line_and_the_rerun_resumes(tmp_path, capsys, monkeypatch, where):
    """ENOSPC raised by a real write path (in-process: one worker runs its tasks in this process)."""
    from datatrove.pipeline.writers.jsonl import JsonlWriter

    from persianllama.corpus import card

    inputs = [str(p) for p in small_oscar(tmp_path)]
    ref = tmp_path / "ref"
    assert build("--source", "oscar", "--input", *inputs, "--output", str(ref)) == 0

    def disk_full(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    if where == "clean stage":
        monkeypatch.setattr(JsonlWriter, "_write", disk_full)
    else:
        monkeypatch.setattr(card, "plot_lengths", disk_full)
    out = tmp_path / "out"
    capsys.readouterr()
    assert build("--source", "oscar", "--input", *inputs, "--output", str(out)) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    (line,) = [ln for ln in err.splitlines() if "error" in ln.lower()]
    assert "no space left on the device holding" in line and "run the same command again" in line
    monkeypatch.undo()
    assert build("--source", "oscar", "--input", *inputs, "--output", str(out)) == 0
    assert rows(out) == rows(ref)
    assert json.loads((out / "stats.json").read_text())["kept"] == json.loads((ref / "stats.json").read_text())["kept"]
