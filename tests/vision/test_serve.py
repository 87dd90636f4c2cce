"""The vision API end to end on a real trained model: the probes, every way of sending an image
(a multipart upload, several, the raw bytes, base64 JSON, SageMaker's /invocations), the answer's
contract, and every kind of bad input (a 4xx JSON error naming the problem, after which the
service keeps serving).

The model is the session's tiny one (3 classes of 32 px shapes): these tests check the contract,
not accuracy. Most use one app, whose model is the already loaded `vision_predictor`; tests that
need other limits, or fresh metrics, build their own.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import struct
import time
import zlib
from collections.abc import Callable, Iterator
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from openapi_spec_validator import validate as validate_openapi
from PIL import Image
from prometheus_client.parser import text_string_to_metric_families

from common.serving.app import create_app
from common.settings import ServeSettings
from tests.vision.conftest import CLASSES, EPS, broken_exif, encode, noise_image
from vision.images import MAX_PIXELS
from vision.serve import EXAMPLE_PNG, ImageRecord, VisionPredictor

JPEG, PNG = "image/jpeg", "image/png"


def wait_ready(client: TestClient, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while client.get("/ready").status_code != 200:
        assert time.monotonic() < deadline, client.get("/ready").json()
        time.sleep(0.01)


@pytest.fixture(scope="module")
def client(vision_predictor: VisionPredictor) -> Iterator[TestClient]:
    settings = ServeSettings(model_dir=vision_predictor.path)
    app = create_app(VisionPredictor, settings, load=lambda: vision_predictor)
    with TestClient(app, raise_server_exceptions=False) as client:
        wait_ready(client)
        yield client


@pytest.fixture
def make_client(vision_predictor: VisionPredictor) -> Iterator[Callable[..., TestClient]]:
    """An app on the loaded model with other settings (limits, drift window), started, ready."""
    clients: list[TestClient] = []

    def _make(**settings: Any) -> TestClient:
        served = ServeSettings(model_dir=vision_predictor.path, **settings)
        app = create_app(VisionPredictor, served, load=lambda: vision_predictor)
        client = TestClient(app, raise_server_exceptions=False)
        client.__enter__()
        clients.append(client)
        wait_ready(client)
        return client

    yield _make
    for client in clients:
        client.__exit__(None, None, None)


# -- images ------------------------------------------------------------------------------------


@cache
def picture(width: int = 64, height: int = 48, fmt: str = "JPEG", seed: int = 0) -> bytes:
    options = {"quality": 90} if fmt == "JPEG" else {}
    return encode(noise_image(width, height, seed=seed), fmt, **options)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


@cache
def bomb() -> bytes:
    """A valid 20000 x 20000 1-bit PNG of zeros (~50 kB), 400 megapixels once decoded; written
    by hand (PIL takes seconds to)."""
    side = 20_000
    compressor = zlib.compressobj(9)
    row = b"\x00" + bytes(side // 8)
    pixels = b"".join(compressor.compress(row) for _ in range(side)) + compressor.flush()

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data)
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
    )


def truncated_jpeg() -> bytes:
    data = picture()
    return data[: len(data) // 2]


def one_pixel() -> bytes:
    return encode(Image.new("RGB", (1, 1), (255, 0, 0)), "PNG")


def exif_rotated_jpeg() -> bytes:
    """Stored 60 wide and 40 high, with EXIF orientation 6: shown 40 wide and 60 high."""
    exif = Image.Exif()
    exif[0x0112] = 6
    return encode(noise_image(60, 40), "JPEG", exif=exif.tobytes())


def png_16bit() -> bytes:
    values = np.linspace(0, 65535, 50 * 30).astype(np.uint16).reshape(30, 50)
    return encode(Image.frombytes("I;16", (50, 30), values.astype("<u2").tobytes()), "PNG")


def metric(client: TestClient, sample_name: str, **labels: str) -> float | None:
    for family in text_string_to_metric_families(client.get("/metrics").text):
        for sample in family.samples:
            if sample.name == sample_name and all(
                sample.labels.get(k) == v for k, v in labels.items()
            ):
                return sample.value
    return None


def assert_prediction(answer: dict, width: int, height: int, top_k: int = 3) -> None:
    """One image's answer: a known class, a probability, top k sorted, the image's size."""
    assert set(answer) == {"label", "confidence", "top_k", "width", "height", "gradcam_png"}
    assert answer["label"] in CLASSES
    assert 0.0 <= answer["confidence"] <= 1.0
    scores = answer["top_k"]
    assert len(scores) == min(top_k, len(CLASSES))
    labels = [s["label"] for s in scores]
    assert len(set(labels)) == len(labels) and set(labels) <= set(CLASSES)
    probabilities = [s["probability"] for s in scores]
    assert probabilities == sorted(probabilities, reverse=True)
    assert all(0.0 <= p <= 1.0 for p in probabilities)
    assert sum(probabilities) <= 1.0 + 1e-9
    assert scores[0] == {"label": answer["label"], "probability": answer["confidence"]}
    assert (answer["width"], answer["height"]) == (width, height)
    assert answer["gradcam_png"] is None


def post_raw(client: TestClient, data: bytes, kind: str = JPEG, path: str = "/predict", **params):
    return client.post(path, content=data, headers={"content-type": kind}, params=params)


def assert_still_serving(client: TestClient) -> None:
    response = client.post("/predict", files={"file": ("ok.png", picture(fmt="PNG"), PNG)})
    assert response.status_code == 200, response.text


# -- probes and metadata -----------------------------------------------------------------------


def test_probes(client: TestClient) -> None:
    assert client.get("/health").json() == {"status": "ok"}
    assert client.get("/ready").json() == {"status": "ready"}
    ping = client.get("/ping")
    assert ping.status_code == 200 and ping.content == b""


def test_metadata_identifies_the_model_and_its_limits(
    client: TestClient, vision_predictor: VisionPredictor
) -> None:
    meta = client.get("/metadata").json()
    assert meta["name"] == "vision"
    assert meta["version"] == vision_predictor.manifest.version == vision_predictor.path.name
    assert meta["limits"]["max_batch_rows"] == VisionPredictor.max_batch == 256
    assert "image" in meta["input_schema"]["properties"]
    assert "top_k" in meta["output_schema"]["properties"]


def test_metadata_names_classes_engine_and_preprocessing(client: TestClient) -> None:
    meta = client.get("/metadata").json()
    assert meta["classes"] == list(CLASSES)
    assert meta["backbone"] == "mobilenet_v3_small"
    assert meta["engine"]["used"] in ("onnx", "torch")
    assert set(meta["engine"]["batch1_ms"]) == {"onnx", "torch"}
    prep = meta["preprocessing"]
    assert prep["image_size"] == 32 and prep["resize_size"] == 37
    assert prep["class_names"] == list(CLASSES)
    assert len(prep["mean"]) == len(prep["std"]) == 3


def test_the_default_loader_serves_model_dir(vision_artifact: Path, settings) -> None:
    app = create_app(VisionPredictor, ServeSettings(model_dir=vision_artifact))
    with TestClient(app, raise_server_exceptions=False) as client:
        wait_ready(client)
        assert client.get("/metadata").json()["version"] == vision_artifact.name
        response = post_raw(client, picture())
        assert response.status_code == 200, response.text
        assert_prediction(response.json(), 64, 48)


# -- the ways of sending an image --------------------------------------------------------------


def test_multipart_file_gets_one_answer(client: TestClient) -> None:
    response = client.post("/predict", files={"file": ("cat.jpg", picture(), JPEG)})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    assert_prediction(response.json(), 64, 48)


def test_multipart_takes_options_from_the_query_string_too(client: TestClient) -> None:
    files = {"file": ("cat.jpg", picture(), JPEG)}
    response = client.post("/predict?top_k=2", files=files)
    assert response.status_code == 200, response.text
    assert len(response.json()["top_k"]) == 2


def test_gradcam_leaves_eager_predictions_alone(vision_artifact: Path) -> None:
    """Grad-CAM hooks its own copy of the network: eager (torch engine) predictions in the
    meantime neither trip its hook nor change its heat map."""
    predictor = VisionPredictor.from_artifact(vision_artifact, engine="torch")
    record = VisionPredictor.record_from_bytes(picture(), {"gradcam": True})
    first = predictor.predict_batch([record])[0]
    plain = VisionPredictor.record_from_bytes(picture(), {})
    assert predictor.predict_batch([plain])[0].gradcam_png is None
    again = predictor.predict_batch([record])[0]
    assert first.gradcam_png == again.gradcam_png
    assert all(p.grad is None for p in predictor.net.parameters())


def test_multipart_files_get_a_list_in_order(client: TestClient) -> None:
    sizes = [(64, 48), (40, 90), (33, 33)]
    files = [("files", (f"{i}.png", picture(w, h, "PNG", seed=i), PNG))
             for i, (w, h) in enumerate(sizes)]  # fmt: skip
    response = client.post("/predict", files=files, data={"top_k": "2"})
    assert response.status_code == 200, response.text
    answers = response.json()
    assert isinstance(answers, list) and len(answers) == 3
    for answer, (width, height) in zip(answers, sizes, strict=True):
        assert_prediction(answer, width, height, top_k=2)
    # One file as `files` is still a batch: answered with a list.
    single = client.post("/predict", files=[("files", ("a.png", picture(fmt="PNG"), PNG))])
    assert isinstance(single.json(), list) and len(single.json()) == 1


@pytest.mark.parametrize("kind", [JPEG, PNG, "application/x-image", "image/jpeg; charset=binary"])
def test_raw_bytes_with_options_in_the_query(client: TestClient, kind: str) -> None:
    data = picture(fmt="PNG" if kind == PNG else "JPEG")
    response = post_raw(client, data, kind, top_k=2)
    assert response.status_code == 200, response.text
    assert_prediction(response.json(), 64, 48, top_k=2)


@pytest.mark.parametrize("fmt", ["WEBP", "GIF", "BMP", "TIFF"])
def test_raw_bytes_of_every_format(client: TestClient, fmt: str) -> None:
    response = post_raw(client, picture(50, 40, fmt), f"image/{fmt.lower()}")
    assert response.status_code == 200, response.text
    assert_prediction(response.json(), 50, 40)


def test_base64_json_one_object_or_a_list(client: TestClient) -> None:
    one = client.post("/predict", json={"image": b64(picture()), "top_k": 1})
    assert one.status_code == 200, one.text
    assert_prediction(one.json(), 64, 48, top_k=1)
    many = client.post(
        "/predict", json=[{"image": b64(picture(20, 30))}, {"image": b64(picture(30, 20, "PNG"))}]
    )
    assert many.status_code == 200, many.text
    assert [(a["width"], a["height"]) for a in many.json()] == [(20, 30), (30, 20)]
    example = client.post("/predict", json=VisionPredictor.examples[0])
    assert example.status_code == 200 and example.json()["width"] == 32
    assert VisionPredictor.examples[0]["image"] == EXAMPLE_PNG


def test_every_route_gives_the_same_answer_as_in_process(
    client: TestClient, vision_predictor: VisionPredictor
) -> None:
    data = picture(70, 50, seed=9)
    expected = vision_predictor.predict(ImageRecord(image=b64(data), top_k=3)).model_dump()
    answers = [
        client.post("/predict", files={"file": ("x.jpg", data, JPEG)}).json(),
        post_raw(client, data).json(),
        client.post("/predict", json={"image": b64(data)}).json(),
        post_raw(client, data, path="/invocations").json()["predictions"][0],
        client.post("/invocations", json={"instances": [{"image": b64(data)}]}).json()[
            "predictions"
        ][0],
    ]
    for answer in answers:
        assert answer["label"] == expected["label"]
        assert [s["label"] for s in answer["top_k"]] == [s["label"] for s in expected["top_k"]]
        np.testing.assert_allclose(
            [s["probability"] for s in answer["top_k"]],
            [s["probability"] for s in expected["top_k"]],
            rtol=1e-9,
        )


def test_top_k_above_the_number_of_classes_gives_every_class(client: TestClient) -> None:
    answer = post_raw(client, picture(), top_k=50).json()
    assert sorted(s["label"] for s in answer["top_k"]) == sorted(CLASSES)
    assert sum(s["probability"] for s in answer["top_k"]) == pytest.approx(1.0, abs=1e-6)


def test_gradcam_is_a_png_of_the_networks_input_size(client: TestClient) -> None:
    response = client.post(
        "/predict", files={"file": ("x.jpg", picture(90, 60), JPEG)}, data={"gradcam": "true"}
    )
    assert response.status_code == 200, response.text
    answer = response.json()
    assert (answer["width"], answer["height"]) == (90, 60)
    overlay = Image.open(io.BytesIO(base64.b64decode(answer["gradcam_png"], validate=True)))
    assert overlay.format == "PNG" and overlay.mode == "RGB"
    assert overlay.size == (32, 32)  # the preprocessing's image_size
    as_json = client.post("/predict", json={"image": b64(picture()), "gradcam": True}).json()
    assert Image.open(io.BytesIO(base64.b64decode(as_json["gradcam_png"]))).size == (32, 32)
    raw = post_raw(client, picture(), gradcam="true").json()
    assert raw["gradcam_png"]


def test_invocations_raw_bytes_and_json_instances(client: TestClient) -> None:
    raw = post_raw(client, picture(), "application/x-image", path="/invocations", top_k=1)
    assert raw.status_code == 200, raw.text
    [answer] = raw.json()["predictions"]
    assert_prediction(answer, 64, 48, top_k=1)
    instances = [{"image": b64(picture(w, h, "PNG"))} for w, h in [(20, 30), (40, 10), (16, 16)]]
    batch = client.post("/invocations", json={"instances": instances})
    assert batch.status_code == 200, batch.text
    assert set(batch.json()) == {"predictions"}
    sizes = [(p["width"], p["height"]) for p in batch.json()["predictions"]]
    assert sizes == [(20, 30), (40, 10), (16, 16)]
    listed = client.post("/invocations", json=instances[:2])
    assert len(listed.json()["predictions"]) == 2
    csv = client.post("/invocations", json=instances[:1], headers={"accept": "text/csv"})
    assert csv.status_code == 406 and "cannot answer" in csv.json()["error"]


def on_event_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


@pytest.mark.parametrize(
    ("request_kwargs", "path", "light"),
    [
        ({"content": picture(), "headers": {"content-type": JPEG}}, "/predict", True),
        ({"files": {"file": ("a.png", picture(fmt="PNG"), PNG)}}, "/predict", True),
        ({"content": picture(), "headers": {"content-type": JPEG}}, "/invocations", True),
        ({"json": {"image": b64(picture()), "gradcam": True}}, "/predict", False),
        ({"files": [("files", ("a.jpg", picture(), JPEG))] * 2}, "/predict", False),
        ({"content": picture(fmt="GIF"), "headers": {"content-type": "image/gif"}}, "/predict",
         False),
        ({"content": picture(1800, 1200), "headers": {"content-type": JPEG}}, "/invocations",
         False),
    ],
    ids=["small-jpeg", "small-png-upload", "small-jpeg-invocations", "gradcam", "two-images",
         "gif", "2.2-megapixels"],
)  # fmt: skip
def test_light_images_are_predicted_on_the_event_loop_the_rest_in_a_worker_thread(
    client: TestClient,
    vision_predictor: VisionPredictor,
    monkeypatch: pytest.MonkeyPatch,
    request_kwargs: dict[str, Any],
    path: str,
    light: bool,
) -> None:
    """The loop is spared long work (a big decode, Grad-CAM, a batch), and a small photo the
    thread hop: see VisionPredictor.is_light."""
    where: list[bool] = []
    predict = vision_predictor.predict_batch

    def spy(records: Any) -> Any:
        where.append(on_event_loop())
        return predict(records)

    monkeypatch.setattr(vision_predictor, "predict_batch", spy)
    response = client.post(path, **request_kwargs)
    assert response.status_code == 200, response.text
    assert where == [light]


@pytest.mark.parametrize(
    ("make", "kind", "size"),
    [
        (lambda: encode(noise_image(48, 36, "CMYK"), "JPEG"), JPEG, (48, 36)),
        (lambda: encode(noise_image(48, 36, "L"), "PNG"), PNG, (48, 36)),
        (lambda: encode(noise_image(48, 36, "LA"), "PNG"), PNG, (48, 36)),
        (lambda: encode(noise_image(48, 36, "RGBA"), "PNG"), PNG, (48, 36)),
        (lambda: encode(noise_image(48, 36, "P"), "PNG"), PNG, (48, 36)),
        (png_16bit, PNG, (50, 30)),
        (exif_rotated_jpeg, JPEG, (40, 60)),
        (broken_exif, "image/webp", (32, 24)),  # unparseable EXIF counts as none (was a 500)
        (lambda: broken_exif("animated-WEBP"), "image/webp", (32, 24)),
    ],
    ids=["cmyk-jpeg", "grey-png", "grey-alpha-png", "rgba-png", "palette-png", "16bit-png",
         "exif-rotated-jpeg", "broken-exif-webp", "broken-exif-animated-webp"],
)  # fmt: skip
def test_unusual_images_are_accepted_with_their_upright_size(
    client: TestClient, make: Callable[[], bytes], kind: str, size: tuple[int, int]
) -> None:
    data = make()
    for response in (
        post_raw(client, data, kind),
        client.post("/predict", files={"file": ("x", data, kind)}),
        client.post("/predict", json={"image": b64(data)}),
    ):
        assert response.status_code == 200, response.text
        assert_prediction(response.json(), *size)


def test_an_animated_gif_is_predicted_from_its_first_frame(client: TestClient) -> None:
    frames = [noise_image(40, 30, seed=s) for s in range(3)]
    buffer = io.BytesIO()
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:])
    response = post_raw(client, buffer.getvalue(), "image/gif")
    assert response.status_code == 200, response.text
    assert_prediction(response.json(), 40, 30)


# -- bad input ---------------------------------------------------------------------------------


def float_tiff() -> bytes:
    """32-bit floating-point greyscale: no 8-bit scale is implied, so it is refused."""
    return encode(Image.fromarray(np.full((24, 32), 0.5, np.float32)), "TIFF")


def multipart(data: bytes, name: str = "file", **fields: str) -> dict[str, Any]:
    return {"files": {name: ("upload.bin", data, "application/octet-stream")}, "data": fields}


TEXT = b"this is a plain text file, not a picture at all\n"

# (how to send, what, expected status, words the error must contain, in any case)
BAD_REQUESTS: list[tuple[str, Callable[[], Any], int, str | tuple[str, ...]]] = [
    ("raw", lambda: TEXT, 422, "image: not an image"),
    ("multipart", lambda: TEXT, 422, "image: not an image"),
    ("json", lambda: {"image": b64(TEXT)}, 422, "image: not an image"),
    ("raw", truncated_jpeg, 422, "truncated JPEG"),
    ("multipart", truncated_jpeg, 422, "truncated JPEG"),
    ("raw", lambda: b"", 422, "image: empty file"),
    ("multipart", lambda: b"", 422, "image: empty file"),
    ("json", lambda: {"image": ""}, 422, "image: empty file"),
    ("raw", bomb, 422, "image too large"),
    ("multipart", bomb, 422, "image too large"),
    ("application/x-image", lambda: EPS, 422, "image: not an image"),  # Ghostscript never runs
    ("multipart", lambda: EPS, 422, "image: not an image"),
    ("image/tiff", float_tiff, 422, "mode 'F'"),
    ("raw", one_pixel, 422, "image too small: 1x1"),
    ("multipart", one_pixel, 422, "image too small: 1x1"),
    ("json", lambda: [{"image": b64(picture())}, {"image": b64(TEXT)}], 422,
     "[1].image: not an image"),
    ("json", lambda: [{"image": b64(picture())}, {"image": b64(one_pixel())}], 422,
     "[1].image: image too small"),
    ("files", lambda: [picture(), truncated_jpeg(), picture()], 422, "[1].image: corrupt"),
    ("json", lambda: {"image": "not base64 at all!"}, 422, ("image: ", "base64")),
    ("json", lambda: {"image": 42}, 422, "image: "),
    ("json", lambda: {}, 422, "image: Field required"),
    ("json", lambda: {"image": b64(picture()), "top_k": 0}, 422, "top_k: Input should be"),
    ("json", lambda: {"image": b64(picture()), "top_k": "abc"}, 422, "top_k: Input should be"),
    ("json", lambda: [], 422, "the batch is empty"),
    ("raw-top_k=0", picture, 422, "top_k: Input should be greater than or equal to 1"),
    ("raw-top_k=abc", picture, 422, "top_k: Input should be a valid integer"),
    ("multipart-top_k=0", picture, 422, "top_k: Input should be greater than or equal to 1"),
    ("multipart-top_k=abc", picture, 422, "top_k: Input should be a valid integer"),
    ("raw-gradcam=maybe", picture, 422, "gradcam: Input should be a valid boolean"),
    ("multipart-nofile", picture, 422, "no file in the upload"),
    ("multipart-textfile", picture, 422, "must be file uploads"),
    ("malformed-json", lambda: b'{"image": "abc', 400, "malformed JSON"),
    ("empty-json", lambda: b"", 400, "empty body"),
    ("text/plain", picture, 415, "unsupported content type: 'text/plain'"),
    ("no-content-type", picture, 415, "no Content-Type"),
    ("image/svg+xml", picture, 415, "unsupported content type: 'image/svg+xml'"),
]  # fmt: skip


def assert_error(response, status: int, expected: str | tuple[str, ...]) -> None:
    """A 4xx in the common error shape whose `error` names the problem."""
    assert response.status_code == status, response.text
    error = response.json()
    assert set(error) == {"error", "detail"}
    for words in (expected,) if isinstance(expected, str) else expected:
        assert words.lower() in error["error"].lower(), error
    assert "Traceback" not in response.text and "/csrc/" not in response.text


def send(client: TestClient, how: str, payload: Any, path: str = "/predict"):
    if how.startswith("raw"):
        params = dict([how.split("-", 1)[1].split("=")]) if "-" in how else {}
        return post_raw(client, payload, path=path, **params)
    if how.startswith("multipart"):
        if how == "multipart-nofile":
            return client.post(path, files={"other": ("x.jpg", payload, JPEG)})
        if how == "multipart-textfile":
            return client.post(path, data={"file": "cat.jpg"}, files={"x": ("y", b"z", JPEG)})
        fields = dict([how.split("-", 1)[1].split("=")]) if "-" in how else {}
        return client.post(path, **multipart(payload, **fields))
    if how == "files":
        files = [("files", (f"{i}.jpg", data, JPEG)) for i, data in enumerate(payload)]
        return client.post(path, files=files)
    if how == "json":
        return client.post(path, json=payload)
    if how in ("malformed-json", "empty-json"):
        return post_raw(client, payload, "application/json", path=path)
    if how == "no-content-type":
        return client.post(path, content=payload)
    return post_raw(client, payload, how, path=path)


@pytest.mark.parametrize(
    ("how", "make", "status", "expected"),
    BAD_REQUESTS,
    ids=[f"{i}-{how}" for i, (how, *_) in enumerate(BAD_REQUESTS)],
)
def test_bad_requests_to_predict(
    client: TestClient, how: str, make: Callable[[], Any], status: int, expected
) -> None:
    assert_error(send(client, how, make()), status, expected)
    assert_still_serving(client)


BROKEN_UPLOADS = [
    # An image sent as a text field (no filename): the same advice as for any text in `file`.
    ("multipart/form-data; boundary=xyz",
     b'--xyz\r\nContent-Disposition: form-data; name="file"\r\n\r\n\xff\xd8\xff\xe0\r\n--xyz--',
     422, "`file`/`files` must be file uploads, not text"),
    ("multipart/form-data", b"--x\r\n", 400, "invalid multipart upload: the content-type has no"),
    ("multipart/form-data; boundary=xyz",
     b'--xyz\r\nContent-Disposition: form-data; name="file"; filename="a.jpg"\r\n\r\n\xff\xd8',
     400, "part 1: the body ends before its boundary"),
    ("multipart/form-data; boundary=xyz",
     b"".join(b'--xyz\r\nContent-Disposition: form-data; name="f%d"\r\n\r\nx\r\n' % i
              for i in range(1300)) + b"--xyz--",
     413, "more than 1256 parts in one upload"),
]  # fmt: skip


@pytest.mark.parametrize(("kind", "body", "status", "expected"), BROKEN_UPLOADS)
def test_a_broken_upload_is_a_4xx_saying_what(
    client: TestClient, kind: str, body: bytes, status: int, expected: str
) -> None:
    assert_error(post_raw(client, body, kind), status, expected)
    assert_still_serving(client)


BAD_INVOCATIONS: list[tuple[str, Callable[[], Any], int, str | tuple[str, ...]]] = [
    ("raw", lambda: TEXT, 422, "image: not an image"),
    ("raw", lambda: b"", 422, "image: empty file"),
    ("raw", truncated_jpeg, 422, "truncated JPEG"),
    ("raw", bomb, 422, "image too large"),
    ("raw", one_pixel, 422, "image too small"),
    ("raw-top_k=abc", picture, 422, "top_k: Input should be a valid integer"),
    ("json", lambda: {"instances": [{"image": b64(picture())}, {"image": b64(TEXT)}]}, 422,
     "[1].image: not an image"),
    ("json", lambda: {"instances": [{"image": "not base64!"}]}, 422,
     ("[0].image: ", "base64")),
    ("json", lambda: {"instances": []}, 422, "the batch is empty"),
    ("malformed-json", lambda: b"[{", 400, "malformed JSON"),
    ("text/csv", lambda: b"a,b\n1,2\n", 415, "unsupported content type: 'text/csv'"),
    ("multipart-nofile", picture, 415, "unsupported content type: 'multipart/form-data'"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("how", "make", "status", "expected"),
    BAD_INVOCATIONS,
    ids=[f"{i}-{how}" for i, (how, *_) in enumerate(BAD_INVOCATIONS)],
)
def test_bad_requests_to_invocations(
    client: TestClient, how: str, make: Callable[[], Any], status: int, expected
) -> None:
    assert_error(send(client, how, make(), path="/invocations"), status, expected)
    assert client.get("/ping").status_code == 200
    assert post_raw(client, picture(), path="/invocations").status_code == 200


def test_a_bad_image_is_located_in_the_detail(client: TestClient) -> None:
    response = client.post("/predict", json=[{"image": b64(picture())}, {"image": b64(TEXT)}])
    [problem] = response.json()["detail"]
    assert problem["field"] == "[1].image" and problem["message"].startswith("not an image")
    single = post_raw(client, one_pixel()).json()
    assert single["detail"] == [
        {"field": "image", "message": "image too small: 1x1 pixels; at least 8x8 needed"}
    ]


@pytest.mark.parametrize("text", ["%%%", "====", b64(b"\xff\xfe\xfd") + "!!"])
def test_invalid_base64_characters_are_refused_as_invalid_base64(
    client: TestClient, text: str
) -> None:
    response = client.post("/predict", json={"image": text})
    assert response.status_code == 422
    assert "image: " in response.json()["error"] and "base64" in response.json()["error"].lower()


def test_a_bomb_is_refused_quickly(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    data = bomb()
    with monkeypatch.context() as patched:
        patched.setattr(Image, "MAX_IMAGE_PIXELS", None)  # PIL's own bomb check, off
        assert Image.open(io.BytesIO(data)).size == (20_000, 20_000)
    assert len(data) < 100_000 and MAX_PIXELS < 20_000 * 20_000
    start = time.perf_counter()
    response = post_raw(client, data, PNG)
    assert response.status_code == 422
    assert time.perf_counter() - start < 1.0


def test_body_over_the_size_limit_is_413(make_client) -> None:
    client = make_client(max_body_bytes=4096)
    big = picture(200, 200, "PNG")
    assert len(big) > 4096
    for response in (
        post_raw(client, big, PNG),
        client.post("/predict", files={"file": ("big.png", big, PNG)}),
        client.post("/predict", json={"image": b64(big)}),
        post_raw(client, big, PNG, path="/invocations"),
    ):
        assert response.status_code == 413, response.text
        assert "larger than this service's limit of 4,096 bytes" in response.json()["error"]
    assert post_raw(client, picture(16, 16, "PNG"), PNG).status_code == 200


def test_more_images_than_the_batch_limit_is_413(make_client) -> None:
    client = make_client(max_batch_rows=2)
    assert client.get("/metadata").json()["limits"]["max_batch_rows"] == 2
    small = picture(16, 16, "PNG")
    two = [("files", (f"{i}.png", small, PNG)) for i in range(2)]
    assert client.post("/predict", files=two).status_code == 200
    three = [("files", (f"{i}.png", small, PNG)) for i in range(3)]
    response = client.post("/predict", files=three)
    assert response.status_code == 413, response.text
    assert "batch of 3 rows is above this service's limit of 2" in response.json()["error"]
    records = [{"image": b64(small)}] * 3
    for path, body in (("/predict", records), ("/invocations", {"instances": records})):
        response = client.post(path, json=body)
        assert response.status_code == 413, response.text
        assert "limit of 2" in response.json()["error"]
    assert_still_serving(client)


def test_far_more_images_than_the_batch_limit_is_still_413(make_client) -> None:
    client = make_client(max_batch_rows=2)
    files = [("files", (f"{i}.png", picture(16, 16, "PNG"), PNG)) for i in range(10)]
    response = client.post("/predict", files=files)
    assert response.status_code == 413, response.text
    assert "limit of 2" in response.json()["error"]
    assert_still_serving(client)


def test_the_models_own_batch_limit_applies(client: TestClient) -> None:
    small = picture(16, 16, "PNG")
    files = [("files", (f"{i}.png", small, PNG)) for i in range(257)]
    response = client.post("/predict", files=files)
    assert response.status_code == 413, response.text
    assert "batch of 257 rows is above this service's limit of 256" in response.json()["error"]


# -- schema and metrics ------------------------------------------------------------------------


def test_openapi_schema_is_valid_and_documents_every_body(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    validate_openapi(spec)
    predict = spec["paths"]["/predict"]["post"]
    content = predict["requestBody"]["content"]
    assert {"multipart/form-data", "application/json", JPEG, PNG, "application/x-image"} <= set(
        content
    )
    form = content["multipart/form-data"]["schema"]["properties"]
    assert form["file"]["format"] == "binary" and form["files"]["items"]["format"] == "binary"
    assert {"top_k", "gradcam"} <= set(form)
    assert content[JPEG]["schema"] == {"type": "string", "format": "binary"}
    assert content["application/json"]["example"]["image"] == EXAMPLE_PNG
    assert {"200", "400", "413", "415", "422", "503"} <= set(predict["responses"])
    assert "ImagePrediction" in json.dumps(predict["responses"]["200"])
    invocations = spec["paths"]["/invocations"]["post"]["requestBody"]["content"]
    assert {"application/json", JPEG, "application/x-image"} <= set(invocations)
    assert "text/csv" not in invocations


def test_metrics_count_predictions_and_expose_image_drift(make_client) -> None:
    client = make_client(drift_min_rows=10, drift_window_rows=50)
    assert metric(client, "model_feature_psi", feature="brightness") is None  # too few rows yet
    assert post_raw(client, picture()).status_code == 200
    files = [("files", (f"{i}.png", picture(40 + i, 30, "PNG", seed=i), PNG)) for i in range(6)]
    assert client.post("/predict", files=files).status_code == 200
    instances = [{"image": b64(picture(30, 30 + i, seed=10 + i))} for i in range(5)]
    assert client.post("/invocations", json={"instances": instances}).status_code == 200
    assert post_raw(client, TEXT).status_code == 422  # counted as a request, not a prediction
    assert metric(client, "model_predictions_total", route="/predict") == 7
    assert metric(client, "model_predictions_total", route="/invocations") == 5
    assert metric(client, "model_prediction_score_count") == 12
    assert metric(client, "http_requests_total", route="/predict", status="200") == 2
    assert metric(client, "http_requests_total", route="/predict", status="422") == 1
    assert metric(client, "model_drift_window_rows") == 12
    for feature in ("brightness", "contrast", "width", "height"):
        psi = metric(client, "model_feature_psi", feature=feature)
        assert psi is not None and psi >= 0 and np.isfinite(psi), feature
    prediction_psi = metric(client, "model_prediction_psi")
    assert prediction_psi is not None and prediction_psi >= 0


def test_the_drift_window_reads_the_statistics_the_reference_profile_has(
    vision_predictor: VisionPredictor,
) -> None:
    from vision.images import STAT_NAMES
    from vision.monitor import WATCHED, stats_columns

    images = [
        picture(40 + 9 * i, 30 + 5 * i, fmt, seed=i) for i, fmt in enumerate(["JPEG", "PNG"] * 2)
    ]
    records = [VisionPredictor.record_from_bytes(image, {}) for image in images]
    outputs = vision_predictor.predict_batch(records)
    # Kept per request (one image, then three), read in one go as the live window does.
    kept = [vision_predictor.monitoring_inputs(records[:1], outputs[:1]),
            vision_predictor.monitoring_inputs(records[1:], outputs[1:])]  # fmt: skip
    columns = vision_predictor.monitoring_columns(kept, list(WATCHED))
    offline = stats_columns(images, vision_predictor.prep)  # what training profiles
    for name in STAT_NAMES:
        assert columns[name] == pytest.approx(offline[name], abs=1e-6), name
    assert columns["width"] == [40, 49, 58, 67] and columns["height"] == [30, 35, 40, 45]
    assert columns["predicted_class"] == [o.label for o in outputs]
