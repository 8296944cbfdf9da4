"""The playground's JSON API on a real server (uvicorn on 127.0.0.1) over the demo run folder: SSE streaming,
chat template vs continuation, limits under concurrent clients, stop, slow clients, path traversal, refusals."""

from __future__ import annotations

import json
import logging
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.serve import assets
from tests.serve.client import events, generate, get_json, open_stream, request

PERSIAN = "کتابخانهٔ مرکزی شهر"


def _text(evs) -> str:
    return "".join(d["text"] for e, d, _ in evs if e == "token")


def _last(evs, kind):
    return next(d for e, d, _ in reversed(evs) if e == kind)


def test_models_found_under_runs(server, demo):
    status, models = get_json(server.port, "/api/models")
    assert status == 200
    by_name = {m["name"]: m for m in models}
    assert {"zero", "chat", "lora"} <= set(by_name), by_name
    assert by_name["zero"]["model"] == str(demo["zero_hf"]) and by_name["zero"]["chat"] is False
    assert by_name["chat"]["chat"] is True
    assert by_name["lora"]["adapter"] == str(demo["adapter"]) and by_name["lora"]["model"] == str(demo["zero_hf"])
    assert all("secret" not in m["model"] for m in models)


def test_sse_streams_tokens_as_they_are_made(server):
    conn, resp = open_stream(server.port, {"model": "zero", "prompt": PERSIAN, "max_new_tokens": 300,
                                           "ignore_eos": True, "temperature": 0.8})
    try:
        assert resp.status == 200
        assert resp.getheader("Content-Type").startswith("text/event-stream")
        evs = list(events(resp))
    finally:
        conn.close()
    kinds = [e for e, _, _ in evs]
    assert kinds[0] == "queued" and kinds[-1] == "done" and "start" in kinds
    assert kinds.index("start") < kinds.index("token")
    done = _last(evs, "done")
    assert done["tokens"] == 300 and done["finish_reason"] == "length"
    assert done["characters"] == len(_text(evs)) > 0
    assert done["tokens_per_s"] > 0 and done["ttft_s"] > 0 and done["chars_per_token"] > 0
    # Streamed, not buffered: the first token reached the client long before the last.
    t_start = next(t for e, _, t in evs if e == "start")
    t_first = next(t for e, _, t in evs if e == "token")
    t_done = evs[-1][2]
    assert t_first - t_start < 0.5 * (t_done - t_start), (t_first - t_start, t_done - t_start)
    assert sum(1 for e in kinds if e == "token") > 50


def test_greedy_api_output_equals_model_generate(server, demo):
    """What the page shows is exactly what model.generate gives (same prompt ids, greedy)."""
    import torch

    from persianllama.eval.loading import load_model

    status, evs, _ = generate(server.port, {"model": "zero", "prompt": PERSIAN, "max_new_tokens": 25,
                                            "temperature": 0})
    assert status == 200
    lm = load_model(str(demo["zero_hf"]), device="cpu")
    ids = lm.tokenizer(PERSIAN, return_tensors="pt")
    with torch.inference_mode():
        out = lm.model.generate(**ids, max_new_tokens=25, do_sample=False, pad_token_id=lm.tokenizer.pad_token_id)
    expected = lm.tokenizer.decode(out[0, ids["input_ids"].shape[1]:], skip_special_tokens=True)
    assert _text(evs) == expected
    assert _last(evs, "done")["prompt_tokens"] == ids["input_ids"].shape[1]


