"""iter_wikipedia on dumps written by the tests (plain, bz2, multistream bz2, gz, xz, truncated, invalid),
plus opt-in checks on the real Faroese and Marathi dump samples in shared/data."""

from __future__ import annotations

import bz2
import gzip
import lzma
import os
from pathlib import Path
from xml.sax.saxutils import escape

import pytest

from persianllama.corpus import wikipedia
from persianllama.corpus.records import ReadReport
from persianllama.corpus.wikipedia import is_disambiguation, is_redirect, iter_wikipedia
from persianllama.corpus.wikitext import count_leftover_markup

# A subset of fawiki's <siteinfo> namespaces (fawiki_namespaces.json).
NAMESPACES = {
    -2: "مدیا",
    -1: "ویژه",
    0: "",
    1: "بحث",
    2: "کاربر",
    4: "ویکی‌پدیا",
    6: "پرونده",
    10: "الگو",
    14: "رده",
    100: "درگاه",
    118: "پیش‌نویس",
    828: "پودمان",
}


def siteinfo(base: str = "https://fa.wikipedia.org/wiki/صفحهٔ_اصلی") -> str:
    namespaces = "\n".join(
        f'      <namespace key="{k}" case="first-letter">{v}</namespace>'
        if v
        else f'      <namespace key="{k}" case="first-letter" />'
        for k, v in NAMESPACES.items()
    )
    return (
        "  <siteinfo>\n    <sitename>ویکی‌پدیا</sitename>\n    <dbname>fawiki</dbname>\n"
        f"    <base>{base}</base>\n"
        f"    <generator>MediaWiki 1.41.0</generator>\n    <case>first-letter</case>\n"
        f"    <namespaces>\n{namespaces}\n    </namespaces>\n  </siteinfo>\n"
    )


def page(page_id: int, title: str, text: str, ns: int | None = 0, redirect: str | None = None) -> str:
    ns_xml = f"    <ns>{ns}</ns>\n" if ns is not None else ""
    redirect_xml = f'    <redirect title="{escape(redirect)}" />\n' if redirect else ""
    return (
        f"  <page>\n    <title>{escape(title)}</title>\n{ns_xml}    <id>{page_id}</id>\n{redirect_xml}"
        f"    <revision>\n      <id>{page_id * 10}</id>\n      <parentid>{page_id * 10 - 1}</parentid>\n"
        f"      <timestamp>2024-01-0{page_id % 9 + 1}T10:00:00Z</timestamp>\n"
        "      <contributor>\n        <username>ویرایشگر</username>\n"
        "        <id>7</id>\n      </contributor>\n"
        f"      <model>wikitext</model>\n      <format>text/x-wiki</format>\n"
        f'      <text bytes="{len(text.encode())}" xml:space="preserve">{escape(text)}</text>\n'
        f"      <sha1>abc</sha1>\n    </revision>\n  </page>\n"
    )


def header(version: str = "0.11") -> str:
    return (
        f'<mediawiki xmlns="http://www.mediawiki.org/xml/export-{version}/" '
        f'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" version="{version}" xml:lang="fa">\n'
    )


FOOTER = "</mediawiki>\n"

ARTICLE = (
    "{{جعبه اطلاعات شهر\n| نام = کاشان\n}}\n'''کاشان''' شهری در [[استان اصفهان]] است.<ref>منبع</ref>\n"
    "== تاریخ ==\nکاشان از شهرهای [[ایران باستان|کهن]] است.\n== منابع ==\n{{پانویس}}\n[[رده:شهرها]]"
)

