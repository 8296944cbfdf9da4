"""Reader for MediaWiki XML dumps (``fawiki-*-pages-articles*.xml[.bz2]``): articles as `RawDoc`.

``iter_wikipedia(path, report)`` promises:
- it streams: the file is decompressed in chunks of at most 1 MiB, cut into ``<page>`` ... ``</page>``
  pieces and each piece is parsed on its own with lxml, so memory is bounded by the largest page
  (a page over _MAX_PAGE bytes without its ``</page>`` is counted broken and skipped), not the dump;
- compression is told by the file's magic bytes, not its name: plain XML, bzip2 (multistream
  dumps are concatenated bz2 streams, which the stdlib reads as one), gzip and xz;
- any export schema version: elements are matched by local name, whatever the namespace URI;
- only main-namespace (ns 0) articles are yielded; every other page is counted in
  ``report.skipped`` under 'namespace', 'redirect', 'disambiguation' or 'empty' (nothing left
  after stripping), checked in that order;
- a page that is not well-formed XML (a raw ``<`` or ``&`` in its text, bad UTF-8, an undefined
  entity, a ``<page>`` never closed before the next one) costs that page only: ONE ``report.bad``
  records where (``page N / byte offset X``, X counted in the decompressed XML) with the reason
  'invalid_xml', and reading goes on at the next ``<page>``. A broken header (``<siteinfo>``) or
  text between pages is one such record too ('after page N / ...');
- a dump that stops mid-page or a truncated compressed stream does not raise: every complete page
  before the cut is yielded and ONE ``report.bad`` says where ('truncated', or
  'corrupt_compression' for a damaged compressed stream), and reading that file stops;
- no entity is ever resolved and nothing is fetched: a page that names an entity other than the five
  XML ones (``&xxe;``) is a broken page, whatever the header's DOCTYPE declares;
- a missing file raises FileNotFoundError and an empty one ValueError, both naming the path, when
  ``iter_wikipedia`` is called (not when iteration starts).

Why one lxml parse per page: it is the simplest way to lose one bad page instead of the rest of the
dump (libxml2 stops at the first well-formedness error and, fed incrementally, often reports it
only at the end), and it is not slower: on benchmarks/wikitext.py's synthetic dump, splitting at
``<page>`` and parsing each page took 0.06 s per 8 MB of XML, lxml's pull parser over the whole
stream 0.065 s. mwxml read a dump at 8.3 MB/s of wikitext and lxml's iterparse at 13.9 (corpus
findings notes, section 4). Reading is not the bottleneck: decompression and stripping the markup
cost more than parsing the XML (benchmarks/wikitext.py).
"""

from __future__ import annotations

import bz2
import gzip
import lzma
import os
import re
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from typing import IO
from xml.sax.saxutils import quoteattr

from lxml import etree

from persianllama.corpus.records import RawDoc, ReadReport
from persianllama.corpus.wikitext import to_plain_text

__all__ = ["DEFAULT_BASE_URL", "is_disambiguation", "is_redirect", "iter_wikipedia"]

DEFAULT_BASE_URL = "https://fa.wikipedia.org/wiki/"
_CHUNK = 1 << 20
# A page this long without its </page> is taken for a broken one and skipped, so memory stays
# bounded. MediaWiki caps a revision at 2 MiB of wikitext (a few times that once XML-escaped), so no
# page of a pages-articles dump gets near it.
_MAX_PAGE = 256 << 20

_PAGE_START = re.compile(rb"<page[\s>]")
_PAGE_END = re.compile(rb"</page\s*>")
# No entity resolution, no DTD, no network: a dump has no business asking for any of them.
# huge_tree: a few pages exceed libxml2's default 10 MB text-node limit.
_PARSER_OPTIONS = dict(huge_tree=True, resolve_entities=False, load_dtd=False, no_network=True,
                       remove_comments=True, remove_pis=True)

# Redirect magic words: fawiki's (fawiki_namespaces.json: '#تغییرمسیر', plus its '_' and space
# spellings) and the English one that every wiki accepts, matched case-insensitively at the start
# and, as MediaWiki requires, followed by the target link (so a numbered list item that happens to
# start with «تغییر مسیر» is not taken for a redirect).
_REDIRECT_RE = re.compile(r"\s*#\s*(?:redirect|تغییر[ _]?مسیر)\s*:?\s*\[\[", re.IGNORECASE)

