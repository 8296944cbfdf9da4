"""Fixtures for the eval tests: a tiny tokenizer trained here on Persian sentences we wrote, and
tiny LLaMA models built from it. Nothing is downloaded; everything is built in the session."""

from __future__ import annotations

import csv
import json
import logging
import os
from pathlib import Path

import pytest

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
logging.getLogger("bitsandbytes").setLevel(logging.ERROR)

# Persian sentences written for these tests (not taken from any data set).
SENTENCES = [
    "امروز هوا آفتابی است و بچه‌ها در پارک بازی می‌کنند.",
    "کتاب‌های زیادی در کتابخانهٔ شهر نگهداری می‌شود.",
    "مادرم هر روز صبح چای تازه دم می‌کند.",
    "دانشجویان برای امتحان پایان ترم درس می‌خوانند.",
    "این رستوران غذای خوشمزه‌ای دارد ولی قیمت‌هایش بالاست.",
    "فیلم دیشب خیلی طولانی و خسته‌کننده بود.",
    "تهران پایتخت ایران است و جمعیت زیادی دارد.",
    "رود کارون پرآب‌ترین رود ایران است.",
    "حافظ یکی از بزرگ‌ترین شاعران زبان فارسی است.",
    "اگر باران ببارد، مسابقه به فردا موکول می‌شود.",
    "او با دوستانش به کوه رفت و تا قله بالا رفت.",
    "قطار ساعت هشت صبح از ایستگاه حرکت می‌کند.",
    "پزشک به بیمار توصیه کرد که بیشتر استراحت کند.",
    "در زمستان برف زیادی در شمال کشور می‌بارد.",
    "ما فردا برای خرید میوه به بازار می‌رویم.",
    "معلم از شاگردان خواست که تکلیفشان را تحویل دهند.",
    "این گوشی جدید باتری بسیار خوبی دارد.",
    "غذای این رستوران سرد بود و پیشخدمت هم بی‌حوصله بود.",
    "بازیگر اصلی فیلم نقشش را عالی بازی کرد.",
    "کشاورزان در پاییز محصول خود را برداشت می‌کنند.",
    "دو به علاوهٔ سه می‌شود پنج.",
    "خورشید از مشرق طلوع می‌کند و در مغرب غروب می‌کند.",
    "شهر اصفهان به خاطر پل‌ها و مسجدهای زیبایش مشهور است.",
    "آیا می‌دانی کتابخانه چه ساعتی باز می‌شود؟",
    "برادرم در یک شرکت نرم‌افزاری کار می‌کند.",
    "سعدی گلستان و بوستان را نوشته است.",
    "هوای این شهر در تابستان گرم و خشک است.",
    "بچه‌ها برای جشن تولد مادربزرگ کیک پختند.",
    "روزنامه‌ها خبر افزایش قیمت نان را منتشر کردند.",
    "من هر شب پیش از خواب کتاب می‌خوانم.",
]
TEXT = "\n".join(SENTENCES)


def _train_tokenizer(vocab_size: int = 320):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=["<pad>", "<s>", "</s>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(SENTENCES * 3, trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>")


def build_tiny_llama(vocab_size: int, hidden: int = 32, seed: int = 0):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    cfg = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=0,
        tie_word_embeddings=False,
    )
    return LlamaForCausalLM(cfg).eval()


# A minimal chat template (Zephyr-like turns); enough for lm-eval's apply_chat_template, system
# message and multi-turn few-shot examples.
CHAT_TEMPLATE = (
    "{% for m in messages %}<s>{{ m['role'] }}\n{{ m['content'] }}</s>\n{% endfor %}"
    "{% if add_generation_prompt %}<s>assistant\n{% endif %}"
)


@pytest.fixture(scope="session")
def chat_tokenizer(tokenizer):
    """The test tokenizer with a chat template set (what a chat model's tokenizer_config.json holds)."""
    import copy

    tok = copy.deepcopy(tokenizer)
    tok.chat_template = CHAT_TEMPLATE
    return tok


@pytest.fixture(scope="session")
def sentences() -> list[str]:
    return list(SENTENCES)


@pytest.fixture(scope="session")
def make_llama():
    """`make_llama(vocab_size, hidden=32, seed=0)` -> a fresh tiny LlamaForCausalLM in eval mode."""
    return build_tiny_llama


@pytest.fixture(scope="session")
def tokenizer():
    return _train_tokenizer()


