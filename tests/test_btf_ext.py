"""``.BTF.ext`` parsing: func info, line info (resolved to file, line, column and
source text) and CO-RE relocation records, on objects compiled from tests/progs."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
from elftools.elf.elffile import ELFFile

from netbpf.errors import BtfError
from netbpf.isa.instruction import decode_program
from netbpf.obj.btf import (
    Btf,
    BtfExt,
    CoreReloKind,
    Func,
    encode_func_info,
    encode_line_info,
)


def elf_sections(path: Path) -> dict[str, bytes]:
    with open(path, "rb") as f:
        return {s.name: s.data() for s in ELFFile(f).iter_sections() if s.name}


@pytest.fixture(scope="module")
def kinds(compile_bpf) -> tuple[Path, dict[str, bytes], Btf, BtfExt]:
    obj = compile_bpf("btf_kinds.c")
    secs = elf_sections(obj)
    btf = Btf.parse(secs[".BTF"], file=str(obj))
    return obj, secs, btf, BtfExt.parse(secs[".BTF.ext"], btf, file=str(obj))


@pytest.fixture(scope="module")
def core(compile_bpf) -> tuple[dict[str, bytes], Btf, BtfExt]:
    secs = elf_sections(compile_bpf("btf_core_local.c"))
    btf = Btf.parse(secs[".BTF"])
    return secs, btf, BtfExt.parse(secs[".BTF.ext"], btf)


def test_func_info_names_every_function(kinds) -> None:
    _, secs, btf, ext = kinds
    names = {
        sec: [(fi.insn, btf.type(fi.type_id).name) for fi in recs]
        for sec, recs in ext.func_info.items()
    }
    assert names["xdp"] == [(0, "kinds_prog")]
    assert sorted(n for _, n in names[".text"]) == ["global_fn", "helper"]
    for sec, recs in ext.func_info.items():
        assert all(isinstance(btf.type(fi.type_id), Func) for fi in recs)
        assert all(fi.insn_off < len(secs[sec]) for fi in recs)
        assert all(fi.section == sec for fi in recs)


def test_line_info_resolves_to_the_source_lines(kinds) -> None:
    _, secs, _, ext = kinds
    assert set(ext.line_info) == {"xdp", ".text"}
    source = (Path(__file__).parent / "progs" / "btf_kinds.c").read_text().splitlines()
    for sec, recs in ext.line_info.items():
        insns = decode_program(secs[sec])
        offs = [li.insn_off for li in recs]
        assert offs == sorted(offs)
        for li in recs:
            assert li.file.endswith("btf_kinds.c")
            assert li.text == source[li.line - 1], (li, source[li.line - 1])
            assert 0 <= li.column < 1024
            assert li.insn < len(insns)
    first = ext.line_info["xdp"][0]
    assert (first.insn, first.text) == (0, "int kinds_prog(struct xdp_md *ctx)")
    # line_at: the record in effect for any slot
    last = ext.line_info["xdp"][-1]
    assert ext.line_at("xdp", last.insn + 1) == last
    assert ext.line_at("xdp", 0) == first
    assert ext.line_at("nosuch", 0) is None
    assert ext.core_relos == {}


def test_core_relo_records(core) -> None:
    secs, btf, ext = core
    relos = ext.core_relos["xdp"]
    assert {r.kind for r in relos} == set(CoreReloKind)
    insns = decode_program(secs["xdp"])
    for r in relos:
        assert r.section == "xdp"
        assert 0 <= r.insn < len(insns)
        assert r.access == btf.string_at(r.access_str_off)
        assert all(x >= 0 for x in r.spec)
    by_kind = {}
    for r in relos:
        by_kind.setdefault(r.kind, []).append(r)
    # type-based relocations use the access string "0"
    for k in (CoreReloKind.TYPE_EXISTS, CoreReloKind.TYPE_SIZE, CoreReloKind.TYPE_MATCHES):
        assert all(r.access == "0" for r in by_kind[k])
    # the first load of the program reads f->a: struct foo___v1, member 0
    first = relos[0]
    assert (first.kind, first.access) == (CoreReloKind.FIELD_BYTE_OFFSET, "0:0")
    assert btf.type(first.type_id).name == "foo___v1"
    assert CoreReloKind.FIELD_SIGNED.is_field and CoreReloKind.TYPE_MATCHES.is_type
    assert CoreReloKind.ENUMVAL_VALUE.is_enumval and not CoreReloKind.ENUMVAL_VALUE.is_field


@pytest.mark.parametrize("prog", ["btf_kinds.c", "btf_core_local.c"])
def test_round_trip(compile_bpf, prog: str) -> None:
    secs = elf_sections(compile_bpf(prog))
    btf = Btf.parse(secs[".BTF"])
    ext = BtfExt.parse(secs[".BTF.ext"], btf)
    raw = ext.to_bytes(btf)
    assert raw == secs[".BTF.ext"]
    assert BtfExt.parse(raw, btf) == ext
    assert hash(BtfExt.parse(raw, btf)) == hash(ext)


def test_kernel_record_encoding(kinds) -> None:
    _, _, _, ext = kinds
    recs = ext.func_info[".text"]
    base = recs[1].insn
    raw = encode_func_info(recs[1:], insn_base=base)
    assert struct.unpack("<II", raw) == (0, recs[1].type_id)
    lines = ext.line_info["xdp"]
    raw = encode_line_info(lines)
    assert len(raw) == 16 * len(lines)
    assert struct.unpack_from("<IIII", raw, 16) == (
        lines[1].insn,
        lines[1].file_name_off,
        lines[1].line_off,
        lines[1].line_col,
    )


def test_larger_records_are_accepted(core) -> None:
    """Record sizes above the minimum are allowed (future fields are ignored)."""
    _, btf, ext = core
    name_off = ext.section_name_offs["xdp"]
    recs = ext.func_info["xdp"]
    block = struct.pack("<I", 12) + struct.pack("<II", name_off, len(recs))
    for r in recs:
        block += struct.pack("<III", r.insn_off, r.type_id, 0xDEAD)
    hdr = struct.pack("<HBBIIIII", 0xEB9F, 1, 0, 24, 0, len(block), len(block), 0)
    parsed = BtfExt.parse(hdr + block, btf)
    assert parsed.func_info == {"xdp": recs}
    assert parsed.func_info_rec_size == 12
    assert parsed.core_relos == {}


def _ext(btf: Btf, name_off: int, rec_size: int = 8, num: int = 1, recs: bytes = b"") -> bytes:
    block = struct.pack("<III", rec_size, name_off, num) + recs
    return struct.pack("<HBBIIIII", 0xEB9F, 1, 0, 24, 0, len(block), len(block), 0) + block


@pytest.mark.parametrize(
    ("build", "message", "offset"),
    [
        (lambda b, n: b"\x9f\xeb\x01", "too short", 0),
        (lambda b, n: b"\x00\x00" + _ext(b, n, recs=b"\0" * 8)[2:], "bad magic", 0),
        (lambda b, n: _ext(b, n, recs=b"\0" * 8)[:2] + b"\x02" + _ext(b, n)[3:], "version", 2),
        (lambda b, n: _ext(b, n, rec_size=4, recs=b"\0" * 4), "record size 4", 24),
        (lambda b, n: _ext(b, n, num=3, recs=b"\0" * 8), "run past", 32),
        (lambda b, n: _ext(b, n, num=0), "no records", 32),
        (lambda b, n: _ext(b, 1 << 20, recs=b"\0" * 8), "string offset", 28),
        (lambda b, n: _ext(b, n, recs=struct.pack("<II", 4, 1)), "multiple of 8", 36),
        (lambda b, n: _ext(b, n, recs=struct.pack("<II", 0, 99999)), "type id 99999", 40),
        (
            lambda b, n: (
                _ext(b, n, recs=b"\0" * 8)[:12] + struct.pack("<I", 1000) + _ext(b, n)[16:]
            ),
            "runs past the end",
            12,
        ),
    ],
)
def test_malformed_ext_names_section_and_offset(core, build, message, offset) -> None:
    _, btf, ext = core
    with pytest.raises(BtfError, match=message) as ei:
        BtfExt.parse(build(btf, ext.section_name_offs["xdp"]), btf, file="x.o")
    assert ei.value.section == ".BTF.ext"
    assert ei.value.offset == offset
    assert ei.value.file == "x.o"


def test_unknown_core_relo_kind(core) -> None:
    secs, btf, ext = core
    raw = bytearray(secs[".BTF.ext"])
    first = ext.core_relos["xdp"][0]
    struct.pack_into("<I", raw, first.offset + 12, 99)
    with pytest.raises(BtfError, match="unknown CO-RE relocation kind 99") as ei:
        BtfExt.parse(bytes(raw), btf)
    assert ei.value.offset == first.offset + 12
    assert ei.value.type_id == first.type_id
