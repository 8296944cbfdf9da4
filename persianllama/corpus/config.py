"""Settings of `persianllama corpus build`: one dataclass per pipeline block, one help line per field.

Defaults start from FineWeb-2's Persian (`fas_Arab`) thresholds where FineWeb-2 has one; the
rest follow Gopher/C4 and what the Persian filters needed on our own test documents.

Every number carries its rule (`Count`, `Fraction`, ... from persianllama.config), checked when the
settings are loaded, whether they come from a recipe, a flag or a key=value override, and shown by
`--help`; rules that tie two fields together sit in `__post_init__`.

Sources come in two profiles, as in Dolma, which filters Wikipedia far less than web text:
'web' (OSCAR by default) gets boilerplate-line removal and the `quality` section (FineWeb-2's
fas_Arab thresholds); 'curated' (Wikipedia by default) skips the web-only rules and uses the
`quality_curated` section (articles of 25+ words kept, no FineWeb line rules).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Literal

from persianllama.config import (
    Count,
    Fraction,
    NonEmpty,
    NonNeg,
    NonNegInt,
    Pattern,
    Range,
    RuleError,
    check_order,
)
from persianllama.text.normalize import NormalizerConfig

SourceKind = Literal["wikipedia", "oscar"]
Profile = Literal["web", "curated"]
# OSCAR's quality warnings (23.01 `quality_warnings`, 22.01 `annotation`; 22.01's `adult` is a category).
QualityWarning = Literal["tiny", "short_sentences", "header", "footer", "noisy"]

# UT1 blocklist categories (OSCAR 23.01 `metadata.categories`, names in French as UT1 ships them)
# that a pretraining corpus should not contain.
DEFAULT_BLOCKED_CATEGORIES = [
    "adult", "mixed_adult", "lingerie", "dating", "gambling", "arjel", "agressif", "violence",
    "drogue", "malware", "phishing", "cryptojacking", "ddos", "hacking", "warez", "sect",
    "stalkerware", "dangerous_material", "tricheur", "fakenews",
]

FAS_STOP_WORDS = ["در", "و", "،", "به", "از", "که", "است", "این", "را", "با", "یک"]


@dataclass
class SourceConfig:
    kind: SourceKind = "oscar"
    """Which reader: 'wikipedia' (XML dumps .xml/.xml.bz2/.xml.gz, or the HF dataset wikimedia/wikipedia) or
    'oscar' (.jsonl/.jsonl.gz/.jsonl.zst shards in the 22.01/23.01 layouts, or the HF dataset OSCAR-2301)."""
    inputs: list[str] = field(default_factory=list)
    """Files, directories or glob patterns; or an HF dataset (hub id or local dataset directory)."""
    name: str = ""
    """Value of the `source` column for these documents (default: the kind)."""
    hf_config: str | None = None
    """HF dataset configuration, e.g. '20231101.fa' for wikimedia/wikipedia (HF inputs only)."""
    hf_split: str = "train"
    """HF dataset split to read (HF inputs only)."""
    hf_shards: Count = 1
    """Split each HF dataset input into this many tasks, so several workers can read it."""
    profile: Literal["auto", "web", "curated"] = "auto"
    """Which filter defaults apply: 'web' (boilerplate lines removed, the `quality` section) or 'curated'
    (edited text: no boilerplate removal, the `quality_curated` section); 'auto' is curated for wikipedia,
    web for oscar."""
    quality: bool = True
    """Apply the quality filters of this source's profile (the language/script filters always apply)."""

    @property
    def source(self) -> str:
        return self.name or self.kind

    @property
    def resolved_profile(self) -> Profile:
        if self.profile != "auto":
            return self.profile
        return "curated" if self.kind == "wikipedia" else "web"


