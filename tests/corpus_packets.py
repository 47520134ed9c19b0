"""Packet builders for the differential corpus (tests/test_corpus.py), with ``struct``.

Headers are built field by field with correct lengths and checksums (IPv4 header,
TCP/UDP/ICMP/ICMPv6 over their pseudo headers), so programs that rewrite packets can be
checked by recomputing the checksums from scratch.  ``STANDARD`` is the set every
program of the corpus runs on: IPv4/IPv6 with TCP, UDP and ICMP, VLAN and QinQ tags,
IPv4 and IPv6 fragments, IPv4 options, ARP, frames cut short at every header, and the
largest frame each hook takes.  ``parse`` reads a frame back for the Python models.
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass

ETH_P_IP = 0x0800
ETH_P_ARP = 0x0806
ETH_P_IPV6 = 0x86DD
ETH_P_8021Q = 0x8100
ETH_P_8021AD = 0x88A8
ETH_P_EXP = 0x88B5  # IEEE local experimental EtherType
IPPROTO_ICMP, IPPROTO_IPIP, IPPROTO_TCP, IPPROTO_UDP = 1, 4, 6, 17
IPPROTO_FRAGMENT, IPPROTO_ICMPV6 = 44, 58

MAC_DST = bytes.fromhex("000000000000")  # lo's address: the kernel's test_run host
MAC_SRC = bytes.fromhex("020000000002")

#: largest frames BPF_PROG_TEST_RUN takes in one buffer on 4 KiB pages: XDP
#: (page - XDP_PACKET_HEADROOM - skb_shared_info) and skb programs
XDP_MAX = 3520
SKB_MAX = 3712


# ----------------------------------------------------------------------- checksums


def csum16(data: bytes, seed: int = 0) -> int:
    """The Internet checksum (RFC 1071) of ``data``: the one's complement of the one's
    complement sum of its 16-bit big-endian words (an odd byte is padded with zero)."""
    if len(data) % 2:
        data += b"\0"
    s = seed + sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def ones_sum(data: bytes) -> int:
    """The folded one's complement sum (not complemented) of ``data``."""
    return ~csum16(data) & 0xFFFF


def ip4(addr: str) -> bytes:
    return ipaddress.IPv4Address(addr).packed


def ip6(addr: str) -> bytes:
    return ipaddress.IPv6Address(addr).packed


def pseudo4(src: bytes, dst: bytes, proto: int, length: int) -> bytes:
    return src + dst + struct.pack("!BBH", 0, proto, length)


def pseudo6(src: bytes, dst: bytes, proto: int, length: int) -> bytes:
    return src + dst + struct.pack("!IxxxB", length, proto)


# ----------------------------------------------------------------------- headers


def eth(
    ethertype: int, payload: bytes = b"", *, dst: bytes = MAC_DST, src: bytes = MAC_SRC
) -> bytes:
    return dst + src + struct.pack("!H", ethertype) + payload


def vlan(tags: list[tuple[int, int]], ethertype: int, payload: bytes) -> bytes:
    """An Ethernet frame with VLAN tags, outermost first: ``[(tpid, tci), ...]``."""
    out = b""
    for i, (tpid, tci) in enumerate(tags):
        out += struct.pack("!H", tpid) if i else b""
        out += struct.pack("!H", tci)
    return eth(tags[0][0], out + struct.pack("!H", ethertype) + payload)


def l4_tcp(
    sport: int, dport: int, payload: bytes = b"", *, seq: int = 1, flags: int = 0x18
) -> bytes:
    """A TCP header (20 bytes, checksum 0: filled in by ipv4()/ipv6())."""
    return struct.pack("!HHIIBBHHH", sport, dport, seq, 0, 0x50, flags, 65535, 0, 0) + payload


def l4_udp(sport: int, dport: int, payload: bytes = b"") -> bytes:
    return struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload


def l4_icmp(
    typ: int = 8, code: int = 0, ident: int = 0x4242, seq: int = 1, payload: bytes = b""
) -> bytes:
    hdr = struct.pack("!BBHHH", typ, code, 0, ident, seq) + payload
    return hdr[:2] + struct.pack("!H", csum16(hdr)) + hdr[4:]


