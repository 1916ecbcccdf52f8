"""Session headers set on every HTTP request: event hooks for ``httpx`` and ``httpx2`` clients.

Headers computed once (``OpenAI(default_headers=session.get_headers())``) freeze step 0 into
every request. These hooks rewrite the session headers of each request as it leaves, from the
session in force, and read the proxy's answer (trace id, next step) back into the tracker.
Neither ``httpx`` nor ``httpx2`` is imported here: both expose ``request.headers``,
``request.extensions``, ``response.headers`` and ``client.event_hooks``, which is all we use.
"""

from __future__ import annotations

import importlib
import inspect
import re
from collections.abc import Callable
from typing import Any, Literal, TypeVar

from ._context import current_session, current_step
from ._dialects import BAGGAGE_HEADER, merge_baggage, replaced_header_names
from ._errors import InvalidHeaderError
from ._headers import response_header_names
from ._health import count, record_fault, warn_once
from ._tracker import SessionTracker

__all__ = [
    "instrument_http_client",
    "session_event_hooks",
    "session_http_client",
    "uninstrument_http_client",
]

EventHooks = dict[str, list[Callable[..., Any]]]
T = TypeVar("T")

# The request extension naming the tracker a request was labelled for. httpx copies a
# request's extensions into its redirects, so a redirect keeps its step instead of taking one.
_LABEL = "agentsession.tracker"
_NEXT_STEP = re.compile(r"[0-9]{1,18}")
# LLM calls are POSTs. A model list or a file download is no step: a proxy records none, so
# taking an index for it would leave a gap in the session.
_NOT_CALLS = frozenset({"GET", "HEAD", "OPTIONS", "DELETE"})
# Where the frameworks keep their clients: openai (_client), LangChain ChatOpenAI
# (root_client, root_async_client), LlamaIndex OpenAI/OpenAILike (_client, _aclient,
# _http_client, _async_http_client), AutoGen OpenAIChatCompletionClient (_client).
_CLIENT_ATTRIBUTES = (
    "_client",
    "_aclient",
    "root_client",
    "root_async_client",
    "_http_client",
    "_async_http_client",
)
_SEARCH_DEPTH = 3


def label_request(request: Any, bound: SessionTracker | None) -> None:
    """Replace the session headers of ``request`` with the current ones (request hook body).

    The session is ``bound`` or else the one in force. A step open for it (``with
    tracker.begin_step()``) lends its index, state and parent; otherwise the request takes
    the next index, as the call a proxy will record. GET, HEAD, OPTIONS and DELETE requests
    are not LLM calls and are left alone.
    """
    tracker = bound if bound is not None else current_session()
    if tracker is None or request.method in _NOT_CALLS:
        return
    if request.extensions.get(_LABEL) is tracker:
        return
    step = current_step()
    if step is not None and step.session_id == tracker.session_id:
        ours = tracker.get_headers(step)
    else:
        ours = tracker.get_headers(step_index=tracker.allocate_step_index())
    headers = request.headers
    for name in replaced_header_names(tracker.header_prefix, tracker.header_dialects):
        if name in headers:
            del headers[name]
    if "baggage" in tracker.header_dialects:
        ours_baggage = ours.pop(BAGGAGE_HEADER, None)
        baggage = merge_baggage(headers.get(BAGGAGE_HEADER), ours_baggage, tracker.session_id)
        if BAGGAGE_HEADER in headers:
            del headers[BAGGAGE_HEADER]
        if baggage is not None:
            headers[BAGGAGE_HEADER] = baggage
    headers.update(ours)
    request.extensions[_LABEL] = tracker


def read_response(response: Any) -> None:
    """Take the proxy's trace id and next step index back into the tracker (response hook body)."""
    tracker = response.request.extensions.get(_LABEL)
    if not isinstance(tracker, SessionTracker):
        return
    _, trace_name, next_name = response_header_names(tracker.header_prefix)
    trace_id = response.headers.get(trace_name)
    if trace_id is None:
        return
    raw_next = (response.headers.get(next_name) or "").strip()
    next_step = int(raw_next) if _NEXT_STEP.fullmatch(raw_next) else None
    try:
        tracker.observe_trace_id(trace_id.strip(), next_step)
    except InvalidHeaderError as exc:
        count("http.bad_response_headers")
        warn_once(
            f"bad-response-header:{trace_name}",
            "agentsession: ignoring a malformed %s response header (%s)",
            trace_name,
            exc,
        )


class _SessionHook:
    """Base of our event hooks: recognised (and replaced, removed) by instrument_http_client."""

    def __init__(self, tracker: SessionTracker | None) -> None:
        self.tracker = tracker

    def _request(self, request: Any) -> None:
        try:
            label_request(request, self.tracker)
        except Exception as exc:  # the request goes out unlabelled, never broken by us
            record_fault("http.request_hook", exc)

    def _response(self, response: Any) -> None:
        try:
            read_response(response)
        except Exception as exc:
            record_fault("http.response_hook", exc)


class _RequestHook(_SessionHook):
    def __call__(self, request: Any) -> None:
        self._request(request)


class _ResponseHook(_SessionHook):
    def __call__(self, response: Any) -> None:
        self._response(response)


class _AsyncRequestHook(_SessionHook):
    async def __call__(self, request: Any) -> None:
        self._request(request)


