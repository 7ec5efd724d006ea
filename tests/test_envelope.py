"""The request body: compact JSON that JavaScript re-serialises to the same bytes."""

import json
import random
import struct
import subprocess
from datetime import UTC, datetime

import pytest

from deliveries.envelope import PayloadError, build_body, dumps_compact, js_number, serialize_data


def node_restringify(text: str) -> str:
    script = "let s='';process.stdin.on('data',d=>s+=d).on('end',()=>process.stdout.write(JSON.stringify(JSON.parse(s))))"
    return subprocess.run(
        ["node", "-e", script], input=text.encode(), capture_output=True, check=True
    ).stdout.decode()


def test_the_envelope_has_twigs_fields_plus_the_webhook_id_in_order():
    body = build_body(
        event_id="evt_1",
        event_type="person.created",
        timestamp=datetime(2026, 11, 22, 10, 30, 0, 123456, tzinfo=UTC),
        organization_id="org_1",
        webhook_id="wh_1",
        data_json='{"a":1}',
    )
    assert body == (
        b'{"id":"evt_1","type":"person.created","timestamp":"2026-11-22T10:30:00.123Z",'
        b'"organizationId":"org_1","webhookId":"wh_1","data":{"a":1}}'
    )


def test_small_floats_are_written_as_javascript_writes_them():
    rng = random.Random(7)
    values = [1e-05, 1.23e-05, 2.5e-07, 1e-07, 5e-324, -3e-5, 0.0001, 0.1, 1 / 3, 98.6]
    values += [struct.unpack("d", struct.pack("Q", rng.getrandbits(64)))[0] for _ in range(2000)]
    values = [
        v for v in values if v == v and abs(v) != float("inf") and (abs(v) < 1e16 or v != int(v))
    ]
    values = [
        v for v in values if v != int(v) or abs(v) < 1
    ]  # integral floats: SPEC §3 leaves them out
    text = dumps_compact({"values": values})
    assert node_restringify(text) == text
    assert json.loads(text)["values"] == values  # and the numbers are unchanged


@pytest.mark.parametrize(
    "value, expected",
    [
        (1e-05, "0.00001"),
        (1.23e-05, "0.0000123"),
        (2.5e-07, "2.5e-7"),
        (1e-07, "1e-7"),
        (-4.5e-10, "-4.5e-10"),
        (0.5, "0.5"),
        (1e300, "1e+300"),
    ],
)
def test_js_number(value, expected):
    assert js_number(value) == expected


@pytest.mark.parametrize("value", [float("nan"), float("inf"), {"nested": [float("-inf")]}])
def test_nan_and_infinity_are_refused(value):
    with pytest.raises(PayloadError):
        serialize_data({"x": value})


def test_lone_surrogates_are_refused():
    with pytest.raises(PayloadError):
        serialize_data({"x": "\udc00"})


def test_non_ascii_text_is_sent_as_utf8_not_escapes():
    assert serialize_data({"name": "Zoë 日本"}) == '{"name":"Zoë 日本"}'
