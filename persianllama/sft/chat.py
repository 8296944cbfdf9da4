"""`persianllama chat`: talk to a model in the terminal, the reply streamed as it is generated.

    persianllama chat --model runs/zero/hf --adapter runs/sft/adapter
    persianllama chat --model runs/zero/hf --adapter runs/sft/adapter --prompt "پایتخت ایران کجاست؟"

The prompt is the model's chat template (an SFT adapter carries its own; `persianllama.sft.template`), so the
model sees what it was trained on; a tokenizer without a template (a base model) gets plain continuation: the
text typed so far, continued. Commands: ``/reset`` (start over), ``/system TEXT`` (a new system message; the
conversation starts over), ``/exit``; Ctrl-C stops a reply, Ctrl-D or Ctrl-C at the prompt ends the session.

Right-to-left text. Python and the model work in *logical* order (the order the text is typed and stored).
A terminal that does the Unicode bidirectional algorithm (VTE terminals such as GNOME Terminal since VTE 0.58,
Konsole, mlterm, Apple's Terminal) shows logical Persian correctly; most others (xterm, Windows Terminal,
tmux in between, ...) draw every character left to right, so Persian comes out mirrored. ``--bidi on`` turns each
line of the reply into *visual* order (python-bidi's ``get_display``), wrapped to the terminal's width before it is
reordered (a wrapped, reordered line would read bottom-up) and right-aligned when it is a right-to-left line;
streaming then goes a terminal line at a time. ``--bidi auto`` (the default) does that only when standard output
is a terminal not known to do bidi itself. ``--prompt`` never reorders: scripts and pipes get logical order.
"""

from __future__ import annotations

import os
import shutil
import sys
import textwrap
import threading
import unicodedata
from dataclasses import dataclass, field
from typing import Any, TextIO

from persianllama.errors import UserError

HELP = ("/reset: start over | /system TEXT: new system message (starts over) | /system: show it | /exit | "
        "Ctrl-C stops a reply, Ctrl-D ends")


# --- right-to-left display ---------------------------------------------------------------------------------


def terminal_does_bidi(env: dict[str, str] | os._Environ) -> bool:
    """Whether the terminal is known to apply the bidi algorithm itself (then reordering here would undo it)."""
    vte = env.get("VTE_VERSION", "")
    if vte.isdigit() and int(vte) >= 5800:  # VTE 0.58 (GNOME Terminal, Tilix, Terminator ...): implicit bidi
        return True
    if env.get("KONSOLE_VERSION") or env.get("MLTERM"):
        return True
    return env.get("TERM_PROGRAM") == "Apple_Terminal" or env.get("TERM", "").startswith("mlterm")


def want_bidi(mode: str, stream: TextIO, env=None) -> bool:
    """--bidi on/off as said; auto: on for an interactive terminal that does not do bidi itself."""
    if mode != "auto":
        return mode == "on"
    env = os.environ if env is None else env
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty()) and not terminal_does_bidi(env)


def _cells(text: str) -> int:
    """Terminal columns of `text` (zero-width joiners, ZWNJ and combining marks take none)."""
    return sum(0 if unicodedata.category(c) in ("Mn", "Me", "Cf") else
               2 if unicodedata.east_asian_width(c) in ("W", "F") else 1 for c in text)


def _is_rtl(text: str) -> bool:
    """The line's base direction by its first strong character (the bidi algorithm's rule P2)."""
    for c in text:
        d = unicodedata.bidirectional(c)
        if d in ("R", "AL"):
            return True
        if d == "L":
            return False
    return False


def _wrap(text: str, width: int) -> list[str]:
    return textwrap.wrap(text, width=max(8, width), break_long_words=True, replace_whitespace=False) or [""]


def _visual(piece: str, rtl: bool, width: int) -> str:
    from bidi import get_display

    shown = get_display(piece, base_dir="R" if rtl else "L")
    return " " * max(0, width - _cells(shown)) + shown if rtl else shown


def visual_lines(line: str, width: int, rtl: bool | None = None) -> list[str]:
    """One logical line as terminal lines in visual order: wrapped in logical order first, then each piece
    reordered (python-bidi) and, for a right-to-left line, right-aligned to `width`."""
    rtl = _is_rtl(line) if rtl is None else rtl
    return [_visual(piece, rtl, width) for piece in _wrap(line, width)]


