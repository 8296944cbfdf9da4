"""Settings of `persianllama serve` (flags and ``key=value`` overrides; each rule sits next to its field)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

from persianllama.config import Count, NonEmpty, Positive, Range


@dataclass
class ServeConfig:
    host: Annotated[str, NonEmpty()] = "127.0.0.1"
    """Address to listen on. The default answers this machine only; 0.0.0.0 opens it to the network."""
    port: Annotated[int, Range(0, 65535)] = 7860
    """Port to listen on (0: any free port, printed at start)."""
    max_new_tokens: Annotated[int, Range(1, 8192)] = 512
    """The most tokens one request may generate; a request asking for more is refused (400)."""
    default_new_tokens: Annotated[int, Range(1, 8192)] = 128
    """Tokens generated when a request does not say (capped by max_new_tokens)."""
    max_seconds: Positive = 120.0
    """Wall-clock limit of one generation; it stops there and says so."""
    queue_size: Annotated[int, Range(0, 1000)] = 4
    """Requests that may wait for a model while it generates for another; one more is refused (429)."""
    max_streams: Count = 16
    """Generations admitted at once over all models (running or waiting); one more is refused (503)."""
    max_loaded: Count = 3
    """Models kept in memory; loading one more unloads the least recently used idle one."""
    max_prompt_chars: Count = 20000
    """Longest prompt (or conversation) in characters; a longer one is refused (413)."""
    device: str = ""
    """cpu, cuda, cuda:1 (default: cuda when available)."""
    dtype: Literal["auto", "fp32", "bf16", "fp16"] = "auto"
    """Weights dtype: auto (as saved), fp32, bf16, fp16."""

    def __post_init__(self) -> None:
        self.default_new_tokens = min(self.default_new_tokens, self.max_new_tokens)
