"""The proxy's pure parts: reading usage from bodies and streams, header filtering, URLs."""

from __future__ import annotations

import itertools
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agentsession.proxy._recorder import header_safe
from agentsession.proxy._upstream import (
    UpstreamURL,
    forwarded_path,
    request_headers_for_upstream,
    response_headers_for_client,
)
from agentsession.proxy._usage import StreamScanner, outcome_from_body, tokens_from_usage

CHAT_STREAM = (
    b"".join(
        f"data: {json.dumps(event)}\n\n".encode()
        for event in [
            {"choices": [{"index": 0, "delta": {"role": "assistant"}}], "model": "gpt-4o-2024"},
            {"choices": [{"index": 0, "delta": {"content": "Hel"}}]},
            {"choices": [{"index": 0, "delta": {"content": "lo \u00e9"}}]},
            {
                "choices": [],
                "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
            },
        ]
    )
    + b"data: [DONE]\n\n"
)

RESPONSES_STREAM = (
    b"event: response.output_text.delta\n"
    b'data: {"type":"response.output_text.delta","delta":"Hi"}\n\n'
    b"event: response.completed\r\n"
    b'data: {"type":"response.completed","response":{"object":"response",'
    b'"usage":{"input_tokens":4,"output_tokens":1,"total_tokens":5}}}\r\n\r\n'
)


