"""service/inputs.py: the JSON latents fast path (simdjson) agrees with latents_array (or refuses),
and latents of any shape are checked against the model's latent shape."""

from __future__ import annotations

import asyncio
import json
import math

import httpx
import numpy as np
import pytest

from service.errors import InvalidRequest, PayloadTooLarge, ServiceError
from service.inputs import (
    FLOAT32_MAX,
    MAX_FORM_FIELDS,
    Upload,
    json_latents,
    json_rows_at_least,
    latents_array,
    parse_latents,
    split_multipart,
)

NAN, INF = float("nan"), float("inf")

CASES = [
    [0.5, -1.25, 3.0, 0.0],
    [[0.5, -1.25, 3.0, 0.0]] * 3,
    [1, 2, 3, 4],
    [1, 2.5, 3, 4],
    [FLOAT32_MAX, -FLOAT32_MAX, 0.0, 1.0],
    [FLOAT32_MAX * 1.0000001, 0.0, 0.0, 0.0],
    [10**40, 0, 0, 0],
    [NAN, 1.0, 2.0, 3.0],
    [1.0, 2.0, 3.0, NAN],
    [1.0, INF, 2.0, 3.0],
    [-INF, INF, 0.0, 0.0],
    [True, 1.0, 2.0, 3.0],
    [[1.0, 2.0, 3.0, "4"]],
    [[1.0, 2.0, 3.0, None]],
    [[1.0, 2.0, 3.0, [4.0]]],
    [[1.0, 2.0], [3.0, 4.0]],
    [[0.5] * 4, [0.5] * 3],
    [[0.5] * 4] * 9,
    [[0.5] * 4] * 9 + [[0.5, 0.5, 0.5, [0.5]]],
    [[0.5, 0.5, 0.5, [0.5]]] * 2,
    [[0.5] * 4, 0.5],
    [0.5, 0.5, [0.5], 0.5],
    [[-0.0, 0, 2**53 + 1, 18446744073709551615]],
    [[2**64, 0, 0, 0]],
    [[1e-46, 5e-324, 1e38, -3.4028235e38]],
    [],
    [[]],
    "latents",
    {"a": 1},
]


@pytest.mark.parametrize("raw", CASES, ids=range(len(CASES)))
def test_the_json_fast_path_agrees_with_latents_array(raw):
    fast = json_latents(json.dumps({"latents": raw}).encode(), latent_dim=4, max_rows=8)
    try:
        general = latents_array(raw, latent_shape=(4,), max_rows=8)
    except (ServiceError, ValueError, TypeError):
        general = None
    if fast is None:
        return  # parse_latents then calls latents_array, which accepts or explains
    assert general is not None, "the fast path accepted what latents_array refuses"
    assert fast.dtype == np.float32 and general.dtype == np.float32
    assert np.array_equal(fast, general)


def test_the_fast_path_takes_the_common_shapes():
    assert json_latents(json.dumps({"latents": [0.1] * 32}).encode(), 32, 1024).shape == (1, 32)
    assert json_latents(json.dumps({"latents": [[0.1] * 32] * 16}, indent=2).encode(), 32, 1024).shape == (16, 32)


@pytest.mark.parametrize("rows", [1, 200])  # 32 numbers, within the dot-product check; 6,400, beyond it
def test_the_fast_path_bounds_values_exactly_at_float32s_edge_whatever_the_body_size(rows):
    def body(value: float) -> bytes:
        z = np.zeros((rows, 32))
        z[-1, -1], z[0, 0] = value, -FLOAT32_MAX
        return json.dumps({"latents": z.tolist()}).encode()

    at_edge = json_latents(body(FLOAT32_MAX), 32, 256)
    assert at_edge is not None and at_edge[-1, -1] == np.float32(FLOAT32_MAX)
    assert json_latents(body(FLOAT32_MAX * 1.0000001), 32, 256) is None
    with pytest.raises(InvalidRequest, match="beyond float32"):
        parse_latents(body(FLOAT32_MAX * 1.0000001), "application/json", (32,), 256)


