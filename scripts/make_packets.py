#!/usr/bin/env python3
"""Write the sample packets in ``examples/packets/`` (Ethernet frames, one per file).

Why our own script: the packets are part of the examples' contract (the README runs
``netbpf prog run ... --data-in examples/packets/udp.bin``), so they must be
reproducible byte for byte and build without third-party packet libraries.  Every
header is packed with :mod:`struct`; checksums (IPv4 header, UDP/TCP with the pseudo
header) are computed, so the frames are valid on the wire.  Addresses come from the
documentation ranges (RFC 5737, RFC 3849), MACs are locally administered.

Run:  python3 scripts/make_packets.py [OUTDIR]   (default: examples/packets)
"""

from __future__ import annotations

import ipaddress
import struct
import sys
from pathlib import Path

SRC_MAC = bytes.fromhex("020000000001")
DST_MAC = bytes.fromhex("020000000002")
SRC4 = ipaddress.IPv4Address("192.0.2.1").packed
DST4 = ipaddress.IPv4Address("192.0.2.2").packed
SRC6 = ipaddress.IPv6Address("2001:db8::1").packed
DST6 = ipaddress.IPv6Address("2001:db8::2").packed

ETH_P_IP = 0x0800
ETH_P_IPV6 = 0x86DD
ETH_P_ARP = 0x0806
IPPROTO_TCP = 6
IPPROTO_UDP = 17


def checksum(data: bytes) -> int:
    """The Internet checksum (RFC 1071): one's complement of the one's complement sum."""
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def ether(proto: int, payload: bytes) -> bytes:
    return DST_MAC + SRC_MAC + struct.pack("!H", proto) + payload


def ipv4(proto: int, payload: bytes, *, ident: int = 1, ttl: int = 64) -> bytes:
    """An IPv4 header without options (IHL 5), Don't Fragment set."""
    header = struct.pack(
        "!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), ident, 0x4000, ttl, proto, 0, SRC4, DST4
    )
    csum = checksum(header)
    return header[:10] + struct.pack("!H", csum) + header[12:] + payload


def ipv6(nexthdr: int, payload: bytes, *, hop_limit: int = 64) -> bytes:
    return (
        struct.pack("!IHBB16s16s", 6 << 28, len(payload), nexthdr, hop_limit, SRC6, DST6) + payload
    )


def l4_checksum(proto: int, segment: bytes, v6: bool) -> int:
    if v6:
        pseudo = SRC6 + DST6 + struct.pack("!I3xB", len(segment), proto)
    else:
        pseudo = SRC4 + DST4 + struct.pack("!BBH", 0, proto, len(segment))
    csum = checksum(pseudo + segment)
    return csum or 0xFFFF  # UDP sends a computed 0 as all ones (RFC 768)


def udp(sport: int, dport: int, payload: bytes, *, v6: bool = False) -> bytes:
    seg = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
    csum = l4_checksum(IPPROTO_UDP, seg, v6)
    return seg[:6] + struct.pack("!H", csum) + seg[8:]


def tcp_syn(sport: int, dport: int, *, seq: int = 1000) -> bytes:
    """A SYN with the MSS option (a 24-byte header), as a client's first segment."""
    options = struct.pack("!BBH", 2, 4, 1460)
    offset = (20 + len(options)) // 4
    seg = struct.pack("!HHIIBBHHH", sport, dport, seq, 0, offset << 4, 0x02, 64240, 0, 0) + options
    csum = l4_checksum(IPPROTO_TCP, seg, False)
    return seg[:16] + struct.pack("!H", csum) + seg[18:]


def arp_request() -> bytes:
    """Who has 192.0.2.2? Tell 192.0.2.1 (sent to the broadcast MAC)."""
    body = struct.pack("!HHBBH6s4s6s4s", 1, ETH_P_IP, 6, 4, 1, SRC_MAC, SRC4, bytes(6), DST4)
    return b"\xff" * 6 + SRC_MAC + struct.pack("!H", ETH_P_ARP) + body


PACKETS: dict[str, bytes] = {
    # IPv4 UDP to port 7777: xdp_udp_drop drops it, tc_mark shoots it.
    "udp.bin": ether(ETH_P_IP, ipv4(IPPROTO_UDP, udp(40000, 7777, b"hello, netbpf\n"))),
    # IPv4 UDP to port 53: passed by everything.
    "udp_dns.bin": ether(
        ETH_P_IP,
        ipv4(
            IPPROTO_UDP, udp(40001, 53, bytes.fromhex("12340100000100000000000003777777")), ident=2
        ),
    ),
    # IPv6 UDP to port 7777: xdp_udp_drop drops it.
    "udp6.bin": ether(ETH_P_IPV6, ipv6(IPPROTO_UDP, udp(40000, 7777, b"hello, netbpf\n", v6=True))),
    # IPv4 TCP SYN to port 22: tc_mark marks it, socket_ssh_filter keeps it.
    "tcp_ssh.bin": ether(ETH_P_IP, ipv4(IPPROTO_TCP, tcp_syn(40002, 22), ident=3)),
    # IPv4 TCP SYN to port 80: passed untouched, socket_ssh_filter drops it.
    "tcp_http.bin": ether(ETH_P_IP, ipv4(IPPROTO_TCP, tcp_syn(40003, 80), ident=4)),
    # ARP: not IP at all.
    "arp.bin": arp_request(),
}


def main(argv: list[str]) -> int:
    out = (
        Path(argv[1])
        if len(argv) > 1
        else Path(__file__).resolve().parent.parent / "examples" / "packets"
    )
    out.mkdir(parents=True, exist_ok=True)
    for name, frame in PACKETS.items():
        (out / name).write_bytes(frame)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