# Disambiguation templates on fawiki and their English aliases; names are matched with any mix of
# space, '_' and ZWNJ between words, with an optional 'الگو:'/'Template:' prefix and parameters.
_SEP = "[ _\u200c]*"
_DISAMBIG_RE = re.compile(
    r"\{\{\s*(?:(?:الگو|template)\s*:\s*)?(?:"
    rf"(?:صفحه{_SEP})?ابهام{_SEP}زدایی(?:{_SEP}(?:جغرافیایی|نام|مکان|شخص|ناتمام))?"
    r"|disambig(?:uation)?(?:[ _]page)?|dab|disamb|geodis|hndis"
    r")\s*(?:\||\}\})",
    re.IGNORECASE,
)
_DISAMBIG_TITLE_RE = re.compile(rf"\(\s*ابهام{_SEP}زدایی\s*\)\s*$")

# Namespaces (siteinfo keys) whose links are not running text: Media, File, Category.
_DROP_LINK_KEYS = (-2, 6, 14)


def is_redirect(wikitext: str) -> bool:
    """True when the page text starts with a redirect magic word (``#REDIRECT``, ``#تغییرمسیر``, ...)."""
    return _REDIRECT_RE.match(wikitext) is not None


def is_disambiguation(title: str, wikitext: str) -> bool:
    """True for a disambiguation page: it transcludes a disambiguation template, or its title
    ends in ``(ابهام‌زدایی)``."""
    return _DISAMBIG_TITLE_RE.search(title) is not None or _DISAMBIG_RE.search(wikitext) is not None


@dataclass
class _Site:
    """What the reader needs from ``<siteinfo>``."""

    base_url: str = DEFAULT_BASE_URL
    names: dict[str, int] = field(default_factory=dict)  # case-folded namespace name -> key
    drop_link_namespaces: frozenset[str] = frozenset()

    @classmethod
    def from_xml(cls, siteinfo: etree._Element) -> _Site:
        site = cls()
        for child in siteinfo:
            local = _local(child.tag)
            if local == "base" and child.text:
                site.base_url = _base_url(child.text.strip())
            elif local == "namespaces":
                drop = set()
                for ns in child:
                    try:
                        key = int(ns.get("key", ""))
                    except ValueError:
                        continue
                    name = (ns.text or "").strip()
                    if name:
                        site.names[name.casefold()] = key
                        if key in _DROP_LINK_KEYS:
                            drop.add(name)
                site.drop_link_namespaces = frozenset(drop)
        return site

    def namespace_of(self, title: str) -> int:
        """Namespace key from a title prefix (for old schemas without ``<ns>``)."""
        prefix, colon, _ = title.partition(":")
        if not colon:
            return 0
        return self.names.get(prefix.strip().replace("_", " ").casefold(), 0)


def _base_url(main_page_url: str) -> str:
    """``https://fa.wikipedia.org/wiki/صفحهٔ_اصلی`` -> ``https://fa.wikipedia.org/wiki/``."""
    marker = main_page_url.find("/wiki/")
    if marker >= 0:
        return main_page_url[: marker + len("/wiki/")]
    slash = main_page_url.rfind("/")
    return main_page_url[: slash + 1] if slash >= 0 else DEFAULT_BASE_URL


def _local(tag: object) -> str:
    # Comments and processing instructions have a function as their tag.
    if not isinstance(tag, str):
        return ""
    return tag[tag.rfind("}") + 1 :]


def iter_wikipedia(
    path: str | os.PathLike[str],
    report: ReadReport,
    *,
    source: str = "wikipedia",
    strip: Callable[[str], str] | None = None,
    keep_disambiguation: bool = False,
) -> Iterator[RawDoc]:
    """Yield one `RawDoc` per main-namespace article of the dump at ``path`` (see the module docstring).

    ``strip`` turns wikitext into plain text; by default `to_plain_text` with the dump's own
    media/file/category namespace names. ``keep_disambiguation`` yields disambiguation pages too.
    """
    path = os.fspath(path)
    if os.path.getsize(path) == 0:  # raises FileNotFoundError for a missing file
        raise ValueError(f"{path}: empty file, not a MediaWiki XML dump")
    return _read(path, report, source, strip, keep_disambiguation)


def _open(path: str) -> IO[bytes]:
    with open(path, "rb") as f:
        magic = f.read(6)
    if magic.startswith(b"BZh"):
        return bz2.open(path, "rb")
    if magic.startswith(b"\x1f\x8b"):
        return gzip.open(path, "rb")
    if magic.startswith(b"\xfd7zXZ\x00"):
        return lzma.open(path, "rb")
    return open(path, "rb")


