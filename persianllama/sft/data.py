"""Instruction data in, conversations out: the HF ``messages`` layout, Alpaca and ShareGPT, from JSONL, JSON,
Parquet or an HF dataset id; every record checked, bad ones counted (file and line) and skipped.

A conversation is a list of ``{"role": "system"|"user"|"assistant", "content": str}``: an optional system
message first, then user and assistant alternating, ending with the assistant. Layouts, detected per record
(or forced with ``data.format``):

- messages: ``{"messages": [{"role", "content"}, ...]}`` (HF / TRL conversational);
- sharegpt: ``{"conversations": [{"from": "human"|"gpt"|"system", "value"}, ...]}``;
- alpaca: ``{"instruction", "input" (optional), "output"}``, the instruction and input joined by a blank line.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from persianllama.errors import UserError

log = logging.getLogger(__name__)

SHAREGPT_ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant", "chatgpt": "assistant",
                  "bard": "assistant", "bing": "assistant", "model": "assistant", "system": "system"}
ROLES = ("system", "user", "assistant")
SUFFIXES = (".jsonl", ".json", ".parquet")


class BadRecord(ValueError):
    """A record that fits no layout or breaks the conversation rules; the message says why."""


@dataclass
class Conversation:
    messages: list[dict[str, str]]
    source: str
    """file:line (or dataset id:row) it came from."""

    @property
    def key(self) -> str:
        return hashlib.sha256(json.dumps(self.messages, ensure_ascii=False, sort_keys=True).encode()).hexdigest()


@dataclass
class ReadReport:
    records: int = 0
    kept: int = 0
    broken: Counter = field(default_factory=Counter)
    examples: list[str] = field(default_factory=list)
    """The first few faults, each with file and line."""
    formats: Counter = field(default_factory=Counter)

    def fault(self, where: str, reason: str) -> None:
        self.broken[reason.split(":")[0]] += 1
        if len(self.examples) < 10:
            self.examples.append(f"{where}: {reason}")

    def to_dict(self) -> dict:
        return {"records": self.records, "kept": self.kept, "broken": dict(self.broken), "examples": self.examples,
                "formats": dict(self.formats)}


def _text(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise BadRecord(f"wrong_type: {what} is {type(value).__name__}, not a string")
    if not value.strip():
        raise BadRecord(f"empty: {what} is empty")
    return value


def _check(messages: list[dict[str, str]]) -> list[dict[str, str]]:
    if not messages:
        raise BadRecord("empty: no messages")
    body = messages[1:] if messages[0]["role"] == "system" else messages
    if not body:
        raise BadRecord("no_turns: only a system message")
    for i, m in enumerate(body):
        want = "user" if i % 2 == 0 else "assistant"
        if m["role"] != want:
            raise BadRecord(f"role_order: message {i + (len(messages) - len(body))} is {m['role']!r}, expected {want!r} "
                            "(optional system first, then user and assistant alternating)")
    if body[-1]["role"] != "assistant":
        raise BadRecord("no_answer: the conversation does not end with an assistant message")
    return messages


def from_messages(record: dict) -> list[dict[str, str]]:
    msgs = record["messages"]
    if not isinstance(msgs, list):
        raise BadRecord(f"wrong_type: messages is {type(msgs).__name__}, not a list")
    out = []
    for i, m in enumerate(msgs):
        if not isinstance(m, dict):
            raise BadRecord(f"wrong_type: messages[{i}] is {type(m).__name__}, not an object")
        role = m.get("role")
        if role not in ROLES:
            raise BadRecord(f"bad_role: messages[{i}].role is {role!r} (one of {', '.join(ROLES)})")
        out.append({"role": role, "content": _text(m.get("content"), f"messages[{i}].content")})
    return _check(out)


def from_sharegpt(record: dict) -> list[dict[str, str]]:
    turns = record["conversations"]
    if not isinstance(turns, list):
        raise BadRecord(f"wrong_type: conversations is {type(turns).__name__}, not a list")
    out = []
    for i, t in enumerate(turns):
        if not isinstance(t, dict):
            raise BadRecord(f"wrong_type: conversations[{i}] is {type(t).__name__}, not an object")
        role = SHAREGPT_ROLES.get(str(t.get("from", "")).lower())
        if role is None:
            raise BadRecord(f"bad_role: conversations[{i}].from is {t.get('from')!r} (human, gpt or system)")
        out.append({"role": role, "content": _text(t.get("value"), f"conversations[{i}].value")})
    return _check(out)


def from_alpaca(record: dict) -> list[dict[str, str]]:
    instruction = _text(record.get("instruction"), "instruction")
    extra = record.get("input")
    if extra is not None and not isinstance(extra, str):
        raise BadRecord(f"wrong_type: input is {type(extra).__name__}, not a string")
    prompt = f"{instruction}\n\n{extra}" if extra and extra.strip() else instruction
    messages = []
    if isinstance(record.get("system"), str) and record["system"].strip():
        messages.append({"role": "system", "content": record["system"]})
    messages += [{"role": "user", "content": prompt}, {"role": "assistant", "content": _text(record.get("output"),
                                                                                               "output")}]
    return _check(messages)


LAYOUTS = {"messages": ("messages", from_messages), "sharegpt": ("conversations", from_sharegpt),
           "alpaca": ("instruction", from_alpaca)}


def to_messages(record: Any, fmt: str = "auto") -> tuple[str, list[dict[str, str]]]:
    """(layout, conversation) of one record, or `BadRecord`."""
    if not isinstance(record, dict):
        raise BadRecord(f"wrong_type: a record is {type(record).__name__}, not an object")
    if fmt != "auto":
        key, fn = LAYOUTS[fmt]
        if key not in record:
            raise BadRecord(f"no_layout: no {key!r} field (data.format={fmt})")
        return fmt, fn(record)
    for name, (key, fn) in LAYOUTS.items():
        if key in record:
            return name, fn(record)
    raise BadRecord(f"no_layout: none of messages, conversations or instruction/output in a record with keys "
                    f"{sorted(record)[:6]}")


# --- reading files and datasets ----------------------------------------------------------------------------


def _files(paths: list[str]) -> list[tuple[str, Path | None]]:
    """(name, path) per input; path None for an HF dataset id."""
    from persianllama import hub

    out: list[tuple[str, Path | None]] = []
    for p in paths:
        path = Path(p).expanduser()
        if path.is_dir():
            found = sorted(f for f in path.rglob("*") if f.suffix in SUFFIXES and not f.name.startswith("."))
            if not found:
                raise UserError(f"data: {p} holds no .jsonl, .json or .parquet file")
            out += [(str(f), f) for f in found]
        elif path.is_file():
            if path.suffix not in SUFFIXES:
                raise UserError(f"data: {p} is not .jsonl, .json or .parquet")
            out.append((str(path), path))
        elif hub.hub_id(p):
            out.append((p, None))
        else:
            raise UserError(f"data: {p}: no such file or folder (and not an HF dataset id)")
    if not out:
        raise UserError("no instruction data: pass --data FILE_OR_HUB_ID (JSONL/JSON/Parquet in the messages, "
                        "Alpaca or ShareGPT layout)")
    return out


def _records(name: str, path: Path | None, split: str, report: ReadReport) -> Iterator[tuple[str, Any]]:
    """(where, record) of one input; unreadable lines are counted in `report` and skipped."""
    if path is None:
        yield from _hub_records(name, split)
        return
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        try:
            table = pq.read_table(path)
        except Exception as e:  # noqa: BLE001 - a broken file is one fault, named
            report.records += 1
            report.fault(str(path), f"unreadable: {str(e).splitlines()[0][:120]}")
            return
        for i, row in enumerate(table.to_pylist()):
            yield f"{path}:row {i}", row
        return
    with open(path, "rb") as fh:
        raw = fh.read()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if path.suffix == ".json" and text is not None and text.lstrip()[:1] == "[":
        try:
            items = json.loads(text)
        except json.JSONDecodeError as e:
            report.records += 1
            report.fault(f"{path}:{e.lineno}", f"invalid_json: {e.msg}")
            return
        for i, item in enumerate(items):
            yield f"{path}:item {i}", item
        return
    for n, line in enumerate(raw.splitlines(), 1):  # JSON lines (a .json file of one object per line too)
        if not line.strip():
            continue
        try:
            yield f"{path}:{n}", json.loads(line.decode("utf-8"))
        except UnicodeDecodeError:
            report.records += 1
            report.fault(f"{path}:{n}", "invalid_utf8: the line is not UTF-8")
        except json.JSONDecodeError as e:
            report.records += 1
            report.fault(f"{path}:{n}", f"invalid_json: {e.msg}")


def _hub_records(name: str, split: str) -> Iterator[tuple[str, Any]]:
    from persianllama import hub

    reason = hub.offline_reason()
    import datasets

    try:
        ds = datasets.load_dataset(name, split=split, download_mode=None)
    except Exception as e:  # noqa: BLE001 - offline, missing, gated: one line
        if reason:
            raise UserError(f"data: {name} is not a local file, and this machine is offline ({reason}); download it "
                            f"on a machine with network (`hf download {name} --repo-type dataset --local-dir DIR`) and "
                            "pass DIR") from None
        raise UserError(f"data: cannot load the dataset {name} (split {split}): {hub.first_line(e)}") from None
    for i, row in enumerate(ds):
        yield f"{name}:row {i}", row


def read_conversations(paths: list[str], *, fmt: str = "auto", split: str = "train", normalize: bool = True,
                       system_prompt: str | None = None) -> tuple[list[Conversation], ReadReport]:
    """Every good conversation of `paths`, in order, and what was read and skipped. Refuses only when nothing
    at all could be used, naming the first faults."""
    from persianllama.text.normalize import normalize as fa_normalize

    report = ReadReport()
    out: list[Conversation] = []
    for name, path in _files(paths):
        for where, record in _records(name, path, split, report):
            report.records += 1
            try:
                layout, messages = to_messages(record, fmt)
            except BadRecord as e:
                report.fault(where, str(e))
                continue
            if normalize:
                messages = [{"role": m["role"], "content": fa_normalize(m["content"])} for m in messages]
            if system_prompt and messages[0]["role"] != "system":
                messages = [{"role": "system", "content": system_prompt}, *messages]
            report.formats[layout] += 1
            out.append(Conversation(messages, where))
    report.kept = len(out)
    if not out:
        first = "; ".join(report.examples[:3]) or "the inputs hold no records"
        raise UserError(f"no usable conversation in {', '.join(paths)} ({report.records} record(s) read): {first}")
    if report.broken:
        log.warning("instruction data: %d of %d record(s) skipped (%s); first: %s", sum(report.broken.values()),
                    report.records, ", ".join(f"{k} {v}" for k, v in report.broken.items()), report.examples[0])
    return out, report


def split_heldout(convs: list[Conversation], fraction: float) -> tuple[list[Conversation], list[Conversation]]:
    """(train, held out) by a hash of each conversation: stable across runs and file order."""
    if fraction <= 0 or len(convs) < 2:
        return convs, []
    scale = 2**32
    held = [c for c in convs if int(c.key[:8], 16) / scale < fraction]
    if not held:  # at least one
        held = [min(convs, key=lambda c: c.key)]
    keys = {id(c) for c in held}
    return [c for c in convs if id(c) not in keys], held
