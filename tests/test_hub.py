"""persianllama.hub: local folders checked for what they must hold, hub ids that cannot be reached as one
line (for real: this test machine is offline, and HF_HUB_OFFLINE=1 is tried as well), cached hub ids
loading offline, and no repository code ever run."""

from __future__ import annotations

import importlib.util
import json
import time
from pathlib import Path

import pytest

from persianllama import hub
from persianllama.errors import UserError

MISSING_ID = "nobody-xyz/does-not-exist"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    """A tiny LLaMA and its tokenizer, saved as a model folder (built here, nothing downloaded)."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    path = tmp_path_factory.mktemp("tiny")
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(["کتاب‌ها روی میز است.", "امروز هوا آفتابی است."] * 5, trainers.BpeTrainer(
        vocab_size=280, special_tokens=["<pad>", "<s>", "</s>"], show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    hf_tok = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>")
    hf_tok.save_pretrained(path)
    torch.manual_seed(0)
    LlamaForCausalLM(LlamaConfig(vocab_size=len(hf_tok), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                 num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=64)
                     ).save_pretrained(path)
    return path


def _one_line(e: pytest.ExceptionInfo) -> str:
    text = str(e.value)
    assert "\n" not in text, text
    return text


# --------------------------------------------------------------------------- hub ids


def test_hub_id_rules(tmp_path, monkeypatch):
    assert hub.hub_id("meta-llama/Llama-2-7b-hf") == "meta-llama/Llama-2-7b-hf"
    assert hub.hub_id("gpt2") == "gpt2"
    for not_an_id in ("/abs/path", "./rel", "~/x", "a/b/c", "a--b/c", "x" * 100, ""):
        assert hub.hub_id(not_an_id) is None, not_an_id
    monkeypatch.chdir(tmp_path)
    (tmp_path / "org").mkdir()
    (tmp_path / "org" / "local").mkdir()
    assert hub.hub_id("org/local") is None  # it exists on disk: a local path, not an id


@pytest.mark.parametrize("kind", ["tokenizer", "model"])
def test_missing_id_with_hf_hub_offline(kind, monkeypatch):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    loader = AutoTokenizer.from_pretrained if kind == "tokenizer" else AutoModelForCausalLM.from_pretrained
    started = time.perf_counter()
    with pytest.raises(UserError) as e:
        hub.from_pretrained(loader, MISSING_ID, kind)
    line = _one_line(e)
    assert time.perf_counter() - started < 5
    assert line.startswith(f"{kind} {MISSING_ID}: no such local folder, and this machine is offline "
                           "(HF_HUB_OFFLINE=1 is set)")
    assert f"`hf download {MISSING_ID} --local-dir DIR`" in line and "pass DIR" in line


def test_missing_id_without_hf_hub_offline(monkeypatch):
    """No offline variable: the hub's host is probed. This machine has no network, so the line says offline;
    on a machine with network the hub answers that the repository does not exist. Either way: one line."""
    from transformers import AutoTokenizer

    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_ENDPOINT"):
        monkeypatch.delenv(var, raising=False)
    hub._reachable.cache_clear()
    started = time.perf_counter()
    with pytest.raises(UserError) as e:
        hub.from_pretrained(AutoTokenizer.from_pretrained, MISSING_ID, "tokenizer")
    line = _one_line(e)
    assert ("this machine is offline (huggingface.co:443 cannot be reached)" in line
            or f"the hub has no repository {MISSING_ID}" in line), line
    assert time.perf_counter() - started < 30  # not the hub client's ~25 s of retries per file, offline


def test_unreachable_endpoint_fails_fast(monkeypatch):
    from transformers import AutoModelForCausalLM

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # the discard port: nothing listens
    hub._reachable.cache_clear()
    started = time.perf_counter()
    with pytest.raises(UserError, match=r"offline \(127\.0\.0\.1:9 cannot be reached\)"):
        hub.from_pretrained(AutoModelForCausalLM.from_pretrained, "someone/some-model", "model")
    assert time.perf_counter() - started < hub.PROBE_TIMEOUT_S + 2
    hub._reachable.cache_clear()


def test_not_a_local_path_and_not_an_id():
    with pytest.raises(UserError, match=r"^model a/b/c: no such file or directory$"):
        hub.check("a/b/c", "model")


def test_cached_hub_id_loads_offline(tiny, tmp_path, monkeypatch):
    """A hub id downloaded before loads from the hub cache with no network: with HF_HUB_OFFLINE=1, and
    without it when the hub's host cannot be reached, at once (no retries). A real cache layout, read by
    the real hub client."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    cache = tmp_path / "cache"
    snapshot = cache / "models--local-test--tiny" / "snapshots" / ("0" * 40)
    snapshot.mkdir(parents=True)
    for f in tiny.iterdir():
        (snapshot / f.name).write_bytes(f.read_bytes())
    (snapshot.parents[1] / "refs").mkdir()
    (snapshot.parents[1] / "refs" / "main").write_text("0" * 40)

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    tok = hub.from_pretrained(AutoTokenizer.from_pretrained, "local-test/tiny", "tokenizer", cache_dir=str(cache))
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    hub._reachable.cache_clear()
    started = time.perf_counter()
    model = hub.from_pretrained(AutoModelForCausalLM.from_pretrained, "local-test/tiny", "model",
                                cache_dir=str(cache))
    assert time.perf_counter() - started < 5  # transformers alone retries ~25 s here
    assert len(tok) == model.config.vocab_size == 280
    with pytest.raises(UserError, match=r"^model local-test/other: no such local folder, and this machine is "
                                        r"offline \(127.0.0.1:9 cannot be reached\)"):
        hub.from_pretrained(AutoModelForCausalLM.from_pretrained, "local-test/other", "model", cache_dir=str(cache))
    hub._reachable.cache_clear()