def test_chat_template_for_chat_models_continuation_for_base(server, demo):
    from transformers import AutoTokenizer

    messages = [{"role": "user", "content": "سلام، حالت چطور است؟"}]
    status, evs, _ = generate(server.port, {"model": "chat", "messages": messages, "max_new_tokens": 8})
    assert status == 200
    start = _last(evs, "start")
    tok = AutoTokenizer.from_pretrained(str(demo["chat"]))
    want = tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=True, return_dict=True)
    assert start["mode"] == "chat" and start["prompt_tokens"] == len(want["input_ids"])

    status, evs, _ = generate(server.port, {"model": "zero", "messages": messages, "max_new_tokens": 8})
    assert _last(evs, "start")["mode"] == "continue"
    status, evs, _ = generate(server.port, {"model": "zero", "prompt": "سلام", "mode": "chat"})
    assert evs[-1][0] == "error" and "no chat template" in evs[-1][1]["error"]


def test_adapter_model_streams(server):
    status, evs, _ = generate(server.port, {"model": "lora", "prompt": PERSIAN, "max_new_tokens": 12,
                                            "temperature": 0})
    assert status == 200 and evs[-1][0] == "done" and evs[-1][1]["tokens"] > 0
    again = generate(server.port, {"model": "lora", "prompt": PERSIAN, "max_new_tokens": 12, "temperature": 0})
    assert _text(again[1]) == _text(evs)  # greedy: the same answer twice


@pytest.mark.parametrize("body,status,words", [
    ({"model": "nope", "prompt": "x"}, 404, ["no model named 'nope'", "zero"]),
    ({"model": "zero"}, 400, ["exactly one of prompt"]),
    ({"model": "zero", "prompt": "x", "messages": []}, 400, ["exactly one of prompt"]),
    ({"model": "zero", "prompt": "x", "max_new_tokens": 100000}, 400, ["max_new_tokens=100000", "limit of 512"]),
    ({"model": "zero", "prompt": "x", "temperature": -1}, 400, ["temperature"]),
    ({"model": "zero", "prompt": "x", "top_p": "high"}, 400, ["top_p"]),
    ({"model": "zero", "messages": [{"role": "robot", "content": "x"}]}, 400, ["messages[0]", "role"]),
    ({"model": "zero", "prompt": "x", "stream": True}, 400, ["unknown field", "stream"]),
    ({"model": "zero", "prompt": "ب" * 20001}, 413, ["20001 characters", "max_prompt_chars"]),
    (["not", "an", "object"], 400, ["JSON object"]),
])
def test_bad_requests_get_a_clear_error(server, body, status, words):
    code, evs, err = generate(server.port, body)
    assert code == status and not evs
    for w in words:
        assert w in err["error"], err


def test_wrong_content_type_and_foreign_host_refused(server):
    status, _, body = request(server.port, "POST", "/api/generate", body=b'{"model": "zero", "prompt": "x"}',
                              headers={"Content-Type": "text/plain"})
    assert status == 415 and b"application/json" in body
    status, _, body = request(server.port, "POST", "/api/generate", body=b"{not json",
                              headers={"Content-Type": "application/json"})
    assert status == 400 and b"not valid JSON" in body
    status, _, _ = request(server.port, "GET", "/api/models", headers={"Host": "evil.example:80"})
    assert status == 400  # a page on another site that rebinds its name to 127.0.0.1 gets nothing
    status, headers, _ = request(server.port, "GET", "/")
    assert status == 200 and "default-src 'self'" in headers["content-security-policy"]


def test_concurrent_clients_are_bounded_and_nothing_hangs(demo):
    srv = assets.LocalServer([demo["root"]], queue_size=1)
    try:
        barrier = threading.Barrier(6)
        results: list = [None] * 6

        def client(i):
            barrier.wait(timeout=10)
            results[i] = generate(srv.port, {"model": "zero", "prompt": PERSIAN, "max_new_tokens": 200,
                                             "ignore_eos": True}, timeout=60)

        threads = [threading.Thread(target=client, args=(i,)) for i in range(6)]
        t0 = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        assert not any(t.is_alive() for t in threads), "a client hung"
        statuses = sorted(r[0] for r in results)
        assert statuses == [200, 200, 429, 429, 429, 429], statuses  # one generating + one waiting
        for status, evs, err in results:
            if status == 200:
                assert evs[-1][0] == "done" and evs[-1][1]["tokens"] == 200
            else:
                assert "busy" in err["error"] and "queue_size=1" in err["error"]
        assert time.monotonic() - t0 < 60

        # Different models run side by side, each on its own worker.
        out: dict = {}
        threads = [threading.Thread(target=lambda m=m: out.__setitem__(m, generate(
            srv.port, {"model": m, "prompt": PERSIAN, "max_new_tokens": 30, "ignore_eos": True}, timeout=60)))
            for m in ("zero", "chat", "lora")]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        assert {m: r[0] for m, r in out.items()} == {"zero": 200, "chat": 200, "lora": 200}
        assert srv.pool.busy() == {"zero": 0, "chat": 0, "lora": 0}
    finally:
        srv.close()


