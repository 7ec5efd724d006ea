"""The request body: Twig's envelope plus the webhook id, as compact JSON.

`data` is serialised once at publish time and spliced in verbatim, so every
attempt of every delivery of an event carries byte-identical data.
"""

import functools
import json
from datetime import datetime


class PayloadError(ValueError):
    """`data` cannot be sent as JSON (NaN, Infinity, lone surrogates…)."""


def dumps_compact(value: object) -> str:
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    if "e-" in text:
        # Python writes 1e-05 and 1e-07 where JavaScript writes 0.00001 and
        # 1e-7; re-encode so that JSON.stringify(JSON.parse(body)) gives the
        # same bytes. Rare, so the slow path costs nothing in general. (Large
        # floats are integral, which SPEC §3 leaves out: rewriting 1e+16 as
        # digits would change the value a Python receiver parses.)
        text = _encode_js(value)
    return text


def js_number(value: float) -> str:
    """A float below 1e-4 as JavaScript's Number.prototype.toString writes it
    (ECMA-262); other floats as Python writes them, which is the same but for
    integral ones ("1.0", "1e+16"), left out by SPEC §3."""
    if value != value or value in (float("inf"), float("-inf")):
        raise ValueError("NaN and Infinity are not valid JSON numbers")
    text = repr(abs(value))
    if "e-" not in text:
        return repr(value)
    mantissa, _, exponent = text.partition("e")
    whole, _, fraction = mantissa.partition(".")
    digits = (whole + fraction).rstrip("0")
    leading = len(digits) - len(digits.lstrip("0"))
    digits = digits.lstrip("0")
    point = len(whole) + int(exponent) - leading  # value = 0.digits × 10^point
    k = len(digits)
    if k <= point <= 21:
        body = digits + "0" * (point - k)
    elif 0 < point <= 21:
        body = digits[:point] + "." + digits[point:]
    elif -6 < point <= 0:
        body = "0." + "0" * -point + digits
    else:
        power = point - 1
        head = digits[0] + ("." + digits[1:] if k > 1 else "")
        body = f"{head}e{'+' if power > 0 else '-'}{abs(power)}"
    return ("-" if value < 0 else "") + body


def _encode_key(key: object) -> str:
    # Like json.dumps: scalar keys become their JSON text.
    if isinstance(key, str):
        return key
    if key is None or isinstance(key, bool | int | float):
        return _encode_js(key)
    raise TypeError(f"keys must be str, int, float, bool or None, not {type(key).__name__}")


def _encode_js(value: object) -> str:
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return int.__repr__(value)
    if isinstance(value, float):
        return js_number(value)
    if isinstance(value, dict):
        items = (
            json.dumps(_encode_key(k), ensure_ascii=False) + ":" + _encode_js(v)
            for k, v in value.items()
        )
        return "{" + ",".join(items) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(_encode_js(item) for item in value) + "]"
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def serialize_data(data: object) -> str:
    """Compact JSON text of `data`, refusing what JSON or UTF-8 cannot carry."""
    try:
        text = dumps_compact(data)
    except ValueError as exc:
        raise PayloadError("NaN and Infinity are not valid JSON numbers") from exc
    except TypeError as exc:
        raise PayloadError(f"not JSON-serialisable: {exc}") from exc
    except RecursionError as exc:
        raise PayloadError("nested too deeply") from exc
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
@functools.lru_cache(maxsize=1024)  # checked on every publish, a function of the type alone
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