@dataclass
class OscarMetaConfig:
    blocked_categories: list[str] = field(default_factory=lambda: list(DEFAULT_BLOCKED_CATEGORIES))
    """Drop OSCAR documents whose UT1 `categories` hit this list (22.01's `adult` annotation counts as a category)."""
    drop_quality_warnings: list[QualityWarning] = field(default_factory=lambda: ["tiny", "noisy"])
    """Drop documents carrying any of these OSCAR quality warnings (tiny, short_sentences, header, footer, noisy);
    the others are left to our own filters."""
    max_harmful_pp: NonNeg | None = None
    """Drop 23.01 documents whose harmful-content perplexity `harmful_pp` is below this (lower = more likely
    harmful); None keeps all."""


@dataclass
class LanguageConfig:
    min_arabic_script_ratio: Fraction = 0.7
    """Minimum share of letters in Arabic script; below it the document is 'mostly_latin' (or other script)."""
    max_foreign_letter_ratio: Fraction = 0.004
    """Maximum share of letters specific to Arabic (ة أ إ), Urdu (ے ٹ ڈ ں), Pashto (ټ ډ ړ ښ ګ ...) or Sorani (ێ ۆ ڵ ڕ)."""
    lid: bool = True
    """Run pycld2 language ID (ships its model; nothing is downloaded) after normalization."""
    min_lid_percent: Annotated[int, Range(0, 100)] = 50
    """pycld2's share (percent) of the text that must be Persian when it is confident of another language."""


@dataclass
class QualityConfig:
    min_words: NonNegInt = 50
    """Gopher: fewest words in a document."""
    max_words: Count = 100_000
    """Gopher: most words in a document."""
    min_avg_word_length: NonNeg = 2.0
    """Gopher (FineWeb-2 fas_Arab): minimum mean word length in characters."""
    max_avg_word_length: NonNeg = 9.0
    """Gopher (FineWeb-2 fas_Arab): maximum mean word length in characters."""
    max_symbol_word_ratio: NonNeg = 0.1
    """Gopher: maximum ratio of '#' and ellipses to words."""
    max_bullet_lines_ratio: Fraction = 0.9
    """Gopher: maximum share of lines starting with a bullet."""
    max_ellipsis_lines_ratio: Fraction = 0.3
    """Gopher: maximum share of lines ending with an ellipsis."""
    min_alpha_words_ratio: Fraction = 0.812
    """Gopher (FineWeb-2 fas_Arab): minimum share of words with at least one letter."""
    stop_words: list[str] = field(default_factory=lambda: list(FAS_STOP_WORDS))
    """Persian stop words (FineWeb-2 fas_Arab); a real Persian text uses several."""
    min_stop_words: NonNegInt = 2
    """Gopher: fewest stop-word occurrences."""
    dup_line_frac: Fraction = 0.246
    """Gopher repetition (FineWeb-2 fas_Arab): maximum share of duplicated lines."""
    dup_para_frac: Fraction = 0.3
    """Gopher repetition: maximum share of duplicated paragraphs."""
    dup_line_char_frac: Fraction = 0.2
    """Gopher repetition: maximum share of characters in duplicated lines."""
    dup_para_char_frac: Fraction = 0.2
    """Gopher repetition: maximum share of characters in duplicated paragraphs."""
    top_n_grams: dict = field(default_factory=lambda: {2: 0.189, 3: 0.164, 4: 0.143})
    """Gopher repetition (FineWeb-2 fas_Arab): n (>= 1) -> maximum character share (in [0, 1]) of the most
    frequent word n-gram."""
    dup_n_grams: dict = field(
        default_factory=lambda: {5: 0.157, 6: 0.147, 7: 0.137, 8: 0.127, 9: 0.117, 10: 0.107}
    )
    """Gopher repetition (FineWeb-2 fas_Arab): n (>= 1) -> maximum character share (in [0, 1]) of duplicated
    word n-grams."""
    line_punct_thr: Fraction = 0.2
    """FineWeb (fas_Arab): minimum share of lines ending in terminal punctuation (Persian or Latin)."""
    short_line_length: NonNegInt = 30
    """FineWeb: a line shorter than this many characters is short."""
    short_line_thr: Fraction = 0.67
    """FineWeb: maximum share of short lines."""
    char_dup_ratio: Fraction = 0.1
    """FineWeb: maximum share of characters in duplicated lines (FineWeb used 0.01 on English web text; Persian
    news pages repeat bylines, so 0.1)."""
    new_line_ratio: NonNeg = 0.15
    """FineWeb (fas_Arab): maximum newlines per word (list-like pages)."""
    fineweb_line_rules: bool = True
    """FineWeb line rules (line_punct_thr, short_line_*, char_dup_ratio, new_line_ratio)."""
    drop_lorem_ipsum: bool = True
    """C4: drop placeholder text (lorem ipsum, Persian 'لورم ایپسوم')."""

    def __post_init__(self):
        check_order(self, "min_words", "max_words")
        check_order(self, "min_avg_word_length", "max_avg_word_length")
        self.top_n_grams = _ngram_thresholds(self.top_n_grams, "top_n_grams")
        self.dup_n_grams = _ngram_thresholds(self.dup_n_grams, "dup_n_grams")


