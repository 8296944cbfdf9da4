import gzip
import json

import pytest
import zstandard

from persianllama.corpus.oscar import iter_oscar
from persianllama.corpus.records import ReadReport
from tests.conftest import PERSIAN_DOCS, shared_path


def rec_2301(text, i, categories=None, warnings=None, harmful_pp=1234.5):
    return {
        "content": text,
        "warc_headers": {"warc-record-id": f"<urn:uuid:00000000-0000-0000-0000-00000000000{i}>",
                         "warc-target-uri": f"https://example.ir/{i}"},
        "metadata": {"identification": {"label": "fa", "prob": 0.97}, "harmful_pp": harmful_pp,
                     "tlsh": "tlsh:T1AB", "quality_warnings": warnings, "categories": categories,
                     "sentence_identifications": [{"label": "fa", "prob": 0.9}]},
    }


def rec_2201(text, i, annotation=None):
    return {
        "content": text,
        "warc_headers": {"warc-record-id": f"<urn:uuid:11111111-0000-0000-0000-00000000000{i}>",
                         "warc-target-uri": f"https://example.com/{i}"},
        "metadata": {"identification": {"label": "fa", "prob": 0.9}, "annotation": annotation,
                     "sentence_identifications": [None]},
    }


def lines(records):
    return b"".join(json.dumps(r, ensure_ascii=False).encode() + b"\n" for r in records)


def read(path):
    report = ReadReport()
    return list(iter_oscar(str(path), report)), report


def test_reads_2301_layout_with_metadata(tmp_path):
    path = tmp_path / "fa_meta_part_1.jsonl.zst"
    path.write_bytes(zstandard.ZstdCompressor().compress(lines(
        [rec_2301(PERSIAN_DOCS[0], 1, categories=["news"], warnings=["short_sentences"]),
         rec_2301(PERSIAN_DOCS[1], 2)])))
    docs, report = read(path)
    assert [d.text for d in docs] == PERSIAN_DOCS[:2]
    assert docs[0].id == "oscar/00000000-0000-0000-0000-000000000001"
    assert docs[0].url == "https://example.ir/1"
    assert docs[0].meta["categories"] == ["news"]
    assert docs[0].meta["quality_warnings"] == ["short_sentences"]
    assert docs[0].meta["harmful_pp"] == 1234.5
    assert report.read == 2 and not report.broken


def test_reads_2201_layout_adult_annotation_becomes_category(tmp_path):
    path = tmp_path / "fa_part_1.jsonl.gz"
    path.write_bytes(gzip.compress(lines([rec_2201(PERSIAN_DOCS[0], 1, annotation=["adult", "tiny"]),
                                          rec_2201(PERSIAN_DOCS[1], 2)])))
    docs, _ = read(path)
    assert docs[0].meta["categories"] == ["adult"]
    assert docs[0].meta["quality_warnings"] == ["tiny"]
    assert docs[1].meta["categories"] == [] and docs[1].meta["quality_warnings"] == []


def test_hf_row_layout(tmp_path):
    path = tmp_path / "rows.jsonl"
    row = {"id": 7, "text": PERSIAN_DOCS[2], "meta": {"warc_headers": {"warc-target-uri": "https://x.ir"},
                                                       "identification": {"label": "fa", "prob": 1.0},
                                                       "quality_warnings": ["noisy"], "categories": None}}
    path.write_bytes(lines([row]))
    docs, _ = read(path)
    assert docs[0].text == PERSIAN_DOCS[2] and docs[0].url == "https://x.ir"
    assert docs[0].meta["quality_warnings"] == ["noisy"]


def test_broken_json_and_invalid_utf8_are_counted_with_line_numbers(tmp_path):
    good = lines([rec_2301(PERSIAN_DOCS[0], 1)])
    bad_json = b'{"content": "\xd8\xb3\xd9\x84\xd8\xa7\xd9\x85", "metadata": \n'
    bad_utf8 = b'{"content": "\xff\xfe broken"}\n'
    not_object = b"[1, 2, 3]\n"
    no_text = b'{"foo": 1}\n'
    path = tmp_path / "mixed.jsonl"
    path.write_bytes(good + bad_json + bad_utf8 + not_object + no_text + lines([rec_2301(PERSIAN_DOCS[1], 2)]))
    docs, report = read(path)
    assert [d.text for d in docs] == PERSIAN_DOCS[:2]  # the good records before and after are kept
    assert report.broken == {"invalid_json": 1, "invalid_utf8": 1, "not_an_object": 1, "no_text_field": 1}
    where = {d["reason"]: d["where"] for d in report.details}
    assert where == {"invalid_json": "line 2", "invalid_utf8": "line 3", "not_an_object": "line 4",
                     "no_text_field": "line 5"}
    assert all(d["file"] == str(path) for d in report.details)


