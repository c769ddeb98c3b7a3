"""The shared SSE framing helpers and the incremental parser."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from multiturn.protocols.sse import DONE, SSEEvent, SSEParser, data_event


def parse_all(*chunks: bytes) -> list[SSEEvent]:
    parser = SSEParser()
    events: list[SSEEvent] = []
    for chunk in chunks:
        events += parser.feed(chunk)
    return events + parser.flush()


def test_framing() -> None:
    assert data_event(b'{"a":1}') == b'data: {"a":1}\n\n'
    assert DONE == b"data: [DONE]\n\n"
    assert parse_all(data_event(b'{"a":1}') + DONE) == [SSEEvent(data='{"a":1}'), SSEEvent(data="[DONE]")]


@pytest.mark.parametrize("eol", [b"\n", b"\r", b"\r\n"])
def test_line_endings(eol: bytes) -> None:
    stream = b"event: result" + eol + b"data: x" + eol + eol + b"data: y" + eol + eol
    assert parse_all(stream) == [SSEEvent(data="x", event="result"), SSEEvent(data="y")]


def test_crlf_split_across_reads_is_one_line_end() -> None:
    assert parse_all(b"data: x\r", b"\n\r", b"\ndata: y\r\n\r\n") == [SSEEvent(data="x"), SSEEvent(data="y")]


def test_comments_multiline_data_and_space_rule() -> None:
    stream = b": ping\ndata:a\ndata:  b\ndata\n:HTTP_STATUS/200\n\n"
    assert parse_all(stream) == [SSEEvent(data="a\n b\n")]


def test_comment_only_block_dispatches_nothing() -> None:
    assert parse_all(b": keep-alive\n\n\n\n") == []


def test_dashscope_style_fields() -> None:
    stream = b'id:1\nevent:error\nstatus:400\n:HTTP_STATUS/400\ndata:{"code":"X"}\n\n'
    [event] = parse_all(stream)
    assert event == SSEEvent(data='{"code":"X"}', event="error", id="1", extra=(("status", "400"),))


def test_id_persists_and_retry() -> None:
    events = parse_all(b"id: 7\nretry: 1500\ndata: a\n\ndata: b\n\nretry: x\nid: 8\0\ndata: c\n\n")
    assert [(e.data, e.id, e.retry) for e in events] == [("a", "7", 1500), ("b", "7", None), ("c", "7", None)]


def test_bom_and_utf8_split_inside_a_character() -> None:
    payload = "data: héllo 世界\n\n".encode()
    bom = b"\xef\xbb\xbf"
    assert parse_all(bom[:1], bom[1:] + payload[:9], payload[9:]) == [SSEEvent(data="héllo 世界")]


def test_flush_completes_an_unterminated_event() -> None:
    parser = SSEParser()
    assert parser.feed(b"data: a\n\ndata: b") == [SSEEvent(data="a")]
    assert parser.flush() == [SSEEvent(data="b")]
    assert parser.flush() == []


def test_long_line_in_many_pieces() -> None:
    line = b"x" * 100_000
    chunks = [b"data: "] + [line[i : i + 7] for i in range(0, len(line), 7)] + [b"\n\n"]
    assert parse_all(*chunks) == [SSEEvent(data=line.decode())]


@given(
    st.lists(st.text(alphabet=st.characters(blacklist_characters="\r\n", blacklist_categories=("Cs",))), max_size=5),
    st.lists(st.integers(min_value=1, max_value=9), min_size=1),
    st.sampled_from([b"\n", b"\r", b"\r\n"]),
)
def test_any_split_yields_the_same_events(datas: list[str], cuts: list[int], eol: bytes) -> None:
    stream = b"".join(b"data: " + d.encode() + eol + eol for d in datas)
    chunks, i = [], 0
    for n in cuts * (len(stream) // max(1, sum(cuts)) + 1):
        chunks.append(stream[i : i + n])
        i += n
    chunks.append(stream[i:])
    assert [e.data for e in parse_all(*chunks)] == datas