def _ngram_thresholds(value: dict, name: str) -> dict[int, float]:
    """{n: share} with n an integer >= 1 and share a number in [0, 1] (YAML may give the keys as strings)."""
    out: dict[int, float] = {}
    for n, share in value.items():
        try:
            k = int(n)
        except (TypeError, ValueError):
            raise RuleError(f"{name}: key {n!r} is not an n-gram size (an integer >= 1)") from None
        if k < 1 or isinstance(n, bool) or isinstance(n, float) and not n.is_integer():
            raise RuleError(f"{name}: key {n!r} is not an n-gram size (an integer >= 1)")
        if isinstance(share, bool) or not isinstance(share, (int, float)) or not 0 <= share <= 1:
            raise RuleError(f"{name}.{k}={share!r} is out of range: it must be a number in [0, 1]")
        out[k] = float(share)
    return out


@dataclass
class CuratedQualityConfig(QualityConfig):
    """QualityConfig for edited text (Wikipedia): the same checks, two of them relaxed."""

    min_words: NonNegInt = 25
    """Gopher: fewest words in a document (curated: 25, Dolma's rule for Wikipedia articles)."""
    fineweb_line_rules: bool = False
    """FineWeb line rules (curated: off; an article's headings and list items are short lines without
    terminal punctuation)."""


@dataclass
class BoilerplateConfig:
    enabled: bool = True
    """Remove boilerplate lines (navigation bars, copyright and JavaScript/cookie notices, share buttons)."""
    patterns: list[Pattern] = field(default_factory=list)
    """Extra regular expressions; a line matching any of them is removed (added to the built-in Persian ones)."""
    min_nav_separators: Count = 3
    """A short line with at least this many '|' or '»' separators is a navigation bar."""
    profiles: list[Profile] = field(default_factory=lambda: ["web"])
    """Profiles whose sources get boilerplate lines removed (curated text has none: a line such as
    'copyright' in an article is prose)."""


@dataclass
class DedupConfig:
    exact: bool = True
    """Drop exact duplicates (same normalized text) across all sources; the first occurrence is kept."""
    near: bool = True
    """Drop near duplicates with MinHash LSH across all sources (datatrove's disk-based MinHash)."""
    n_grams: Count = 5
    """MinHash shingle size in words."""
    num_buckets: Count = 14
    """LSH bands; with hashes_per_bucket=8 a pair at Jaccard 0.75 is caught ~77% of the time, at 0.85 ~97%."""
    hashes_per_bucket: Count = 8
    """Rows per LSH band."""
    seed: int = 1
    """MinHash seed (same seed, same decisions)."""


