"""Which webhook URLs a user may set: HTTPS to a public host; never a host written as an address
inside the service's network (or a loopback name) unless private targets are allowed."""

from __future__ import annotations

import pytest

from notifications.domain.errors import InvalidWebhookUrl
from notifications.domain.validation import checked_webhook_url, public_address

INSIDE = [
    "https://127.0.0.1/h",
    "https://127.8.9.10/h",
    "https://10.0.0.7/h",
    "https://172.16.0.1/h",
    "https://192.168.1.1:8443/h",
    "https://100.64.0.1/h",  # shared address space (carrier NAT)
    "https://169.254.169.254/latest/meta-data/",  # link-local: the cloud's metadata endpoint
    "https://0.0.0.0/h",
    "https://[::1]/h",
    "https://[fe80::1]/h",
    "https://[fd00::1]/h",
    "https://[::ffff:10.0.0.1]/h",  # an IPv4 private address mapped into IPv6
    "https://localhost/h",
    "https://LOCALHOST./h",
    "https://api.localhost/h",
]


@pytest.mark.parametrize("url", INSIDE)
def test_a_host_inside_the_network_is_refused(url):
    with pytest.raises(InvalidWebhookUrl, match="public host"):
        checked_webhook_url(url)


@pytest.mark.parametrize("url", INSIDE)
def test_private_targets_allow_them_for_development(url):
    assert checked_webhook_url(url, private_targets=True) == url


@pytest.mark.parametrize(
    "url", ["https://hooks.example.com/reserva", "https://93.184.215.14/h", "https://[2606:4700::1]/h"]
)
def test_public_https_hosts_are_accepted(url):
    assert checked_webhook_url(url) == url


def test_plain_http_only_to_loopback_and_only_when_private_targets_are_allowed():
    assert checked_webhook_url("http://127.0.0.1:9000/h", private_targets=True)
    for url, private in (("http://127.0.0.1:9000/h", False), ("http://hooks.example.com/h", True)):
        with pytest.raises(InvalidWebhookUrl):
            checked_webhook_url(url, private_targets=private)


@pytest.mark.parametrize("url", ["ftp://hooks.example.com/h", "https:///h", "https://[::1/h", "hooks.example.com"])
def test_malformed_urls_are_refused_with_a_clear_message(url):
    with pytest.raises(InvalidWebhookUrl, match="absolute https URL"):
        checked_webhook_url(url)


@pytest.mark.parametrize(
    ("address", "public"),
    [("8.8.8.8", True), ("2001:4860:4860::8888", True), ("127.0.0.1", False), ("::ffff:127.0.0.1", False),
     ("224.0.0.1", False), ("fe80::1%eth0", False), ("not an address", False)],
)  # fmt: skip
def test_public_address(address, public):
    assert public_address(address) is public