# (id, title, text, ns, redirect element) and the reason each one is skipped (None: yielded).
PAGES = [
    (1, "کاشان", ARTICLE, 0, None, None),
    (2, "بحث:کاشان", "گفتگو دربارهٔ مقاله.", 1, None, "namespace"),
    (3, "کاربر:نمونه", "صفحهٔ کاربر.", 2, None, "namespace"),
    (4, "الگو:جعبه", "{{{1}}}", 10, None, "namespace"),
    (5, "رده:شهرها", "شهرهای ایران.", 14, None, "namespace"),
    (6, "پرونده:Kashan.jpg", "توضیح تصویر.", 6, None, "namespace"),
    (7, "ویکی‌پدیا:سیاست‌ها", "سیاست.", 4, None, "namespace"),
    (8, "کاشون", "#تغییرمسیر [[کاشان]]", 0, "کاشان", "redirect"),
    (9, "كاشان", "#تغییرمسیر [[کاشان]]", 0, None, "redirect"),
    (10, "Kashan", "#REDIRECT [[کاشان]]", 0, None, "redirect"),
    (11, "قمصر", "  #redirect:[[قمصر (کاشان)]]", 0, None, "redirect"),
    (12, "نیاسر", "#تغییر_مسیر [[نیاسر (کاشان)]]", 0, None, "redirect"),
    (
        13,
        "مرکز",
        "'''مرکز''' ممکن است به موارد زیر اشاره کند:\n* [[مرکز (هندسه)]]\n{{ابهام‌زدایی}}",
        0,
        None,
        "disambiguation",
    ),
    (14, "باغ", "* [[باغ فین]]\n{{Disambig}}", 0, None, "disambiguation"),
    (15, "فین", "* [[فین (کاشان)]]\n{{ابهام زدایی|جغرافیا}}", 0, None, "disambiguation"),
    (16, "سیلک", "* [[تپه سیلک]]\n{{صفحه ابهام‌زدایی}}", 0, None, "disambiguation"),
    (17, "آران (ابهام‌زدایی)", "* [[آران و بیدگل]]\n* [[آران (روستا)]]", 0, None, "disambiguation"),
    (18, "خالی", "{{خرد}}\n[[رده:خالی]]\n[[en:Empty]]", 0, None, "empty"),
    (19, "باغ فین", "'''باغ فین''' باغی تاریخی در [[کاشان]] است.", 0, None, None),
]


def dump_xml(pages=PAGES, version: str = "0.11", with_siteinfo: bool = True) -> bytes:
    body = "".join(page(pid, title, text, ns, red) for pid, title, text, ns, red, _ in pages)
    return (header(version) + (siteinfo() if with_siteinfo else "") + body + FOOTER).encode()


def expected_skips(pages=PAGES) -> dict[str, int]:
    skips: dict[str, int] = {}
    for *_, reason in pages:
        if reason:
            skips[reason] = skips.get(reason, 0) + 1
    return skips


def read(path, **kwargs):
    report = ReadReport()
    docs = list(iter_wikipedia(str(path), report, **kwargs))
    return docs, report


def check_full_dump(docs, report):
    assert [d.title for d in docs] == ["کاشان", "باغ فین"]
    assert report.read == 2
    assert dict(report.skipped) == expected_skips()
    assert not report.broken
    first = docs[0]
    assert first.text == "کاشان شهری در استان اصفهان است.\n\nتاریخ\n\nکاشان از شهرهای کهن است."
    assert first.id == "wikipedia/1"
    assert first.source == "wikipedia"
    assert first.url == "https://fa.wikipedia.org/wiki/کاشان"
    assert first.meta == {"page_id": 1, "revision_id": 10, "timestamp": "2024-01-02T10:00:00Z"}
    assert docs[1].url == "https://fa.wikipedia.org/wiki/باغ_فین"


# --- well-formed dumps --------------------------------------------------------------------------


@pytest.mark.parametrize("version", ["0.10", "0.11"])
def test_plain_xml(tmp_path, version):
    path = tmp_path / "fawiki.xml"
    path.write_bytes(dump_xml(version=version))
    docs, report = read(path)
    check_full_dump(docs, report)
    assert not report.broken and not report.details


@pytest.mark.parametrize(
    "suffix, compress",
    [(".xml.bz2", bz2.compress), (".xml.gz", gzip.compress), (".xml.xz", lzma.compress)],
)
def test_compressed_xml(tmp_path, suffix, compress):
    path = tmp_path / f"fawiki{suffix}"
    path.write_bytes(compress(dump_xml()))
    docs, report = read(path)
    check_full_dump(docs, report)
    assert not report.broken


def test_compression_is_told_by_content_not_name(tmp_path):
    path = tmp_path / "fawiki.xml"  # bz2 inside, misleading name
    path.write_bytes(bz2.compress(dump_xml()))
    docs, report = read(path)
    check_full_dump(docs, report)