@dataclass
class ExecutorConfig:
    kind: Literal["local", "slurm", "ray"] = "local"
    """Where tasks run: 'local' processes, a Slurm cluster (sbatch), or a Ray cluster (ray.init(address=...))."""
    workers: Count = 1
    """Tasks run at once (local: processes)."""
    slurm_partition: str | None = None
    """Slurm partition (executor.kind=slurm)."""
    slurm_time: Annotated[str, NonEmpty()] = "12:00:00"
    """Slurm time limit per job array (executor.kind=slurm)."""
    slurm_cpus_per_task: Count = 1
    """Slurm CPUs per task (executor.kind=slurm)."""
    ray_address: str | None = None
    """Ray cluster address; None starts a local Ray (executor.kind=ray)."""


@dataclass
class CorpusConfig:
    output: str = ""
    """Output directory: Parquet shards under DIR/data/, stats.json, README.md (data card), lengths.png."""
    sources: list[SourceConfig] = field(default_factory=list)
    """Inputs, one entry per source (a recipe may name several; the CLI's --source/--input adds one). Each
    entry: kind, inputs, name, profile (auto|web|curated), quality (true|false), hf_config, hf_split, hf_shards."""
    normalizer: NormalizerConfig = field(default_factory=NormalizerConfig)
    """Persian normalizer settings (applied before every filter and before dedup)."""
    oscar: OscarMetaConfig = field(default_factory=OscarMetaConfig)
    """How OSCAR's own metadata (categories, quality warnings, harmful_pp) is used."""
    language: LanguageConfig = field(default_factory=LanguageConfig)
    """Language and script filter."""
    boilerplate: BoilerplateConfig = field(default_factory=BoilerplateConfig)
    """Boilerplate line removal."""
    quality: QualityConfig = field(default_factory=QualityConfig)
    """Quality filters for web sources (profile 'web', OSCAR by default): Gopher, Gopher repetition, FineWeb
    and C4 rules with FineWeb-2's Persian (fas_Arab) thresholds."""
    quality_curated: CuratedQualityConfig = field(default_factory=CuratedQualityConfig)
    """Quality filters for curated sources (profile 'curated', Wikipedia by default): the same checks, but
    articles of 25+ words are kept and the FineWeb line rules are off."""
    dedup: DedupConfig = field(default_factory=DedupConfig)
    """Exact and near-duplicate removal across all sources."""
    executor: ExecutorConfig = field(default_factory=ExecutorConfig)
    """Where and how parallel the build runs."""
    shard_size_mb: Count = 256
    """Largest Parquet shard before a new one starts (MB)."""
    examples_per_reason: NonNegInt = 3
    """Examples of kept and dropped documents (per drop reason) shown in the data card."""
    free_space_factor: NonNeg = 3.0
    """Refuse to start unless the output's filesystem has this many times the inputs' size free (the
    intermediate files, the Parquet output and some margin; 0 turns the check off)."""
    progress: bool = True
    """Show progress bars."""

    def __post_init__(self):
        seen: dict[str, SourceConfig] = {}
        for i, s in enumerate(self.sources):
            other = seen.setdefault(s.source, s)
            if (other.resolved_profile, other.quality) != (s.resolved_profile, s.quality):
                raise RuleError(f"sources[{i}] is named {s.source!r} like an earlier source but is filtered "
                                "differently (profile or quality); give it its own name")

    def quality_for(self, source: SourceConfig) -> QualityConfig | None:
        """The quality settings applied to `source`, or None when its quality filters are off."""
        if not source.quality:
            return None
        return self.quality_curated if source.resolved_profile == "curated" else self.quality

    def removes_boilerplate(self, source: SourceConfig) -> bool:
        return self.boilerplate.enabled and source.resolved_profile in self.boilerplate.profiles

    def settings_by_source(self) -> dict[str, dict]:
        """What each source gets: profile, boilerplate removal, and the quality settings (None: off)."""
        from persianllama.config import to_dict

        out = {}
        for s in self.sources:
            quality = self.quality_for(s)
            out[s.source] = {
                "kind": s.kind,
                "profile": s.resolved_profile,
                "boilerplate_removal": self.removes_boilerplate(s),
                "quality_section": None if quality is None else (
                    "quality_curated" if quality is self.quality_curated else "quality"),
                "quality": None if quality is None else to_dict(quality),
            }
        return out
