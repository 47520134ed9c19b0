"""The shipped examples: rebuilt bytes, valid packets, and the results they must give.

The expected results were first taken from the running kernel (BPF_PROG_TEST_RUN via
bpftool on the compiled objects); the kernel test below keeps checking them there,
the simulator test checks that netbpf gives the same.
"""

from __future__ import annotations

import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "examples"
PACKETS = EXAMPLES / "packets"

#: example -> (section / --type, {packet: retval})
EXPECTED: dict[str, tuple[str, dict[str, int]]] = {
    "xdp_udp_drop": (
        "xdp",
        {
            "udp.bin": 1,  # XDP_DROP
            "udp6.bin": 1,
            "udp_dns.bin": 2,  # XDP_PASS
            "tcp_ssh.bin": 2,
            "tcp_http.bin": 2,
            "arp.bin": 2,
        },
    ),
    "tc_mark": (
        "tc",
        {
            "udp.bin": 2,  # TC_ACT_SHOT
            "udp6.bin": 0,  # TC_ACT_OK
            "udp_dns.bin": 0,
            "tcp_ssh.bin": 0,
            "tcp_http.bin": 0,
            "arp.bin": 0,
        },
    ),
    "socket_ssh_filter": (
        "socket",
        {
            "tcp_ssh.bin": 44,  # keep the whole packet (skb->len, from L3)
            "tcp_http.bin": 0,
            "udp.bin": 0,
            "udp6.bin": 0,
            "udp_dns.bin": 0,
            "arp.bin": 0,
        },
    ),
}


def expected_data_out(example: str, packet_name: str) -> bytes:
    """What the kernel hands back as data_out for our examples."""
    packet = (PACKETS / packet_name).read_bytes()
    if example == "socket_ssh_filter":
        # Non-L2 skb types: the kernel pulls the Ethernet header before the run and
        # pushes back 14 zeroed bytes after it.
        return bytes(14) + packet[14:]
    if example == "tc_mark" and packet_name == "tcp_ssh.bin":
        # DSCP EF in the TOS byte, IPv4 header checksum fixed up.
        out = bytearray(packet)
        out[15] = 0xB8
        out[24:26] = bytes.fromhex("b60d")
        return bytes(out)
    return packet


CASES = [
    (example, section, packet, retval)
    for example, (section, table) in EXPECTED.items()
    for packet, retval in table.items()
]


def _spec(example: str, section: str):  # -> ProgramSpec
    from netbpf import ProgramSpec

    raw = (EXAMPLES / f"{example}.bin").read_bytes()
    return ProgramSpec.from_bytes(raw, prog_type=section, name=example)


# ------------------------------------------------------------------------ packets


def _ones_complement_sum_ok(data: bytes) -> bool:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return total == 0xFFFF


@pytest.mark.parametrize("name", sorted(p.name for p in PACKETS.glob("*.bin")))
def test_packet_checksums_verify(name: str) -> None:
    """Every IPv4 header, UDP and TCP checksum in the sample packets is right
    (summing a header with its checksum gives all ones)."""
    frame = (PACKETS / name).read_bytes()
    (ethertype,) = struct.unpack_from("!H", frame, 12)
    if ethertype == 0x0806:
        assert len(frame) == 42
        return
    if ethertype == 0x0800:
        ihl = (frame[14] & 0x0F) * 4
        assert _ones_complement_sum_ok(frame[14 : 14 + ihl])
        (total_len,) = struct.unpack_from("!H", frame, 16)
        assert 14 + total_len == len(frame)
        proto, src, dst = frame[23], frame[26:30], frame[30:34]
        l4 = frame[14 + ihl :]
        pseudo = src + dst + struct.pack("!BBH", 0, proto, len(l4))
    elif ethertype == 0x86DD:
        (plen,) = struct.unpack_from("!H", frame, 18)
        assert 14 + 40 + plen == len(frame)
        proto, src, dst = frame[20], frame[22:38], frame[38:54]
        l4 = frame[54:]
        pseudo = src + dst + struct.pack("!I3xB", len(l4), proto)
    else:
        pytest.fail(f"unexpected ethertype {ethertype:#x}")
    assert proto in (6, 17)
    assert _ones_complement_sum_ok(pseudo + l4)


def test_packets_script_reproduces_shipped_packets(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, str(REPO / "scripts" / "make_packets.py"), str(tmp_path)], check=True
    )
    built = sorted(p.name for p in tmp_path.iterdir())
    shipped = sorted(p.name for p in PACKETS.glob("*.bin"))
    assert built == shipped
    for name in built:
        assert (tmp_path / name).read_bytes() == (PACKETS / name).read_bytes(), name