def test_the_fast_path_leaves_anything_else_to_the_general_one():
    rows = [[0.25, -1.0, 2e-3, 3.5e2]] * 12
    for body in (
        json.dumps({"latents": rows, "seed": 1}),  # another key: the general path reads it
        '{"latents": [[1, 2, 3, 4]], "latents": [[5, 6, 7, 8]]}',
        '{"latents": [[1, 2, 3, NaN]]}',
        '{"latents": [[1, 2, 3, 4]]} trailing',
        '{"latents": [[1, 2, 3, 4e400]]}',
        '{"latents": [[1, 2, 3, 4]]',
        "[[1, 2, 3, 4]]",
        json.dumps({"latents": [[0.25] * 4] * 17}),  # over max_rows
    ):
        assert json_latents(body.encode(), 4, 16) is None, body
    for value in (True, False, None, "x"):
        assert json_latents(json.dumps({"latents": [*rows, [value] * 4]}).encode(), 4, 16) is None


def test_a_spatial_latent_is_accepted_whole_or_as_flat_vectors_when_the_card_allows():
    z = np.arange(2 * 4 * 3 * 2, dtype=np.float32).reshape(2, 4, 3, 2)
    assert np.array_equal(latents_array(z, (4, 3, 2), 8), z)
    assert np.array_equal(latents_array(z[0], (4, 3, 2), 8), z[:1])  # one latent without N
    assert np.array_equal(latents_array(z.reshape(2, -1), (4, 3, 2), 8), z)
    with pytest.raises(InvalidRequest, match=r"expected \[N, 4, 3, 2\]"):
        latents_array(z.reshape(2, -1), (4, 3, 2), 8, accepts_flat=False)


@pytest.mark.parametrize("latent_shape", [(4,), (4, 3, 2)])
@pytest.mark.parametrize("rows", [1, 2, 7])
def test_the_row_bound_from_brackets_is_exact_for_rows_and_never_above_them(latent_shape, rows):
    z = np.zeros((rows, *latent_shape)).tolist()
    bodies = {  # what parse_latents takes for each, and the bound the brackets give
        "nested": (json.dumps({"latents": z}), rows),
        "flat vectors": (json.dumps({"latents": np.zeros((rows, math.prod(latent_shape))).tolist()}), None),
        "one latent without N": (json.dumps({"latents": z[0]}), 1),
    }
    for name, (body, exact) in bodies.items():
        bound = json_rows_at_least(body.encode(), latent_shape)
        parsed = rows if name != "one latent without N" else 1
        assert 1 <= bound <= parsed, name
        if exact is not None:
            assert bound == exact, name


@pytest.mark.parametrize("shape", [(2, 31), (2, 4, 3, 3), (33,)])
def test_a_wrong_shape_names_the_expected_one(shape):
    with pytest.raises(InvalidRequest, match=r"expected \[N, 32\]"):
        latents_array(np.zeros(shape), (32,), 8)


def test_json_bodies_keep_the_latent_shape():
    body = b'{"latents": [[[[0.5]], [[1.5]]]]}'
    assert parse_latents(body, "application/json", (2, 1, 1), 4).shape == (1, 2, 1, 1)


ROWS = [case for case in CASES if type(case) is list and case and type(case[0]) is not list]


@pytest.mark.parametrize("row", ROWS, ids=range(len(ROWS)))
def test_many_rows_parsed_agree_with_latents_array(row):
    raw = [row] * 12
    try:
        general = latents_array(raw, latent_shape=(4,), max_rows=16)
    except (ServiceError, ValueError, TypeError):
        general = None
    try:
        parsed = parse_latents(json.dumps({"latents": raw}).encode(), "application/json", (4,), 16)
    except InvalidRequest:
        parsed = None
    assert (parsed is None) == (general is None)
    if parsed is not None:
        assert parsed.dtype == np.float32 and np.array_equal(parsed, general)


# --- multipart ------------------------------------------------------------------------------


def starlette_files(body: bytes, content_type: str) -> list[tuple[str | None, bytes]]:
    """What Starlette's general form parser finds in the same body: the reference."""
    from starlette.datastructures import Headers, UploadFile
    from starlette.formparsers import MultiPartParser

    async def parse():
        async def stream():
            yield body

        form = await MultiPartParser(Headers({"content-type": content_type}), stream()).parse()
        found = [(v.filename, await v.read()) for _, v in form.multi_items() if isinstance(v, UploadFile)]
        await form.close()
        return found

    return asyncio.run(parse())


