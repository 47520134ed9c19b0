"""The ctypes ``union bpf_attr`` members and info structs match linux/bpf.h.

clang's ``-fdump-record-layouts`` gives the compiler's own offsets for every field of
the installed header; each of our Structures must have every header field at the
same offset and size.  Fields newer than the installed header are allowed only after
the header's last field (the kernel accepts them as zero-filled tail).
"""

from __future__ import annotations

import ctypes
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from netbpf.kernel import syscall as sysc

HEADER_INCLUDE = "-I/usr/include/x86_64-linux-gnu"

# Our Structure -> the C member name in union bpf_attr (None: an anonymous member).
MEMBER_NAMES: dict[type[ctypes.Structure], str | None] = {
    sysc._MapCreateAttr: None,
    sysc._MapElemAttr: None,
    sysc._MapBatchAttr: "batch",
    sysc._ProgLoadAttr: None,
    sysc._ObjAttr: None,
    sysc._TestRunAttr: "test",
    sysc._InfoAttr: "info",
    sysc._BtfLoadAttr: None,
}

# Fields the running kernel has but the 6.1 header installed here may not.
NEWER_THAN_HEADER = {
    "value_type_btf_obj_fd",
    "map_token_fd",
    "log_true_size",
    "prog_token_fd",
    "fd_array_cnt",
    "path_fd",
    "btf_log_true_size",
    "btf_flags",
    "btf_token_fd",
}

_TYPE_SIZES = {"__u8": 1, "__u16": 2, "__u32": 4, "__s32": 4, "__u64": 8, "char": 1, "int": 4}
_LINE = re.compile(r"^\s*(\d+)(?::(\d+)-(\d+))? \|( +)(.*?)\s*$")

Leaf = tuple[int, int, tuple[int, int] | None]  # offset, size in bytes, bit range


def _size_of(ctype: str) -> int:
    m = re.fullmatch(r"([\w ]+?)(?:\[(\d+)\])?", ctype)
    assert m, ctype
    return _TYPE_SIZES[m.group(1)] * int(m.group(2) or 1)


def _parse_block(lines: list[str]) -> list[tuple[int, int, str, int, tuple[int, int] | None]]:
    """(depth, offset, text, ..) rows of one record dump block."""
    rows = []
    for line in lines:
        m = _LINE.match(line)
        if not m:
            continue
        off, b0, b1, spaces, text = m.groups()
        depth = (len(spaces) - 1) // 2
        bits = (int(b0), int(b1)) if b0 is not None else None
        rows.append((depth, int(off), text, 0, bits))
    return rows


def _leaves(rows, start: int, depth: int) -> dict[str, Leaf]:
    """Named scalar fields below rows[start] (nested anonymous unions flattened)."""
    out: dict[str, Leaf] = {}
    for d, off, text, _, bits in rows[start + 1 :]:
        if d <= depth:
            break
        if "::(" in text:  # a nested anonymous struct/union header
            continue
        parts = text.rsplit(" ", 1)
        if len(parts) != 2 or not parts[1]:
            continue  # unnamed padding bit-field
        ctype, name = parts
        out[name] = (off, _size_of(ctype), bits)
    return out