@pytest.fixture(scope="session")
def tokenizer_dir(tmp_path_factory, tokenizer) -> Path:
    path = tmp_path_factory.mktemp("tokenizer")
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_model(tokenizer):
    return build_tiny_llama(len(tokenizer))


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory, tiny_model, tokenizer) -> Path:
    """A saved tiny model + tokenizer, loadable by path like any hub checkpoint."""
    path = tmp_path_factory.mktemp("tiny-llama")
    tiny_model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


# --------------------------------------------------------------------------- task files in the real formats
# All text below was written for these tests. Correct multiple-choice answers use only the letters
# ا ب د ر ن and every wrong answer has a letter outside that set, so a model that prefers exactly the
# tokens of the correct answers ranks them first (test_harness checks this precondition too).
MC_ITEMS = [
    ("literature", "کدام واژه به معنای شهر ساحلی دارای لنگرگاه است؟", ["کوه", "بندر", "جنگل", "کویر"], 2),
    ("literature", "محل زندگی پادشاه و درباریان را چه می‌نامند؟", ["مدرسه", "کارخانه", "دربار", ""], 3),
    ("common_knowledge", "از ابرهای تیره در پاییز چه می‌بارد؟", ["باران", "سنگ", "خورشید", "ماه"], 1),
    ("common_knowledge", "غذای اصلی ایرانیان در کنار برنج چیست؟", ["سیب", "شیر", "گوشت", "نان"], 4),
    ("math_and_logic", "به کسی که دانش زیادی دارد چه می‌گویند؟", ["تنبل", "دانا", "کوچک", "خسته"], 2),
    ("math_and_logic", "آسمان پیش از باران پر از چیست؟", ["ستاره", "ماهی", "کتاب", "ابر"], 4),
]
MC_TRAIN = [
    ("literature", "شاعر غزل‌های معروف شیراز کیست؟", ["حافظ", "فردوسی", "نیما", "پروین"], 1),
    ("common_knowledge", "پایتخت ایران کجاست؟", ["تبریز", "تهران", "شیراز", "مشهد"], 2),
    ("math_and_logic", "دو به علاوهٔ دو چند می‌شود؟", ["سه", "چهار", "پنج", "شش"], 2),
]
# (premise, hypothesis, label); a neutral-preferring model scores 2/6 here.
NLI_ITEMS = [
    ("علی هر روز صبح با دوچرخه به مدرسه می‌رود.", "علی دوچرخه دارد.", "e"),
    ("باران شدیدی در تهران بارید.", "هوای تهران امروز کاملاً خشک بود.", "c"),
    ("مریم کتاب تازه‌ای خرید.", "مریم کتاب‌خواندن را دوست دارد.", "n"),
    ("کتابخانه ساعت هشت صبح باز می‌شود.", "کتابخانه صبح‌ها بسته است.", "c"),
    ("پدرم در یک بیمارستان کار می‌کند.", "پدرم پزشک جراح است.", "n"),
    ("قطار تهران به مشهد دیر رسید.", "قطار به موقع نرسید.", "e"),
]
SENTIMENT_ITEMS = [  # (review, question, aspect, label)
    ("طعمش عالی بود ولی قیمتش خیلی بالاست.", "نظر شما در مورد عطر، بو، و طعم این قهوه چیست؟", "طعم", "2"),
    (
        "طعمش عالی بود ولی قیمتش خیلی بالاست.",
        "نظر شما در مورد ارسال و حمل و نقل این قهوه چیست؟",
        "ارسال",
        "-3",
    ),
    ("بسته‌بندی پاره رسید و محصول خراب شده بود.", "نظر شما به صورت کلی در مورد این عسل چیست؟", "کلی", "-2"),
]
QQP_ITEMS = [
    ("چگونه زبان فارسی یاد بگیرم؟", "بهترین راه یادگیری زبان فارسی چیست؟", "1"),
    ("پایتخت ایران کجاست؟", "جمعیت تهران چقدر است؟", "0"),
    ("چرا آسمان آبی است؟", "علت آبی بودن آسمان چیست؟", "1"),
]
RC_ITEMS = [
    (
        "رود کارون پرآب‌ترین رود ایران است و از کوه‌های زاگرس سرچشمه می‌گیرد.",
        "پرآب‌ترین رود ایران کدام است؟",
        [[0, "رود کارون"], [4, "کارون"]],
    ),
    ("حافظ در قرن هشتم در شیراز زندگی می‌کرد.", "حافظ در کدام شهر زندگی می‌کرد؟", [[27, "شیراز"]]),
]
QA_PARAGRAPHS = [
    (
        "اصفهان",
        "اصفهان یکی از شهرهای بزرگ ایران است. پل خواجو و سی‌وسه‌پل از بناهای معروف این شهر هستند.",
        [
            ("کدام پل در اصفهان معروف است؟", ["سی‌وسه‌پل", "پل خواجو"], False),
            ("جمعیت اصفهان در سال ۱۳۰۰ چقدر بود؟", [], True),
            ("اصفهان در کدام کشور است؟", ["ایران"], False),
        ],
    ),
    (
        "نوروز",
        "نوروز جشن آغاز سال نو در ایران است و در روز اول فروردین برگزار می‌شود.",
        [
            ("نوروز در چه روزی برگزار می‌شود؟", ["روز اول فروردین", "اول فروردین"], False),
            ("چه کسی نوروز را بنیان گذاشت؟", [], True),
        ],
    ),
]
UD_SENTENCES = [
    "این یک جملهٔ آزمایشی برای سنجش مدل است.",
    "کتاب‌ها روی میز چیده شده‌اند.",
    "او دیروز به خانهٔ مادربزرگش رفت.",
]