def test_multistream_bz2(tmp_path):
    # Like Wikimedia's multistream dumps: header in one stream, pages in groups, footer in the last.
    streams = [
        (header() + siteinfo()).encode(),
        "".join(page(pid, t, x, ns, r) for pid, t, x, ns, r, _ in PAGES[:10]).encode(),
        "".join(page(pid, t, x, ns, r) for pid, t, x, ns, r, _ in PAGES[10:]).encode(),
        FOOTER.encode(),
    ]
    path = tmp_path / "fawiki-multistream.xml.bz2"
    path.write_bytes(b"".join(bz2.compress(s) for s in streams))
    docs, report = read(path)
    check_full_dump(docs, report)
    assert not report.broken


def test_custom_source_strip_and_keep_disambiguation(tmp_path):
    path = tmp_path / "fawiki.xml"
    path.write_bytes(dump_xml())
    docs, report = read(path, source="fawiki", strip=str.upper, keep_disambiguation=True)
    titles = [d.title for d in docs]
    assert titles == ["کاشان", "مرکز", "باغ", "فین", "سیلک", "آران (ابهام‌زدایی)", "خالی", "باغ فین"]
    assert docs[0].id == "fawiki/1" and docs[0].source == "fawiki"
    assert docs[0].text == ARTICLE.upper()  # the caller's strip is used as is
    assert "disambiguation" not in report.skipped and "empty" not in report.skipped


def test_without_siteinfo_defaults_to_fawiki_url(tmp_path):
    path = tmp_path / "fawiki.xml"
    path.write_bytes(dump_xml(with_siteinfo=False))
    docs, _ = read(path)
    assert docs[0].url == "https://fa.wikipedia.org/wiki/کاشان"


def test_url_base_and_link_namespaces_come_from_siteinfo(tmp_path):
    text = "Tekstur um [[Klaksvík]].\n[[Bólkur:Býir]]\n[[Mynd:K.jpg|thumb|Mynd]]"
    xml = (
        header("0.10")
        + "  <siteinfo>\n    <base>https://fo.wikipedia.org/wiki/Fors%C3%AD%C3%B0a</base>\n    <namespaces>\n"
        '      <namespace key="0" case="first-letter" />\n'
        '      <namespace key="6" case="first-letter">Mynd</namespace>\n'
        '      <namespace key="14" case="first-letter">Bólkur</namespace>\n'
        "    </namespaces>\n  </siteinfo>\n" + page(1, "Klaksvík kommuna", text) + FOOTER
    )
    path = tmp_path / "fowiki.xml"
    path.write_text(xml, encoding="utf-8")
    docs, _ = read(path)
    assert docs[0].url == "https://fo.wikipedia.org/wiki/Klaksvík_kommuna"
    assert docs[0].text == "Tekstur um Klaksvík."


def test_old_schema_without_ns_element_uses_title_prefix(tmp_path):
    pages = [
        (1, "بحث:کاشان", "گفتگو.", None, None, "namespace"),
        (2, "کاشان", "'''کاشان''' شهری کهن است.", None, None, None),
        (3, "بحث:نامعلوم:عنوان", "یک عنوان با دونقطه", None, None, "namespace"),
        (4, "ماده: تعریف", "نوشتار با دونقطه در عنوان.", None, None, None),
    ]
    path = tmp_path / "old.xml"
    path.write_bytes(dump_xml(pages=pages, version="0.3"))
    docs, report = read(path)
    assert [d.title for d in docs] == ["کاشان", "ماده: تعریف"]
    assert report.skipped["namespace"] == 2


def test_generator_closes_file_when_abandoned(tmp_path):
    path = tmp_path / "fawiki.xml.bz2"
    path.write_bytes(bz2.compress(dump_xml()))
    report = ReadReport()
    gen = iter_wikipedia(str(path), report)
    assert next(gen).title == "کاشان"
    gen.close()
    assert report.read == 1 and not report.broken


# --- faults -------------------------------------------------------------------------------------


def test_plain_xml_cut_mid_page(tmp_path):
    data = dump_xml()
    cut = data.index("باغی تاریخی".encode())  # inside page 19's text
    path = tmp_path / "cut.xml"
    path.write_bytes(data[:cut])
    docs, report = read(path)
    assert [d.title for d in docs] == ["کاشان"]
    assert dict(report.skipped) == expected_skips()  # pages 2..18 all complete
    assert dict(report.broken) == {"truncated": 1}
    (detail,) = report.details
    assert detail["file"] == str(path)
    assert detail["where"] == f"page 19 / byte offset {cut}"
    assert detail["reason"] == "truncated"


