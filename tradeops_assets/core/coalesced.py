"""Single ``/predict`` requests of many clients, carried to the bento as one exchange.

The front door hands the bento the single requests that reach it in one event-loop
turn as one ``POST /predict_many``: each keeps its own bearer token, content type
and body, and comes back with its own status, headers and body, exactly what it
would have got from ``/predict`` alone. Most of what a request costs the bento is
HTTP, not deciding: ``/livez``, which decides nothing, peaks near 2,300 a second
on one core, and ``/predict`` near 3,000 only because concurrent ones are decided
together (``decide_soon``). Coalesced, the HTTP is paid once a turn, and so are the
door's own write to the bento and read of its answer.

The frames are length-prefixed, so neither side parses what it only carries.
A request: ``!III`` (token, content type and body lengths), then those bytes.
An answer: ``!HII`` (status, headers and body lengths), then the headers as
``name: value\\r\\n`` lines, then the body.
"""

import struct

from tradeops_assets.core.errors import RequestError

MEDIA_TYPE = "application/vnd.tradeops.coalesced"
PATH = "/predict_many"
MAX_ITEMS = 256
"""The most single requests one exchange carries (the door's default in-flight cap)."""
_REQUEST = struct.Struct("!III")
_ANSWER = struct.Struct("!HII")

Item = tuple[bytes, bytes, bytes]
"""A single request: its Authorization value, its Content-Type value, its body."""
Answer = tuple[int, list[tuple[bytes, bytes]], bytes]
"""A single request's answer: status, headers, body."""


def write_requests(items: list[Item]) -> bytes:
    parts = []
    for authorization, content_type, body in items:
        parts += (_REQUEST.pack(len(authorization), len(content_type), len(body)),)
        parts += (authorization, content_type, body)
    return b"".join(parts)


def read_requests(frames: bytes, max_items: int = MAX_ITEMS) -> list[Item]:
    """Refuses a frame that overruns the body, or more than ``max_items`` requests, naming
    the request at fault, before any of them is looked at."""
    items, at, view = [], 0, memoryview(frames)
    while at < len(frames):
        if len(items) == max_items:
            raise RequestError("body", f"at most {max_items} coalesced requests")
        end = at + _REQUEST.size
        if end > len(frames):
            raise RequestError(f"[{len(items)}]", "frame header cut off")
        sizes = _REQUEST.unpack_from(frames, at)
        if end + sum(sizes) > len(frames):
            raise RequestError(f"[{len(items)}]", "frame runs past the body's end")
        fields = []
        for size in sizes:
            fields.append(bytes(view[end : end + size]))
            end += size
        items.append(tuple(fields))
        at = end
    return items


def write_answers(answers: list[Answer]) -> bytes:
    parts = []
    for status, headers, body in answers:
        head = b"".join(b"%s: %s\r\n" % header for header in headers)
        parts += (_ANSWER.pack(status, len(head), len(body)), head, body)
    return b"".join(parts)


def read_answers(frames: bytes, expected: int) -> list[Answer]:
    """Raises ValueError unless ``frames`` holds exactly ``expected`` whole answers."""
    answers, at = [], 0
    while at < len(frames):
        if at + _ANSWER.size > len(frames):
            raise ValueError(f"answer {len(answers)}'s frame header is cut off")
        status, head_size, body_size = _ANSWER.unpack_from(frames, at)
        at += _ANSWER.size
        end = at + head_size + body_size
        if end > len(frames):
            raise ValueError(f"answer {len(answers)} runs past the body's end")
        headers = [
            tuple(line.split(b": ", 1)) for line in frames[at : at + head_size].split(b"\r\n")[:-1]
        ]
        answers.append((status, headers, frames[at + head_size : end]))
        at = end
    if len(answers) != expected:
        raise ValueError(f"{len(answers)} answers for {expected} requests")
    return answers