def _jsonl(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")


def _squad(paragraphs, start_id: int) -> dict:
    data, qid = [], start_id
    for title, context, qas in paragraphs:
        items = []
        for question, answers, impossible in qas:
            qid += 1
            items.append(
                {
                    "id": qid,
                    "question": question,
                    "is_impossible": impossible,
                    "answers": [
                        {"text": a, "answer_start": context.find(a), "answer_end": context.find(a) + len(a)}
                        for a in answers
                    ],
                }
            )
        data.append({"title": title, "paragraphs": [{"context": context, "qas": items}]})
    return {"data": data}


def write_task_data(root: Path) -> Path:
    """Tiny copies of every data set in its upstream file format and folder layout."""

    def mc(items):
        return [
            {"question": q, "candidates": c, "answer": str(a), "category": cat, "id": f"q{i}"}
            for i, (cat, q, c, a) in enumerate(items)
        ]

    _jsonl(root / "parsinlu/data/multiple-choice/test.jsonl", mc(MC_ITEMS))
    _jsonl(root / "parsinlu/data/multiple-choice/train.jsonl", mc(MC_TRAIN))

    ent = root / "parsinlu/data/entailment"
    ent.mkdir(parents=True, exist_ok=True)
    for name, items in (
        ("test.csv", NLI_ITEMS + [("جمله‌ای بی‌برچسب.", "فرضیه‌ای بی‌برچسب.", "-")]),
        ("train.csv", NLI_ITEMS[:3]),
    ):
        with open(ent / name, "w", encoding="utf-8", newline="") as f:
            w = csv.writer(f)
            w.writerow(["", "sent1", "sent2", "label", "source"])
            for i, (p, h, lab) in enumerate(items):  # ParsiNLU's sources: natural-* or translation-*
                w.writerow([i, p, h, lab, "natural-wiki" if i % 2 == 0 else "translation-train"])

    fs = root / "farstail/data"
    fs.mkdir(parents=True, exist_ok=True)
    rows = [("premise", "hypothesis", "label", "hard(hypothesis)", "hard(overlap)")]
    rows += [(p, h, lab, "0", "1") for p, h, lab in NLI_ITEMS]
    rows[1] = ("اهداف جنگ: •\tتصرف سرزمین •\tدفاع از کشور", rows[1][1], rows[1][2], "0", "0")  # a quoted tab
    with open(fs / "Test-word.csv", "w", encoding="utf-8", newline="") as f:
        csv.writer(f, delimiter="\t").writerows(rows)
    with open(fs / "Train-word.csv", "w", encoding="utf-8", newline="") as f:
        csv.writer(f, delimiter="\t").writerows([("premise", "hypothesis", "label")] + NLI_ITEMS[:3])

    sa = root / "parsinlu/data/sentiment-analysis"
    for domain in ("food", "movie"):
        rows = [
            {
                "review": r,
                "review_id": str(i),
                "example_id": "1",
                "excel_id": f"{domain}_{i}",
                "question": q,
                "category": "قهوه",
                "aspect": a,
                "label": lab,
                "guid": f"{domain}-test-r{i}",
            }
            for i, (r, q, a, lab) in enumerate(SENTIMENT_ITEMS)
        ]
        _jsonl(sa / f"{domain}_test.jsonl", rows)
        # the upstream dev files are partly Python dict reprs (single quotes)
        sa.joinpath(f"{domain}_dev.jsonl").write_text("".join(repr(r) + "\n" for r in rows), encoding="utf-8")

    qqp = [  # ParsiNLU's categories: natural (Persian queries) or qqp (translated Quora pairs)
        {"q1": a, "q2": b, "label": lab, "category": "natural" if i < 2 else "qqp"}
        for i, (a, b, lab) in enumerate(QQP_ITEMS)
    ]
    _jsonl(root / "parsinlu/data/qqp/test.jsonl", qqp)
    _jsonl(root / "parsinlu/data/qqp/train.jsonl", qqp[:2])

    rc = [
        {"question": q, "url": f"http://example.org/{i}", "passage": p, "answers": a}
        for i, (p, q, a) in enumerate(RC_ITEMS)
    ]
    _jsonl(root / "parsinlu/data/reading_comprehension/eval.jsonl", rc)
    _jsonl(root / "parsinlu/data/reading_comprehension/train.jsonl", rc[:1])

    qa = root / "persianqa/dataset"
    qa.mkdir(parents=True, exist_ok=True)
    (qa / "pqa_test.json").write_text(
        json.dumps(_squad(QA_PARAGRAPHS, 100), ensure_ascii=False), encoding="utf-8"
    )
    (qa / "pqa_train.json").write_text(
        json.dumps(_squad(QA_PARAGRAPHS[:1], 900), ensure_ascii=False), encoding="utf-8"
    )

    for folder, name in (
        ("ud_persian_seraji", "fa_seraji-ud-test.conllu"),
        ("ud_persian_perdt", "fa_perdt-ud-test.conllu"),
    ):
        lines = []
        for i, s in enumerate(UD_SENTENCES, 1):
            lines += [f"# sent_id = test-s{i}", f"# text = {s}"]
            lines += [f"{j}\t{w}\t_\t_\t_\t_\t0\troot\t_\t_" for j, w in enumerate(s.split(), 1)] + [""]
        (root / folder).mkdir(parents=True, exist_ok=True)
        (root / folder / name).write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root


@pytest.fixture(scope="session")
def task_data_dir(tmp_path_factory) -> Path:
    return write_task_data(tmp_path_factory.mktemp("data"))


def unigram_llama(tokenizer, preferred: list[str], make=None, low: float = -100.0):
    """A real LlamaForCausalLM whose next-token distribution is the same at every position: uniform
    over the tokens of `preferred` texts, ~0 elsewhere. Every layer adds nothing to the residual
    stream (o_proj and down_proj are zero) and every embedding is e_0, so the final hidden state
    is constant and lm_head column 0 sets the logits."""
    import torch

    model = (make or build_tiny_llama)(len(tokenizer))
    ids = {t for text in preferred for t in tokenizer(text, add_special_tokens=False)["input_ids"]}
    hidden = model.config.hidden_size
    with torch.no_grad():
        for layer in model.model.layers:
            layer.self_attn.o_proj.weight.zero_()
            layer.mlp.down_proj.weight.zero_()
        model.model.embed_tokens.weight.zero_()
        model.model.embed_tokens.weight[:, 0] = 1.0
        model.model.norm.weight.zero_()
        model.model.norm.weight[0] = 1.0
        logits = torch.full((model.config.vocab_size,), low)
        logits[sorted(ids)] = 0.0
        model.lm_head.weight.zero_()
        model.lm_head.weight[:, 0] = logits / hidden**0.5  # the normed hidden state is sqrt(d) * e_0
    return model, ids


@pytest.fixture(scope="session")
def unigram():
    return unigram_llama


@pytest.fixture(scope="session")
def items():
    """The hand-written task items above (tests cannot import conftest: tests/ is not a package)."""
    from types import SimpleNamespace

    return SimpleNamespace(
        mc=MC_ITEMS,
        nli=NLI_ITEMS,
        sentiment=SENTIMENT_ITEMS,
        qqp=QQP_ITEMS,
        rc=RC_ITEMS,
        qa=QA_PARAGRAPHS,
        ud=UD_SENTENCES,
    )


@pytest.fixture(scope="session", autouse=True)
def _collect_env_once():
    """lm-eval's simple_evaluate adds torch's environment report to every result, which shells out to
    pip and friends (~3 s a call). The environment does not change within a session: compute it once."""
    try:
        from torch.utils import collect_env
    except ImportError:  # pragma: no cover
        yield
        return
    original = collect_env.get_pretty_env_info
    cache: list[str] = []
    collect_env.get_pretty_env_info = lambda: cache[0] if cache else (cache.append(original()) or cache[0])
    yield
    collect_env.get_pretty_env_info = original