class Display:
    """Where a streamed reply goes: as it comes (logical order), or, with bidi, a terminal line at a time in
    visual order."""

    def __init__(self, out: TextIO, *, bidi: bool, width: int | None = None):
        self.out, self.bidi = out, bidi
        self.width = width or shutil.get_terminal_size((80, 24)).columns
        self.buffer = ""
        self.rtl: bool | None = None
        """The direction of the paragraph being streamed, from its first strong character."""

    def write(self, text: str) -> None:
        if not self.bidi:
            self.out.write(text)
            self.out.flush()
            return
        self.buffer += text
        while "\n" in self.buffer:
            line, self.buffer = self.buffer.split("\n", 1)
            self._emit(visual_lines(line, self.width, self._direction(line)))
            self.rtl = None
        pieces = _wrap(self.buffer, self.width)
        if len(pieces) > 1:  # a long line: show the terminal lines that are full; the last may still grow
            rtl = self._direction(self.buffer)
            self._emit([_visual(piece, rtl, self.width) for piece in pieces[:-1]])
            self.buffer = pieces[-1] + self.buffer[len(self.buffer.rstrip()):]

    def _direction(self, text: str) -> bool:
        if self.rtl is None and any(unicodedata.bidirectional(c) in ("R", "AL", "L") for c in text):
            self.rtl = _is_rtl(text)
        return bool(self.rtl)

    def _emit(self, lines: list[str]) -> None:
        self.out.write("".join(line + "\n" for line in lines))
        self.out.flush()

    def line(self, text: str) -> None:
        """A whole message of the program (its own lines)."""
        for part in text.split("\n"):
            self._emit(visual_lines(part, self.width) if self.bidi else [part])

    def finish(self) -> None:
        """The end of a reply."""
        if self.bidi:
            if self.buffer.strip():
                self._emit(visual_lines(self.buffer, self.width, self._direction(self.buffer)))
        else:
            self.out.write("\n")
            self.out.flush()
        self.buffer, self.rtl = "", None


# --- the conversation --------------------------------------------------------------------------------------


@dataclass
class Sampling:
    max_new_tokens: int = 256
    temperature: float = 0.0
    """0: greedy (the same answer every time)."""
    top_p: float = 0.9


