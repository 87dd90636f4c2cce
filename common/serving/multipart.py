"""multipart/form-data (RFC 7578) read from a body already in memory: the media `/predict`'s
file uploads.

Why not Starlette's `request.form()`: it streams the body through a generic parser into
spooled temporary files, which for one 40 kB photo costs ~46 µs a request with warm caches,
and several times that right after a forward pass (benchmarks/README.md, the vision API). Our
request middleware has already read the whole body, capped at the service's body limit, so
the parts can be cut out of it with a few `find`s (~8 µs). Header parameters (`name`,
`filename`, quoted or not) are parsed by python-multipart's `parse_options_header`, the parser
Starlette uses.

A part with a `filename` is a file, as browsers and curl send them; one without is a text
field. Names, filenames and text are read as UTF-8, falling back to Latin-1. Anything
malformed raises `MultipartError` saying what.
"""

from __future__ import annotations

from dataclasses import dataclass

from python_multipart.multipart import parse_options_header

#: RFC 2046: a boundary is 1 to 70 characters.
MAX_BOUNDARY = 70


class MultipartError(ValueError):
    """The body is not well-formed multipart/form-data; the message says where."""


class TooManyParts(MultipartError):
    """More parts than the caller allows."""


@dataclass(frozen=True)
class Part:
    name: str
    filename: str | None  # None: a text field
    data: bytes

    @property
    def is_file(self) -> bool:
        return self.filename is not None

    def text(self) -> str:
        return _decode(self.data)


def _decode(raw: bytes) -> str:
    """UTF-8, as RFC 7578 and today's clients send; Latin-1 (which decodes any bytes) for
    the odd older client, as Starlette's parser does, rather than refusing the upload over a
    name."""
    try:
        return raw.decode()
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def parse_form(body: bytes, content_type: str, max_parts: int) -> list[Part]:
    """The parts of `body`, in order; MultipartError if malformed or over `max_parts`."""
    _, params = parse_options_header(content_type)
    boundary = params.get(b"boundary", b"")
    if not 0 < len(boundary) <= MAX_BOUNDARY:
        raise MultipartError("the Content-Type has no boundary parameter of 1-70 characters")
    delimiter = b"--" + boundary
    # The first delimiter may follow a preamble (ignored); every later one starts a line.
    at = body.find(delimiter)
    if at < 0:
        raise MultipartError("the body does not contain the boundary its Content-Type names")
    parts: list[Part] = []
    separator = b"\r\n" + delimiter
    at += len(delimiter)
    while not body.startswith(b"--", at):  # `--boundary--` closes; what follows is ignored
        line_end = body.find(b"\r\n", at)
        if line_end < 0 or body[at:line_end].strip(b" \t"):  # RFC 2046 allows padding only
            raise MultipartError(f"part {len(parts) + 1}: malformed boundary line")
        end = body.find(separator, line_end + 2)
        if end < 0:
            raise MultipartError(f"part {len(parts) + 1}: the body ends before its boundary")
        if len(parts) == max_parts:
            raise TooManyParts(f"more than {max_parts} parts in one upload")
        parts.append(_part(body, line_end + 2, end, len(parts) + 1))
        at = end + len(separator)
    return parts


def _part(body: bytes, start: int, end: int, number: int) -> Part:
    """One part: its header lines, a blank line, then its data up to `end`."""
    if body.startswith(b"\r\n", start):  # no header lines at all
        raise MultipartError(f"part {number} has no Content-Disposition header")
    headers_end = body.find(b"\r\n\r\n", start, end)
    if headers_end < 0:
        raise MultipartError(f"part {number}: its headers do not end with a blank line")
    disposition = None
    for line in body[start:headers_end].split(b"\r\n"):
        field, colon, value = line.partition(b":")
        if not colon:
            raise MultipartError(f"part {number}: malformed header line {line[:80]!r}")
        if field.strip().lower() == b"content-disposition":
            disposition = value.strip()
    if disposition is None:
        raise MultipartError(f"part {number} has no Content-Disposition header")
    kind, params = parse_options_header(disposition)
    name = params.get(b"name")
    if kind != b"form-data" or name is None:
        raise MultipartError(f'part {number}: Content-Disposition is not form-data; name="..."')
    filename = params.get(b"filename")
    return Part(
        _decode(name),
        None if filename is None else _decode(filename),
        body[headers_end + 4 : end],
    )