def test_server_wide_limit_gives_503(demo):
    srv = assets.LocalServer([demo["root"]], max_streams=2, max_new_tokens=1000)
    streams = []
    try:
        for m in ("zero", "chat"):
            conn, resp = open_stream(srv.port, {"model": m, "prompt": PERSIAN, "max_new_tokens": 1000,
                                                "ignore_eos": True})
            assert resp.status == 200
            streams.append((conn, resp))
        status, headers, body = request(srv.port, "POST", "/api/generate",
                                        body={"model": "lora", "prompt": PERSIAN})
        assert status == 503 and "max_streams" in json.loads(body)["error"] and headers["retry-after"]
    finally:
        for conn, _ in streams:
            conn.close()
    try:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and srv.pool.active:
            time.sleep(0.05)
        assert srv.pool.active == 0, "closed streams were not released"
        assert generate(srv.port, {"model": "lora", "prompt": PERSIAN, "max_new_tokens": 4})[0] == 200
    finally:
        srv.close()


def test_client_that_goes_away_stops_its_generation(demo, caplog):
    caplog.set_level(logging.INFO, logger="persianllama.serve")
    srv = assets.LocalServer([demo["root"]], queue_size=0, max_new_tokens=1000)
    try:
        conn, resp = open_stream(srv.port, {"model": "zero", "prompt": PERSIAN, "max_new_tokens": 1000,
                                            "ignore_eos": True})
        tokens = 0
        for e, _, _ in events(resp):
            tokens += e == "token"
            if tokens == 3:
                break
        t_close = time.monotonic()
        conn.close()  # the Stop button: the page aborts its fetch
        while srv.pool.busy()["zero"] and time.monotonic() - t_close < 30:
            time.sleep(0.01)
        freed = time.monotonic() - t_close
        assert srv.pool.busy()["zero"] == 0 and freed < 5, freed
        ends = [r.getMessage() for r in caplog.records if r.getMessage().startswith("zero: ")]
        assert len(ends) == 1 and ends[0].endswith("stopped)"), ends
        assert int(ends[0].split()[1]) < 1000, ends  # it ended early, not after all 1000 tokens
        status, evs, _ = generate(srv.port, {"model": "zero", "prompt": PERSIAN, "max_new_tokens": 4})
        assert status == 200  # queue_size=0: admitted only because the stopped one is gone
    finally:
        srv.close()


def test_slow_client_does_not_block_others(demo):
    srv = assets.LocalServer([demo["root"]], queue_size=2)
    try:
        # A reader that never reads its stream ...
        slow_conn, slow_resp = open_stream(srv.port, {"model": "zero", "prompt": PERSIAN, "max_new_tokens": 400,
                                                      "ignore_eos": True})
        assert slow_resp.status == 200
        # ... and one that sends half a request and stalls.
        stall = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
        stall.sendall(b"POST /api/generate HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n")
        t0 = time.monotonic()
        status, evs, _ = generate(srv.port, {"model": "zero", "prompt": "سلام", "max_new_tokens": 10,
                                             "ignore_eos": True}, timeout=30)
        assert status == 200 and evs[-1][0] == "done"
        assert time.monotonic() - t0 < 30
        assert get_json(srv.port, "/api/runs", timeout=5)[0] == 200
        # The slow reader lost nothing: its whole answer waited for it.
        slow = list(events(slow_resp))
        assert slow[-1][0] == "done" and slow[-1][1]["tokens"] == 400
        assert slow[-1][1]["characters"] == len(_text(slow))
        stall.close()
        slow_conn.close()
    finally:
        srv.close()