def test_cut_inside_a_line_longer_than_a_chunk_is_truncation_without_rereading(tmp_path, monkeypatch):
    monkeypatch.setattr(wikipedia, "_CHUNK", 4096)
    opened = []
    real_open = wikipedia._open
    monkeypatch.setattr(wikipedia, "_open", lambda p: opened.append(p) or real_open(p))
    long_line = "کاشان شهری کهن است. " * 2000  # one 70 kB line
    data = dump_xml(pages=[PAGES[0], (2, "بلند", long_line, 0, None, None)])
    cut = data.index(long_line.encode()) + 30_001
    path = tmp_path / "cut.xml"
    path.write_bytes(data[:cut])
    docs, report = read(path)
    assert [d.title for d in docs] == ["کاشان"]
    assert report.details[0]["where"] == f"page 2 / byte offset {cut}"
    assert report.details[0]["reason"] == "truncated"
    assert len(opened) == 1


def test_plain_xml_cut_between_pages(tmp_path):
    data = dump_xml()
    cut = data.index(b"</mediawiki>")
    path = tmp_path / "cut.xml"
    path.write_bytes(data[:cut])
    docs, report = read(path)
    assert len(docs) == 2
    assert report.details[0]["where"] == f"after page 19 / byte offset {cut}"


def test_truncated_bz2_keeps_pages_of_complete_streams(tmp_path):
    first = (header() + siteinfo() + "".join(page(p, t, x, n, r) for p, t, x, n, r, _ in PAGES[:3])).encode()
    second = ("".join(page(p, t, x, n, r) for p, t, x, n, r, _ in PAGES[3:]) + FOOTER).encode()
    compressed = bz2.compress(first) + bz2.compress(second)
    path = tmp_path / "cut.xml.bz2"
    path.write_bytes(compressed[: len(compressed) - 200])  # the second stream loses its end
    docs, report = read(path)
    assert [d.title for d in docs] == ["کاشان"]
    assert report.skipped["namespace"] == 2
    assert dict(report.broken) == {"truncated": 1}
    assert report.details[0]["where"] == f"after page 3 / byte offset {len(first)}"
    assert "compressed stream ends early" in report.details[0]["message"]


