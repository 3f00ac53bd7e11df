"""THE guarded URL fetcher: every URL pixelserve fetches on a client's behalf goes through here.

Refuses what server-side request forgery needs: non-http(s) schemes, credentials in URLs, and any
host that resolves to a loopback, private, link-local, carrier-grade NAT, multicast, reserved,
unspecified or cloud-metadata address (IPv4-mapped IPv6 and numeric IPv4 spellings included,
since the resolver's answer is what is checked). The name is resolved once and the connection
goes to the address that was checked (DNS rebinding cannot swap it), with the original name as
Host header and TLS server name. Redirects are followed by hand, each hop checked again. The body
is streamed and cut at ``max_bytes``; one deadline covers the whole fetch.

``post`` sends a body the same way (webhooks): same address checks, no redirect followed (a 3xx is
the answer), the answer's body read up to ``max_bytes`` and the rest left unread.

httpx does the HTTP; the address policy is written here because httpx (like requests) has no
hook that checks the connected address, and the maintained SSRF filters found for Python wrap
``requests`` rather than httpx.
"""

from __future__ import annotations

import ipaddress
import socket
import time
from dataclasses import dataclass
from typing import Callable
from urllib.parse import urljoin, urlsplit

import httpx

from pixelserve.errors import InvalidRequest, PayloadTooLarge

