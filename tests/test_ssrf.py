"""SSRF guard (SPEC §5): non-public addresses are refused before connecting.

Address checks run on addresses without connecting anywhere; blocking end to
end is shown with a loopback receiver and the allow-private setting off.
"""

import socket

import pytest
import requests
from requests_hardened.ip_filter import InvalidIPAddress, get_ip_address

from deliveries.models import Delivery, DeliveryAttempt
from deliveries.publishing import publish
from deliveries.sender import classify
from tests.conftest import deliver_due
from tests.factories import WebhookFactory
from webhooks.addresses import is_forbidden_address
from webhooks.errors import InvalidInput
from webhooks.validation import clean_url

FORBIDDEN = [
    "127.0.0.1",
    "127.8.9.10",
    "10.0.0.1",
    "172.16.5.4",
    "192.168.1.1",
    "169.254.169.254",  # cloud metadata
    "0.0.0.0",
    "100.64.0.1",  # carrier-grade NAT
    "192.0.0.8",
    "198.18.0.1",  # benchmarking
    "224.0.0.1",  # multicast
    "240.0.0.1",  # reserved
    "255.255.255.255",
    "::1",
    "::",
    "fe80::1",
    "fc00::1",
    "ff02::1",
    "::ffff:127.0.0.1",  # IPv4-mapped loopback
    "::ffff:169.254.169.254",
    "64:ff9b::a00:1",  # NAT64 of 10.0.0.1
    "2001:db8::1",  # documentation
]
PUBLIC = ["93.184.216.34", "8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "2a00:1450:4001:81b::200e"]


@pytest.mark.parametrize("address", FORBIDDEN)
def test_non_public_addresses_are_forbidden(address):
    assert is_forbidden_address(address)


@pytest.mark.parametrize("address", PUBLIC)
def test_public_addresses_are_allowed(address):
    assert not is_forbidden_address(address)


@pytest.mark.parametrize(
    "address", ["127.0.0.1", "10.0.0.1", "169.254.169.254", "::1", "::ffff:10.0.0.1", "224.0.0.1"]
)
def test_the_transport_refuses_them_at_resolution_time(address):
    # getaddrinfo on an IP literal parses it; nothing is sent anywhere.
    with pytest.raises(InvalidIPAddress):
        get_ip_address(address, 443, allow_loopback=False)


def test_the_transport_lets_public_literals_through():
    ip, port = get_ip_address("93.184.216.34", 443, allow_loopback=False)
    assert str(ip) == "93.184.216.34" and port == 443


class TestUrlValidation:
    @pytest.mark.parametrize(
        "url",
        [
            "https://127.0.0.1/hook",
            "https://10.1.2.3:8443/hook",
            "https://[::1]/hook",
            "https://169.254.169.254/latest/meta-data",
            "https://[::ffff:192.168.0.1]/x",
        ],
    )
    def test_private_ip_literals_are_refused_when_not_allowed(self, settings, url):
        settings.HERALD_ALLOW_PRIVATE_TARGETS = False
        with pytest.raises(InvalidInput) as error:
            clean_url(url)
        assert error.value.field == "url" and "private" in error.value.message

    def test_they_are_accepted_when_allowed(self, settings):
        settings.HERALD_ALLOW_PRIVATE_TARGETS = True
        assert clean_url("https://127.0.0.1/hook") == "https://127.0.0.1/hook"

    def test_hostnames_are_checked_when_sending_not_when_saving(self, settings):
        settings.HERALD_ALLOW_PRIVATE_TARGETS = False
        assert clean_url("https://hooks.example.com/x") == "https://hooks.example.com/x"


class TestBlockedEndToEnd:
    @pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
    def test_a_loopback_receiver_is_never_contacted(self, org, receiver, settings, host):
        settings.HERALD_ALLOW_PRIVATE_TARGETS = False
        WebhookFactory(organization=org, url=f"http://{host}:{receiver.port}/hook")
        publish(org, "person.created", {})
        deliver_due()

        assert receiver.requests == []
        attempt = DeliveryAttempt.objects.get()
        assert attempt.error_kind == "blocked"
        assert "private" in attempt.error_message
        # A refused target is a failed attempt like any other, retried later.
        assert Delivery.objects.get().status == Delivery.Status.PENDING

    def test_the_same_receiver_is_reached_when_private_targets_are_allowed(self, org, receiver):
        WebhookFactory(organization=org, url=receiver.url())
        publish(org, "person.created", {})
        deliver_due()
        assert len(receiver.requests) == 1


def test_resolution_failures_are_classified_as_dns():
    failure = requests.ConnectionError("Failed to resolve domain")
    failure.__cause__ = socket.gaierror(socket.EAI_NONAME, "Name or service not known")
    assert classify(failure) == "dns"