def _l4_checksum(proto: int, l4: bytes, pseudo: bytes, *, udp_zero: bool = False) -> bytes:
    off = {IPPROTO_TCP: 16, IPPROTO_UDP: 6, IPPROTO_ICMPV6: 2}.get(proto)
    if off is None or len(l4) < off + 2:
        return l4
    if proto == IPPROTO_UDP and udp_zero:
        return l4
    c = csum16(pseudo + l4[:off] + b"\0\0" + l4[off + 2 :])
    if proto == IPPROTO_UDP and c == 0:
        c = 0xFFFF
    return l4[:off] + struct.pack("!H", c) + l4[off + 2 :]


def ipv4(
    proto: int,
    l4: bytes = b"",
    *,
    src: str = "10.0.0.1",
    dst: str = "10.0.0.2",
    ttl: int = 64,
    tos: int = 0,
    ident: int = 1,
    df: bool = True,
    mf: bool = False,
    frag_offset: int = 0,
    options: bytes = b"",
    udp_zero_csum: bool = False,
) -> bytes:
    """An IPv4 packet with a valid header checksum; the TCP/UDP checksum is computed
    over the pseudo header unless this is a fragment (or ``udp_zero_csum``)."""
    if len(options) % 4:
        raise ValueError("IPv4 options must be a multiple of 4 bytes")
    s, d = ip4(src), ip4(dst)
    if not mf and frag_offset == 0:
        l4 = _l4_checksum(proto, l4, pseudo4(s, d, proto, len(l4)), udp_zero=udp_zero_csum)
    ihl = 5 + len(options) // 4
    frag = (0x4000 if df else 0) | (0x2000 if mf else 0) | (frag_offset // 8)
    hdr = (
        struct.pack(
            "!BBHHHBBH4s4s", 0x40 | ihl, tos, ihl * 4 + len(l4), ident, frag, ttl, proto, 0, s, d
        )
        + options
    )
    hdr = hdr[:10] + struct.pack("!H", csum16(hdr)) + hdr[12:]
    return hdr + l4


def ipv6(
    nexthdr: int,
    l4: bytes = b"",
    *,
    src: str = "2001:db8::1",
    dst: str = "2001:db8::2",
    hop_limit: int = 64,
    tclass: int = 0,
    frag: tuple[int, bool, int] | None = None,
) -> bytes:
    """An IPv6 packet; ``frag=(offset, more, ident)`` adds a fragment header."""
    s, d = ip6(src), ip6(dst)
    body = l4
    nh = nexthdr
    if frag is None:
        if nexthdr == IPPROTO_ICMPV6 and len(l4) >= 4:
            l4 = l4[:2] + b"\0\0" + l4[4:]
        body = _l4_checksum(nexthdr, l4, pseudo6(s, d, nexthdr, len(l4)))
    else:
        off, more, ident = frag
        body = struct.pack("!BBHI", nexthdr, 0, (off // 8) << 3 | int(more), ident) + l4
        nh = IPPROTO_FRAGMENT
    first = 0x60000000 | tclass << 20
    return struct.pack("!IHBB", first, len(body), nh, hop_limit) + s + d + body


def icmp6_echo(ident: int = 0x4343, seq: int = 1, payload: bytes = b"") -> bytes:
    return struct.pack("!BBHHH", 128, 0, 0, ident, seq) + payload


def arp_request() -> bytes:
    return struct.pack(
        "!HHBBH6s4s6s4s", 1, ETH_P_IP, 6, 4, 1, MAC_SRC, ip4("10.0.0.1"), bytes(6), ip4("10.0.0.2")
    )


def udp4_of_size(
    size: int, *, src: str = "10.0.0.1", dst: str = "10.0.0.2", dport: int = 53
) -> bytes:
    """An Ethernet/IPv4/UDP frame of exactly ``size`` bytes (payload: a byte pattern)."""
    n = size - 14 - 20 - 8
    payload = bytes((i * 7 + 3) & 0xFF for i in range(n))
    return eth(ETH_P_IP, ipv4(IPPROTO_UDP, l4_udp(40000, dport, payload), src=src, dst=dst))


# ----------------------------------------------------------------------- the packet set


def _standard() -> dict[str, bytes]:
    hello = b"hello, corpus!"
    p: dict[str, bytes] = {}
    p["ipv4_tcp"] = eth(ETH_P_IP, ipv4(IPPROTO_TCP, l4_tcp(40000, 80, hello)))
    p["ipv4_tcp_ssh"] = eth(
        ETH_P_IP, ipv4(IPPROTO_TCP, l4_tcp(40001, 22), src="10.1.2.3", dst="10.0.0.7")
    )
    p["ipv4_udp"] = eth(ETH_P_IP, ipv4(IPPROTO_UDP, l4_udp(5353, 53, b"dns?"), src="10.0.0.9"))
    p["ipv4_udp_nocsum"] = eth(
        ETH_P_IP,
        ipv4(
            IPPROTO_UDP,
            l4_udp(5000, 4791, bytes(16)),
            src="192.168.1.10",
            dst="10.0.0.3",
            udp_zero_csum=True,
        ),
    )
    p["ipv4_icmp"] = eth(
        ETH_P_IP, ipv4(IPPROTO_ICMP, l4_icmp(payload=bytes(range(32))), src="172.16.0.5")
    )
    p["ipv4_options"] = eth(
        ETH_P_IP,
        ipv4(
            IPPROTO_TCP,
            l4_tcp(1234, 443),
            src="10.0.0.1",
            dst="10.0.0.6",
            options=b"\x01\x01\x01\x00",
        ),
    )
    p["ipv4_frag_first"] = eth(
        ETH_P_IP,
        ipv4(IPPROTO_UDP, l4_udp(7000, 53, bytes(24)), src="10.0.0.1", df=False, mf=True, ident=77),
    )
    p["ipv4_frag_later"] = eth(
        ETH_P_IP,
        ipv4(IPPROTO_UDP, bytes(range(40)), src="10.0.0.1", df=False, frag_offset=32, ident=77),
    )
    p["ipv6_tcp"] = eth(ETH_P_IPV6, ipv6(IPPROTO_TCP, l4_tcp(40000, 443, hello)))
    p["ipv6_udp"] = eth(
        ETH_P_IPV6, ipv6(IPPROTO_UDP, l4_udp(5353, 53, b"aaaa?"), src="2001:db8:1::5")
    )
    p["ipv6_icmp"] = eth(ETH_P_IPV6, ipv6(IPPROTO_ICMPV6, icmp6_echo(payload=b"ping6")))
    p["ipv6_frag"] = eth(
        ETH_P_IPV6,
        ipv6(IPPROTO_UDP, l4_udp(6000, 53, bytes(16)), src="2001:db8::1", frag=(0, True, 99)),
    )
    p["vlan_ipv4_udp"] = vlan(
        [(ETH_P_8021Q, 100)], ETH_P_IP, ipv4(IPPROTO_UDP, l4_udp(1000, 53, b"v"))
    )
    p["vlan_ipv6_tcp"] = vlan(
        [(ETH_P_8021Q, 0x2000 | 200)], ETH_P_IPV6, ipv6(IPPROTO_TCP, l4_tcp(1000, 80))
    )
    p["qinq_ipv4_tcp"] = vlan(
        [(ETH_P_8021AD, 300), (ETH_P_8021Q, 42)], ETH_P_IP, ipv4(IPPROTO_TCP, l4_tcp(999, 23))
    )
    p["arp"] = eth(ETH_P_ARP, arp_request())
    p["eth_only"] = eth(ETH_P_EXP)
    p["short_13"] = eth(ETH_P_IP)[:13]
    p["ipv4_trunc_hdr"] = eth(ETH_P_IP, ipv4(IPPROTO_TCP, l4_tcp(1, 2))[:12])
    p["ipv4_trunc_l4"] = eth(ETH_P_IP, ipv4(IPPROTO_TCP, l4_tcp(40000, 80))[:24])
    p["ipv6_trunc_hdr"] = eth(ETH_P_IPV6, ipv6(IPPROTO_UDP, l4_udp(1, 2))[:30])
    p["ipv4_tcp_again"] = p["ipv4_tcp"]
    p["ipv4_udp_min60"] = udp4_of_size(60, src="10.0.0.9")
    p["max_xdp"] = udp4_of_size(XDP_MAX, src="10.0.0.1", dst="10.0.0.4")
    p["max_skb"] = udp4_of_size(SKB_MAX, src="10.0.0.1", dst="10.0.0.5")
    return p


#: name -> frame; the runs of every corpus program go through these in this order
STANDARD: dict[str, bytes] = _standard()


# ----------------------------------------------------------------------- parsing


@dataclass
class Parsed:
    """A frame as the corpus programs' parse_frame() sees it (offsets into the frame)."""

    ethertype: int = 0  # of the network header, after VLAN tags
    vlan_ids: tuple[int, ...] = ()
    l3: int | None = None  # offset of the network header if it is complete
    l4: int | None = None  # offset of the transport header (first fragment only)
    ip_proto: int = 0
    fragment: bool = False
    src: bytes = b""
    dst: bytes = b""

    @property
    def l3_ok(self) -> bool:
        return self.l3 is not None


def parse(frame: bytes) -> Parsed | None:
    """None for a frame shorter than Ethernet; see corpus_common.h's parse_frame()."""
    if len(frame) < 14:
        return None
    p = Parsed()
    proto = struct.unpack_from("!H", frame, 12)[0]
    off = 14
    vids: list[int] = []
    for _ in range(2):
        if proto not in (ETH_P_8021Q, ETH_P_8021AD):
            break
        if off + 4 > len(frame):
            p.vlan_ids = tuple(vids)
            return p
        tci, proto = struct.unpack_from("!HH", frame, off)
        vids.append(tci & 0xFFF)
        off += 4
    p.vlan_ids = tuple(vids)
    p.ethertype = proto
    if proto == ETH_P_IP:
        if off + 20 > len(frame):
            return p
        ihl = (frame[off] & 0xF) * 4
        if ihl < 20 or off + ihl > len(frame):
            return p
        p.l3 = off
        p.ip_proto = frame[off + 9]
        frag = struct.unpack_from("!H", frame, off + 6)[0]
        p.fragment = bool(frag & 0x3FFF)
        p.src, p.dst = frame[off + 12 : off + 16], frame[off + 16 : off + 20]
        if not frag & 0x1FFF:
            p.l4 = off + ihl
    elif proto == ETH_P_IPV6:
        if off + 40 > len(frame):
            return p
        p.l3 = off
        p.ip_proto = frame[off + 6]
        p.src, p.dst = frame[off + 8 : off + 24], frame[off + 24 : off + 40]
        p.l4 = off + 40
        if p.ip_proto == IPPROTO_FRAGMENT:
            fh = off + 40
            if fh + 8 > len(frame):
                p.l4 = None
                return p
            p.fragment = True
            p.ip_proto = frame[fh]
            p.l4 = fh + 8 if struct.unpack_from("!H", frame, fh + 2)[0] >> 3 == 0 else None
    return p


def dport(frame: bytes, p: Parsed) -> int | None:
    """The TCP/UDP destination port, if the header is there."""
    if p.l4 is None or p.ip_proto not in (IPPROTO_TCP, IPPROTO_UDP) or p.l4 + 8 > len(frame):
        return None
    return struct.unpack_from("!H", frame, p.l4 + 2)[0]


def l4_checksum_ok(frame: bytes, l3: int) -> bool:
    """Whether the IPv4/IPv6 TCP/UDP checksum of ``frame`` (network header at ``l3``)
    verifies (a UDP checksum of 0 means none)."""
    if frame[l3] >> 4 == 4:
        ihl = (frame[l3] & 0xF) * 4
        total = struct.unpack_from("!H", frame, l3 + 2)[0]
        proto = frame[l3 + 9]
        l4 = frame[l3 + ihl : l3 + total]
        pseudo = pseudo4(frame[l3 + 12 : l3 + 16], frame[l3 + 16 : l3 + 20], proto, len(l4))
    else:
        plen = struct.unpack_from("!H", frame, l3 + 4)[0]
        proto = frame[l3 + 6]
        l4 = frame[l3 + 40 : l3 + 40 + plen]
        pseudo = pseudo6(frame[l3 + 8 : l3 + 24], frame[l3 + 24 : l3 + 40], proto, len(l4))
    if proto == IPPROTO_UDP and l4[6:8] == b"\0\0":
        return True
    return csum16(pseudo + l4) == 0


def ipv4_header_ok(frame: bytes, l3: int) -> bool:
    ihl = (frame[l3] & 0xF) * 4
    return csum16(frame[l3 : l3 + ihl]) == 0
