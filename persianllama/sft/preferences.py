"""Preference pairs in, checked prompt/chosen/rejected conversations out, for `persianllama dpo`.

A pair is a prompt (a conversation that ends with the user: an optional system message, then user and
assistant alternating) and two replies to it, the preferred one (chosen) and the other (rejected). The
layouts, detected per record, are TRL's preference layouts:

- explicit prompt, conversational: ``{"prompt": [messages], "chosen": [{"role": "assistant", ...}],
  "rejected": [...]}`` (``messages`` may stand for ``prompt``), as in corpora/sample/instructions/preferences.jsonl;
- explicit prompt, plain strings: ``{"prompt": "...", "chosen": "...", "rejected": "..."}``, the prompt being one
  user turn;
- implicit prompt: ``{"chosen": [whole conversation], "rejected": [whole conversation]}``: the prompt is what the
  two share, each ends with its own assistant reply.

Extra fields (``id``, ``rejected_kind``, ...) are ignored. The normalizer, when on, runs over the prompt and the
chosen reply, never the rejected one: what is wrong with a rejected reply may be exactly what the normalizer
repairs (the sample's ``broken_persian`` pairs differ only in Arabic ي/ك and missing ZWNJ). Bad records are counted by reason with their file and
line and skipped, as for instruction data (`persianllama.sft.data`, whose readers this module reuses).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from persianllama.errors import UserError
from persianllama.sft.data import BadRecord, ReadReport, _files, _records, _text, from_messages

Messages = list[dict[str, str]]


@dataclass
class Pair:
    prompt: Messages
    chosen: str
    rejected: str
    source: str
    """file:line (or dataset id:row) it came from."""

    @property
    def key(self) -> str:
        blob = json.dumps([self.prompt, self.chosen, self.rejected], ensure_ascii=False, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()

    def conversations(self) -> tuple[Messages, Messages]:
        return ([*self.prompt, {"role": "assistant", "content": self.chosen}],
                [*self.prompt, {"role": "assistant", "content": self.rejected}])


def _conversation(value: Any, what: str, *, prompt: bool) -> Messages:
    """A message list with its roles and contents checked (`persianllama.sft.data`'s rules): a prompt ends with the
    user, a whole conversation with the assistant; or `BadRecord` naming `what`."""
    if not isinstance(value, list):
        raise BadRecord(f"wrong_type: {what} is {type(value).__name__}, not a list of messages or a string")
    if prompt and value and isinstance(value[-1], dict) and value[-1].get("role") == "assistant":
        raise BadRecord(f"role_order: {what} ends with an assistant message; a prompt ends with the user")
    probe = [*value, {"role": "assistant", "content": "-"}] if prompt else value
    try:
        messages = from_messages({"messages": probe})
    except BadRecord as e:
        raise BadRecord(str(e).replace("messages[", f"{what}[")) from None
    return messages[:-1] if prompt else messages


def _reply(value: Any, what: str) -> str:
    """A reply given as a string or as one assistant message (a one-item list, or the message itself)."""
    if isinstance(value, str):
        return _text(value, what)
    if isinstance(value, dict):
        value = [value]
    if not isinstance(value, list):
        raise BadRecord(f"wrong_type: {what} is {type(value).__name__}, not a string or a list of messages")
    if len(value) != 1:
        raise BadRecord(f"bad_reply: {what} holds {len(value)} messages; a reply is one assistant message")
    m = value[0]
    if not isinstance(m, dict) or m.get("role") != "assistant":
        role = m.get("role") if isinstance(m, dict) else type(m).__name__
        raise BadRecord(f"bad_reply: {what}[0] is {role!r}, not an assistant message")
    return _text(m.get("content"), f"{what}[0].content")


def to_pair(record: Any) -> tuple[str, Messages, str, str]:
    """(layout, prompt, chosen, rejected) of one record, or `BadRecord`."""
    if not isinstance(record, dict):
        raise BadRecord(f"wrong_type: a record is {type(record).__name__}, not an object")
    if "chosen" not in record or "rejected" not in record:
        raise BadRecord(f"no_layout: a preference pair needs chosen and rejected (and prompt or messages); keys "
                        f"{sorted(record)[:6]}")
    key = "prompt" if "prompt" in record else "messages" if "messages" in record else None
    if key is None:  # implicit prompt: two whole conversations that share it
        chosen, rejected = record["chosen"], record["rejected"]
        if not isinstance(chosen, list) or not isinstance(rejected, list):
            raise BadRecord("no_prompt: without a prompt field, chosen and rejected must be whole conversations "
                            "(lists of messages) that share their prompt")
        c, r = _conversation(chosen, "chosen", prompt=False), _conversation(rejected, "rejected", prompt=False)
        if c[:-1] != r[:-1]:
            raise BadRecord("no_prompt: chosen and rejected do not share everything before their last assistant "
                            "message")
        return "implicit", c[:-1], c[-1]["content"], r[-1]["content"]
    raw = record[key]
    if isinstance(raw, str):
        prompt = [{"role": "user", "content": _text(raw, key)}]
        layout = "plain"
    else:
        prompt = _conversation(raw, key, prompt=True)
        layout = "conversational"
    chosen, rejected = _reply(record["chosen"], "chosen"), _reply(record["rejected"], "rejected")
    if chosen == rejected:
        raise BadRecord("same_replies: chosen and rejected are the same text (nothing to prefer)")
    return layout, prompt, chosen, rejected


def read_pairs(paths: list[str], *, split: str = "train", normalize: bool = True,
               system_prompt: str | None = None) -> tuple[list[Pair], ReadReport]:
    """Every good pair of `paths`, in order, and what was read and skipped (`normalize`: the prompt and the
    chosen reply). Refuses only when nothing at all
    could be used, naming the first faults."""
    from persianllama.text.normalize import normalize as fa_normalize

    report = ReadReport()
    out: list[Pair] = []
    for name, path in _files(paths):
        for where, record in _records(name, path, split, report):
            report.records += 1
            try:
                layout, prompt, chosen, rejected = to_pair(record)
                if normalize:  # never the rejected reply: its faults (Arabic ي/ك, no ZWNJ) may be why it lost
                    prompt = [{"role": m["role"], "content": fa_normalize(m["content"])} for m in prompt]
                    chosen = fa_normalize(chosen)
            except BadRecord as e:
                report.fault(where, str(e))
                continue
            if system_prompt and prompt[0]["role"] != "system":
                prompt = [{"role": "system", "content": system_prompt}, *prompt]
            report.formats[layout] += 1
            out.append(Pair(prompt, chosen, rejected, where))
    report.kept = len(out)
    if not out:
        first = "; ".join(report.examples[:3]) or "the inputs hold no records"
        raise UserError(f"no usable preference pair in {', '.join(paths)} ({report.records} record(s) read): {first}")
    if report.broken:
        import logging

        logging.getLogger(__name__).warning(
            "preference data: %d of %d record(s) skipped (%s); first: %s", sum(report.broken.values()),
            report.records, ", ".join(f"{k} {v}" for k, v in report.broken.items()), report.examples[0])
    return out, report


def split_heldout(pairs: list[Pair], fraction: float) -> tuple[list[Pair], list[Pair]]:
    """(train, held out) by a hash of each pair: stable across runs and file order (at least one held out when
    the fraction is above 0 and there are two pairs or more)."""
    if fraction <= 0 or len(pairs) < 2:
        return pairs, []
    held = [p for p in pairs if int(p.key[:8], 16) / 2**32 < fraction] or [min(pairs, key=lambda p: p.key)]
    keys = {id(p) for p in held}
    return [p for p in pairs if id(p) not in keys], held
