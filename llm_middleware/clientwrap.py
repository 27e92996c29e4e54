"""Shadowing one method of an SDK client with a cached one (OpenAI, Anthropic).

The cached call is ``fn(endpoint, request, transport)``: the endpoint (the
client's base URL, so two servers never share answers) and every request field
are in the key -- including fields never heard of -- except the transport-only
ones (``timeout``, ``extra_headers``) and those named by ``ignore``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from .chain import Step
from .decorator import decorate
from .flow import ResultAdapter
from .options import CacheOptions

__all__ = ["HELPER_HEADER", "TRANSPORT_OPTIONS", "shadow_method"]

HELPER_HEADER = "X-Stainless-Helper-Method"
"""The header the SDKs' helpers mark their calls with."""

TRANSPORT_OPTIONS = frozenset({"timeout", "extra_headers"})
"""Request options that change how a request travels, never what it answers."""


def _helper_call(kwargs: Mapping[str, Any]) -> bool:
    """The SDKs' own helpers (raw responses, ``.stream()``) mark their calls with
    ``X-Stainless-*`` headers and need the SDK's own return types: not cached."""
    headers = kwargs.get("extra_headers") or {}
    return any(
        str(name).lower() in ("x-stainless-raw-response", "x-stainless-helper-method")
        for name in headers
    )


def shadow_method(
    resource: Any,
    *,
    api: tuple[str, str],
    endpoint: str,
    is_async: bool,
    absent: tuple[type, ...],
    adapter: ResultAdapter | None,
    options: dict[str, Any],
    steps: Sequence[Step] = (),
) -> Callable[..., Any]:
    """Replace ``resource.create`` (on this resource object only) with a cached call
    named ``api`` (module, qualified name) in keys and trace events; returns the
    cached ``fn(endpoint, request, transport)``. ``absent``: the SDK's "not given"
    types, left out of the request as if not passed."""
    options = dict(options)
    # named after the API it stands for: the client method it captures is not its identity
    options.setdefault("name", ".".join(api))
    ignore = frozenset(options.pop("ignore", ()))
    options["steps"] = (*steps, *options.get("steps", ()))
    original = resource.create

    def split(kwargs: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        request, transport = {}, {}
        for name, value in kwargs.items():
            if isinstance(value, absent):
                continue  # the SDK's "absent": same request as leaving it out
            if name in TRANSPORT_OPTIONS or name in ignore:
                transport[name] = value
            else:
                request[name] = value
        return request, transport

    # the intent is read by argument name, not by a callable, so that a repeated
    # request's decision is remembered (see llm_middleware/memo.py)
    settings = CacheOptions.of(prompt_arg="request", ignore=("transport",), **options)
    cached: Any
    if is_async:

        async def acreate(endpoint: str, request: dict[str, Any], transport: Any) -> Any:
            return await original(**request, **transport)

        cached = decorate(_named(acreate, api), adapter=adapter, options=settings)

        async def create_async(**kwargs: Any) -> Any:
            if _helper_call(kwargs):
                return await original(**kwargs)
            request, transport = split(kwargs)
            return await cached(endpoint, request, transport)

        setattr(resource, "create", create_async)  # noqa: B010 - shadows the method
    else:

        def create(endpoint: str, request: dict[str, Any], transport: Any) -> Any:
            return original(**request, **transport)

        cached = decorate(_named(create, api), adapter=adapter, options=settings)

        def create_sync(**kwargs: Any) -> Any:
            if _helper_call(kwargs):
                return original(**kwargs)
            request, transport = split(kwargs)
            return cached(endpoint, request, transport)

        setattr(resource, "create", create_sync)  # noqa: B010 - shadows the method
    return cached  # type: ignore[no-any-return]


def _named(func: Any, api: tuple[str, str]) -> Any:
    """Name the cached call after the API it stands for, in keys and trace events."""
    func.__module__ = api[0]
    func.__qualname__ = func.__name__ = api[1]
    return func
