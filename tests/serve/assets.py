"""A small but real run folder for the playground's tests, built once per session (~10 s on 2 cores):

- ``corpus/``: a real ``persianllama corpus build`` of the bundled sample (Parquet shards, stats.json, data
  card, dropped examples under .work/rejects);
- ``zero/``: a tiny LLaMA trained here for a few steps, its ``metrics.jsonl`` written by the run core's
  RunLog (train and validation records), exported to ``zero/hf`` with a model card;
- ``chat/hf``: the same weights with a chat template on the tokenizer (a chat model);
- ``lora/adapter``: a PEFT LoRA adapter on zero/hf;
- ``fertility/``: a real ``tokenizer report``;
- ``eval/zero``: results.json, report.md and chart.png written by the eval report writer;
- ``escape.txt`` and ``linked_out/`` inside corpus/ and the root: symlinks that lead outside the runs.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
CHAT_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}"
    "{% if m['role'] == 'user' %}### کاربر:\n{{ m['content'] }}\n\n"
    "{% elif m['role'] == 'assistant' %}### دستیار:\n{{ m['content'] }}{{ eos_token }}\n\n"
    "{% else %}### سیستم:\n{{ m['content'] }}\n\n{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}### دستیار:\n{% endif %}"
)


def corpus_texts(corpus: Path) -> list[str]:
    import pyarrow.parquet as pq

    texts: list[str] = []
    for shard in sorted((corpus / "data").glob("*.parquet")):
        texts += pq.read_table(shard, columns=["text"]).column("text").to_pylist()
    return texts


def build_corpus(out: Path) -> Path:
    """The bundled sample through the real corpus pipeline (``persianllama corpus build --recipe sample.yaml``)."""
    from persianllama import config as cfg
    from persianllama.corpus.config import CorpusConfig
    from persianllama.corpus.pipeline import build

    recipe = yaml.safe_load((REPO / "corpora" / "sample.yaml").read_text(encoding="utf-8"))
    for source in recipe["sources"]:
        source["inputs"] = [str(REPO / p) for p in source["inputs"]]
    recipe.setdefault("executor", {})["workers"] = 1
    build(cfg.from_dict(CorpusConfig, {**recipe, "output": str(out), "progress": False}))
    assert (out / "stats.json").is_file(), "the sample corpus did not build"
    return out


def train_tokenizer(out: Path, texts: list[str], vocab_size: int = 500) -> Path:
    """A byte-level BPE with BOS added (like the toolkit's), saved as an HF tokenizer folder."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(texts, trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=["<s>", "</s>", "<unk>", "<pad>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False))
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", tok.token_to_id("<s>"))])
    PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>",
                            pad_token="<pad>").save_pretrained(str(out))
    return out