def _line_offset(data: bytes, lines_before: int, line: int, column: int) -> int | None:
    """Offset in ``data`` of (1-based ``line``, 1-based character ``column``), where ``data`` starts at
    line ``lines_before + 1``; None if that line does not start in ``data``."""
    nth = line - 1 - lines_before
    if nth < 0:
        return None
    pos = 0
    for _ in range(nth):
        pos = data.find(b"\n", pos) + 1
        if pos == 0:
            return None
    # libxml2 counts columns in characters; the XML is UTF-8.
    head = data[pos : pos + 4 * max(column - 1, 0)].decode("utf-8", "ignore")[: max(column - 1, 0)]
    return pos + len(head.encode())


def _error_offset(data: bytes, error: etree.XMLSyntaxError, lines_before: int = 0) -> int | None:
    """Offset in ``data`` of the position libxml2 gives for ``error``, or None."""
    line, column = error.position or (0, 0)
    return _line_offset(data, lines_before, line, column) if line else None


def _size(n: int) -> str:
    return f"{n >> 20} MiB" if n >= 1 << 20 else f"{n >> 10} KiB"


def _find(buf: bytearray, literal: bytes, tag: re.Pattern[bytes], pos: int) -> re.Match[bytes] | None:
    """First match of ``tag`` at or after ``pos``. bytes.find jumps from one ``literal`` (the tag's
    fixed start) to the next at memchr speed, several times faster than the regex's own scan."""
    i = buf.find(literal, pos)
    while i >= 0:
        m = tag.match(buf, i)
        if m is not None:
            return m
        i = buf.find(literal, i + 1)
    return None


def _last_page_start(buf: bytearray, lo: int, hi: int) -> int | None:
    """Offset of the last ``<page`` start tag that begins in ``buf[lo:hi]``."""
    i = buf.rfind(b"<page", lo, hi)
    while i >= 0:
        if _PAGE_START.match(buf, i):
            return i
        i = buf.rfind(b"<page", lo, i)
    return None


_AFTER_ROOT = re.compile(rb"(?:\s|<!--.*?-->|<\?.*?\?>)*", re.DOTALL)


@dataclass
class _Header:
    """What the part of the dump before the first ``<page>`` says, and what is wrong with it."""

    site: _Site = field(default_factory=_Site)
    root_end: re.Pattern[bytes] = re.compile(rb"</mediawiki\s*>")
    # Wrapper with the root's namespace declarations, for a page that uses a prefix declared there.
    wrap: tuple[bytes, bytes] | None = None
    error: etree.XMLSyntaxError | None = None
    error_offset: int = 0

    @classmethod
    def parse(cls, data: bytes, complete: bool) -> _Header:
        """``complete``: ``data`` is the whole document (a dump without pages); otherwise pages follow,
        and the root is closed here by a made-up end tag so that the header is checked on its own."""
        header = cls()
        pull = etree.XMLPullParser(events=("start", "end"), **_PARSER_OPTIONS)
        root = None

        def take_events() -> None:
            nonlocal root
            for event, elem in pull.read_events():
                if event == "start" and root is None:
                    root = elem
                elif event == "end" and _local(elem.tag) == "siteinfo" and elem.getparent() is root:
                    header.site = _Site.from_xml(elem)

        def qname() -> str:
            return ((root.prefix + ":") if root.prefix else "") + _local(root.tag)

        try:
            pull.feed(data)
            take_events()
            if not complete and root is not None:
                pull.feed(f"</{qname()}>".encode())
            if complete or root is not None or not _AFTER_ROOT.fullmatch(data):
                pull.close()  # (a file of bare pages, without a root, is read as well)
        except etree.XMLSyntaxError as e:
            header.error = e
            found = _error_offset(data, e)
            header.error_offset = len(data) if found is None else min(found, len(data))
        take_events()
        if root is not None:
            header.root_end = re.compile(b"</" + re.escape(qname().encode()) + rb"\s*>")
            decls = " ".join(f"xmlns{':' + p if p else ''}={quoteattr(uri)}" for p, uri in root.nsmap.items())
            header.wrap = (f"<_ {decls}>\n".encode(), b"</_>")
        return header