@pytest.mark.parametrize(
    ("usage", "tokens"),
    [
        ({"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}, (3, 2, 5)),
        ({"prompt_tokens": 3, "total_tokens": 3}, (3, None, 3)),
        ({"input_tokens": 4, "output_tokens": 1, "total_tokens": 5}, (4, 1, 5)),
        ({"prompt_tokens": "3", "completion_tokens": True}, None),
        (None, None),
        ([1, 2], None),
    ],
    ids=["chat", "embeddings", "responses", "not-numbers", "none", "not-an-object"],
)
def test_tokens_are_read_from_every_usage_shape(usage: object, tokens: object) -> None:
    """Chat, embeddings and Responses usage give (input, output, total); junk gives None."""
    assert tokens_from_usage(usage) == tokens


@given(st.lists(st.integers(min_value=0, max_value=len(CHAT_STREAM)), max_size=6))
def test_a_stream_is_read_the_same_however_its_bytes_are_split(cuts: list[int]) -> None:
    """Lines split across chunks at any byte still give the usage, model and whole text."""
    scanner = StreamScanner(capture=True)
    bounds = [0, *sorted(cuts), len(CHAT_STREAM)]
    for start, end in itertools.pairwise(bounds):
        scanner.feed(CHAT_STREAM[start:end])
    outcome = scanner.finish()
    assert (outcome.input_tokens, outcome.output_tokens, outcome.total_tokens) == (3, 2, 5)
    assert outcome.output == "Hello \u00e9"
    assert outcome.model == "gpt-4o-2024"
    assert outcome.error is None


def test_a_responses_api_stream_gives_its_usage_and_text() -> None:
    """response.completed carries the usage; output_text deltas the text (CRLF lines too)."""
    scanner = StreamScanner(capture=True)
    scanner.feed(RESPONSES_STREAM)
    outcome = scanner.finish()
    assert (outcome.input_tokens, outcome.output_tokens) == (4, 1)
    assert outcome.output == "Hi"


def test_an_error_event_in_a_stream_fails_the_outcome() -> None:
    """An OpenAI error event mid-stream becomes the outcome's error."""
    scanner = StreamScanner(capture=False)
    scanner.feed(b'data: {"error": {"message": "overloaded", "type": "server_error"}}\n\n')
    assert scanner.finish().error == "upstream stream: overloaded"


def test_without_capture_only_usage_events_are_read() -> None:
    """Capture off: no text is kept, and the usage of the final chunk is still found."""
    scanner = StreamScanner(capture=False)
    scanner.feed(CHAT_STREAM)
    outcome = scanner.finish()
    assert outcome.output is None
    assert outcome.total_tokens == 5


def test_captured_stream_text_is_capped() -> None:
    """The joined text stops at the capture limit however long the stream runs."""
    scanner = StreamScanner(capture=True, capture_limit=10)
    for _ in range(50):
        scanner.feed(b'data: {"choices":[{"delta":{"content":"abcd"}}]}\n\n')
    assert scanner.finish().output == "abcdabcdab"


def test_an_oversized_line_is_skipped_and_the_next_ones_read() -> None:
    """A data line over 1 MB is passed by without being held; the usage after it is found."""
    scanner = StreamScanner(capture=False)
    scanner.feed(b'data: {"usage": "' + b"x" * (1 << 20))
    scanner.feed(b"y" * 1000)
    scanner.feed(b'"}\ndata: {"usage": {"prompt_tokens": 1, "total_tokens": 1}}\n\n')
    assert scanner.finish().total_tokens == 1


def test_an_error_body_gives_the_upstreams_message() -> None:
    """A 4xx/5xx body in OpenAI's shape gives its message; any other body its first bytes."""
    openai_shaped = json.dumps({"error": {"message": "bad key", "type": "auth"}}).encode()
    assert outcome_from_body(openai_shaped, 401, capture=True).error == "upstream HTTP 401: bad key"
    assert (
        outcome_from_body(b"<html>oops", 502, capture=True).error == "upstream HTTP 502: <html>oops"
    )
    assert outcome_from_body(b"", 500, capture=True).error == "upstream HTTP 500: (empty body)"


def test_a_body_that_is_not_json_records_no_tokens() -> None:
    """A 200 answer that is not JSON is no fault: the outcome simply knows nothing."""
    outcome = outcome_from_body(b"not json", 200, capture=True)
    assert (outcome.error, outcome.total_tokens, outcome.output) == (None, None, None)


def test_only_end_to_end_headers_go_upstream() -> None:
    """Our prefix, hop-by-hop headers, those Connection names and Host never leave."""
    headers = [
        (b"authorization", b"Bearer sk-1"),
        (b"x-traceforge-session-id", b"s"),
        (b"X-TraceForge-State", b"{}"),
        (b"x-custom-session-id", b"c"),
        (b"connection", b"keep-alive, X-Private"),
        (b"x-private", b"1"),
        (b"keep-alive", b"timeout=5"),
        (b"host", b"127.0.0.1:8787"),
        (b"content-length", b"12"),
        (b"openai-organization", b"org-1"),
    ]
    kept = request_headers_for_upstream(headers, (b"x-traceforge-", b"x-custom-"))
    assert kept == [(b"authorization", b"Bearer sk-1"), (b"openai-organization", b"org-1")]


def test_the_client_gets_the_upstreams_headers_but_not_its_framing() -> None:
    """Rate-limit and request-id headers pass back; encoding and length are the proxy's."""
    headers = [
        (b"content-type", b"application/json"),
        (b"x-request-id", b"req-1"),
        (b"content-encoding", b"gzip"),
        (b"content-length", b"99"),
        (b"transfer-encoding", b"chunked"),
        (b"x-ratelimit-remaining-requests", b"42"),
    ]
    assert response_headers_for_client(headers) == [
        (b"content-type", b"application/json"),
        (b"x-request-id", b"req-1"),
        (b"x-ratelimit-remaining-requests", b"42"),
    ]


@pytest.mark.parametrize(
    ("upstream", "rest", "query", "url"),
    [
        (
            "http://127.0.0.1:9000/v1",
            "chat/completions",
            b"",
            "http://127.0.0.1:9000/v1/chat/completions",
        ),
        (
            "http://127.0.0.1:9000/v1/",
            "models",
            b"limit=2",
            "http://127.0.0.1:9000/v1/models?limit=2",
        ),
        (
            "https://gateway.test/openai",
            "embeddings",
            b"",
            "https://gateway.test/openai/embeddings",
        ),
        ("http://127.0.0.1:9000", "responses", b"", "http://127.0.0.1:9000/responses"),
    ],
)
def test_v1_rest_maps_to_the_upstream_base_url_plus_rest(
    upstream: str, rest: str, query: bytes, url: str
) -> None:
    """/v1/<rest> goes to <upstream>/<rest>, as an OpenAI client with that base_url would."""
    assert UpstreamURL(upstream).for_path(rest, query) == url


@pytest.mark.parametrize(
    ("rest", "raw_path", "path"),
    [
        ("models?a=b", b"/v1/models%3Fa=b", "models%3Fa=b"),
        ("models/org/name", b"/v1/models/org%2Fname", "models/org%2Fname"),
        ("v1/x", b"/mounted/v1/v1/x", "v1/x"),  # under a Mount: the prefix is not forwarded
        ("chat/completions", b"/%76%31/chat/completions", "chat/completions"),
        ("", b"/v1/", ""),
        ("models?a=b#c d", None, "models%3Fa=b%23c%20d"),  # no raw path: encoded again
        ("models?a", b"/v1/other", "models%3Fa"),  # a raw path that does not match
    ],
)
def test_the_forwarded_path_keeps_the_clients_encoding(
    rest: str, raw_path: bytes | None, path: str
) -> None:
    """The raw path's end that decodes to the matched rest is forwarded as is."""
    assert forwarded_path(rest, raw_path) == path


@pytest.mark.parametrize("rest", ["..", ".", "../admin", "a/../../b", "a/./b", "a/.."])
def test_a_dot_segment_cannot_be_forwarded(rest: str) -> None:
    """A "." or ".." segment would leave the upstream's base path: ValueError."""
    with pytest.raises(ValueError, match=r"must not have a '\.' or '\.\.' segment"):
        forwarded_path(rest, rest.encode())


@pytest.mark.parametrize(
    "upstream", ["127.0.0.1:9000", "ftp://h/v1", "http:///v1", "http://h/v1#x"]
)
def test_an_upstream_that_is_no_http_base_url_is_refused(upstream: str) -> None:
    """Scheme, host and no query or fragment: anything else is a ValueError naming the value."""
    with pytest.raises(ValueError, match="upstream"):
        UpstreamURL(upstream)


@given(st.text(max_size=3_000))
def test_a_warning_is_always_a_safe_bounded_header_value(text: str) -> None:
    """Whatever the problem text, the warning is printable ASCII of at most 1,000 chars."""
    value = header_safe(text)
    assert len(value) <= 1_000
    assert all(" " <= c <= "~" for c in value)