def train_zero(run: Path, tok_dir: Path, texts: list[str], steps: int = 12) -> Path:
    """A tiny LLaMA trained `steps` steps on the corpus, logging through the run core; saved to run/hf."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from persianllama.run.metrics import RunLog, eval_record

    tok = AutoTokenizer.from_pretrained(str(tok_dir))
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(
        vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
        num_key_value_heads=2, max_position_embeddings=1024, bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id))
    ids = [i for t in texts[:60] for i in tok(t)["input_ids"] + [tok.eos_token_id]]
    block = 64
    blocks = torch.tensor(ids[: len(ids) // block * block]).view(-1, block)
    train, val = blocks[:-4], blocks[-4:]
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    log = RunLog(run, active=True, tensorboard=False, progress=False, total_steps=steps)
    for step in range(1, steps + 1):
        t = time.perf_counter()
        batch = train[(step * 8) % len(train):][:8]
        loss = model(input_ids=batch, labels=batch).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
        dt = time.perf_counter() - t
        log.write({"kind": "train", "step": step, "loss": loss.item(), "lr": 3e-3, "grad_norm": 1.0,
                   "tokens_per_s": batch.numel() / dt, "tokens_seen": step * batch.numel(), "step_seconds": dt})
        if step % 6 == 0:
            with torch.no_grad():
                nll = model(input_ids=val, labels=val).loss.item() * val[:, 1:].numel()
            text_bytes = sum(len(tok.decode(r)) for r in val.tolist()) * 2
            log.write(eval_record(step, nll, text_bytes, val[:, 1:].numel(), val.numel() / 2, len(val), dt))
    log.close()
    from persianllama.run.metrics import plot_loss_curve

    plot_loss_curve(run / "metrics.jsonl", run / "loss_curve.png", title="zero (tiny)")
    model.eval()
    hf = run / "hf"
    model.save_pretrained(str(hf))
    tok.save_pretrained(str(hf))
    (hf / "README.md").write_text(
        "---\nlanguage: [fa]\nlibrary_name: transformers\n---\n\n# zero\n\nA tiny Persian LLaMA trained for the "
        "playground's tests.\n\n| | |\n|---|---:|\n| steps | 12 |\n\n![loss](../loss_curve.png)\n\n"
        "<script>alert('card html')</script>\n", encoding="utf-8")
    return hf


def chat_model(out: Path, zero_hf: Path) -> Path:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(zero_hf))
    tok.chat_template = CHAT_TEMPLATE
    AutoModelForCausalLM.from_pretrained(str(zero_hf)).save_pretrained(str(out))
    tok.save_pretrained(str(out))
    return out


def lora_adapter(out: Path, zero_hf: Path) -> Path:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(1)
    base = AutoModelForCausalLM.from_pretrained(str(zero_hf))
    net = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"],
                                          init_lora_weights=False))
    net.save_pretrained(str(out))
    return out


def fertility(out: Path, corpus: Path, tok_dir: Path) -> Path:
    from persianllama.tokenizer.report import ReportConfig, report

    report(ReportConfig(text=[str(corpus)], tokenizers=[f"tiny-bpe={tok_dir}"], output=str(out), max_texts=30))
    return out


def eval_results(out: Path, zero_hf: Path) -> Path:
    from persianllama.eval.report import write_outputs

    results = {
        "results": {
            "persian_bpb": {"alias": "persian_bpb", "bits_per_byte,none": 2.31, "bits_per_byte_stderr,none": "N/A"},
            "parsinlu_entailment": {"alias": "parsinlu_entailment", "acc,none": 0.4, "acc_stderr,none": 0.11},
        },
        "n-samples": {"parsinlu_entailment": {"original": 20, "effective": 20}},
        "persianllama": {"label": "zero (tiny)", "model": str(zero_hf), "num_fewshot": 0},
    }
    write_outputs(results, {}, out)
    return out


def build_demo_runs(root: Path) -> dict[str, Path]:
    """The run folder described in this module's docstring, under `root` (its name is the id prefix)."""
    root.mkdir(parents=True)
    corpus = build_corpus(root / "corpus")
    texts = corpus_texts(corpus)
    tok = train_tokenizer(root / "tokenizer", texts)
    zero_hf = train_zero(root / "zero", tok, texts)
    chat = chat_model(root / "chat" / "hf", zero_hf)
    adapter = lora_adapter(root / "lora" / "adapter", zero_hf)
    fert = fertility(root / "fertility", corpus, tok)
    ev = eval_results(root / "eval" / "zero", zero_hf)
    outside = root.parent / f"{root.name}_outside"
    (outside / "secret_run").mkdir(parents=True)
    (outside / "secret.txt").write_text("outside the runs\n", encoding="utf-8")
    (outside / "secret_run" / "metrics.jsonl").write_text(
        json.dumps({"kind": "train", "step": 1, "loss": 1.0}) + "\n", encoding="utf-8")
    os.symlink(outside / "secret.txt", corpus / "escape.txt")
    os.symlink(outside, root / "linked_out")
    return {"root": root, "corpus": corpus, "tokenizer": tok, "zero": zero_hf.parent, "zero_hf": zero_hf,
            "chat": chat, "adapter": adapter, "fertility": fert, "eval": ev, "outside": outside}


def remote_code_model(out: Path, tok_dir: Path, marker: Path) -> Path:
    """A model folder whose config asks for custom code that would write `marker` if it were ever run."""
    from transformers import AutoTokenizer

    out.mkdir(parents=True)
    AutoTokenizer.from_pretrained(str(tok_dir)).save_pretrained(str(out))
    (out / "config.json").write_text(json.dumps({
        "model_type": "evil_llama", "architectures": ["EvilForCausalLM"],
        "auto_map": {"AutoConfig": "configuration_evil.EvilConfig",
                     "AutoModelForCausalLM": "modeling_evil.EvilForCausalLM"}}), encoding="utf-8")
    code = f"from pathlib import Path\nPath({str(marker)!r}).write_text('custom code ran')\n"
    (out / "configuration_evil.py").write_text(code, encoding="utf-8")
    (out / "modeling_evil.py").write_text(code, encoding="utf-8")
    (out / "model.safetensors").write_bytes(b"\0" * 16)
    return out


# --- a server in this process ---------------------------------------------------------------------------


class LocalServer:
    """`persianllama serve`'s app under uvicorn on 127.0.0.1 and a free port, in a thread; `close()` stops it."""

    def __init__(self, roots: list[Path], models: list[str] = (), **settings):
        import uvicorn

        from persianllama import config as cfglib
        from persianllama.serve.app import create_app
        from persianllama.serve.cli import bind
        from persianllama.serve.config import ServeConfig
        from persianllama.serve.models import parse_spec

        self.cfg = cfglib.from_dict(ServeConfig, {"port": 0, **settings})
        self.app = create_app(self.cfg, roots, [parse_spec(m) for m in models], "cpu")
        sock = bind("127.0.0.1", 0)
        self.port = sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(self.app, log_level="warning", timeout_graceful_shutdown=2))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [sock]}, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 15
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the test server did not start within 15 s")
            time.sleep(0.02)

    @property
    def pool(self):
        return self.app.app.state.pool

    def close(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
