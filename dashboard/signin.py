"""Sign-in throttling: failed sign-ins are counted per client address, per
account and address, and per account, in Redis (through Django's cache)
for WINDOW; past a limit the form answers with a clear message instead of
checking the password.

No lock-out an attacker can aim at someone: the per-account limit stops only
the addresses that have already failed for that account, so the account's
owner, signing in from an address of their own, still gets in while
someone else hammers it. If Redis is away the throttle lets sign-ins
through (and logs it): the password check still stands.
"""

import logging
from datetime import timedelta

from django.contrib.auth.forms import AuthenticationForm
from django.core.cache import cache
from django.core.exceptions import ValidationError

log = logging.getLogger(__name__)

WINDOW = timedelta(minutes=15)
PER_ADDRESS = 20  # failures from one address, whatever the accounts
PER_ACCOUNT_AND_ADDRESS = 5  # failures for one account from one address
PER_ACCOUNT = 50  # failures for one account from anywhere
MESSAGE = (
    "Too many failed sign-ins: wait 15 minutes, then try again. "
    "If you forgot your password, ask an owner of your organization."
)


def client_address(request) -> str:
    return request.META.get("REMOTE_ADDR", "") if request is not None else ""


def _keys(username: str, address: str) -> dict[str, str]:
    account = username.strip().lower()
    return {
        "address": f"herald:signin:address:{address}",
        "pair": f"herald:signin:pair:{account}:{address}",
        "account": f"herald:signin:account:{account}",
    }


def is_throttled(username: str, address: str) -> bool:
    keys = _keys(username, address)
    try:
        counts = cache.get_many(list(keys.values()))
    except Exception:
        log.warning("sign-in throttle not applied: the cache is unavailable", exc_info=True)
        return False
    failures = {name: int(counts.get(key) or 0) for name, key in keys.items()}
    return (
        failures["address"] >= PER_ADDRESS
        or failures["pair"] >= PER_ACCOUNT_AND_ADDRESS
        or (failures["account"] >= PER_ACCOUNT and failures["pair"] > 0)
    )


def record_failure(username: str, address: str) -> None:
    seconds = int(WINDOW.total_seconds())
    try:
        for key in _keys(username, address).values():
            cache.add(key, 0, seconds)
            cache.incr(key)
    except Exception:
        log.warning("sign-in failure not counted: the cache is unavailable", exc_info=True)


def forget_failures(username: str, address: str) -> None:
    """A successful sign-in clears this account's count from this address."""
    try:
        cache.delete(_keys(username, address)["pair"])
    except Exception:
        log.warning("could not clear sign-in failures", exc_info=True)


class ThrottledAuthenticationForm(AuthenticationForm):
    error_messages = {**AuthenticationForm.error_messages, "throttled": MESSAGE}

    def clean(self):
        username = self.cleaned_data.get("username") or ""
        address = client_address(self.request)
        if is_throttled(username, address):
            raise ValidationError(self.error_messages["throttled"], code="throttled")
        try:
            cleaned = super().clean()
        except ValidationError:
            record_failure(username, address)
            raise
        forget_failures(username, address)
        return cleaned
