"""Kernel differential tests for BTF: the running kernel must accept what we encode
(after the loader fix-ups), refuse what libbpf would have to fix, accept our func and
line info with a program, and hand our BTF back unchanged (dumped by bpftool)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from elftools.elf.elffile import ELFFile

from netbpf.errors import BtfError, KernelError
from netbpf.isa.instruction import decode_program, encode_program
from netbpf.kernel import syscall as sc
from netbpf.obj.btf import (
    Btf,
    BtfExt,
    BtfFeatures,
    FuncInfo,
    Kind,
    encode_func_info,
    encode_line_info,
    format_raw,
    sanitize,
)
from netbpf.uapi import ProgramType


class Obj:
    """An object's sections, BTF (fixed up from its ELF, as the loader will) and ext."""

    def __init__(self, path: Path) -> None:
        with open(path, "rb") as f:
            elf = ELFFile(f)
            self.secs = {s.name: s.data() for s in elf.iter_sections() if s.name}
            self.sizes = {s.name: s["sh_size"] for s in elf.iter_sections() if s.name}
            symtab = elf.get_section_by_name(".symtab")
            self.symbols = {
                sym.name: sym["st_value"]
                for sym in symtab.iter_symbols()
                if sym["st_info"]["type"] == "STT_OBJECT"
                and sym["st_info"]["bind"] in ("STB_GLOBAL", "STB_WEAK")
            }
        self.raw_btf = Btf.parse(self.secs[".BTF"], file=str(path))
        self.btf = self.raw_btf.fixup_datasecs(self.sizes, self.symbols)
        self.ext = BtfExt.parse(self.secs[".BTF.ext"], self.raw_btf)


@pytest.fixture(scope="module")
def kinds(compile_bpf) -> Obj:
    return Obj(compile_bpf("btf_kinds.c"))


@pytest.fixture(scope="module")
def target(compile_bpf) -> Obj:
    return Obj(compile_bpf("btf_core_target.c"))


def test_kernel_refuses_clang_output_until_datasecs_are_fixed(kernel, kinds: Obj) -> None:
    with pytest.raises(KernelError) as ei:
        sc.btf_load(kinds.raw_btf.to_bytes())
    assert "DATASEC" in ei.value.log and "size == 0" in ei.value.log
    fd, _ = sc.btf_load(kinds.btf.to_bytes())
    fd.close()


def test_fixup_fills_sizes_and_offsets(kinds: Obj) -> None:
    bss = {v.name: off for v, off, _ in kinds.btf.variables(".bss")}
    for name, off in bss.items():
        assert off == kinds.symbols[name]
    secs = kinds.btf.datasecs()
    for name, sec in secs.items():
        assert sec.size == kinds.sizes[name]
        offs = [v.offset for v in sec.vars]
        assert offs == sorted(offs)
    # static variables keep the offsets clang gave them; hidden globals become static
    hidden = kinds.raw_btf.fixup_datasecs(kinds.sizes, kinds.symbols, hidden_vars=["g_data"])
    g_data = hidden.find("g_data", Kind.VAR)
    assert g_data is not None and g_data.linkage == 0  # type: ignore[attr-defined]
    # already fixed: a no-op
    assert kinds.btf.fixup_datasecs(kinds.sizes, kinds.symbols) is kinds.btf


def test_fixup_errors_name_the_datasec(kinds: Obj) -> None:
    sizes = dict(kinds.sizes)
    del sizes[".rodata"]
    with pytest.raises(BtfError, match=r"'\.rodata'") as ei:
        kinds.raw_btf.fixup_datasecs(sizes, kinds.symbols)
    assert ei.value.type_id == kinds.raw_btf.find(".rodata", Kind.DATASEC).id  # type: ignore[union-attr]
    symbols = dict(kinds.symbols)
    del symbols["g_bss"]
    with pytest.raises(BtfError, match="g_bss"):
        kinds.raw_btf.fixup_datasecs(kinds.sizes, symbols)