@pytest.mark.parametrize("suffix", [".jsonl.zst", ".jsonl.gz"])
def test_truncated_archive_keeps_complete_records(tmp_path, suffix):
    payload = lines([rec_2301(t, i) for i, t in enumerate(PERSIAN_DOCS * 300)])
    blob = zstandard.ZstdCompressor().compress(payload) if suffix.endswith("zst") else gzip.compress(payload)
    path = tmp_path / f"cut{suffix}"
    path.write_bytes(blob[: len(blob) * 2 // 3])
    docs, report = read(path)
    assert 0 < len(docs) < len(PERSIAN_DOCS) * 300
    for d in docs:  # every kept record is complete and intact
        assert d.text in PERSIAN_DOCS
    assert report.broken["truncated"] == 1
    assert report.broken["invalid_json"] <= 1  # the partial last line, if the cut fell mid-line


def test_empty_and_missing_inputs_name_the_path(tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_bytes(b"")
    with pytest.raises(ValueError, match="empty.jsonl"):
        read(empty)
    with pytest.raises(FileNotFoundError, match="nope.jsonl"):
        read(tmp_path / "nope.jsonl")


@pytest.mark.shared
def test_real_oscar_2201_sample():
    path = shared_path("oscar_sample", "tests", "res", "data.jsonl")
    docs, report = read(path)
    assert report.read == len(docs) == 63 and not report.broken
    assert {d.meta["lang"] for d in docs} >= {"en", "es", "de"}
    assert all(d.url and d.url.startswith("http") for d in docs)


# --- record shape -------------------------------------------------------------------------------

WRONG_SHAPES = [
    ("metadata_list", {"metadata": [1]}, "metadata: expected an object or null, got a list"),
    ("metadata_string", {"metadata": "x"}, "metadata: expected an object"),
    ("warc_headers_number", {"warc_headers": 5}, "warc_headers: expected an object or null, got a number"),
    ("identification_string", {"metadata": {"identification": "fa"}}, "metadata.identification"),
    ("label_number", {"metadata": {"identification": {"label": 3, "prob": 0.9}}}, "identification.label"),
    ("prob_string", {"metadata": {"identification": {"label": "fa", "prob": "high"}}}, "identification.prob"),
    ("harmful_pp_string", {"metadata": {"harmful_pp": "12"}}, "metadata.harmful_pp"),
    ("harmful_pp_bool", {"metadata": {"harmful_pp": True}}, "got a boolean"),
    ("categories_number", {"metadata": {"categories": 7}}, "metadata.categories"),
    ("categories_nested", {"metadata": {"categories": [["adult"]]}}, "metadata.categories[0]"),
    ("warnings_object", {"metadata": {"quality_warnings": {"tiny": True}}}, "metadata.quality_warnings"),
    ("annotation_numbers", {"metadata": {"annotation": [1, 2]}}, "metadata.annotation[0]"),
    ("record_id_list", {"warc_headers": {"warc-record-id": ["a"]}}, "warc-record-id"),
    ("target_uri_number", {"warc_headers": {"warc-target-uri": 1}}, "warc-target-uri"),
    ("content_number", {"content": 12}, "content: expected a string, got a number"),
    ("hf_meta_list", {"content": None, "text": "متن", "meta": [1]}, "meta: expected an object"),
]


@pytest.mark.parametrize("name, change, message", WRONG_SHAPES, ids=[w[0] for w in WRONG_SHAPES])
def test_record_of_the_wrong_shape_is_counted_with_its_line(tmp_path, name, change, message):
    bad = rec_2301(PERSIAN_DOCS[2], 3)
    for key, value in change.items():
        if isinstance(value, dict) and isinstance(bad.get(key), dict):
            bad[key] = {**bad[key], **value}
        else:
            bad[key] = value
    if bad.get("content", "") is None:  # the HF row layout: no `content` at all
        del bad["content"]
    path = tmp_path / "shapes.jsonl"
    path.write_bytes(lines([rec_2301(PERSIAN_DOCS[0], 1), bad, rec_2301(PERSIAN_DOCS[1], 2)]))
    docs, report = read(path)
    assert [d.text for d in docs] == PERSIAN_DOCS[:2]  # the records around it are kept
    assert dict(report.broken) == {"wrong_type": 1}
    (detail,) = report.details
    assert detail["file"] == str(path) and detail["where"] == "line 2"
    assert message in detail["message"]


@pytest.mark.parametrize("categories, warnings", [("adult", None), ("gambling, adult", "tiny"), (["adult"], ["tiny"])])
def test_string_or_list_labels_both_hit_the_blocklist(tmp_path, categories, warnings):
    from datatrove.data import Document

    from persianllama.corpus.blocks import OscarMetadataFilter, to_document
    from persianllama.corpus.config import OscarMetaConfig

    path = tmp_path / "labels.jsonl"
    path.write_bytes(lines([rec_2301(PERSIAN_DOCS[0], 1, categories=categories, warnings=warnings)]))
    (doc,), report = read(path)
    assert not report.broken
    assert "adult" in doc.meta["categories"]
    assert doc.meta["quality_warnings"] == ([] if warnings is None else ["tiny"])
    keep = OscarMetadataFilter(OscarMetaConfig()).filter(to_document(doc))
    assert isinstance(keep, tuple) and keep[0] is False and keep[1].startswith("oscar_category_")
    assert OscarMetadataFilter(OscarMetaConfig(blocked_categories=[])).filter(
        Document(text="x", id="1", metadata={"categories": ["adult"]})) is True


def test_22_01_string_annotation_adult_becomes_a_category(tmp_path):
    path = tmp_path / "fa_part_1.jsonl"
    path.write_bytes(lines([rec_2201(PERSIAN_DOCS[0], 1, annotation="adult")]))
    (doc,), report = read(path)
    assert doc.meta["categories"] == ["adult"] and doc.meta["quality_warnings"] == [] and not report.broken
