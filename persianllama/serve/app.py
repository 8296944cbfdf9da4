"""The playground's Starlette app: one page (``/``, assets under ``/static``) and the JSON API behind it.

=====================================  ==================================================================
``GET  /api/models``                   ``[{"name", "model", "adapter", "source", "chat", "loaded", "busy"}]``
``POST /api/generate``                 JSON in, ``text/event-stream`` out (events: queued, loading, start,
                                       token, done, error)
``GET  /api/runs``                     every run folder found under ``--runs``
``GET  /api/runs/{id}``                one run: card (HTML), images, eval/fertility/corpus numbers
``GET  /api/runs/{id}/metrics``        loss chart data from ``metrics.jsonl`` (ETag: poll it cheaply)
``GET  /api/runs/{id}/rows``           a corpus page: ``?view=kept|dropped&offset=0&limit=20``
``GET  /api/runs/{id}/files/{path}``   a file of the run folder (images; anything else as plain text)
=====================================  ==================================================================

Every response carries a Content-Security-Policy that allows nothing but this origin (the page loads
nothing from the internet), and requests whose Host header names another site are refused (DNS rebinding).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from persianllama.serve import runs as runlib
from persianllama.serve.config import ServeConfig
from persianllama.serve.models import Job, ModelPool, ModelSpec, Refusal, parse_request, specs_from_runs

log = logging.getLogger("persianllama.serve")
STATIC = Path(__file__).parent / "static"
MAX_BODY = 1 << 20
KEEPALIVE_S = 10.0
SCAN_TTL_S = 2.0
LOOPBACK = {"127.0.0.1", "localhost", "::1"}
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; "
       "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")


def error(status: int, message: str, retry_after: int | None = None) -> JSONResponse:
    headers = {"Retry-After": str(retry_after)} if retry_after else None
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def sse(event: str, data: dict[str, Any]) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n".encode()


class Library:
    """The run folders under the roots, rescanned at most every SCAN_TTL_S (runs appear while serving)."""

    def __init__(self, roots: list[Path], pool: ModelPool):
        self.roots, self.pool = roots, pool
        self._runs: dict[str, runlib.Run] = {}
        self._at = -1e9

    def runs(self, fresh: bool = False) -> dict[str, runlib.Run]:
        if fresh or time.monotonic() - self._at > SCAN_TTL_S:
            self._runs = runlib.scan(self.roots)
            self.pool.update_found(specs_from_runs(self._runs))
            self._at = time.monotonic()
        return self._runs

    def run(self, run_id: str) -> runlib.Run:
        # the last scan first: a page polling one run's metrics must not rescan every folder each time
        run = self._runs.get(run_id) or self.runs(fresh=True).get(run_id)
        if run is None:
            raise runlib.Refused(404, f"no run {run_id!r}; GET /api/runs lists them")
        return run


class SecurityHeaders:
    """Pure ASGI (streams pass through untouched): refuse foreign Host headers, add the CSP and friends."""

    def __init__(self, app, allowed_hosts: set[str] | None):
        self.app, self.allowed = app, allowed_hosts

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        if self.allowed is not None:
            host = dict(scope["headers"]).get(b"host", b"").decode("latin-1")
            name = host[1:host.find("]")] if host.startswith("[") else host.rsplit(":", 1)[0] if ":" in host else host
            if name.lower() not in self.allowed:
                resp = error(400, f"host {host!r} is not served here; open http://127.0.0.1:PORT/")
                return await resp(scope, receive, send)

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers += [(b"content-security-policy", CSP.encode()), (b"x-content-type-options", b"nosniff"),
                            (b"referrer-policy", b"no-referrer"), (b"x-frame-options", b"DENY")]
                message = {**message, "headers": headers}
            await send(message)

        return await self.app(scope, receive, send_with_headers)


def create_app(cfg: ServeConfig, roots: list[Path], models: list[ModelSpec], device: str) -> Starlette:
    pool = ModelPool(cfg, models, device)
    library = Library([Path(r) for r in roots], pool)

    async def index(request: Request) -> Response:
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    def api_models(request: Request) -> Response:
        library.runs()  # refresh what the run folders hold
        loaded, busy = pool.loaded(), pool.busy()
        return JSONResponse([{**s.public(), "loaded": s.name in loaded, "busy": busy.get(s.name, 0)}
                             for s in pool.specs()])

    async def api_generate(request: Request) -> Response:
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype != "application/json":
            return error(415, "send the body as JSON with Content-Type: application/json")
        try:
            length = int(request.headers.get("content-length") or 0)
        except ValueError:
            length = 0
        if length > MAX_BODY:
            return error(413, f"the body is {length} bytes, above the limit of {MAX_BODY}")
        raw = bytearray()
        async for chunk in request.stream():
            raw += chunk
            if len(raw) > MAX_BODY:
                return error(413, f"the body is above the limit of {MAX_BODY} bytes")
        try:
            body = json.loads(bytes(raw).decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            return error(400, f"the body is not valid JSON ({e})")
        try:
            req = parse_request(body, cfg)
            job = Job(req, asyncio.get_running_loop(), asyncio.Queue())
            try:
                ahead = pool.admit(job)
            except Refusal as e:  # a model that appeared under --runs since the last look?
                if e.status != 404:
                    raise
                await run_in_threadpool(library.runs, True)
                ahead = pool.admit(job)
        except Refusal as e:
            return error(e.status, str(e), e.retry_after)

        async def stream():
            try:
                yield sse("queued", {"model": req.model, "ahead": ahead})
                while True:
                    try:
                        kind, data = await asyncio.wait_for(job.events.get(), timeout=KEEPALIVE_S)
                    except TimeoutError:
                        yield b": keep-alive\n\n"
                        continue
                    chunk = [sse(kind, data)]
                    while kind not in ("done", "error") and not job.events.empty():  # tokens that came meanwhile:
                        kind, data = job.events.get_nowait()  # one write for all of them
                        chunk.append(sse(kind, data))
                    yield b"".join(chunk)
                    if kind in ("done", "error"):
                        break
            finally:  # finished, or the client went away (Stop button, closed tab): end the generation
                job.stop.set()

        return StreamingResponse(stream(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    def api_runs(request: Request) -> Response:
        return JSONResponse([r.public() for r in library.runs().values()])

    def _refused(fn):
        def wrapped(request: Request) -> Response:
            try:
                return fn(request)
            except runlib.Refused as e:
                return error(e.status, str(e))
        wrapped.__name__ = fn.__name__
        return wrapped

    @_refused
    def api_run(request: Request) -> Response:
        return JSONResponse(runlib.detail(library.run(request.path_params["run_id"])))

    @_refused
    def api_metrics(request: Request) -> Response:
        run = library.run(request.path_params["run_id"])
        if not (run.path / "metrics.jsonl").is_file():
            raise runlib.Refused(404, f"run {run.id} has no metrics.jsonl")
        etag = runlib.metrics_etag(run)
        if request.headers.get("if-none-match") == etag:
            return Response(status_code=304, headers={"ETag": etag})
        return JSONResponse(runlib.metrics(run), headers={"ETag": etag, "Cache-Control": "no-cache"})

    @_refused
    def api_rows(request: Request) -> Response:
        q = request.query_params
        try:
            offset, limit = int(q.get("offset", 0)), int(q.get("limit", 20))
        except ValueError:
            raise runlib.Refused(400, "offset and limit must be integers") from None
        run = library.run(request.path_params["run_id"])
        return JSONResponse(runlib.rows(run, offset, limit, q.get("view", "kept")))

    @_refused
    def api_file(request: Request) -> Response:
        run = library.run(request.path_params["run_id"])
        path = runlib.safe_file(run.path, request.path_params["path"])
        return FileResponse(path, media_type=runlib.media_type(path), headers={"Cache-Control": "no-cache"})

    routes = [
        Route("/", index),
        Route("/api/models", api_models),
        Route("/api/generate", api_generate, methods=["POST"]),
        Route("/api/runs", api_runs),
        Route("/api/runs/{run_id}", api_run),
        Route("/api/runs/{run_id}/metrics", api_metrics),
        Route("/api/runs/{run_id}/rows", api_rows),
        Route("/api/runs/{run_id}/files/{path:path}", api_file),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]

    async def not_found(request: Request, exc: Exception) -> Response:
        return error(404, f"nothing at {request.url.path}")

    @contextlib.asynccontextmanager
    async def lifespan(app):
        yield
        pool.close()

    app = Starlette(routes=routes, exception_handlers={404: not_found}, lifespan=lifespan)
    app.state.pool, app.state.library = pool, library
    open_to_all = cfg.host in ("0.0.0.0", "::", "")
    allowed = None if open_to_all else LOOPBACK | {cfg.host.lower().strip("[]")}
    return SecurityHeaders(app, allowed)  # type: ignore[return-value]