def encoded(files, data=None) -> tuple[bytes, str]:
    request = httpx.Request("POST", "http://x/encode", files=files, data=data)
    return request.read(), request.headers["content-type"]


BINARY = bytes(range(256)) * 3


@pytest.mark.parametrize(
    ("files", "data"),
    [
        ([("file", ("digit.png", b"\x89PNG fake"))], None),
        ([("a", ("one.png", b"1")), ("b", ("two.jpg", BINARY)), ("a", ("three.gif", b""))], {"note": "x", "n": "2"}),
        ([("file", ("se;mi-colon \u00e9.png", b"\r\n\r\n--\r\n"))], None),
        ([("file", ("noext", b"--" + b"\r\n--" * 50))], None),
    ],
)
def test_split_multipart_finds_what_starlettes_parser_finds(files, data):
    body, content_type = encoded(files, data)
    ours = [(upload.filename, upload.data) for upload in split_multipart(body, content_type, 16)]
    assert ours == starlette_files(body, content_type)
    assert [name for name, _ in ours] == [spec[1][0] for spec in files]


def test_split_multipart_takes_a_preamble_an_epilogue_padding_and_data_like_the_boundary():
    boundary = "b0und"
    part = 'Content-Disposition: form-data; name="f"; filename="x.png"\r\nContent-Type: image/png\r\n\r\n'
    content = b"--b0un\r\n--b0unX\r\n-b0und"  # near-boundaries inside the data
    body = (
        b"a preamble\r\n--b0und  \r\n" + part.encode() + content + b"\r\n--b0und\r\n"
        b'content-disposition: form-data; name="field"\r\n\r\nvalue\r\n--b0und--\r\nan epilogue'
    )
    content_type = f"multipart/form-data; boundary={boundary}"
    assert split_multipart(body, content_type, 4) == [Upload("x.png", content)]
    # python-multipart refuses the preamble and the padding, which RFC 2046 allows.
    plain = body[body.index(b"--b0und") :].replace(b"--b0und  \r\n", b"--b0und\r\n", 1)
    assert starlette_files(plain, content_type) == [("x.png", content)]


@pytest.mark.parametrize(
    ("body", "content_type", "says"),
    [
        (b"--x\r\n\r\nz\r\n--x--", "multipart/form-data", "no boundary="),
        (b"garbage", "multipart/form-data; boundary=x", "never occurs"),
        (
            b'--x\r\nContent-Disposition: form-data; name="f"; filename="a"\r\n\r\ncut',
            "multipart/form-data; boundary=x",
            "cut off",
        ),
        (b"--xjunk\r\n\r\n\r\n--x--", "multipart/form-data; boundary=x", "text after it"),
        (b"--x\r\nno colon here\r\n\r\nz\r\n--x--", "multipart/form-data; boundary=x", "no colon"),
        (
            b"--x\r\nContent-Type: image/png\r\n\r\nz\r\n--x--",
            "multipart/form-data; boundary=x",
            "no Content-Disposition",
        ),
        (b"--x\r\n\r\nz\r\n--x--", "multipart/form-data; boundary=x", "no headers"),
        (
            b'--x\r\nContent-Disposition: form-data; name="a"\r\n\r\nb\r\n--x--\r\n',
            "multipart/form-data; boundary=x",
            "no image file",
        ),
    ],
)
def test_split_multipart_explains_malformed_bodies(body, content_type, says):
    with pytest.raises(InvalidRequest, match=says):
        split_multipart(body, content_type, 4)


def test_split_multipart_counts_files_and_fields():
    body, content_type = encoded([("file", (f"{i}.png", b"x")) for i in range(5)])
    assert len(split_multipart(body, content_type, 5)) == 5
    with pytest.raises(PayloadTooLarge, match="at most 4"):
        split_multipart(body, content_type, 4)
    fields, content_type = encoded([("file", ("a.png", b"x"))], {f"k{i}": "v" for i in range(MAX_FORM_FIELDS + 1)})
    with pytest.raises(InvalidRequest, match="fields"):
        split_multipart(fields, content_type, 4)
