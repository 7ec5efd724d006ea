"""The request body: Twig's envelope plus the webhook id, as compact JSON.

`data` is serialised once at publish time and spliced in verbatim, so every
attempt of every delivery of an event carries byte-identical data.
"""

import json
from datetime import datetime


class PayloadError(ValueError):
    """`data` cannot be sent as JSON (NaN, Infinity, lone surrogates…)."""


def dumps_compact(value: object) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def serialize_data(data: object) -> str:
    """Compact JSON text of `data`, refusing what JSON or UTF-8 cannot carry."""
    try:
        text = dumps_compact(data)
    except ValueError as exc:
        raise PayloadError("NaN and Infinity are not valid JSON numbers") from exc
    except TypeError as exc:
        raise PayloadError(f"not JSON-serialisable: {exc}") from exc
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise PayloadError("contains a lone surrogate, which is not valid UTF-8") from exc
    return text


def iso_millis(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def build_body(
    *,
    event_id: str,
    event_type: str,
    timestamp: datetime,
    organization_id: str,
    webhook_id: str,
    data_json: str,
) -> bytes:
    head = dumps_compact(
        {
            "id": event_id,
            "type": event_type,
            "timestamp": iso_millis(timestamp),
            "organizationId": organization_id,
            "webhookId": webhook_id,
        }
    )
    return (head[:-1] + ',"data":' + data_json + "}").encode("utf-8")


# Bytes the envelope adds around `data` for a type of a given length: ids have
# fixed lengths, so this is exact.
def envelope_overhead(event_type: str) -> int:
    sample = build_body(
        event_id="evt_" + "0" * 26,
        event_type=event_type,
        timestamp=datetime(2000, 1, 1),
        organization_id="org_" + "0" * 26,
        webhook_id="wh_" + "0" * 26,
        data_json="",
    )
    return len(sample)
