from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulator.errors import TransportError
from simulator.transports.sse import SSEParser


def test_events_split_anywhere_are_reassembled() -> None:
    stream = (
        b'data: {"a":1}\n\ndata: line1\ndata: line2\n\n: comment\n\n'
        b"event: x\r\ndata: [DONE]\r\n\r\n"
    )
    for cut in range(1, len(stream)):
        p = SSEParser()
        evs = p.feed(stream[:cut]) + p.feed(stream[cut:])
        assert [e.data for e in evs] == ['{"a":1}', "line1\nline2", "[DONE]"]
        assert evs[2].event == "x"


def test_trailing_event_without_blank_line_is_delivered_on_close() -> None:
    p = SSEParser()
    assert p.feed(b"data: last") == []
    assert [e.data for e in p.close()] == ["last"]


def test_oversized_event_is_refused() -> None:
    p = SSEParser(max_event_bytes=1000)
    with pytest.raises(TransportError) as exc:
        p.feed(b"data: " + b"x" * 2000)
    assert exc.value.category == "oversized"


def test_invalid_utf8_is_a_protocol_error() -> None:
    with pytest.raises(TransportError) as exc:
        SSEParser().feed(b"data: \xff\xfe\n\n")
    assert exc.value.category == "protocol_error"


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=512), st.integers(min_value=1, max_value=64))
def test_any_bytes_give_events_or_a_transport_error(data: bytes, step: int) -> None:
    p = SSEParser(max_event_bytes=256)
    try:
        for i in range(0, len(data), step):
            for ev in p.feed(data[i : i + step]):
                assert isinstance(ev.data, str)
        p.close()
    except TransportError as exc:
        assert exc.category in {"oversized", "protocol_error"}


_LINES = st.sampled_from([b"data: x", b"data: {\"a\": 1}", b"data:y", b"data: ", b": c",
                          b"event: e", b"id: 7", b"", b"data: [DONE]", b"retry: 3"])


@settings(max_examples=300, deadline=None)
@given(st.lists(_LINES, max_size=30), st.lists(st.integers(0, 200), max_size=6))
def test_the_data_fast_path_reads_what_the_full_parser_reads(lines: list[bytes],
                                                             cuts: list[int]) -> None:
    # A chat stream reads only each event's data, through a one-pass split for reads that
    # hold whole events: any stream, cut anywhere, gives the same data as the parser's events.
    stream = b"".join(line + b"\n" for line in lines) + b"\n"
    bounds = sorted({0, len(stream), *(c % (len(stream) + 1) for c in cuts)})
    full, fast = SSEParser(), SSEParser()
    want: list[str] = []
    got: list[str] = []
    for a, b in zip(bounds, bounds[1:], strict=False):
        want += [e.data for e in full.feed(stream[a:b])]
        got += fast.feed_data(stream[a:b])
    assert got == want
