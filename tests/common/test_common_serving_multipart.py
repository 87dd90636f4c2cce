"""parse_form: the parts of a multipart/form-data body as clients really encode them, and a
MultipartError naming what is wrong with a malformed one."""

from __future__ import annotations

import httpx
import pytest

from common.serving.multipart import MultipartError, Part, TooManyParts, parse_form

PHOTO = b"\xff\xd8\xff\xe0 not really a JPEG, but with \r\n--almost a boundary\r\n inside"


def encoded(files: object = None, data: object = None) -> tuple[bytes, str]:
    """The body and Content-Type httpx (the client under TestClient) sends for a form."""
    request = httpx.Request("POST", "http://test/predict", files=files, data=data)
    return request.read(), request.headers["content-type"]


def test_a_client_encoded_form_gives_its_files_and_fields_in_order() -> None:
    body, kind = encoded(
        files=[("files", ("a.jpg", PHOTO, "image/jpeg")), ("files", ("b.png", b"", "image/png"))],
        data={"top_k": "3"},
    )
    parts = parse_form(body, kind, max_parts=10)
    assert Part("top_k", None, b"3") in parts
    files = [p for p in parts if p.is_file]
    assert [(p.name, p.filename, p.data) for p in files] == [
        ("files", "a.jpg", PHOTO), ("files", "b.png", b"")
    ]  # fmt: skip
    assert parts[0].text() == "3"


def test_quoted_boundary_preamble_padding_and_epilogue() -> None:
    body = (
        b"a preamble, ignored\r\n--b c\r\n"
        b'Content-Disposition: form-data; name="file"; filename="x \\"1\\".jpg"\r\n'
        b"Content-Type: image/jpeg\r\n\r\n" + PHOTO + b"\r\n--b c \t\r\n"
        b"content-disposition: form-data; name=top_k\r\n\r\n5\r\n--b c--\r\nan epilogue"
    )
    parts = parse_form(body, 'multipart/form-data; boundary="b c"', max_parts=10)
    assert parts == [Part("file", 'x "1".jpg', PHOTO), Part("top_k", None, b"5")]


def test_an_empty_form_has_no_parts() -> None:
    assert parse_form(b"--xyz--\r\n", "multipart/form-data; boundary=xyz", max_parts=1) == []


def test_utf8_names_are_read_as_text() -> None:
    body, kind = encoded(files={"file": ("café.jpg", PHOTO, "image/jpeg")})
    assert parse_form(body, kind, max_parts=1)[0].filename == "café.jpg"


XYZ = "multipart/form-data; boundary=xyz"
GOOD = b'--xyz\r\nContent-Disposition: form-data; name="file"; filename="a"\r\n\r\ndata\r\n--xyz--'

MALFORMED = [
    ("multipart/form-data", GOOD, "no boundary parameter"),
    ("multipart/form-data; boundary=" + "x" * 71, GOOD, "no boundary parameter"),
    ("multipart/form-data; boundary=other", GOOD, "does not contain the boundary"),
    (XYZ, GOOD[:-9], "part 1: the body ends before its boundary"),
    (XYZ, b"--xyz\r\n\r\ndata\r\n--xyz--", "no Content-Disposition"),
    (XYZ, b"--xyz\r\nX-Other: 1\r\n\r\nd\r\n--xyz--",
     "no Content-Disposition"),
    (XYZ, b"--xyz\r\nno colon here\r\n\r\nd\r\n--xyz--",
     "malformed header line"),
    (XYZ,
     b'--xyz\r\nContent-Disposition: attachment; name="f"\r\n\r\nd\r\n--xyz--', "not form-data"),
    (XYZ,
     b"--xyz\r\nContent-Disposition: form-data\r\n\r\nd\r\n--xyz--", 'name="..."'),
    (XYZ, b"--xyzjunk\r\n" + GOOD[7:], "malformed boundary line"),
    (XYZ,
     b'--xyz\r\nContent-Disposition: form-data; name="f"', "part 1: the body ends"),
]  # fmt: skip


@pytest.mark.parametrize(("content_type", "body", "problem"), MALFORMED)
def test_a_malformed_body_is_an_error_saying_what(
    content_type: str, body: bytes, problem: str
) -> None:
    with pytest.raises(MultipartError) as caught:
        parse_form(body, content_type, max_parts=10)
    assert problem in str(caught.value)


def test_parts_beyond_the_limit_are_refused_before_being_read() -> None:
    body, kind = encoded(files=[("files", (f"{i}.jpg", PHOTO, "image/jpeg")) for i in range(4)])
    assert len(parse_form(body, kind, max_parts=4)) == 4
    with pytest.raises(TooManyParts, match="more than 3 parts"):
        parse_form(body, kind, max_parts=3)


def test_names_and_text_that_are_not_utf8_are_read_as_latin1() -> None:
    body = (
        b'--xyz\r\nContent-Disposition: form-data; name="file"; filename="caf\xe9.jpg"\r\n\r\n'
        + PHOTO
        + b'\r\n--xyz\r\nContent-Disposition: form-data; name="note"\r\n\r\n\xe9t\xe9'
        b"\r\n--xyz--"
    )
    upload, note = parse_form(body, "multipart/form-data; boundary=xyz", max_parts=2)
    assert (upload.filename, upload.data) == ("café.jpg", PHOTO)
    assert note.text() == "été"