def _read(
    path: str,
    report: ReadReport,
    source: str,
    strip: Callable[[str], str] | None,
    keep_disambiguation: bool,
) -> Iterator[RawDoc]:
    parser = etree.XMLParser(**_PARSER_OPTIONS)
    header: _Header | None = None  # None until the first <page> (or the end) is reached
    convert = strip or to_plain_text
    buf = bytearray()  # decompressed bytes not yet dealt with
    base = 0  # offset of buf[0] in the decompressed XML
    pages = 0  # <page> pieces met so far
    open_page: int | None = None  # offset in buf of a <page> whose </page> has not arrived yet
    end_from = 0  # where in buf to go on looking for that </page>
    after_broken = False  # the last piece was broken: text up to the next <page> is its rest
    fault: tuple[str, str] | None = None

    def bad(where: str, offset: int, reason: str, message: str) -> None:
        report.bad(path, f"{where} / byte offset {offset}", reason, message)

    def parse(start: int, end: int) -> tuple[etree._Element | None, etree.XMLSyntaxError | None, int]:
        """(page element, None, 0) or (None, error, its offset in the dump) for ``buf[start:end]``."""
        piece = bytes(memoryview(buf)[start:end])
        try:
            return etree.fromstring(piece, parser), None, 0
        except etree.XMLSyntaxError as e:
            error, lines_before = e, 0
        if header is not None and header.wrap and str(error).startswith("Namespace prefix"):
            try:
                return etree.fromstring(header.wrap[0] + piece + header.wrap[1], parser)[0], None, 0
            except etree.XMLSyntaxError as e:
                error, lines_before = e, 1  # the wrapper's start tag is line 1
        found = _error_offset(piece, error, lines_before)
        return None, error, base + start + (found if found is not None else 0)

    with _open(path) as stream:
        eof = False
        while not eof:
            try:
                # read1: one decompression step at a time, so data decompressed before a
                # truncated stream's EOFError is never lost inside a buffered read.
                data = stream.read1(_CHUNK)
            except EOFError as e:
                fault = ("truncated", f"compressed stream ends early: {e}")
                data = b""
            except (OSError, lzma.LZMAError, zlib.error) as e:
                fault = ("corrupt_compression", f"{type(e).__name__}: {e}")
                data = b""
            eof = not data
            buf += data
            pos = 0  # buf[:pos] is dealt with

            if header is None:
                first = _find(buf, b"<page", _PAGE_START, 0)
                if first is None and not eof:
                    if len(buf) > _MAX_PAGE:
                        bad("after page 0", base, "invalid_xml",
                            f"no <page> in the first {_size(_MAX_PAGE)}: not a MediaWiki XML dump")
                        return
                    continue
                if eof and base + len(buf) == 0 and fault is None:
                    raise ValueError(f"{path}: no data after decompression, not a MediaWiki XML dump")
                if first is None and fault is not None:
                    break  # cut inside the header: the stream fault below says so
                pos = len(buf) if first is None else first.start()
                header = _Header.parse(bytes(buf[:pos]), complete=first is None)
                if strip is None:
                    convert = partial(to_plain_text, namespaces=header.site.drop_link_namespaces)
                if header.error is not None:
                    offset = base + header.error_offset
                    if first is None and offset >= base + len(buf) - 2:
                        bad("after page 0", offset, "truncated", f"XML ends before the document does: {header.error}")
                    else:
                        bad("after page 0", offset, "invalid_xml", str(header.error))
                if first is None:
                    return

            while True:
                if open_page is None:
                    m = _find(buf, b"<page", _PAGE_START, pos)
                    if m is None:
                        break
                    start = m.start()
                    gap = buf[pos:start]
                    if not after_broken and gap.strip():
                        bad(f"after page {pages}", base + pos + len(gap) - len(gap.lstrip()), "invalid_xml",
                            "text between pages: " + gap.strip()[:60].decode("utf-8", "replace"))
                    open_page, end_from, pos = start, m.end(), start
                end = _find(buf, b"</page", _PAGE_END, end_from)
                if end is None:
                    end_from = max(end_from, len(buf) - 8)
                    break
                start, open_page = open_page, None
                pos = end.end()
                elem, error, offset = parse(start, pos)
                inner = None if elem is not None else _last_page_start(buf, start + 1, end.start())
                if inner is not None:
                    # A <page> inside a broken piece: either this page lost its </page> (then the
                    # inner one is whole) or a raw "<page" in its text (the piece is one broken page).
                    inner_elem, *_ = parse(inner, pos)
                    if inner_elem is not None:
                        pages += 1
                        bad(f"page {pages}", base + inner, "invalid_xml", "<page> not closed before the next <page>")
                        elem = inner_elem
                pages += 1
                after_broken = elem is None
                if elem is None:
                    bad(f"page {pages}", offset, "invalid_xml", str(error))
                    continue
                doc = _page(elem, header.site, report, source, convert, keep_disambiguation)
                if doc is not None:
                    report.read += 1
                    yield doc

            if eof:
                pass  # a page still open is cut short (below)
            elif open_page is not None and len(buf) - open_page > _MAX_PAGE:
                inner = _last_page_start(buf, open_page + 1, len(buf))
                pages += 1
                after_broken = True
                if inner is not None:
                    bad(f"page {pages}", base + inner, "invalid_xml", "<page> not closed before the next <page>")
                    pos, open_page, end_from = inner, None, inner
                else:
                    bad(f"page {pages}", base + open_page, "invalid_xml",
                        f"no </page> within {_size(_MAX_PAGE)}: skipped to the next <page>")
                    pos, open_page = len(buf) - 8, None
            elif open_page is None and len(buf) - pos > _MAX_PAGE:
                if not after_broken:
                    bad(f"after page {pages}", base + pos, "invalid_xml",
                        f"{_size(_MAX_PAGE)} of text between pages: skipped to the next <page>")
                after_broken = True
                pos = len(buf) - 8
            if open_page is not None:
                pos = min(pos, open_page)
                open_page -= pos
                end_from -= pos
            del buf[:pos]
            base += pos

    fed = base + len(buf)
    if fault is not None:
        bad(f"page {pages + 1}" if open_page is not None else f"after page {pages}", fed, *fault)
    elif open_page is not None:
        bad(f"page {pages + 1}", fed, "truncated", "XML ends inside this page")
    elif header is not None:
        tail = bytes(buf)
        if after_broken:  # the broken page's own </page> and what follows it
            closing = list(_PAGE_END.finditer(tail))
            tail = tail[closing[-1].end():] if closing else tail
        if not _closes(tail, header.root_end):
            rest = tail.strip()
            if not rest or b"</mediawiki>".startswith(rest):
                bad(f"after page {pages}", fed, "truncated", "XML ends before the document does: no end tag")
            else:
                bad(f"after page {pages}", fed - len(tail.lstrip()), "invalid_xml",
                    "text after the last page: " + rest[:60].decode("utf-8", "replace"))