def test_custom_code_is_never_run(tmp_path, demo):
    marker = tmp_path / "ran.txt"
    model = assets.remote_code_model(tmp_path / "evil", demo["tokenizer"], marker)
    srv = assets.LocalServer([], models=[f"evil={model}"])
    try:
        status, evs, _ = generate(srv.port, {"model": "evil", "prompt": "سلام"})
        assert status == 200 and evs[-1][0] == "error"
        assert "evil" in evs[-1][1]["error"]
        assert not marker.exists(), "the model folder's custom code was executed"
    finally:
        srv.close()


@pytest.mark.parametrize("path", [
    "../../../../etc/passwd",
    "..%2F..%2F..%2Fetc%2Fpasswd",
    "%2e%2e/%2e%2e/stats.json",
    "/etc/passwd",
    "data/../../zero/hf/config.json",
    "escape.txt",  # a symlink to a file outside the runs
    "..\\..\\stats.json",
    "./stats.json",
    "stats.json%00.png",
])
def test_path_traversal_refused(server, path):
    status, _, body = request(server.port, "GET", f"/api/runs/demo:corpus/files/{path}")
    assert status in (403, 404), (path, status)
    assert b"outside the runs" not in body and b"root:" not in body


def test_run_files_served_only_as_images_or_text(server):
    status, headers, body = request(server.port, "GET", "/api/runs/demo:corpus/files/README.md")
    assert status == 200 and headers["content-type"].startswith("text/plain") and b"corpus" in body
    status, headers, body = request(server.port, "GET", "/api/runs/demo:corpus/files/lengths.png")
    assert status == 200 and headers["content-type"] == "image/png" and body[:4] == b"\x89PNG"
    assert request(server.port, "GET", "/api/runs/..%2F..%2Fetc/files/passwd")[0] == 404
    assert request(server.port, "GET", "/api/runs/demo:linked_out:secret_run/metrics")[0] == 404


def test_runs_listing_and_detail(server, demo):
    status, runs = get_json(server.port, "/api/runs")
    kinds = {r["id"]: r["kind"] for r in runs}
    assert kinds["demo:corpus"] == "corpus" and kinds["demo:zero"] == "train"
    assert kinds["demo:zero:hf"] == "model" and kinds["demo:lora:adapter"] == "adapter"
    assert kinds["demo:fertility"] == "fertility" and kinds["demo:eval:zero"] == "eval"
    assert kinds["demo:tokenizer"] == "tokenizer"
    assert not any("secret" in r or "linked_out" in r for r in kinds), "a symlinked folder was followed"

    status, zero = get_json(server.port, "/api/runs/demo:zero")
    html = zero["card"]["html"]
    assert zero["card"]["file"] == "hf/README.md" and "library_name" not in html  # front matter dropped
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert 'src="/api/runs/demo:zero/files/loss_curve.png"' in html
    assert request(server.port, "GET", "/api/runs/demo:zero/files/loss_curve.png")[0] == 200

    status, ev = get_json(server.port, "/api/runs/demo:eval:zero")
    rows = {r["task"]: r for r in ev["eval"]["rows"]}
    assert rows["persian_bpb"]["value"] == 2.31 and rows["parsinlu_entailment"]["stderr"] == 0.11
    status, fert = get_json(server.port, "/api/runs/demo:fertility")
    assert fert["fertility"]["tokenizers"][0]["name"] == "tiny-bpe"
    assert fert["fertility"]["tokenizers"][0]["tokens_per_word"] > 1
    assert get_json(server.port, "/api/runs/demo:nope")[0] == 404


