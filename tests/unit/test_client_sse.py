"""The client's SSE decoder: the WHATWG event-stream rules, whatever the chunking."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from reactor_jobs.client.sse import SseDecoder, SseMessage

STREAM = (
    b": heartbeat\r\n"
    b'id: 1-2-3\r\nevent: run\r\ndata: {"a":\r\ndata: 1}\r\n\r\n'
    b"data:no space\n\n"
    b"event: log\rid: 4-5-6\rdata: x\r\r"
    b"id: 7-8-9\nevent: run\n\n"  # no data: nothing dispatched, but the id is kept
    b"retry: 2500\ndata: last\n\n"
)
EXPECTED = [
    SseMessage(event="run", data='{"a":\n1}', id="1-2-3"),
    SseMessage(event="message", data="no space", id="1-2-3"),
    SseMessage(event="log", data="x", id="4-5-6"),
    SseMessage(event="message", data="last", id="7-8-9"),
]


def test_a_stream_decodes_to_its_messages() -> None:
    decoder = SseDecoder()
    assert decoder.feed(STREAM) == EXPECTED
    assert decoder.retry_ms == 2500 and decoder.last_id == "7-8-9"


@given(st.lists(st.integers(min_value=0, max_value=len(STREAM)), max_size=12))
def test_any_chunking_gives_the_same_messages(cuts: list[int]) -> None:
    decoder, out, start = SseDecoder(), [], 0
    for cut in sorted(cuts):
        out += decoder.feed(STREAM[start:cut])
        start = cut
    out += decoder.feed(STREAM[start:])
    assert out == EXPECTED


def test_an_incomplete_message_waits_for_its_blank_line() -> None:
    decoder = SseDecoder()
    assert decoder.feed(b"event: run\ndata: 1\n") == []
    assert decoder.feed(b"\n") == [SseMessage(event="run", data="1", id=None)]