def test_tc_mark_rewrite_keeps_ipv4_checksum_valid() -> None:
    out = expected_data_out("tc_mark", "tcp_ssh.bin")
    assert _ones_complement_sum_ok(out[14:34])


# ------------------------------------------------------------------------ rebuild


def _shipped_compiler() -> str:
    """The compiler that built the shipped objects: the DWARF producer string (the
    first ``clang version`` string in ``.debug_str``; BPF objects have no .comment)."""
    from elftools.elf.elffile import ELFFile

    with open(EXAMPLES / "xdp_udp_drop.o", "rb") as f:
        strings = ELFFile(f).get_section_by_name(".debug_str")
        assert strings is not None
        for item in strings.data().split(b"\0"):
            if b"clang version" in item:
                return item.decode()
    raise AssertionError("no clang producer string in xdp_udp_drop.o")


def test_build_recipe_reproduces_shipped_bytes(tmp_path: Path) -> None:
    """scripts/build_examples.sh, run from scratch, gives exactly the shipped .o, .bin
    and packet files."""
    for tool in ("clang-19", "llvm-objcopy-19"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed (apt-get install clang-19 llvm-19)")
    have = subprocess.run(
        ["clang-19", "--version"], capture_output=True, text=True, check=True
    ).stdout.splitlines()[0]
    shipped = _shipped_compiler()
    if have.strip() != shipped:
        pytest.skip(f"shipped objects were built by {shipped!r}, this machine has {have!r}")
    subprocess.run(["bash", str(REPO / "scripts" / "build_examples.sh"), str(tmp_path)], check=True)
    for example in EXPECTED:
        for ext in (".o", ".bin"):
            built = (tmp_path / f"{example}{ext}").read_bytes()
            assert built == (EXAMPLES / f"{example}{ext}").read_bytes(), f"{example}{ext}"
    for packet in PACKETS.glob("*.bin"):
        assert (tmp_path / "packets" / packet.name).read_bytes() == packet.read_bytes()


def test_every_example_source_is_built() -> None:
    sources = sorted(p.stem for p in (EXAMPLES / "src").glob("*.c"))
    assert sources == sorted(EXPECTED)
    script = (REPO / "scripts" / "build_examples.sh").read_text()
    for example, (section, _) in EXPECTED.items():
        assert f'"{example}:{section}"' in script


def test_bin_is_the_program_section_of_the_object() -> None:
    """The .bin files are the objects' program sections, byte for byte (so the raw
    examples are what clang compiled, not something edited after)."""
    from elftools.elf.elffile import ELFFile

    for example, (section, _) in EXPECTED.items():
        with open(EXAMPLES / f"{example}.o", "rb") as f:
            sec = ELFFile(f).get_section_by_name(section)
            assert sec is not None, f"{example}.o has no section {section!r}"
            assert sec.data() == (EXAMPLES / f"{example}.bin").read_bytes()
            # Self-contained: no relocations against the program section.
            assert ELFFile(f).get_section_by_name(f".rel{section}") is None


# --------------------------------------------------------------------- behaviour


@pytest.mark.parametrize(("example", "section", "packet", "retval"), CASES)
def test_example_in_simulator(example: str, section: str, packet: str, retval: int) -> None:
    from netbpf import SimBackend

    data = (PACKETS / packet).read_bytes()
    prog = SimBackend().load_program(_spec(example, section))
    try:
        result = prog.test_run(data_in=data)
    finally:
        prog.close()
    assert result.retval == retval
    assert result.data_out == expected_data_out(example, packet)


@pytest.mark.parametrize(("example", "section", "packet", "retval"), CASES)
def test_example_in_kernel(kernel, example: str, section: str, packet: str, retval: int) -> None:
    data = (PACKETS / packet).read_bytes()
    with kernel.load_program(_spec(example, section)) as prog:
        result = prog.test_run(data_in=data)
    assert result.retval == retval
    assert result.data_out == expected_data_out(example, packet)


def test_tc_mark_sets_mark_and_priority_in_simulator() -> None:
    from netbpf import SimBackend
    from netbpf.uapi import ctx_field

    prog = SimBackend().load_program(_spec("tc_mark", "tc"))
    try:
        # A context comes back only when one goes in: start from an all-zero one.
        result = prog.test_run(data_in=(PACKETS / "tcp_ssh.bin").read_bytes(), ctx_in=bytes(1))
    finally:
        prog.close()
    assert result.ctx_out is not None
    mark_off, _ = ctx_field("__sk_buff", "mark")
    prio_off, _ = ctx_field("__sk_buff", "priority")
    assert int.from_bytes(result.ctx_out[mark_off : mark_off + 4], "little") == 0x22
    assert int.from_bytes(result.ctx_out[prio_off : prio_off + 4], "little") == 6
