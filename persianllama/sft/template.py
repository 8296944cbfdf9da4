"""The chat template: kept when the tokenizer has one, otherwise the toolkit's documented default; and a
conversation's training tokens, which are exactly ``apply_chat_template(messages)``.

The default template needs no new tokens (any base vocabulary can learn it, nothing to resize), uses Persian
role headers, and marks every assistant reply with ``{% generation %}`` so transformers returns the
assistant-token mask itself::

    <s>### سیستم:
    {system}

    ### کاربر:
    {user}

    ### دستیار:
    {assistant}</s>

    ### کاربر:
    ...

``apply_chat_template(messages[:k], add_generation_prompt=True)`` ends with ``### دستیار:\\n``: the prompt the
model was trained to answer, followed by the reply and EOS, where generation stops.
"""

from __future__ import annotations

from pathlib import Path

from persianllama.errors import UserError

SYSTEM, USER, ASSISTANT = "### سیستم:", "### کاربر:", "### دستیار:"

# Every newline is a string expression: HF renders templates with trim_blocks, which would eat a newline
# written right after a block tag such as {% endgeneration %}.
DEFAULT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{% if message['role'] == 'system' %}{{ '" + SYSTEM + "\\n' + message['content'] + '\\n\\n' }}"
    "{% elif message['role'] == 'user' %}{{ '" + USER + "\\n' + message['content'] + '\\n\\n' }}"
    "{% elif message['role'] == 'assistant' %}{{ '" + ASSISTANT + "\\n' }}"
    "{% generation %}{{ message['content'] + eos_token }}{% endgeneration %}{{ '\\n\\n' }}"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '" + ASSISTANT + "\\n' }}{% endif %}"
)


def ensure_template(tokenizer, template_file: str | None = None) -> str:
    """Give `tokenizer` a chat template (the file's, else its own, else the default); return where it came from."""
    if template_file:
        path = Path(template_file)
        try:
            tokenizer.chat_template = path.read_text(encoding="utf-8")
        except OSError as e:
            raise UserError(f"data.chat_template={template_file}: {e.strerror or e}") from None
        return f"file {template_file}"
    if getattr(tokenizer, "chat_template", None):
        return "the tokenizer's own"
    if tokenizer.eos_token is None:
        raise UserError("the tokenizer has no EOS token; the default chat template ends every reply with it")
    tokenizer.chat_template = DEFAULT_TEMPLATE
    return "the toolkit's default (Persian role headers, no new tokens)"


def _ids(tokenizer, messages, **kw) -> list[int]:
    out = tokenizer.apply_chat_template(messages, tokenize=True, return_dict=True, **kw)
    return list(out["input_ids"])


def encode(tokenizer, messages: list[dict[str, str]], *, train_on: str = "assistant") -> tuple[list[int], list[int]]:
    """(input ids, labels) of a conversation: the ids are ``apply_chat_template(messages)``; labels copy the ids
    on assistant tokens (every assistant turn) and are -100 elsewhere (or copy every id with train_on=all).

    The assistant mask comes from the template's ``{% generation %}`` markers; a template without them (most
    hub models') is handled by rendering each prefix and marking what each assistant turn adds."""
    if train_on == "all":
        ids = _ids(tokenizer, messages)
        return ids, list(ids)
    tpl = tokenizer.chat_template or ""
    if "{% generation %}" in tpl or "{%- generation %}" in tpl:
        out = tokenizer.apply_chat_template(messages, tokenize=True, return_dict=True,
                                            return_assistant_tokens_mask=True)
        ids = list(out["input_ids"])
        mask = list(out["assistant_masks"])
    else:
        ids = _ids(tokenizer, messages)
        mask = [0] * len(ids)
        for i, m in enumerate(messages):
            if m["role"] != "assistant":
                continue
            prompt = _ids(tokenizer, messages[:i], add_generation_prompt=True)
            upto = _ids(tokenizer, messages[: i + 1])
            if upto[: len(prompt)] != prompt or ids[: len(upto)] != upto:
                raise UserError("the chat template renders a conversation's prefix differently from the conversation "
                                "(the assistant tokens cannot be located); give data.chat_template a template with "
                                "{% generation %} markers")
            end = len(upto)
            eos = tokenizer.eos_token_id
            span = upto[len(prompt):]
            if eos in span:  # the reply ends at its EOS; separators after it are the template's, not the reply's
                end = len(prompt) + len(span) - span[::-1].index(eos)
            mask[len(prompt):end] = [1] * (end - len(prompt))
    if not any(mask):
        raise UserError("the chat template marks no assistant token in a conversation; check data.chat_template")
    return ids, [t if m else -100 for t, m in zip(ids, mask)]


def prompt_ids(tokenizer, messages: list[dict[str, str]]) -> list[int]:
    """The generation prompt for the next assistant reply: what `persianllama chat` and eval feed the model."""
    return _ids(tokenizer, messages, add_generation_prompt=True)
