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