@dataclass
class ChatSession:
    """A conversation with a loaded model: its messages (chat template) or its transcript (plain continuation)."""

    model: Any
    tok: Any
    sampling: Sampling
    system: str | None = None
    messages: list[dict[str, str]] = field(default_factory=list)
    transcript: str = ""
    stop: threading.Event = field(default_factory=threading.Event)
    dropped_turns: int = 0
    """Exchanges at the start of the conversation that no longer fit the model's context (at the last reply)."""

    @property
    def templated(self) -> bool:
        return bool(getattr(self.tok, "chat_template", None))

    def reset(self) -> None:
        self.messages, self.transcript, self.dropped_turns = [], "", 0

    def set_system(self, text: str | None) -> None:
        self.system = text or None
        self.reset()

    def _context(self) -> int:
        return int(getattr(self.model.config, "max_position_embeddings", 0) or 0)

    def _budget(self) -> tuple[int, int]:
        """(max new tokens, room for the prompt) within the model's context."""
        n_ctx, max_new = self._context(), self.sampling.max_new_tokens
        if not n_ctx:
            return max_new, 1 << 30
        max_new = min(max_new, max(1, n_ctx // 2)) if max_new >= n_ctx else max_new
        return max_new, n_ctx - max_new

    def _prompt_ids(self, user: str, room: int) -> list[int]:
        if not self.templated:
            text = (f"{self.system}\n\n" if self.system else "") + self.transcript \
                + ("\n" if self.transcript else "") + user
            ids = list(self.tok(text)["input_ids"])
            return ids[-room:] if len(ids) > room else ids
        from persianllama.sft.template import prompt_ids

        head = [{"role": "system", "content": self.system}] if self.system else []
        history = [*self.messages, {"role": "user", "content": user}]
        self.dropped_turns = 0
        while True:  # the oldest exchanges go first when the conversation outgrows the context
            ids = prompt_ids(self.tok, head + history)
            if len(ids) <= room or len(history) <= 1:
                return ids[-room:] if len(ids) > room else ids
            history = history[2:]
            self.dropped_turns += 1

    def reply(self, user: str, on_text) -> str:
        """Generate the answer to `user`, giving each new piece of text to `on_text` as it comes; the exchange
        joins the conversation."""
        import torch
        from transformers import StoppingCriteria, StoppingCriteriaList, TextIteratorStreamer

        max_new, room = self._budget()
        ids = self._prompt_ids(user, room)
        device = next(self.model.parameters()).device
        input_ids = torch.tensor([ids], dtype=torch.long, device=device)
        stop = self.stop
        stop.clear()

        class _Stop(StoppingCriteria):
            def __call__(self, input_ids, scores, **kwargs):
                return torch.full((input_ids.shape[0],), stop.is_set(), dtype=torch.bool, device=input_ids.device)

        streamer = TextIteratorStreamer(self.tok, skip_prompt=True, skip_special_tokens=True)
        pad = self.tok.pad_token_id if self.tok.pad_token_id is not None else self.tok.eos_token_id
        kwargs: dict[str, Any] = {"input_ids": input_ids, "attention_mask": torch.ones_like(input_ids),
                                  "max_new_tokens": max_new, "streamer": streamer, "pad_token_id": pad,
                                  "stopping_criteria": StoppingCriteriaList([_Stop()])}
        if self.tok.eos_token_id is not None:
            kwargs["eos_token_id"] = self.tok.eos_token_id
        s = self.sampling
        if s.temperature > 0:
            kwargs.update(do_sample=True, temperature=s.temperature, top_p=s.top_p, top_k=0)
        else:
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        failure: list[BaseException] = []

        def generate() -> None:
            try:
                with torch.inference_mode():
                    self.model.generate(**kwargs)
            except BaseException as e:  # noqa: BLE001 - re-raised in the caller's thread
                failure.append(e)
                streamer.end()

        worker = threading.Thread(target=generate, name="chat-generate", daemon=True)
        worker.start()
        parts = []
        try:
            for text in streamer:
                parts.append(text)
                on_text(text)
        except KeyboardInterrupt:  # Ctrl-C: stop this reply, keep what came
            stop.set()
            for text in streamer:
                parts.append(text)
                on_text(text)
        finally:
            worker.join()
        if failure:
            from persianllama.hub import first_line

            raise UserError(f"generation failed: {first_line(failure[0])}")
        answer = "".join(parts)
        if self.templated:
            self.messages += [{"role": "user", "content": user}, {"role": "assistant", "content": answer}]
        else:
            self.transcript += ("\n" if self.transcript else "") + user + answer
        return answer


def interact(session: ChatSession, inp: TextIO, out: TextIO, *, bidi: bool, width: int | None = None,
             prompt: str = ">>> ") -> int:
    """The terminal loop: read a line, run a command or answer it, until /exit or the end of input."""
    display = Display(out, bidi=bidi, width=width)
    tty = getattr(inp, "isatty", lambda: False)()
    if tty:
        try:
            import readline  # noqa: F401 - line editing and history for input()
        except ImportError:
            pass
    mode = "chat template" if session.templated else "no chat template: plain continuation (a base model)"
    display.line(f"persianllama chat ({mode}); {HELP}")
    if session.system:
        display.line(f"system: {session.system}")
    while True:
        try:
            if tty and inp is sys.stdin:
                line = input(prompt)
            else:
                out.write(prompt)
                out.flush()
                line = inp.readline()
                if not line:
                    raise EOFError
                out.write(line if line.endswith("\n") else line + "\n")  # a transcript: the line as read
        except (EOFError, KeyboardInterrupt):
            out.write("\n")
            return 0
        text = line.strip()
        if not text:
            continue
        if text.startswith("/"):
            command, _, arg = text.partition(" ")
            if command in ("/exit", "/quit"):
                return 0
            if command == "/reset":
                session.reset()
                display.line("(conversation reset)")
            elif command == "/system":
                if arg.strip():
                    session.set_system(arg.strip())
                    display.line(f"(system message set; conversation reset) {session.system}")
                else:
                    display.line(f"system: {session.system or '(none)'}")
            elif command == "/help":
                display.line(HELP)
            else:
                display.line(f"unknown command {command}; {HELP}")
            continue
        dropped = session.dropped_turns
        session.reply(text, display.write)
        display.finish()
        if session.stop.is_set():
            display.line("(stopped)")
        if session.dropped_turns > dropped:
            display.line(f"(the conversation outgrew the model's {session._context()}-token context: the oldest "
                         f"{session.dropped_turns} exchange(s) are no longer in it)")


def run_chat(args) -> int:
    """`persianllama chat` (arguments parsed by persianllama.sft.cli)."""
    from persianllama.eval.loading import load_model

    if not args.model:
        raise UserError("--model is required: an HF model folder or hub id (a base with --adapter, or a merged model)")
    if args.prompt is not None and not args.prompt.strip():
        raise UserError("--prompt is empty; give the text to answer, or leave --prompt out for an interactive chat")
    if args.system is not None and not args.system.strip():
        raise UserError("--system is empty; give the system message, or leave --system out")
    interactive = args.prompt is None
    from transformers.utils import logging as hf_logging

    from persianllama.lora.model import quiet_bitsandbytes

    quiet_bitsandbytes()
    hf_logging.disable_progress_bar()  # the terminal is the chat's
    temperature = args.temperature if args.temperature is not None else (0.7 if interactive else 0.0)
    if args.seed is not None:
        import torch

        torch.manual_seed(args.seed)
    loaded = load_model(args.model, adapter=args.adapter, tokenizer=args.tokenizer, load_in_8bit=args.load_in_8bit,
                        dtype=args.dtype, device=args.device)
    tok = loaded.tokenizer
    if tok.eos_token_id is None and tok.pad_token_id is None:
        raise UserError(f"the tokenizer {loaded.info['tokenizer']} has neither an EOS nor a pad token; pass "
                        "--tokenizer with one that has")
    session = ChatSession(loaded.model, tok, Sampling(args.max_new_tokens, temperature, args.top_p),
                          system=args.system)
    if not interactive:
        session.reply(args.prompt, lambda text: (sys.stdout.write(text), sys.stdout.flush()))
        sys.stdout.write("\n")
        sys.stdout.flush()
        return 0
    return interact(session, sys.stdin, sys.stdout, bidi=want_bidi(args.bidi, sys.stdout))