CGNAT = ipaddress.ip_network("100.64.0.0/10")
METADATA = {ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254")}
REDIRECTS = {301, 302, 303, 307, 308}

Resolver = Callable[..., list]


@dataclass(frozen=True)
class FetchPolicy:
    max_bytes: int = 20 * 1024 * 1024
    timeout_s: float = 10.0
    max_redirects: int = 3
    #: Tests only: lets a fetch reach a server on 127.0.0.1. Every other private range stays refused.
    allow_loopback: bool = False
    #: Private, loopback, link-local ... addresses allowed too (webhooks on a private network); the
    #: cloud-metadata addresses stay refused whatever this says.
    allow_private: bool = False


class Unreachable(InvalidRequest):
    """The URL is allowed but could not be reached now (name not resolved, connection refused or cut,
    timeout): a later try may succeed."""


@dataclass(frozen=True)
class Answer:
    status: int
    headers: httpx.Headers
    body: bytes  # at most the policy's max_bytes


def blocked(ip: ipaddress.IPv4Address | ipaddress.IPv6Address, allow_loopback: bool = False,
            allow_private: bool = False) -> bool:
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip in METADATA:
        return True
    if allow_private:
        return False
    if ip.is_loopback:
        return not allow_loopback
    return (ip.is_private or ip.is_link_local or ip.is_multicast or ip.is_reserved or ip.is_unspecified
            or (isinstance(ip, ipaddress.IPv4Address) and ip in CGNAT))


def _checked_address(url: str, policy: FetchPolicy, field: str, resolver: Resolver) -> tuple[str, int, str]:
    """(host name, port, the IP to connect to) for ``url``, or InvalidRequest."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise InvalidRequest("only http and https URLs are fetched", field=field)
    if parts.username is not None or parts.password is not None:
        raise InvalidRequest("URLs with credentials are not fetched", field=field)
    host = parts.hostname
    if not host:
        raise InvalidRequest("URL has no host", field=field)
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise InvalidRequest("URL has an invalid port", field=field) from None
    try:
        infos = resolver(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError, OSError):
        raise Unreachable(f"cannot resolve host {host!r}", field=field) from None
    addresses = {ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos}
    if not addresses or any(blocked(ip, policy.allow_loopback, policy.allow_private) for ip in addresses):
        raise InvalidRequest(f"host {host!r} is not a public address; it is not fetched", field=field)
    return host, port, str(sorted(addresses, key=lambda ip: ip.version)[0])


def check_url(url: str, *, policy: FetchPolicy = FetchPolicy(), field: str = "url",
              resolver: Resolver = socket.getaddrinfo) -> None:
    """Raises InvalidRequest when ``url`` would not be fetched under ``policy`` (Unreachable when its
    name does not resolve now)."""
    _checked_address(url, policy, field, resolver)


def _pinned(url: str, policy: FetchPolicy, field: str, resolver: Resolver) -> tuple[str, str, dict]:
    """(URL aimed at the checked IP, host name for TLS, the Host header) for ``url``."""
    host, port, ip = _checked_address(url, policy, field, resolver)
    parts = urlsplit(url)
    literal = f"[{ip}]" if ":" in ip else ip
    target = parts._replace(netloc=f"{literal}:{port}").geturl()
    default_port = port == (443 if parts.scheme == "https" else 80)
    return target, host, {"Host": host if default_port else f"{host}:{port}"}


def post(url: str, body: bytes, headers: dict[str, str], *, policy: FetchPolicy = FetchPolicy(),
         field: str = "url", resolver: Resolver = socket.getaddrinfo) -> Answer:
    """POSTs ``body`` to ``url`` under ``policy`` and returns the answer, whatever its status (a
    redirect is not followed). Raises InvalidRequest for a refused URL, Unreachable for a failure to
    get an answer (timeout, connection refused or cut)."""
    deadline = time.monotonic() + policy.timeout_s
    target, host, host_header = _pinned(url, policy, field, resolver)
    late = Unreachable(f"no answer within {policy.timeout_s:g} s", field=field)
    try:
        with httpx.Client(timeout=policy.timeout_s, follow_redirects=False, trust_env=False) as client:
            with client.stream("POST", target, content=body, headers={**headers, **host_header},
                               extensions={"sni_hostname": host}) as response:
                got = bytearray()
                for chunk in response.iter_bytes():
                    got += chunk
                    if len(got) >= policy.max_bytes or time.monotonic() > deadline:
                        break  # the status is what counts: the rest of a long answer is not read
                return Answer(response.status_code, response.headers, bytes(got[:policy.max_bytes]))
    except httpx.TimeoutException:
        raise late from None
    except httpx.HTTPError as e:
        raise Unreachable(f"connection failed ({type(e).__name__})", field=field) from None


def fetch(url: str, *, policy: FetchPolicy = FetchPolicy(), field: str = "url",
          resolver: Resolver = socket.getaddrinfo) -> bytes:
    """The body of ``url`` (GET), under ``policy``; raises InvalidRequest / PayloadTooLarge."""
    deadline = time.monotonic() + policy.timeout_s
    with httpx.Client(timeout=policy.timeout_s, follow_redirects=False, trust_env=False) as client:
        for _ in range(policy.max_redirects + 1):
            if time.monotonic() > deadline:
                raise InvalidRequest(f"fetching the URL took over {policy.timeout_s:g} s", field=field)
            target, host, host_header = _pinned(url, policy, field, resolver)
            headers = {**host_header, "Accept": "image/*"}
            try:
                with client.stream("GET", target, headers=headers,
                                   extensions={"sni_hostname": host}) as response:
                    if response.status_code in REDIRECTS and "location" in response.headers:
                        url = urljoin(url, response.headers["location"])
                        continue
                    if not 200 <= response.status_code < 300:
                        raise InvalidRequest(f"fetching the URL answered HTTP {response.status_code}", field=field)
                    declared = response.headers.get("content-length", "")
                    if declared.isdigit() and int(declared) > policy.max_bytes:
                        raise PayloadTooLarge(f"the URL's content is over {policy.max_bytes} bytes", field=field)
                    body = bytearray()
                    for chunk in response.iter_bytes():
                        body += chunk
                        if len(body) > policy.max_bytes:
                            raise PayloadTooLarge(f"the URL's content is over {policy.max_bytes} bytes",
                                                  field=field)
                        if time.monotonic() > deadline:
                            raise InvalidRequest(f"fetching the URL took over {policy.timeout_s:g} s", field=field)
                    return bytes(body)
            except httpx.TimeoutException:
                raise InvalidRequest(f"fetching the URL took over {policy.timeout_s:g} s", field=field) from None
            except httpx.HTTPError as e:
                raise InvalidRequest(f"fetching the URL failed ({type(e).__name__})", field=field) from None
    raise InvalidRequest(f"more than {policy.max_redirects} redirects", field=field)
