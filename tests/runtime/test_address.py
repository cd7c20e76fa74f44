"""The client address (app.runtime.address): trusted proxies, the shorthand, IPv6 per /64."""

from __future__ import annotations

from typing import Any

from app.runtime.address import ClientAddress, throttle_key


def scope(peer: str, *xff: str) -> dict[str, Any]:
    return {"type": "http", "client": (peer, 1234),
            "headers": [(b"x-forwarded-for", v.encode()) for v in xff]}


class TestClientAddress:
    def test_no_proxy_configured_ignores_the_header(self):
        assert ClientAddress().of_scope(scope("127.0.0.1", "1.2.3.4, 5.6.7.8")) == "127.0.0.1"

    def test_shorthand_trusts_the_immediate_peer_only(self):
        resolve = ClientAddress(trust_immediate_peer=True)
        assert resolve.of_scope(scope("127.0.0.1", "1.2.3.4, 5.6.7.8")) == "5.6.7.8"
        assert resolve.of_scope(scope("127.0.0.1")) == "127.0.0.1"

    def test_rightmost_hop_not_a_trusted_proxy(self):
        resolve = ClientAddress("10.0.0.0/8, 192.168.1.0/24")
        # client-written junk, the real client, then two of our proxies
        s = scope("10.0.0.5", "6.6.6.6, 198.51.100.7, 192.168.1.9", "10.1.1.1")
        assert resolve.of_scope(s) == "198.51.100.7"

    def test_an_untrusted_peer_is_the_client_whatever_it_says(self):
        resolve = ClientAddress("10.0.0.0/8")
        assert resolve.of_scope(scope("198.51.100.7", "10.0.0.1")) == "198.51.100.7"

    def test_only_proxies_in_the_chain_gives_the_leftmost(self):
        resolve = ClientAddress("10.0.0.0/8")
        assert resolve.of_scope(scope("10.0.0.5", "10.0.0.9, 10.0.0.8")) == "10.0.0.9"

    def test_ipv4_mapped_and_bracketed_forms_are_normalised(self):
        resolve = ClientAddress(trust_immediate_peer=True)
        assert resolve.of_scope(scope("::ffff:10.0.0.1", "::ffff:198.51.100.7")) == "198.51.100.7"
        assert resolve.of_scope(scope("10.0.0.1", "[2001:db8::1]")) == "2001:db8::1"


class TestThrottleKey:
    def test_ipv6_per_64_ipv4_as_is(self):
        assert throttle_key("2001:db8:1:2:aaaa::1") == throttle_key("2001:db8:1:2:bbbb::2")
        assert throttle_key("2001:db8:1:2::1") != throttle_key("2001:db8:1:3::1")
        assert throttle_key("198.51.100.7") == "198.51.100.7"
        assert throttle_key("::ffff:198.51.100.7") == "198.51.100.7"
