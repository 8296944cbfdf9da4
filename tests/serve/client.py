"""A minimal HTTP/SSE client for the tests (stdlib only, loopback only, every call with a timeout)."""

from __future__ import annotations

import http.client
import json
import time
from collections.abc import Iterator
from typing import Any

TIMEOUT = 30.0


def request(port: int, method: str, path: str, body: Any = None, headers: dict | None = None,
            timeout: float = TIMEOUT) -> tuple[int, dict, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        data = json.dumps(body).encode() if body is not None and not isinstance(body, bytes) else body
        hdrs = {"Content-Type": "application/json"} if body is not None else {}
        conn.request(method, path, body=data, headers={**hdrs, **(headers or {})})
        resp = conn.getresponse()
        return resp.status, dict(resp.getheaders()), resp.read()
    finally:
        conn.close()


def get_json(port: int, path: str, **kw) -> tuple[int, Any]:
    status, _, body = request(port, "GET", path, **kw)
    return status, json.loads(body) if body else None


def open_stream(port: int, body: dict, timeout: float = TIMEOUT):
    """POST /api/generate; returns (connection, response) with the body unread."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    conn.request("POST", "/api/generate", body=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    return conn, conn.getresponse()


def events(resp) -> Iterator[tuple[str, dict, float]]:
    """(event, data, arrival time) of each server-sent event, as it arrives, up to the last (done or error)."""
    event, data = "message", ""
    while True:
        line = resp.readline()  # chunked transfer decoded by http.client
        if not line:
            return
        line = line.decode("utf-8").rstrip("\r\n")
        if not line:
            if data:
                yield event, json.loads(data), time.perf_counter()
                if event in ("done", "error"):
                    return
            event, data = "message", ""
        elif line.startswith("event:"):
            event = line[6:].strip()
        elif line.startswith("data:"):
            data += line[5:].strip()


def generate(port: int, body: dict, timeout: float = TIMEOUT) -> tuple[int, list[tuple[str, dict, float]], Any]:
    """The whole stream: (status, events, error body when refused)."""
    conn, resp = open_stream(port, body, timeout)
    try:
        if resp.status != 200:
            return resp.status, [], json.loads(resp.read())
        return 200, list(events(resp)), None
    finally:
        conn.close()