class _AsyncResponseHook(_SessionHook):
    async def __call__(self, response: Any) -> None:
        self._response(response)


def session_event_hooks(
    tracker: SessionTracker | None = None, *, asynchronous: bool = False
) -> EventHooks:
    """Event hooks that set the session headers on every request of an httpx/httpx2 client.

    ``httpx.Client(event_hooks=session_event_hooks())``, or ``asynchronous=True`` for an
    ``AsyncClient``. With no ``tracker`` each request takes the session in force
    (``using_session``); requests outside any session are left alone.
    """
    if asynchronous:
        return {"request": [_AsyncRequestHook(tracker)], "response": [_AsyncResponseHook(tracker)]}
    return {"request": [_RequestHook(tracker)], "response": [_ResponseHook(tracker)]}


def session_http_client(
    tracker: SessionTracker | None = None,
    *,
    asynchronous: bool = False,
    flavor: Literal["httpx", "httpx2"] = "httpx",
    **client_kwargs: Any,
) -> Any:
    """A new ``httpx`` (or ``httpx2``) ``Client``/``AsyncClient`` with the session hooks.

    For ``OpenAI(http_client=...)`` and the frameworks that take one: openai 3.x uses
    ``flavor="httpx2"``, openai 2.x and most other libraries ``"httpx"``. Other keyword
    arguments go to the client; hooks given in ``event_hooks`` run before ours.
    """
    if flavor not in ("httpx", "httpx2"):
        raise ValueError(f"flavor must be 'httpx' or 'httpx2', got {flavor!r}")
    module = importlib.import_module(flavor)
    given = client_kwargs.pop("event_hooks", None) or {}
    ours = session_event_hooks(tracker, asynchronous=asynchronous)
    hooks = {kind: [*given.get(kind, ()), *ours[kind]] for kind in ("request", "response")}
    client_class = module.AsyncClient if asynchronous else module.Client
    return client_class(event_hooks=hooks, **client_kwargs)


def instrument_http_client(client: T, tracker: SessionTracker | None = None) -> T:
    """Add the session hooks to the httpx/httpx2 clients inside ``client``; return ``client``.

    ``client`` is an httpx/httpx2 client, ``openai.OpenAI``/``AsyncOpenAI``, LangChain's
    ``ChatOpenAI``, LlamaIndex's ``OpenAI``/``OpenAILike`` or AutoGen's
    ``OpenAIChatCompletionClient``. Idempotent: a second call replaces our hooks (e.g. to bind
    another tracker). Raises TypeError when no client is found, e.g. LlamaIndex with
    ``reuse_client=False`` builds one per call: pass ``http_client=session_http_client()``.

    LangChain shares one default client among all ``ChatOpenAI`` with the same base URL and
    timeout, so instrumenting one instruments them all: with no ``tracker`` that is harmless
    (each request takes the session in force); to bind a tracker to one model only, give that
    model its own ``http_client=session_http_client(tracker)``.
    """
    for http_client in _http_clients_in(client):
        asynchronous = inspect.iscoroutinefunction(type(http_client).send)
        ours = session_event_hooks(tracker, asynchronous=asynchronous)
        _replace_hooks(http_client, ours)
    return client


def uninstrument_http_client(client: T) -> T:
    """Remove the session hooks that :func:`instrument_http_client` added; return ``client``."""
    for http_client in _http_clients_in(client):
        _replace_hooks(http_client, {"request": [], "response": []})
    return client


def _replace_hooks(http_client: Any, ours: EventHooks) -> None:
    hooks = http_client.event_hooks
    http_client.event_hooks = {
        kind: [
            *(hook for hook in hooks.get(kind, ()) if not isinstance(hook, _SessionHook)),
            *ours[kind],
        ]
        for kind in ("request", "response")
    }


def _is_http_client(value: Any) -> bool:
    return (
        isinstance(getattr(value, "event_hooks", None), dict)
        and callable(getattr(value, "send", None))
        and callable(getattr(value, "build_request", None))
    )


def _http_clients_in(client: Any) -> list[Any]:
    _build_lazy_clients(client)
    found: dict[int, Any] = {}
    _search(client, found, set(), 0)
    if not found:
        raise TypeError(
            f"found no httpx or httpx2 client in {type(client).__name__} (looked in "
            f"{', '.join(_CLIENT_ATTRIBUTES)}); build it with "
            "http_client=agentsession.session_http_client(...) instead"
        )
    return list(found.values())


def _search(value: Any, found: dict[int, Any], seen: set[int], depth: int) -> None:
    if id(value) in seen:
        return
    seen.add(id(value))
    if _is_http_client(value):
        found[id(value)] = value
        return
    if depth >= _SEARCH_DEPTH:
        return
    for name in _CLIENT_ATTRIBUTES:
        try:
            inner = getattr(value, name, None)
        except Exception:  # a property that raises (e.g. a pydantic private attribute unset)
            continue
        if inner is not None:
            _search(inner, found, seen, depth + 1)


def _build_lazy_clients(client: Any) -> None:
    # LlamaIndex's OpenAI LLMs build their openai clients on first use and keep them when
    # reuse_client is true: build them now, so that there is a client to instrument.
    if getattr(client, "reuse_client", None) is not True:
        return
    for factory in ("_get_client", "_get_aclient"):
        build = getattr(client, factory, None)
        if callable(build):
            build()
