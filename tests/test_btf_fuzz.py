"""Hypothesis fuzzing of the .BTF and .BTF.ext parsers: byte flips, overwrites and
truncations of real sections compiled from tests/progs.  Nothing but BtfError may
escape, every error names its section and byte offset (and the type id when the
problem is inside a type record), and whatever parses is fully usable: formatting,
sizing, encoding and re-parsing never raise anything else."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
from elftools.elf.elffile import ELFFile
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from netbpf.errors import BtfError
from netbpf.obj.btf import Btf, BtfExt, compute_core_relocation, format_raw


def _sections(path: Path) -> tuple[bytes, bytes]:
    with open(path, "rb") as f:
        elf = ELFFile(f)
        return elf.get_section_by_name(".BTF").data(), elf.get_section_by_name(".BTF.ext").data()


@pytest.fixture(scope="module")
def kinds_sections(compile_bpf) -> tuple[bytes, bytes]:
    return _sections(compile_bpf("btf_kinds.c"))


@pytest.fixture(scope="module")
def core_sections(compile_bpf) -> tuple[bytes, bytes]:
    return _sections(compile_bpf("btf_core_local.c"))


@pytest.fixture(scope="module")
def core_target(compile_bpf) -> Btf:
    return Btf.parse(_sections(compile_bpf("btf_core_target.c"))[0])


mutation = st.lists(
    st.tuples(
        st.sampled_from(["flip", "set", "u32"]),
        # header fields get hit on purpose; elsewhere anywhere
        st.one_of(
            st.integers(min_value=0, max_value=35), st.integers(min_value=0, max_value=1 << 20)
        ),
        st.integers(min_value=0, max_value=0xFFFFFFFF),
    ),
    min_size=1,
    max_size=6,
)


def _mutate(raw: bytes, ops: list[tuple[str, int, int]], cut: int | None) -> bytes:
    b = bytearray(raw)
    for op, pos, val in ops:
        pos %= len(b)
        if op == "flip":
            b[pos] ^= 1 << (val % 8)
        elif op == "set":
            b[pos] = val & 0xFF
        elif pos + 4 <= len(b):
            struct.pack_into("<I", b, pos & ~3, val)
    if cut is not None:
        del b[cut % (len(b) + 1) :]
    return bytes(b)


def _check_error(e: BtfError, section: str) -> None:
    assert e.section == section, e
    assert e.offset is not None, e
    msg = str(e)
    assert section in msg and f"{e.offset:#x}" in msg, msg
    if e.type_id is not None:
        assert f"type [{e.type_id}]" in msg


def _exercise(btf: Btf) -> None:
    """Everything a parsed BTF offers must work or raise BtfError."""
    format_raw(btf)
    out = btf.to_bytes()
    assert Btf.parse(out) == btf
    for t in btf.types:
        for call in (btf.format_type, btf.size_of, btf.resolve, btf.name_of):
            try:
                call(t.id)
            except BtfError:
                pass


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=mutation, cut=st.one_of(st.none(), st.integers(min_value=0, max_value=1 << 16)))
def test_mutated_btf_only_raises_btf_error(kinds_sections, ops, cut) -> None:
    raw = _mutate(kinds_sections[0], ops, cut)
    try:
        btf = Btf.parse(raw, file="fuzz.o")
    except BtfError as e:
        _check_error(e, ".BTF")
        # errors past the header are inside a type record and name it
        hdr_len = struct.unpack_from("<I", raw, 4)[0] if len(raw) >= 8 else 0
        if e.offset is not None and 24 <= hdr_len <= e.offset and "string" not in e.reason:
            assert e.type_id is not None, e
        return
    _exercise(btf)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=mutation, cut=st.one_of(st.none(), st.integers(min_value=0, max_value=1 << 16)))
def test_mutated_btf_lazy_parse_only_raises_btf_error(kinds_sections, ops, cut) -> None:
    raw = _mutate(kinds_sections[0], ops, cut)
    try:
        btf = Btf.parse(raw, lazy=True)
        btf.find("holder")
        btf.materialize()
    except BtfError as e:
        _check_error(e, ".BTF")
        return
    _exercise(btf)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=mutation, cut=st.one_of(st.none(), st.integers(min_value=0, max_value=1 << 14)))
def test_mutated_btf_ext_only_raises_btf_error(core_sections, core_target, ops, cut) -> None:
    btf_raw, ext_raw = core_sections
    local = Btf.parse(btf_raw)
    raw = _mutate(ext_raw, ops, cut)
    try:
        ext = BtfExt.parse(raw, local, file="fuzz.o")
    except BtfError as e:
        _check_error(e, ".BTF.ext")
        return
    # whatever parsed must resolve (or fail cleanly) against the target
    cache: dict = {}
    for relos in ext.core_relos.values():
        for r in relos:
            try:
                compute_core_relocation(local, r, core_target, cache=cache)
            except BtfError as e:
                assert e.section == ".BTF.ext"
    BtfExt.parse(ext.to_bytes(local), local)
