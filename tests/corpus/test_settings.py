"""`corpus build` settings: rules checked at load time (and shown by --help), and the per-source filter
profiles (curated Wikipedia vs web OSCAR) as the pipeline blocks apply them."""

from __future__ import annotations

import pytest
from datatrove.data import Document

from persianllama.config import ConfigError, describe, from_dict, load
from persianllama.corpus.blocks import BoilerplateFilter, QualityFilter
from persianllama.corpus.config import CorpusConfig, CuratedQualityConfig, QualityConfig
from persianllama.text.normalize import normalize
from tests.conftest import PERSIAN_DOCS

SOURCES = [{"kind": "wikipedia", "inputs": ["w.xml.bz2"]}, {"kind": "oscar", "inputs": ["o.jsonl.zst"]}]


@pytest.mark.parametrize("overrides, message", [
    (["executor.workers=0"], "executor.workers=0 is out of range: it must be >= 1"),
    (["dedup.num_buckets=0"], "dedup.num_buckets=0 is out of range"),
    (["dedup.hashes_per_bucket=-3"], "dedup.hashes_per_bucket=-3"),
    (["quality.min_words=-1"], "quality.min_words=-1 is out of range: it must be >= 0"),
    (["quality.min_words=80", "quality.max_words=60"], "quality.min_words=80 must be <= max_words=60"),
    (["quality_curated.max_avg_word_length=1"], "quality_curated.min_avg_word_length=2.0 must be <="),
    (["language.min_arabic_script_ratio=1.01"], "must be in [0, 1]"),
    (["quality.char_dup_ratio=inf"], "not a finite number"),
    (["language.min_lid_percent=-1"], "must be in [0, 100]"),
    (["boilerplate.patterns=['[a-']"], "boilerplate.patterns[0]='[a-' is not a valid regular expression"),
    (["boilerplate.min_nav_separators=0"], "boilerplate.min_nav_separators=0"),
    (["boilerplate.profiles=[blog]"], "boilerplate.profiles[0]: 'blog' is not one of web, curated"),
    (["oscar.drop_quality_warnings=[adult]"], "oscar.drop_quality_warnings[0]: 'adult' is not one of"),
    (["oscar.max_harmful_pp=-1"], "oscar.max_harmful_pp=-1.0 is out of range"),
    (["quality.top_n_grams={a: 0.1}"], "quality.top_n_grams: key 'a' is not an n-gram size"),
    (["quality.dup_n_grams={5: -0.5}"], "quality.dup_n_grams.5=-0.5 is out of range"),
    (["shard_size_mb=0"], "shard_size_mb=0"),
    (["free_space_factor=-2"], "free_space_factor=-2.0"),
    (["sources.1.hf_shards=0"], "sources[1].hf_shards=0"),
    (["sources.1.profile=blog"], "sources[1].profile: 'blog' is not one of auto, web, curated"),
    (["sources.1.name=wikipedia"], "sources[1] is named 'wikipedia' like an earlier source"),
])
def test_bad_settings_are_refused_at_load_time_naming_the_key(overrides, message):
    with pytest.raises(ConfigError) as e:
        load(CorpusConfig, overrides=overrides, sources=SOURCES)
    assert message in str(e.value)


def test_good_settings_load_and_ngram_keys_become_integers():
    config = load(CorpusConfig, sources=SOURCES, overrides=[
        "quality.top_n_grams={'2': 0.2, 3: 1}", "executor.workers=3", "boilerplate.patterns=['^آگهی']",
        "sources.1.name=wikipedia", "sources.1.profile=curated"])  # same name, same filters: allowed
    assert config.quality.top_n_grams == {2: 0.2, 3: 1.0}
    assert config.executor.workers == 3


def test_help_shows_every_rule():
    text = describe(CorpusConfig)
    for line in ("executor.workers: int (>= 1) = 1", "dedup.num_buckets: int (>= 1) = 14",
                 "language.min_arabic_script_ratio: float (in [0, 1]) = 0.7",
                 "boilerplate.patterns: list[str (a regular expression)] = []",
                 "quality.min_words: int (>= 0) = 50", "quality_curated.min_words: int (>= 0) = 25",
                 "quality_curated.fineweb_line_rules: bool = False", "free_space_factor: float (>= 0) = 3.0"):
        assert line in text, line


# --- per-source profiles ---------------------------------------------------------------------------

ARTICLE_40 = normalize(" ".join(PERSIAN_DOCS[0].split()[:40]) + ".")
PAGE_40 = normalize(" ".join(PERSIAN_DOCS[1].split()[:40]) + ".")


def doc(text: str, source: str) -> Document:
    return Document(text=text, id=source, metadata={"source": source})


def filters(config: CorpusConfig) -> tuple[BoilerplateFilter, QualityFilter]:
    return (BoilerplateFilter(config.boilerplate, sources=[s.source for s in config.sources
                                                           if config.removes_boilerplate(s)]),
            QualityFilter(config.quality, by_source={s.source: config.quality_for(s) for s in config.sources}))


def test_a_40_word_article_is_kept_and_a_40_word_web_page_dropped():
    config = from_dict(CorpusConfig, {"sources": SOURCES})
    assert [s.resolved_profile for s in config.sources] == ["curated", "web"]
    assert isinstance(config.quality_for(config.sources[0]), CuratedQualityConfig)
    _, quality = filters(config)
    assert quality.filter(doc(ARTICLE_40, "wikipedia")) is True
    assert quality.filter(doc(PAGE_40, "oscar")) == (False, "gopher_too_few_words")


def test_curated_sources_skip_boilerplate_and_fineweb_line_rules():
    config = from_dict(CorpusConfig, {"sources": SOURCES})
    boilerplate, quality = filters(config)
    # An article quoting a copyright notice: prose in Wikipedia, boilerplate on a web page.
    text = normalize(PERSIAN_DOCS[0] + "\nکلیه حقوق این اثر محفوظ است.")
    wiki, web = doc(text, "wikipedia"), doc(text, "oscar")
    assert boilerplate.filter(wiki) is True and wiki.text == text
    assert boilerplate.filter(web) is True and "محفوظ" not in web.text
    # Headings and list items: short lines without terminal punctuation.
    listy = normalize("\n".join(["تاریخ", "جغرافیا", "جمعیت", "اقتصاد"] + PERSIAN_DOCS[:1]
                                + ["منابع", "پیوند به بیرون", "ادبیات", "فرهنگ"]))
    assert QualityFilter(QualityConfig()).filter(doc(listy, "x")) == (False, "fineweb_line_punctuation")
    assert quality.filter(doc(listy, "wikipedia")) is True


def test_recipe_overrides_either_profile():
    config = from_dict(CorpusConfig, {
        "sources": [{**SOURCES[0], "profile": "web"}, {**SOURCES[1], "quality": False}],
        "quality_curated": {"min_words": 60}})
    _, quality = filters(config)
    assert quality.filter(doc(ARTICLE_40, "wikipedia")) == (False, "gopher_too_few_words")  # now a web source
    assert quality.filter(doc(PAGE_40, "oscar")) is True  # quality filters off for it
    curated = from_dict(CorpusConfig, {"sources": SOURCES, "quality_curated": {"min_words": 60},
                                       "boilerplate": {"profiles": ["web", "curated"]}})
    boilerplate, quality = filters(curated)
    assert quality.filter(doc(ARTICLE_40, "wikipedia")) == (False, "gopher_too_few_words")
    assert curated.settings_by_source()["wikipedia"]["boilerplate_removal"] is True
    assert curated.settings_by_source()["wikipedia"]["quality"]["min_words"] == 60