def test_truncated_single_stream_bz2_keeps_pages_of_complete_blocks(tmp_path):
    # compresslevel=1: 100 kB blocks; ~50 pages of ~6 kB each span several blocks.
    words = "کاشان شهری کهن در حاشیهٔ کویر است و باغ فین در آن قرار دارد. "
    pages = [(i, f"نوشتار {i}", words * 60, 0, None, None) for i in range(1, 51)]
    data = dump_xml(pages=pages)
    compressed = bz2.compress(data, compresslevel=1)
    path = tmp_path / "cut.xml.bz2"
    path.write_bytes(compressed[: len(compressed) * 2 // 3])
    docs, report = read(path)
    assert 0 < len(docs) < 50
    assert [d.title for d in docs] == [f"نوشتار {i}" for i in range(1, len(docs) + 1)]
    assert all(d.text == (words * 60).strip() for d in docs)
    assert dict(report.broken) == {"truncated": 1}
    assert report.details[0]["where"].startswith(f"page {len(docs) + 1} / byte offset ")


def test_truncated_gzip_and_xz(tmp_path):
    for suffix, compress in ((".gz", gzip.compress), (".xz", lzma.compress)):
        compressed = compress(dump_xml())
        path = tmp_path / f"cut.xml{suffix}"
        path.write_bytes(compressed[:-30])
        _, report = read(path)
        assert dict(report.broken) == {"truncated": 1}, suffix
        assert len(report.details) == 1


def _bad_pages():
    """(name, page XML that is not well-formed, what in it libxml2 trips on)."""
    ok = page(50, "خراب", "متن خراب.")
    return [
        ("raw_lt", ok.replace("متن خراب.", "اگر a < b باشد"), "< b"),
        ("raw_amp", ok.replace("<title>خراب</title>", "<title>خراب & ناقص</title>"), "& "),
        ("bad_utf8", ok.replace("متن خراب.", "متن \udcff خراب."), "\udcff"),
        ("undefined_entity", ok.replace("متن خراب.", "متن &nbsp; خراب."), "&nbsp;"),
        ("raw_end_tag_in_text", ok.replace("متن خراب.", "برچسب </page> در متن"), "</page> در"),
        ("raw_start_tag_in_text", ok.replace("متن خراب.", "برچسب <page> در متن"), "</text>"),  # the mismatch
        ("unclosed_page", ok.replace("  </page>\n", ""), None),
    ]


def _dump_with(bad: str, before=PAGES[:10], after=PAGES[10:]) -> tuple[bytes, list[bytes]]:
    """A dump with `bad` between two runs of good pages, and the same as multistream parts."""
    bad = bad.encode("utf-8", "surrogateescape")  # (a lone surrogate stands for an invalid byte)
    parts = [
        (header() + siteinfo()).encode(),
        "".join(page(p, t, x, n, r) for p, t, x, n, r, _ in before).encode(),
        bad,
        "".join(page(p, t, x, n, r) for p, t, x, n, r, _ in after).encode(),
        FOOTER.encode(),
    ]
    return b"".join(parts), parts


@pytest.mark.parametrize("form", ["xml", "bz2", "multistream"])
@pytest.mark.parametrize("name, bad, marker", _bad_pages(), ids=[b[0] for b in _bad_pages()])
def test_invalid_page_in_the_middle_costs_that_page_only(tmp_path, monkeypatch, form, name, bad, marker):
    # Small chunks, so pages straddle chunk boundaries and the bad page is met mid-stream.
    monkeypatch.setattr(wikipedia, "_CHUNK", 512)
    data, parts = _dump_with(bad)
    path = tmp_path / f"fawiki.{form}.xml{'' if form == 'xml' else '.bz2'}"
    if form == "xml":
        path.write_bytes(data)
    elif form == "bz2":
        path.write_bytes(bz2.compress(data))
    else:  # one bz2 stream per part, as Wikimedia's multistream dumps
        path.write_bytes(b"".join(bz2.compress(p) for p in parts))
    docs, report = read(path)
    assert [d.title for d in docs] == ["کاشان", "باغ فین"]  # every good article, before and after
    assert dict(report.skipped) == expected_skips()  # every good page was read and classified
    assert dict(report.broken) == {"invalid_xml": 1}
    (detail,) = report.details
    where, offset = detail["where"].split(" / byte offset ")
    assert where == "page 11"
    bad_at = len(parts[0]) + len(parts[1])  # where the bad page starts in the decompressed XML
    if marker is None:  # never closed: found out where the next page starts
        assert int(offset) == data.index(b"<page>", data.index(b"<page>", bad_at) + 1)  # the next page
    else:
        error_at = data.index(marker.encode("utf-8", "surrogateescape"), bad_at)
        assert error_at <= int(offset) <= error_at + 8  # libxml2 points at or just after the fault


def test_every_page_broken_still_reads_the_rest(tmp_path):
    bad = page(3, "الف", "a b").replace("a b", "a < b")
    data = (header() + siteinfo() + bad * 3 + page(1, "کاشان", ARTICLE) + bad + FOOTER).encode()
    path = tmp_path / "bad.xml"
    path.write_bytes(data)
    docs, report = read(path)
    assert [d.title for d in docs] == ["کاشان"]
    assert dict(report.broken) == {"invalid_xml": 4}
    assert [d["where"].split(" / ")[0] for d in report.details] == ["page 1", "page 2", "page 3", "page 5"]


def test_text_between_pages_is_one_record_and_pages_around_it_are_kept(tmp_path):
    data = (header() + siteinfo() + page(1, "کاشان", ARTICLE) + "  stray text\n"
            + page(19, "باغ فین", "'''باغ فین''' باغی تاریخی است.") + FOOTER).encode()
    path = tmp_path / "junk.xml"
    path.write_bytes(data)
    docs, report = read(path)
    assert [d.title for d in docs] == ["کاشان", "باغ فین"]
    assert dict(report.broken) == {"invalid_xml": 1}
    assert report.details[0]["where"] == f"after page 1 / byte offset {data.index(b'stray')}"
    assert "stray text" in report.details[0]["message"]


def test_text_after_the_root_is_one_record(tmp_path):
    data = dump_xml() + b"garbage"
    path = tmp_path / "junk.xml"
    path.write_bytes(data)
    docs, report = read(path)
    assert len(docs) == 2
    assert dict(report.broken) == {"invalid_xml": 1}
    assert report.details[0]["where"] == f"after page 19 / byte offset {data.index(b'</mediawiki>')}"


def test_broken_header_is_one_record_and_pages_are_still_read(tmp_path):
    data = dump_xml().replace(b"<sitename>", b"<sitename>a & b", 1)
    path = tmp_path / "bad-header.xml"
    path.write_bytes(data)
    docs, report = read(path)
    assert [d.title for d in docs] == ["کاشان", "باغ فین"]
    assert dict(report.broken) == {"invalid_xml": 1}
    where, offset = report.details[0]["where"].split(" / byte offset ")
    assert where == "after page 0" and data.index(b"& b") <= int(offset) <= data.index(b"& b") + 2


def test_page_using_a_prefix_declared_on_the_root(tmp_path):
    xml = dump_xml(pages=PAGES[:1]).replace(b"<title>", b'<title xsi:type="string">', 1)
    path = tmp_path / "prefixed.xml"
    path.write_bytes(xml)
    docs, report = read(path)
    assert [d.title for d in docs] == ["کاشان"] and not report.broken


def test_no_entity_is_resolved(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("SECRET-CONTENT", encoding="utf-8")
    doctype = (f'<?xml version="1.0"?>\n<!DOCTYPE mediawiki [\n  <!ENTITY xxe SYSTEM "file://{secret}">\n'
               '  <!ENTITY lol "lollollollollollollollollollol">\n]>\n')
    data = (doctype + header() + siteinfo() + page(1, "کاشان", ARTICLE)
            + page(2, "نشت", "&xxe;").replace("&amp;xxe;", "&xxe;")
            + page(3, "بمب", "&lol;").replace("&amp;lol;", "&lol;") + FOOTER).encode()
    path = tmp_path / "xxe.xml"
    path.write_bytes(data)
    docs, report = read(path, strip=lambda t: t)
    assert [d.title for d in docs] == ["کاشان"]
    assert dict(report.broken) == {"invalid_xml": 2}
    assert all("SECRET" not in d.text and "lol" not in d.text for d in docs)


def test_a_page_without_its_end_tag_is_skipped_in_bounded_memory(tmp_path, monkeypatch):
    import tracemalloc

    monkeypatch.setattr(wikipedia, "_CHUNK", 4096)
    monkeypatch.setattr(wikipedia, "_MAX_PAGE", 64 << 10)
    runaway = "  <page>\n    <title>بی‌پایان</title>\n    <revision><text>" + "متن بی‌پایان. " * 200_000
    data = (header() + siteinfo() + page(1, "کاشان", ARTICLE) + runaway
            + page(19, "باغ فین", "'''باغ فین''' باغی تاریخی است.") + FOOTER).encode()  # ~5 MB
    path = tmp_path / "runaway.xml"
    path.write_bytes(data)
    tracemalloc.start()
    try:
        docs, report = read(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert [d.title for d in docs] == ["کاشان", "باغ فین"]
    assert dict(report.broken) == {"invalid_xml": 1}
    runaway_at = data.index(b"<page>", data.index(b"<page>") + 1)
    assert report.details[0]["where"] == f"page 2 / byte offset {runaway_at}"
    assert "no </page> within 64 KiB" in report.details[0]["message"]
    assert peak < len(data) // 8  # the 5 MB page was never held whole


def test_not_xml_at_all_is_one_bad_record(tmp_path):
    path = tmp_path / "notes.xml"
    path.write_text("this is not a dump\n", encoding="utf-8")
    docs, report = read(path)
    assert docs == []
    assert dict(report.broken) == {"invalid_xml": 1}
    assert report.details[0]["where"].startswith("after page 0 / byte offset ")


def test_corrupt_bz2_data_is_one_bad_record(tmp_path):
    compressed = bytearray(bz2.compress(dump_xml()))
    compressed[len(compressed) // 2] ^= 0xFF
    path = tmp_path / "corrupt.xml.bz2"
    path.write_bytes(bytes(compressed))
    _, report = read(path)
    assert sum(report.broken.values()) == 1
    assert set(report.broken) <= {"corrupt_compression", "invalid_xml", "truncated"}


def test_missing_file_raises_file_not_found(tmp_path):
    missing = tmp_path / "nope.xml.bz2"
    with pytest.raises(FileNotFoundError, match="nope.xml.bz2"):
        iter_wikipedia(str(missing), ReadReport())


def test_empty_file_raises_value_error_naming_it(tmp_path):
    empty = tmp_path / "empty.xml"
    empty.write_bytes(b"")
    with pytest.raises(ValueError, match="empty.xml"):
        iter_wikipedia(str(empty), ReadReport())
    empty_bz2 = tmp_path / "empty.xml.bz2"
    empty_bz2.write_bytes(bz2.compress(b""))
    with pytest.raises(ValueError, match="empty.xml.bz2"):
        list(iter_wikipedia(str(empty_bz2), ReadReport()))


# --- helpers --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, expected",
    [
        ("#REDIRECT [[a]]", True),
        ("#redirect[[a]]", True),
        ("#تغییرمسیر [[الف]]", True),
        ("#تغییر_مسیر [[الف]]", True),
        ("\n #Redirect [[a]]", True),
        ("متن #تغییرمسیر", False),
        ("# فهرست شماره‌دار", False),
        ("#تغییر مسیر رود در سدهٔ گذشته", False),
    ],
)
def test_is_redirect(text, expected):
    assert is_redirect(text) is expected


@pytest.mark.parametrize(
    "title, text, expected",
    [
        ("الف", "{{ابهام‌زدایی}}", True),
        ("الف", "{{ ابهام زدایی }}", True),
        ("الف", "{{الگو:ابهام‌زدایی}}", True),
        ("الف", "{{disambiguation|geo}}", True),
        ("الف", "{{DISAMBIG}}", True),
        ("الف (ابهام‌زدایی)", "متن", True),
        ("الف (ابهام زدایی)", "متن", True),
        ("الف", "{{ابهام‌زدایی‌های دیگر|ب}}", False),
        ("الف", "دربارهٔ ابهام‌زدایی در ریاضیات", False),
        ("الف", "{{دیگر کاربردها}}", False),
    ],
)
def test_is_disambiguation(title, text, expected):
    assert is_disambiguation(title, text) is expected


# --- real dump samples (opt-in: shared/data) ------------------------------------------------------

SAMPLES = Path(
    os.environ.get("PERSIANLLAMA_SHARED_DATA", Path(__file__).resolve().parents[3] / "shared" / "data")
)
SAMPLES = SAMPLES / "wiki_dump_samples"
needs_samples = pytest.mark.skipif(not SAMPLES.is_dir(), reason=f"{SAMPLES} not present")


@pytest.mark.shared
@needs_samples
def test_real_faroese_dump_has_no_leftover_markup():
    docs, report = read(SAMPLES / "fowiki_fragment.xml.bz2")
    assert [d.title for d in docs] == ["Klaksvíkar kommuna"]
    assert dict(report.skipped) == {"namespace": 1} and not report.broken
    text = docs[0].text
    assert count_leftover_markup(text) == 0
    assert "Bólkur" not in text and "Infoboks" not in text and "Klaksvik.fo" not in text
    assert text.startswith("Klaksvíkar kommuna er næststørsta kommuna í Føroyum.")
    assert docs[0].url == "https://fo.wikipedia.org/wiki/Klaksvíkar_kommuna"
    assert docs[0].meta == {"page_id": 2201, "revision_id": 341301, "timestamp": "2016-11-09T13:00:10Z"}


@pytest.mark.shared
@needs_samples
def test_real_marathi_dump_cut_mid_page_reads_every_complete_page():
    path = SAMPLES / "mrwiki-20230501-truncated-100k.xml.xz"
    with lzma.open(path) as f:
        xml = f.read()
    complete = xml.count(b"</page>")
    docs, report = read(path)
    assert report.read == len(docs) > 500
    assert report.read + sum(report.skipped.values()) == complete
    assert dict(report.broken) == {"truncated": 1}
    (detail,) = report.details
    assert detail["where"] == f"page {complete + 1} / byte offset {len(xml)}"
    assert all(d.url.startswith("https://mr.wikipedia.org/wiki/") for d in docs)
    # Marathi category links ([[वर्ग:...]]) are removed thanks to the dump's own namespace names
    # (one article shows "वर्ग:..." as the label of an inline link, which is running text).
    assert not any(line.startswith("वर्ग:") for d in docs for line in d.text.splitlines())
    assert sum(count_leftover_markup(d.text) for d in docs) < 30  # nowiki'd markup, by design