def test_sanitized_btf_loads(kernel, kinds: Obj) -> None:
    """The rewrites for older kernels produce BTF a kernel accepts.  (FUNC_PROTO ->
    ENUM is excluded: it only suits kernels older than FUNC support, whose enum
    checks allowed anonymous enumerators.)"""
    assert sanitize(kinds.btf) is kinds.btf
    old = BtfFeatures(
        func=True,
        func_global=False,
        datasec=False,
        float=False,
        decl_tag=False,
        type_tag=False,
        enum64=False,
        qmark_datasec=False,
    )
    s = sanitize(kinds.btf, old)
    kinds_left = {t.kind for t in s.types}
    for gone in (Kind.VAR, Kind.DATASEC, Kind.FLOAT, Kind.DECL_TAG, Kind.TYPE_TAG, Kind.ENUM64):
        assert gone not in kinds_left
    assert len(s) == len(kinds.btf) + 1  # the enum64 placeholder INT
    assert all(t.linkage == 0 for t in s.types if t.kind == Kind.FUNC)  # type: ignore[attr-defined]
    for i in range(1, len(kinds.btf)):
        orig = kinds.btf.type(i)
        if orig.kind not in (Kind.FUNC, Kind.FUNC_PROTO, Kind.DECL_TAG, Kind.VAR):
            try:
                assert s.size_of(i) == kinds.btf.size_of(i), orig
            except Exception as e:
                assert "has no size" in str(e)
    fd, _ = sc.btf_load(s.to_bytes())
    fd.close()
    every = sanitize(kinds.btf, BtfFeatures.none())
    assert {t.kind for t in every.types} <= {
        Kind.UNKN, Kind.INT, Kind.PTR, Kind.ARRAY, Kind.STRUCT, Kind.UNION, Kind.ENUM,
        Kind.FWD, Kind.TYPEDEF, Kind.VOLATILE, Kind.CONST, Kind.RESTRICT,
    }  # fmt: skip


def _load_with_btf(obj: Obj, func_info: bytes, line_info: bytes) -> tuple[sc.Fd, sc.Fd]:
    btf_fd, _ = sc.btf_load(obj.btf.to_bytes())
    insns = encode_program(decode_program(obj.secs["xdp"]))
    prog_fd, _ = sc.prog_load(
        ProgramType.XDP,
        insns,
        name="btf_test",
        prog_btf_fd=btf_fd.fileno(),
        func_info=func_info,
        func_info_rec_size=8,
        line_info=line_info,
        line_info_rec_size=16,
    )
    return btf_fd, prog_fd


def test_program_loads_with_our_func_and_line_info(kernel, target: Obj) -> None:
    fi = encode_func_info(target.ext.func_info["xdp"])
    li = encode_line_info(target.ext.line_info["xdp"])
    btf_fd, prog_fd = _load_with_btf(target, fi, li)
    try:
        info = sc.prog_info(prog_fd.fileno())
        assert info.btf_id != 0
        bpftool = shutil.which("bpftool")
        if bpftool:
            # the kernel hands back exactly the BTF we encoded
            dumped = subprocess.run(
                [bpftool, "btf", "dump", "id", str(info.btf_id)],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            assert dumped == format_raw(target.btf)
    finally:
        prog_fd.close()
        btf_fd.close()


def test_kernel_checks_func_info_types(kernel, target: Obj) -> None:
    """Negative control: a func_info naming a non-FUNC type is refused, so the
    acceptance above means our records are right."""
    not_func = target.btf.find("foo", Kind.STRUCT)
    assert not_func is not None
    fi = encode_func_info([FuncInfo("xdp", 0, not_func.id)])
    li = encode_line_info(target.ext.line_info["xdp"])
    with pytest.raises(KernelError) as ei:
        _load_with_btf(target, fi, li)
    assert ei.value.errno == 22
