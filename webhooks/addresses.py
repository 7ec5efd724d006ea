"""Which network addresses a webhook may not reach (SSRF, SPEC §5).

The transport enforces this at connect time through requests-hardened; this
module applies the same rule to IP literals in URLs at validation time, so a
bad URL is refused with a clear message before anything is stored.
"""

import ipaddress

from requests_hardened.ip_filter import EXTRA_BLOCKED_NET_RANGES


def is_forbidden_address(address: str | ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """True for loopback, private, link-local, multicast, reserved and other
    non-public addresses. Pure: never resolves or connects."""
    ip = ipaddress.ip_address(address)
    if ip.version == 6 and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return (
        not ip.is_global
        or ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
        or any(ip in network for network in EXTRA_BLOCKED_NET_RANGES)
    )


def ip_literal(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None