@pytest.fixture(scope="module")
def record_dump(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    clang = shutil.which("clang-19")
    if clang is None:
        pytest.skip("clang-19 not found: cannot dump the header's record layouts")
    if not Path("/usr/include/linux/bpf.h").exists():
        pytest.skip("/usr/include/linux/bpf.h missing (install linux-libc-dev)")
    d = tmp_path_factory.mktemp("layout")
    src = d / "l.c"
    src.write_text(
        "#include <linux/bpf.h>\nunion bpf_attr a; struct bpf_prog_info p; struct bpf_map_info m;\n"
    )
    res = subprocess.run(
        [
            clang,
            "-c",
            "-Xclang",
            "-fdump-record-layouts",
            HEADER_INCLUDE,
            str(src),
            "-o",
            str(d / "l.o"),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return res.stdout.splitlines()


def _block(lines: list[str], head: str) -> list[str]:
    """The AST dump block whose first line is ``0 | <head>``."""
    for i, line in enumerate(lines):
        if re.fullmatch(rf"\s*0 \| {re.escape(head)}\s*", line):
            j = i
            while "sizeof=" not in lines[j]:
                j += 1
            return lines[i : j + 1]
    raise AssertionError(f"no record layout for {head!r} in clang's dump")


def _attr_members(lines: list[str]) -> list[tuple[str | None, dict[str, Leaf]]]:
    rows = _parse_block(_block(lines, "union bpf_attr"))
    members = []
    for i, (depth, _off, text, _, _bits) in enumerate(rows):
        if depth == 1 and text.startswith("struct bpf_attr::"):
            name = text.rsplit(")", 1)[1].strip() or None
            members.append((name, _leaves(rows, i, 1)))
    return members


def _ours(struct: type[ctypes.Structure]) -> dict[str, Leaf]:
    out: dict[str, Leaf] = {}

    def walk(cls: type, base: int) -> None:
        for entry in cls._fields_:
            fname, ftype = entry[0], entry[1]
            desc = getattr(cls, fname)
            if fname in getattr(cls, "_anonymous_", ()):
                walk(ftype, base + desc.offset)
                continue
            if fname.startswith("_pad"):
                continue
            if len(entry) == 3:  # bit-field: (bits << 16) | bit offset in CPython
                bit_off = desc.size & 0xFFFF
                nbits = desc.size >> 16
                out[fname] = (
                    base + desc.offset,
                    ctypes.sizeof(ftype),
                    (bit_off, bit_off + nbits - 1),
                )
            else:
                out[fname] = (base + desc.offset, ctypes.sizeof(ftype), None)

    walk(struct, 0)
    return out


def _compare(ours: dict[str, Leaf], header: dict[str, Leaf], what: str) -> None:
    missing = sorted(set(header) - set(ours))
    assert not missing, f"{what}: header fields missing from our struct: {missing}"
    for name, (off, size, bits) in header.items():
        o_off, o_size, o_bits = ours[name]
        assert (o_off, o_size) == (off, size), (
            f"{what}.{name}: ours at {o_off} size {o_size}, header at {off} size {size}"
        )
        if bits is not None:
            assert o_bits == bits, f"{what}.{name}: bits {o_bits} != header {bits}"
    end = max(off + size for off, size, _ in header.values())
    for name in sorted(set(ours) - set(header)):
        assert name in NEWER_THAN_HEADER, f"{what}.{name} is in neither the header nor the list"
        assert ours[name][0] >= end, f"{what}.{name} overlaps the header's fields"


@pytest.mark.parametrize("struct", list(MEMBER_NAMES), ids=lambda s: s.__name__)
def test_bpf_attr_member_matches_header(record_dump: list[str], struct) -> None:
    members = _attr_members(record_dump)
    first = sysc.ATTR_LAYOUTS[struct]
    want_name = MEMBER_NAMES[struct]
    matches = [
        leaves
        for name, leaves in members
        if name == want_name and leaves and min(leaves.items(), key=lambda kv: kv[1][0])[0] == first
    ]
    assert len(matches) == 1, f"cannot find union bpf_attr member starting with {first!r}"
    _compare(_ours(struct), matches[0], struct.__name__)


@pytest.mark.parametrize("struct", list(sysc.INFO_LAYOUTS), ids=lambda s: s.__name__)
def test_info_struct_matches_header(record_dump: list[str], struct) -> None:
    cname = sysc.INFO_LAYOUTS[struct]
    block = _block(record_dump, f"struct {cname}")
    header = _leaves(_parse_block(block), 0, 0)
    _compare(_ours(struct), header, cname)
    size = int(re.search(r"sizeof=(\d+)", block[-1]).group(1))
    assert ctypes.sizeof(struct) == size


def test_attr_parser_sees_every_member(record_dump: list[str]) -> None:
    # Guards the parser itself: the 6.1 union has 19 struct members, test/info/batch
    # among the named ones, and the MAP_CREATE member has 14 fields.
    members = _attr_members(record_dump)
    names = {n for n, _ in members if n}
    assert {"batch", "test", "info", "query", "link_create"} <= names
    create = [leaves for n, leaves in members if n is None and "map_type" in leaves]
    assert len(create) == 1 and len(create[0]) == 14