# --------------------------------------------------------------------------- local folders


def test_local_folders_name_what_is_missing(tiny, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(UserError, match=r"empty: not a model folder: no config.json \(it is empty\)"):
        hub.check_local(empty, "model")
    no_weights = tmp_path / "no-weights"
    no_weights.mkdir()
    (no_weights / "config.json").write_text((tiny / "config.json").read_text())
    with pytest.raises(UserError, match=r"no-weights: not a model folder: config.json but no weights \(none of "
                                        r"model.safetensors"):
        hub.check_local(no_weights, "model")
    assert hub.check_local(no_weights, "config") == no_weights  # a memory plan needs config.json only
    with pytest.raises(UserError, match=r"empty: not a model folder: no config.json"):
        hub.check_local(empty, "config")
    sharded = tmp_path / "sharded"
    sharded.mkdir()
    (sharded / "config.json").write_text("{}")
    (sharded / "model.safetensors.index.json").write_text(json.dumps(
        {"weight_map": {"a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"}}))
    (sharded / "model-00001-of-00002.safetensors").write_bytes(b"")
    with pytest.raises(UserError, match=r"model.safetensors.index.json names 1 shard file\(s\) that are not there, "
                                        r"e.g. model-00002-of-00002.safetensors"):
        hub.check_local(sharded, "model")
    with pytest.raises(UserError, match=r"no-weights: not a tokenizer folder: none of tokenizer.json, "
                                        r"tokenizer_config.json, tokenizer.model, vocab.json \(it holds config.json\)"):
        hub.check_local(no_weights, "tokenizer")
    with pytest.raises(UserError, match=r"no-weights: no adapter_config.json here \(it holds config.json\)"):
        hub.check_local(no_weights, "adapter")
    (no_weights / "adapter_config.json").write_text("{}")
    with pytest.raises(UserError, match=r"adapter_config.json but no adapter_model.safetensors or adapter_model.bin"):
        hub.check_local(no_weights, "adapter")
    with pytest.raises(UserError, match=r"^model .*config.json is a file; pass the folder that holds config.json"):
        hub.check_local(tiny / "config.json", "model")
    assert hub.check_local(tiny, "model") == tiny and hub.check_local(tiny, "tokenizer") == tiny


def test_local_folder_that_fails_to_load_is_one_line(tiny, tmp_path):
    from transformers import AutoModelForCausalLM

    broken = tmp_path / "broken"
    broken.mkdir()
    for f in tiny.iterdir():
        (broken / f.name).write_bytes(f.read_bytes())
    (broken / "model.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(UserError) as e:
        hub.from_pretrained(AutoModelForCausalLM.from_pretrained, str(broken), "model", " in float32")
    assert _one_line(e).startswith(f"cannot load model {broken} in float32: ")
    model = hub.from_pretrained(AutoModelForCausalLM.from_pretrained, str(tiny), "model")
    assert model.config.hidden_size == 16


def test_repository_code_is_never_run(tiny, tmp_path):
    """A folder whose config asks for its own modeling code is refused; the code does not run."""
    from transformers import AutoModelForCausalLM

    custom = tmp_path / "custom"
    custom.mkdir()
    (custom / "model.safetensors").write_bytes((tiny / "model.safetensors").read_bytes())
    marker = tmp_path / "code-ran"
    (custom / "modeling_evil.py").write_text(f"open({str(marker)!r}, 'w').write('ran')\n")
    (custom / "config.json").write_text(json.dumps({
        "model_type": "evil", "architectures": ["EvilForCausalLM"],
        "auto_map": {"AutoConfig": "modeling_evil.EvilConfig", "AutoModelForCausalLM": "modeling_evil.EvilForCausalLM"},
    }))
    with pytest.raises(UserError) as e:
        hub.from_pretrained(AutoModelForCausalLM.from_pretrained, str(custom), "model")
    assert _one_line(e).startswith(f"cannot load model {custom}: ")
    assert not marker.exists()


def test_adapter_snapshot_of_a_missing_id_is_one_line(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(UserError, match=rf"^adapter {MISSING_ID}: no such local folder, and this machine is offline"):
        hub.local_dir(MISSING_ID, "adapter")


# --------------------------------------------------------------------------- messages from the hub client's errors


def _response(status: int):
    name = "httpx2" if importlib.util.find_spec("httpx2") else "httpx"
    httpx = pytest.importorskip(name)
    return httpx.Response(status, request=httpx.Request("GET", f"https://huggingface.co/{MISSING_ID}"))


def test_failure_messages_from_real_hub_errors():
    from huggingface_hub import errors

    def wrapped(inner: BaseException) -> OSError:  # transformers re-raises hub errors as OSError `from` them
        try:
            try:
                raise inner
            except Exception as e:
                raise OSError(f"{MISSING_ID} is not a local folder and is not a valid model identifier") from e
        except OSError as outer:
            return outer

    not_found = wrapped(errors.RepositoryNotFoundError("404 Client Error", response=_response(404)))
    assert hub.failure_message(MISSING_ID, "model", not_found) == (
        f"model {MISSING_ID}: no such local folder, and the hub has no repository {MISSING_ID} (or it is private: "
        "log in with `hf auth login`); check the id or pass a local folder")
    gated = wrapped(errors.GatedRepoError("403 Client Error", response=_response(403)))
    assert "the hub repository is gated" in hub.failure_message(MISSING_ID, "model", gated)
    local = wrapped(errors.LocalEntryNotFoundError("cannot find the requested files in the local cache"))
    assert "this machine is offline (the hub did not answer)" in hub.failure_message(MISSING_ID, "tokenizer", local)
    other = hub.failure_message(MISSING_ID, "model", RuntimeError("CUDA out of memory\nmore"), context=" on cuda")
    assert other == f"cannot load model {MISSING_ID} on cuda: CUDA out of memory"
