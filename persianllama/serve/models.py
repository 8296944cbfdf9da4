"""The models the playground serves, and how a request becomes streamed tokens.

Every model has one worker thread and one queue: the worker loads the model on first use (through
:func:`persianllama.eval.loading.load_model`, which never passes ``trust_remote_code``), then runs one
generation at a time with ``model.generate`` and a streamer that hands each new piece of text to the request's
asyncio queue. Admission is decided before a response starts:

- a model whose worker is busy and whose queue already holds ``queue_size`` requests refuses with 429;
- more than ``max_streams`` generations admitted at once over all models refuses with 503.

The worker never waits for a client: tokens go into the request's own queue (at most ``max_new_tokens`` of
them), so a slow reader delays only itself, and a client that goes away sets the request's stop flag, which
ends its generation at the next token (or skips it if it was still waiting).
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import queue
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from persianllama.errors import UserError
from persianllama.serve.config import ServeConfig
from persianllama.serve.runs import Run

log = logging.getLogger("persianllama.serve")

NAME = re.compile(r"^[\w][\w.+-]*$")
ROLES = ("system", "user", "assistant")


@dataclass(frozen=True)
class ModelSpec:
    name: str
    model: str
    """HF model folder (or hub id)."""
    adapter: str | None = None
    """PEFT adapter folder attached to it."""
    source: str = "--model"
    """Where it came from: --model, or the id of the run it was found in."""

    def public(self) -> dict[str, Any]:
        return {"name": self.name, "model": self.model, "adapter": self.adapter, "source": self.source,
                "chat": has_chat_template(self)}


def parse_spec(text: str) -> ModelSpec:
    """``NAME=DIR[:ADAPTER]`` (a --model flag) as a ModelSpec; the folders are checked by :func:`check_spec`."""
    name, sep, rest = text.partition("=")
    name = name.strip()
    if not sep or not rest:
        raise UserError(f"--model {text}: expected NAME=DIR or NAME=DIR:ADAPTER (e.g. zero=runs/quickstart/zero/hf)")
    if not NAME.match(name):
        raise UserError(f"--model {text}: the name {name!r} may hold only letters, digits and . _ + -")
    model, _, adapter = rest.partition(":")
    if not model:
        raise UserError(f"--model {text}: no model folder before ':'")
    return ModelSpec(name, model, adapter or None)


def check_spec(spec: ModelSpec) -> None:
    """The model (and adapter) folders hold what they must, before the server starts (one line if not)."""
    from persianllama import hub

    try:
        hub.check(spec.model, "model")
        if spec.adapter:
            hub.check(spec.adapter, "adapter")
    except UserError as e:
        raise UserError(f"--model {spec.name}: {e}") from None


def _tokenizer_dir(spec: ModelSpec) -> Path | None:
    from persianllama.lora.adapter import has_tokenizer

    if spec.adapter and has_tokenizer(spec.adapter):
        return Path(spec.adapter)
    return Path(spec.model) if Path(spec.model).is_dir() else None


def has_chat_template(spec: ModelSpec) -> bool | None:
    """Whether the model's tokenizer has a chat template, read from its files (None: not a local folder)."""
    d = _tokenizer_dir(spec)
    if d is None:
        return None
    if (d / "chat_template.jinja").is_file() or (d / "chat_template.json").is_file():
        return True
    try:
        cfg = json.loads((d / "tokenizer_config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return bool(isinstance(cfg, dict) and cfg.get("chat_template"))


def _adapter_base(run: Run, model_runs: list[Run]) -> str | None:
    """The base an adapter found under --runs belongs to: as recorded, or, when the run folder was moved or
    copied, the model folder of the same name under the same roots."""
    from persianllama.lora.adapter import BASE_RECORD, read_config

    try:
        named = [read_config(run.path).get("base_model_name_or_path")]
    except UserError:
        return None
    try:
        named.append(json.loads((run.path / BASE_RECORD).read_text(encoding="utf-8")).get("base"))
    except (OSError, ValueError, AttributeError):
        pass
    named = [n for n in named if isinstance(n, str) and n]
    for n in named:
        if Path(n).is_dir():
            return n
    for n in named:
        for m in model_runs:
            if m.path.name == Path(n).name:
                return str(m.path)
    return named[0] if named else None


def specs_from_runs(runs: dict[str, Run]) -> list[ModelSpec]:
    """A model for every HF model folder and every adapter found under --runs. Named after the run folder
    (``zero`` for ``zero/hf``, ``lora`` for ``lora/adapter``), with more of the path when two names meet."""
    model_runs = [r for r in runs.values() if r.kind == "model"]
    found: list[tuple[list[str], str, str | None, str]] = []
    for r in runs.values():
        if r.kind not in ("model", "adapter"):
            continue
        parts = [r.id.split(":", 1)[0], *[p for p in r.rel.split("/") if p]]
        if len(parts) > 1 and parts[-1] in ("hf", "adapter", "merged", "final"):
            parts = parts[:-1]
        if r.kind == "model":
            found.append((parts, str(r.path), None, r.id))
        else:
            base = _adapter_base(r, model_runs)
            if base:
                found.append((parts, base, str(r.path), r.id))
    out: list[ModelSpec] = []
    for parts, model, adapter, rid in found:
        depth = 1
        while True:
            name = "/".join(parts[-depth:]) if len(parts) > 1 else parts[0]
            if depth >= len(parts) or sum(1 for p, *_ in found if "/".join(p[-depth:]) == name) == 1:
                break
            depth += 1
        out.append(ModelSpec(name, model, adapter, rid))
    return out


# --- requests ----------------------------------------------------------------------------------------------


class Refusal(Exception):
    """A request refused before its response starts: HTTP status and one line saying why and what to do."""

    def __init__(self, status: int, message: str, retry_after: int | None = None):
        super().__init__(message)
        self.status, self.retry_after = status, retry_after


FIELDS = ("model", "prompt", "messages", "max_new_tokens", "temperature", "top_p", "mode", "ignore_eos")


@dataclass
class GenerateRequest:
    model: str
    prompt: str | None = None
    messages: list[dict[str, str]] | None = None
    max_new_tokens: int = 128
    temperature: float = 0.7
    top_p: float = 0.95
    mode: str = "auto"
    """auto (the chat template when the model has one), chat, or continue (plain continuation)."""
    ignore_eos: bool = False
    """Generate exactly max_new_tokens (for benchmarks)."""


def _number(body: dict, key: str, default: float, lo: float, hi: float, integer: bool = False) -> Any:
    value = body.get(key, default)
    if value is None:
        return default
    ok = isinstance(value, int) if integer else isinstance(value, (int, float))
    if not ok or isinstance(value, bool) or value != value or not lo <= value <= hi:
        kind = "an integer" if integer else "a number"
        raise Refusal(400, f"{key}={value!r}: must be {kind} in [{lo:g}, {hi:g}]")
    return int(value) if integer else float(value)


def parse_request(body: Any, cfg: ServeConfig) -> GenerateRequest:
    """A /api/generate body as a GenerateRequest, or a 400/413 Refusal naming the field."""
    if not isinstance(body, dict):
        raise Refusal(400, 'the body must be a JSON object: {"model": NAME, "prompt": TEXT} or '
                           '{"model": NAME, "messages": [{"role": "user", "content": TEXT}]}')
    unknown = sorted(set(body) - set(FIELDS))
    if unknown:
        raise Refusal(400, f"unknown field(s) {', '.join(unknown)}; the fields are {', '.join(FIELDS)}")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise Refusal(400, "model: required, the name of a model from GET /api/models")
    prompt, messages = body.get("prompt"), body.get("messages")
    if (prompt is None) == (messages is None):
        raise Refusal(400, "give exactly one of prompt (text) or messages (a list of {role, content})")
    chars = 0
    if prompt is not None:
        if not isinstance(prompt, str) or not prompt.strip():
            raise Refusal(400, "prompt: must be non-empty text")
        chars = len(prompt)
    else:
        if not isinstance(messages, list) or not messages:
            raise Refusal(400, "messages: must be a non-empty list of {role, content}")
        for i, m in enumerate(messages):
            if (not isinstance(m, dict) or m.get("role") not in ROLES or not isinstance(m.get("content"), str)
                    or set(m) - {"role", "content"}):
                raise Refusal(400, f"messages[{i}]: must be {{\"role\": one of {', '.join(ROLES)}, "
                                   "\"content\": text}")
            chars += len(m["content"])
        messages = [{"role": m["role"], "content": m["content"]} for m in messages]
    if chars > cfg.max_prompt_chars:
        raise Refusal(413, f"the prompt has {chars} characters, above this server's limit of "
                           f"{cfg.max_prompt_chars} (max_prompt_chars)")
    max_new = _number(body, "max_new_tokens", cfg.default_new_tokens, 1, 1 << 30, integer=True)
    if max_new > cfg.max_new_tokens:
        raise Refusal(400, f"max_new_tokens={max_new} is above this server's limit of {cfg.max_new_tokens} "
                           "(start it with max_new_tokens=N to allow more)")
    mode = body.get("mode", "auto")
    if mode not in ("auto", "chat", "continue"):
        raise Refusal(400, f"mode={mode!r}: must be auto, chat or continue")
    ignore_eos = body.get("ignore_eos", False)
    if not isinstance(ignore_eos, bool):
        raise Refusal(400, "ignore_eos: must be true or false")
    return GenerateRequest(model=model, prompt=prompt, messages=messages, max_new_tokens=max_new,
                           temperature=_number(body, "temperature", 0.7, 0.0, 5.0),
                           top_p=_number(body, "top_p", 0.95, 0.01, 1.0), mode=mode, ignore_eos=ignore_eos)


@dataclass
class Job:
    request: GenerateRequest
    loop: asyncio.AbstractEventLoop
    events: asyncio.Queue
    stop: threading.Event = field(default_factory=threading.Event)
    arrived: float = field(default_factory=time.perf_counter)

    def emit(self, kind: str, data: dict[str, Any]) -> None:
        """Hand an event to the request's coroutine (from the worker thread; never blocks)."""
        try:
            self.loop.call_soon_threadsafe(self.events.put_nowait, (kind, data))
        except RuntimeError:  # the server's loop is closed: nobody is listening
            self.stop.set()


# --- workers -------------------------------------------------------------------------------------------------


class _Streamer:
    """A transformers streamer (``put``/``end``) that decodes the new tokens so far and emits the new text;
    a piece that ends inside a multi-byte character waits for the next token."""

    def __init__(self, tokenizer, job: Job):
        self.tok, self.job = tokenizer, job
        self.prompt_seen = False
        self.ids: list[int] = []
        self.text = ""
        self.first = self.last = None

    def put(self, value) -> None:
        if not self.prompt_seen:  # generate() hands over the prompt first
            self.prompt_seen = True
            return
        now = time.perf_counter()
        self.first = self.first or now
        self.last = now
        self.ids.extend(int(i) for i in value.reshape(-1).tolist())
        self._flush(final=False)

    def end(self) -> None:
        self._flush(final=True)

    def _flush(self, final: bool) -> None:
        text = self.tok.decode(self.ids, skip_special_tokens=True)
        if (text.endswith("\ufffd") and not final) or not text.startswith(self.text):
            return
        new, self.text = text[len(self.text):], text
        if new:
            self.job.emit("token", {"text": new})


class ModelWorker:
    """One model: its queue, its thread, and (once loaded) the model."""

    def __init__(self, spec: ModelSpec, pool: ModelPool):
        self.spec, self.pool = spec, pool
        self.jobs: queue.Queue[Job | None] = queue.Queue()
        self.pending = 0  # admitted jobs not finished (generating + waiting)
        self.lock = threading.Lock()
        self.model_lock = threading.Lock()  # held while the model is used; eviction takes it too
        self.loaded = None
        self.last_used = 0.0
        self.thread: threading.Thread | None = None

    def submit(self, job: Job) -> int:
        """Admit a job (or Refusal 429); returns how many are ahead of it."""
        with self.lock:
            if self.pending > self.pool.cfg.queue_size:
                raise Refusal(429, f"model {self.spec.name} is busy: one generation running and "
                                   f"{self.pending - 1} waiting (queue_size={self.pool.cfg.queue_size}); "
                                   "try again shortly", retry_after=2)
            ahead = self.pending
            self.pending += 1
            if self.thread is None:
                self.thread = threading.Thread(target=self._run, name=f"serve-{self.spec.name}", daemon=True)
                self.thread.start()
        self.jobs.put(job)
        return ahead

    def close(self) -> None:
        self.jobs.put(None)

    def _run(self) -> None:
        while True:
            job = self.jobs.get()
            if job is None:
                return
            final: tuple[str, dict] | None = None
            try:
                if not job.stop.is_set():
                    with self.model_lock:
                        final = ("done", self._generate(job))
            except UserError as e:
                final = ("error", {"error": str(e)})
            except Exception as e:  # noqa: BLE001 - the request gets one line, the log the traceback
                log.exception("generation with %s failed", self.spec.name)
                from persianllama.hub import first_line

                final = ("error", {"error": f"generation with {self.spec.name} failed: {first_line(e)}"})
            finally:  # free the slot before the client hears the end, so it may send its next request at once
                with self.lock:
                    self.pending -= 1
                self.pool.finished()
            if final:
                job.emit(*final)

    def _load(self, job: Job):
        if self.loaded is None:
            job.emit("loading", {"model": self.spec.name})
            self.pool.make_room(self)
            from persianllama.eval.loading import load_model

            t = time.perf_counter()
            self.loaded = load_model(self.spec.model, adapter=self.spec.adapter, device=self.pool.device,
                                     dtype=self.pool.cfg.dtype)
            log.info("loaded %s in %.1f s (%s)", self.spec.name, time.perf_counter() - t, self.pool.device)
        self.last_used = time.monotonic()
        return self.loaded

    def unload(self) -> None:
        self.loaded = None
        gc.collect()
        try:
            import torch

            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        except Exception:  # noqa: BLE001
            pass

    def _prompt_ids(self, tok, req: GenerateRequest) -> tuple[list[int], str]:
        chat = bool(getattr(tok, "chat_template", None))
        if req.mode == "chat" and not chat:
            raise UserError(f"model {self.spec.name} has no chat template (a base model); use mode=continue")
        use_chat = chat and req.mode != "continue"
        if use_chat:
            messages = req.messages or [{"role": "user", "content": req.prompt}]
            out = tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=True, return_dict=True)
            return list(out["input_ids"]), "chat"
        text = req.prompt if req.prompt is not None else "\n".join(m["content"] for m in req.messages or [])
        return list(tok(text)["input_ids"]), "continue"

    def _generate(self, job: Job) -> dict[str, Any]:
        """Generate for one request, emitting loading/start/token events; returns the done event's data."""
        t_admit = time.perf_counter()
        import torch
        from transformers import StoppingCriteria, StoppingCriteriaList

        req, cfg = job.request, self.pool.cfg
        lm = self._load(job)
        model, tok = lm.model, lm.tokenizer
        t_loaded = time.perf_counter()
        ids, mode = self._prompt_ids(tok, req)
        max_new = req.max_new_tokens
        n_ctx = getattr(model.config, "max_position_embeddings", None) or 0
        dropped = 0
        if n_ctx:
            if max_new >= n_ctx:
                max_new = max(1, n_ctx // 2)
            room = n_ctx - max_new
            if len(ids) > room:  # keep the end of a long conversation
                dropped, ids = len(ids) - room, ids[-room:]
        job.emit("start", {"model": self.spec.name, "mode": mode, "prompt_tokens": len(ids),
                           "prompt_tokens_dropped": dropped, "max_new_tokens": max_new,
                           "queue_s": round(t_admit - job.arrived, 4), "load_s": round(t_loaded - t_admit, 4)})

        stop = job.stop

        class _Stop(StoppingCriteria):
            def __call__(self, input_ids, scores, **kwargs):
                return torch.full((input_ids.shape[0],), stop.is_set(), dtype=torch.bool, device=input_ids.device)

        streamer = _Streamer(tok, job)
        device = next(model.parameters()).device
        input_ids = torch.tensor([ids], dtype=torch.long, device=device)
        pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
        kwargs: dict[str, Any] = {"max_new_tokens": max_new, "streamer": streamer, "max_time": cfg.max_seconds,
                                  "stopping_criteria": StoppingCriteriaList([_Stop()]), "pad_token_id": pad,
                                  "attention_mask": torch.ones_like(input_ids)}
        if req.temperature > 0:
            kwargs.update(do_sample=True, temperature=req.temperature, top_p=req.top_p, top_k=0)
        else:
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        if req.ignore_eos:
            kwargs["min_new_tokens"] = max_new
        t0 = time.perf_counter()
        with torch.inference_mode():
            model.generate(input_ids=input_ids, **kwargs)
        t1 = time.perf_counter()
        n = len(streamer.ids)
        if stop.is_set():
            reason = "stopped"
        elif n >= max_new:
            reason = "length"
        elif t1 - t0 >= cfg.max_seconds:
            reason = "time"
        else:
            reason = "eos"
        decode_s = (streamer.last - streamer.first) if n > 1 else 0.0
        log.info("%s: %d tokens in %.2f s (%s, %s)", self.spec.name, n, t1 - t0, mode, reason)
        return {
            "model": self.spec.name, "mode": mode, "finish_reason": reason, "prompt_tokens": len(ids),
            "tokens": n, "characters": len(streamer.text),
            "chars_per_token": round(len(streamer.text) / n, 3) if n else None,
            "ttft_s": round((streamer.first or t1) - job.arrived, 4),
            "seconds": round(t1 - t0, 4),
            "tokens_per_s": round((n - 1) / decode_s, 2) if decode_s > 0 else (round(n / (t1 - t0), 2) if n else 0.0),
        }


class ModelPool:
    """The models by name (``--model`` flags first, then what the runs hold), their workers, and the limits."""

    def __init__(self, cfg: ServeConfig, explicit: list[ModelSpec], device: str):
        self.cfg, self.device = cfg, device
        self.explicit = list(explicit)
        self.found: list[ModelSpec] = []
        self.workers: dict[str, ModelWorker] = {}
        self.lock = threading.Lock()
        self.active = 0

    def update_found(self, found: list[ModelSpec]) -> None:
        taken = {s.name for s in self.explicit}
        self.found = [s for s in found if s.name not in taken]

    def specs(self) -> list[ModelSpec]:
        return [*self.explicit, *self.found]

    def get(self, name: str) -> ModelWorker:
        specs = {s.name: s for s in self.specs()}
        spec = specs.get(name)
        if spec is None:
            names = ", ".join(specs) or "none (start with --model NAME=DIR or --runs DIR)"
            raise Refusal(404, f"no model named {name!r}; models: {names}")
        with self.lock:
            worker = self.workers.get(name)
            if worker is None or worker.spec != spec:
                if worker is not None:
                    worker.close()
                worker = self.workers[name] = ModelWorker(spec, self)
        return worker

    def admit(self, job: Job) -> int:
        worker = self.get(job.request.model)
        with self.lock:
            if self.active >= self.cfg.max_streams:
                raise Refusal(503, f"the server is at its limit of {self.cfg.max_streams} generations at once "
                                   "(max_streams); try again shortly", retry_after=5)
            self.active += 1
        try:
            return worker.submit(job)
        except Refusal:
            self.finished()
            raise

    def finished(self) -> None:
        with self.lock:
            self.active -= 1

    def make_room(self, keep: ModelWorker) -> None:
        """Unload least recently used idle models until one more fits under max_loaded."""
        with self.lock:
            loaded = [w for w in self.workers.values() if w.loaded is not None and w is not keep]
        loaded.sort(key=lambda w: w.last_used)
        while len(loaded) >= self.cfg.max_loaded and loaded:
            w = loaded.pop(0)
            if w.model_lock.acquire(blocking=False):
                try:
                    log.info("unloading %s (max_loaded=%d)", w.spec.name, self.cfg.max_loaded)
                    w.unload()
                finally:
                    w.model_lock.release()

    def loaded(self) -> set[str]:
        with self.lock:
            return {n for n, w in self.workers.items() if w.loaded is not None}

    def busy(self) -> dict[str, int]:
        with self.lock:
            return {n: w.pending for n, w in self.workers.items()}

    def close(self) -> None:
        with self.lock:
            for w in self.workers.values():
                w.close()