def _closes(tail: bytes, root_end: re.Pattern[bytes]) -> bool:
    """True when ``tail`` is the root's end tag, with only whitespace, comments or PIs around it."""
    m = _AFTER_ROOT.match(tail)
    end = root_end.match(tail, m.end())
    return end is not None and _AFTER_ROOT.fullmatch(tail, end.end()) is not None


def _page(
    elem: etree._Element,
    site: _Site,
    report: ReadReport,
    source: str,
    strip: Callable[[str], str],
    keep_disambiguation: bool,
) -> RawDoc | None:
    """The `RawDoc` for one ``<page>`` element, or None after counting why it was skipped."""
    title = ""
    ns: int | None = None
    page_id = ""
    redirect = False
    revision = None
    for child in elem:
        local = _local(child.tag)
        if local == "title":
            title = child.text or ""
        elif local == "ns":
            try:
                ns = int((child.text or "").strip())
            except ValueError:
                ns = None
        elif local == "id":
            page_id = (child.text or "").strip()
        elif local == "redirect":
            redirect = True
        elif local == "revision":
            revision = child  # the last one is the newest in a full-history dump
    if ns is None:
        ns = site.namespace_of(title)
    if ns != 0:
        report.skip("namespace")
        return None
    wikitext = ""
    revision_id = ""
    timestamp = ""
    if revision is not None:
        for child in revision:
            local = _local(child.tag)
            if local == "text":
                wikitext = child.text or ""
            elif local == "id":
                revision_id = (child.text or "").strip()
            elif local == "timestamp":
                timestamp = (child.text or "").strip()
    if redirect or is_redirect(wikitext):
        report.skip("redirect")
        return None
    if not keep_disambiguation and is_disambiguation(title, wikitext):
        report.skip("disambiguation")
        return None
    text = strip(wikitext)
    if not text.strip():
        report.skip("empty")
        return None
    return RawDoc(
        text=text,
        id=f"{source}/{page_id}",
        source=source,
        title=title,
        url=site.base_url + title.replace(" ", "_"),
        meta={
            "page_id": _int_or_str(page_id),
            "revision_id": _int_or_str(revision_id),
            "timestamp": timestamp,
        },
    )


def _int_or_str(value: str) -> int | str | None:
    if not value:
        return None
    try:
        return int(value)
    except ValueError:
        return value
