"""What the playground's API costs: time to first token and tokens/s through `persianllama serve` (HTTP + SSE)
against calling ``model.generate`` directly on the same model, prompt and settings.

    python benchmarks/serve.py                                  # the models under runs/quickstart
    python benchmarks/serve.py --runs runs/quickstart --tokens 64 --repeats 5 --json serve.json

Both sides load the model with the same loader (``persianllama.eval.loading.load_model``), encode the same
Persian prompt the same way (plain continuation), and generate exactly ``--tokens`` new tokens greedily
(``min_new_tokens``, the API's ``ignore_eos``), so the token streams are the same length.

- direct: ``model.generate`` in this process with a streamer that only timestamps each token; TTFT is from
  the call to the first new token;
- API: the real command (``python -m persianllama.cli serve --runs DIR --port 0``) in a subprocess, a
  client here POSTing ``/api/generate`` and reading the event stream; TTFT is from sending the request to
  receiving the first token event, tokens/s from the first to the last token event, both seen by the
  client. The model is loaded by a warm-up request before timing.

Overhead ratio = API TTFT / direct TTFT, and direct tokens/s / API tokens/s (1.0 = no overhead). Medians
over ``--repeats`` runs after one warm-up, direct and API runs alternating (a shared machine's load
hits both alike). One torch thread each by default (``--threads``), so the
client, the server and the direct run do not fight over a shared CPU.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

PROMPT = "کتابخانهٔ مرکزی شهر از هفتهٔ آینده ساعت کار خود را تغییر می‌دهد و"


class Direct:
    """One model loaded in this process; ``once()`` times one ``model.generate``."""

    def __init__(self, spec, device: str):
        from persianllama.eval.loading import load_model

        self.device = device
        self.lm = load_model(spec.model, adapter=spec.adapter, device=device)
        self.ids = self.lm.tokenizer(PROMPT, return_tensors="pt").to(device)
        tok = self.lm.tokenizer
        self.pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id

    def once(self, tokens: int) -> dict:
        import torch

        device = self.device

        class Clock:  # a streamer that only timestamps each new token
            def __init__(self):
                self.times: list[float] = []
                self.prompt = True

            def put(self, value):
                if self.prompt:
                    self.prompt = False
                    return
                if device.startswith("cuda"):
                    torch.cuda.synchronize()
                self.times.append(time.perf_counter())

            def end(self):
                pass

        clock = Clock()
        t0 = time.perf_counter()
        with torch.inference_mode():
            self.lm.model.generate(**self.ids, max_new_tokens=tokens, min_new_tokens=tokens, do_sample=False,
                                   pad_token_id=self.pad, streamer=clock)
        t = clock.times
        return {"ttft_s": t[0] - t0, "tokens": len(t), "tokens_per_s": (len(t) - 1) / (t[-1] - t[0])}


def start_server(runs_dir: str, threads: int, device: str, tokens: int) -> tuple[subprocess.Popen, int]:
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    cmd = [sys.executable, "-m", "persianllama.cli", "serve", "--runs", runs_dir, "--port", "0",
           f"max_new_tokens={max(512, tokens)}"]
    if device:
        cmd += ["--device", device]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if "http://" in line:
            return proc, int(line.split("http://")[1].split(":")[1].split("/")[0])
        if not line and proc.poll() is not None:
            break
    proc.kill()
    raise SystemExit("the server did not start (run `persianllama serve --runs DIR` to see why)")


def api_once(port: int, name: str, tokens: int) -> dict:
    body = json.dumps({"model": name, "prompt": PROMPT, "max_new_tokens": tokens, "temperature": 0,
                       "ignore_eos": True}).encode()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
    t0 = time.perf_counter()
    conn.request("POST", "/api/generate", body=body, headers={"Content-Type": "application/json"})
    resp = conn.getresponse()
    if resp.status != 200:
        raise SystemExit(f"{name}: HTTP {resp.status}: {resp.read().decode()}")
    times, event, done = [], None, None
    while True:
        line = resp.readline()
        if not line:
            break
        line = line.decode().rstrip("\r\n")
        if line.startswith("event:"):
            event = line[6:].strip()
        elif line.startswith("data:"):
            if event == "token":
                times.append(time.perf_counter())
            elif event == "done":
                done = json.loads(line[5:])
                break
            elif event == "error":
                raise SystemExit(f"{name}: {line[5:]}")
    conn.close()
    return {"ttft_s": times[0] - t0, "tokens": done["tokens"], "token_events": len(times),
            "tokens_per_s": (done["tokens"] - 1) / (times[-1] - times[0]) if len(times) > 1 else float("nan"),
            "server_ttft_s": done["ttft_s"], "server_tokens_per_s": done["tokens_per_s"]}


def median(runs: list[dict], key: str) -> float:
    return statistics.median(r[key] for r in runs)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", default=str(ROOT / "runs" / "quickstart"), help="run folder whose models to time")
    ap.add_argument("--models", default="", help="comma-separated model names (default: every model found)")
    ap.add_argument("--tokens", type=int, default=64, help="new tokens per generation")
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--threads", type=int, default=1, help="torch threads, for the direct run and the server")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--json", help="write the results here")
    args = ap.parse_args(argv)

    import torch

    from persianllama.serve.models import specs_from_runs
    from persianllama.serve.runs import scan

    torch.set_num_threads(args.threads)
    if not Path(args.runs).is_dir():
        raise SystemExit(f"{args.runs}: no such folder; run `bash scripts/quickstart.sh` first, or pass --runs DIR")
    specs = specs_from_runs(scan([Path(args.runs).resolve()]))
    if args.models:
        wanted = args.models.split(",")
        specs = [s for s in specs if s.name in wanted]
    if not specs:
        raise SystemExit(f"no models under {args.runs}")

    # Direct and API runs alternate, so both see the same load on a shared machine.
    results: dict = {s.name: {"direct": {"runs": []}, "api": {"runs": []}} for s in specs}
    proc, port = start_server(args.runs, args.threads, args.device, args.tokens)
    try:
        for s in specs:
            d = Direct(s, args.device)
            results[s.name]["direct"]["prompt_tokens"] = int(d.ids["input_ids"].shape[1])
            d.once(args.tokens)  # warm-up
            api_once(port, s.name, args.tokens)  # loads the model in the server, warm-up
            for _ in range(args.repeats):
                results[s.name]["direct"]["runs"].append(d.once(args.tokens))
                results[s.name]["api"]["runs"].append(api_once(port, s.name, args.tokens))
            del d
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()

    print(f"\n{args.tokens} new tokens, greedy, {args.threads} thread(s), {args.device}; medians of {args.repeats} "
          f"runs after a warm-up; prompt: {len(PROMPT)} characters\n")
    print("| model | prompt tokens | TTFT direct | TTFT API | TTFT ratio | tok/s direct | tok/s API | tok/s ratio |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for name, r in results.items():
        d, a = r["direct"]["runs"], r["api"]["runs"]
        td, ta = median(d, "ttft_s"), median(a, "ttft_s")
        sd, sa = median(d, "tokens_per_s"), median(a, "tokens_per_s")
        r["summary"] = {"ttft_direct_s": td, "ttft_api_s": ta, "ttft_ratio": ta / td, "tokens_per_s_direct": sd,
                        "tokens_per_s_api": sa, "tokens_per_s_ratio": sd / sa,
                        "api_token_events": median(a, "token_events")}
        print(f"| {name} | {r['direct']['prompt_tokens']} | {td * 1000:.1f} ms | {ta * 1000:.1f} ms | {ta / td:.2f} | "
              f"{sd:.0f} | {sa:.0f} | {sd / sa:.2f} |")
    if args.json:
        Path(args.json).write_text(json.dumps({"settings": vars(args), "models": results}, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
