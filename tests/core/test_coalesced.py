"""The frames the front door and the bento exchange coalesced single requests in."""

import pytest

from tradeops_assets.core import coalesced
from tradeops_assets.core.errors import RequestError


def test_requests_and_answers_come_back_as_they_went():
    items = [
        (b"Bearer a", b"application/json", b'{"symbol":"X"}'),
        (b"", b"", b""),  # no token, no type, no body: the bento refuses it, not the frame
        (b"Bearer b", b"text/plain; charset=utf-8", bytes(range(256)) * 70),
    ]
    assert coalesced.read_requests(coalesced.write_requests(items)) == items
    answers = [
        (200, [(b"content-type", b"application/json")], b'{"target_position":0.5}'),
        (401, [(b"content-type", b"application/json"), (b"www-authenticate", b"Bearer x")], b"{}"),
        (422, [], b""),
    ]
    assert coalesced.read_answers(coalesced.write_answers(answers), 3) == answers


@pytest.mark.parametrize(
    ("frames", "field", "reason"),
    [
        (coalesced.write_requests([(b"a", b"b", b"c")])[:-1], "[0]", "past the body's end"),
        (coalesced.write_requests([(b"a", b"b", b"c")]) + b"\0\0", "[1]", "cut off"),
        (coalesced.write_requests([(b"", b"", b"")] * 3), "body", "at most 2"),
        (b"\xff" * 12, "[0]", "past the body's end"),
    ],
    ids=["overrun", "cut-off", "too-many", "huge-lengths"],
)
def test_bad_request_frames_are_refused_naming_the_request(frames, field, reason):
    with pytest.raises(RequestError) as refused:
        coalesced.read_requests(frames, max_items=2)
    assert refused.value.field == field
    assert reason in refused.value.reason


WHOLE = coalesced.write_answers([(204, [], b""), (200, [(b"a", b"b")], b"xyz")])


@pytest.mark.parametrize(
    ("frames", "expected", "message"),
    [
        (WHOLE[:-1], 2, "answer 1 runs past"),
        (WHOLE + b"\0\0\0\0", 2, "answer 2's frame header is cut off"),
        (WHOLE, 3, "2 answers for 3"),
        (WHOLE, 1, "2 answers for 1"),
    ],
    ids=["short-body", "trailing-bytes", "too-few", "too-many"],
)
def test_answers_that_are_not_whole_frames_are_an_error(frames, expected, message):
    with pytest.raises(ValueError, match=message):
        coalesced.read_answers(frames, expected)