def test_metrics_are_live(tmp_path, demo):
    run = tmp_path / "live" / "run"
    run.mkdir(parents=True)
    shutil.copy(demo["zero"] / "metrics.jsonl", run / "metrics.jsonl")
    lines = (run / "metrics.jsonl").read_text(encoding="utf-8").splitlines()
    n_train = sum(json.loads(x)["kind"] == "train" for x in lines)
    srv = assets.LocalServer([tmp_path / "live"])
    try:
        status, headers, body = request(srv.port, "GET", "/api/runs/live:run/metrics")
        m = json.loads(body)
        assert status == 200 and len(m["train"]) == n_train and len(m["eval"]) == 2 and m["live"]
        assert [p["step"] for p in m["train"]] == list(range(1, n_train + 1))
        etag = headers["etag"]
        assert request(srv.port, "GET", "/api/runs/live:run/metrics", headers={"If-None-Match": etag})[0] == 304
        with open(run / "metrics.jsonl", "a", encoding="utf-8") as f:  # the trainer writes another step
            f.write(json.dumps({"kind": "train", "step": n_train + 1, "loss": 1.5, "lr": 1e-3}) + "\n")
        status, headers, body = request(srv.port, "GET", "/api/runs/live:run/metrics",
                                        headers={"If-None-Match": etag})
        assert status == 200 and json.loads(body)["steps"] == n_train + 1
    finally:
        srv.close()


def test_corpus_rows_paged_with_drop_reasons(server, demo):
    stats = json.loads((demo["corpus"] / "stats.json").read_text(encoding="utf-8"))
    _, p1 = get_json(server.port, "/api/runs/demo:corpus/rows?offset=0&limit=5")
    _, p2 = get_json(server.port, "/api/runs/demo:corpus/rows?offset=5&limit=5")
    assert p1["total"] == stats["kept"]["documents"] and len(p1["rows"]) == len(p2["rows"]) == 5
    assert {r["id"] for r in p1["rows"]}.isdisjoint(r["id"] for r in p2["rows"])
    assert any("\u0600" <= ch <= "\u06ff" for ch in p1["rows"][0]["text"])
    assert p1["dropped"] == stats["dropped"]
    _, last = get_json(server.port, f"/api/runs/demo:corpus/rows?offset={p1['total'] - 2}&limit=5")
    assert len(last["rows"]) == 2
    _, dropped = get_json(server.port, "/api/runs/demo:corpus/rows?view=dropped&limit=100")
    assert dropped["total"] > 0
    for r in dropped["rows"]:
        assert r["reason"] in stats["dropped"][r["filter"]], r
    assert get_json(server.port, "/api/runs/demo:corpus/rows?view=nope")[0] == 400
    assert get_json(server.port, "/api/runs/demo:zero/rows")[0] == 404
    assert get_json(server.port, "/api/runs/demo:corpus/rows?offset=x")[0] == 400


def test_persianllama_serve_command(demo):
    """The real command: starts, prints its address, serves, and stops on Ctrl-C with exit 0."""
    import signal

    proc = subprocess.Popen([sys.executable, "-m", "persianllama.cli", "serve", "--runs", str(demo["root"]),
                             "--port", "0"], stderr=subprocess.PIPE, text=True,
                            cwd=Path(__file__).resolve().parents[2])
    try:
        line, deadline = "", time.monotonic() + 60
        while "http://" not in line and time.monotonic() < deadline and proc.poll() is None:
            line = proc.stderr.readline()
        assert "http://127.0.0.1:" in line, line
        port = int(line.split("http://127.0.0.1:")[1].split("/")[0])
        status, models = get_json(port, "/api/models", timeout=10)
        assert status == 200 and "zero" in {m["name"] for m in models}
        status, _, page = request(port, "GET", "/", timeout=10)
        assert status == 200 and b'dir="rtl"' in page
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            code = proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
    assert code == 0
