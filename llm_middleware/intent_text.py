"""Reading the intent text of a call: a ``prompt`` argument, or chat ``messages``."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any

from .errors import DecorationError

__all__ = ["intent_reader", "last_user_text"]

IntentReader = Callable[[Mapping[str, Any]], str]


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, (list, tuple)):  # content parts: keep the text ones
        texts = []
        for part in content:
            if isinstance(part, str):
                texts.append(part)
            elif isinstance(part, Mapping) and isinstance(part.get("text"), str):
                texts.append(part["text"])
        return "\n".join(texts)
    return ""


def last_user_text(messages: Any) -> str:
    """The text of the last ``user`` message (string content or text parts), else "".
    ``messages`` may be a request body holding them (``{"model": ..., "messages": [...]}``),
    or the ``input`` of a Responses API request (a string, or a list of items)."""
    if isinstance(messages, str):
        return messages
    if isinstance(messages, Mapping):
        messages = messages["messages"] if "messages" in messages else messages.get("input")
        if isinstance(messages, str):
            return messages
    if not isinstance(messages, (list, tuple)):
        return ""
    for message in reversed(messages):
        role = (
            message.get("role") if isinstance(message, Mapping) else getattr(message, "role", None)
        )
        if role == "user":
            content = (
                message.get("content")
                if isinstance(message, Mapping)
                else getattr(message, "content", None)
            )
            return _text_of(content)
    return ""


def _read_argument(name: str) -> IntentReader:
    def read(arguments: Mapping[str, Any]) -> str:
        value = arguments.get(name)
        return value if isinstance(value, str) else last_user_text(value)

    read.__qualname__ = f"read_{name}"
    return read


def intent_reader(
    fn: str,
    signature: inspect.Signature,
    prompt_arg: str | IntentReader | None,
) -> IntentReader:
    """How to read the intent text from a call's bound arguments, decided at decoration
    time. Raises `DecorationError` when no argument holds it."""
    if callable(prompt_arg):
        custom = prompt_arg

        def read_custom(arguments: Mapping[str, Any]) -> str:
            text = custom(arguments)
            return text if isinstance(text, str) else last_user_text(text)

        return read_custom
    params = signature.parameters
    if prompt_arg is not None:
        if prompt_arg not in params:
            raise DecorationError(
                f"{fn}() has no argument {prompt_arg!r} (prompt_arg); "
                f"its arguments are: {', '.join(params) or 'none'}"
            )
        return _read_argument(prompt_arg)
    for name in ("prompt", "messages"):
        if name in params:
            return _read_argument(name)
    example = next((name for name in params if name not in ("self", "cls")), "question")
    raise DecorationError(
        f"cache_by_intent cannot find the prompt of {fn}(): it has no 'prompt' or "
        f"'messages' argument. Name the argument that holds the prompt text, e.g. "
        f"@cache_by_intent(prompt_arg={example!r})"
    )
