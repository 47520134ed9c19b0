"""The running kernel's BTF (/sys/kernel/btf/vmlinux): parsed lazily, dumped exactly
as bpftool dumps it, and re-encoded to the identical bytes.  Timing is measured in
bench/btf.py, not here."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from netbpf.errors import BtfError
from netbpf.obj.btf import (
    VMLINUX_BTF_PATH as VMLINUX_PATH,
)
from netbpf.obj.btf import (
    Kind,
    Struct,
    format_raw,
    load_vmlinux_btf,
)

pytestmark = pytest.mark.skipif(
    not Path(VMLINUX_PATH).exists(), reason="the running kernel exposes no /sys/kernel/btf/vmlinux"
)


@pytest.fixture(scope="module")
def vmlinux():
    return load_vmlinux_btf()


def test_vmlinux_queries(vmlinux) -> None:
    assert len(vmlinux) > 10_000
    skb = vmlinux.find("sk_buff", Kind.STRUCT)
    assert isinstance(skb, Struct)
    assert vmlinux.size_of(skb.id) == skb.size
    xdp_md = vmlinux.find("xdp_md", "struct")
    assert xdp_md is not None
    assert [m.name for m in xdp_md.members][:3] == ["data", "data_end", "data_meta"]
    # the UAPI context layouts the simulator uses agree with the kernel's own BTF
    from netbpf.uapi import CTX_LAYOUTS

    size, fields = CTX_LAYOUTS["xdp_md"]
    assert vmlinux.size_of(xdp_md.id) == size
    for name, off, fsize, _ in fields:
        f = vmlinux.field(xdp_md.id, name)
        assert (f.byte_offset, f.size) == (off, fsize)
    action = vmlinux.find("xdp_action", Kind.ENUM)
    assert action is not None
    assert {v.name: v.value for v in action.values}["XDP_PASS"] == 2  # type: ignore[attr-defined]


def test_vmlinux_dump_matches_bpftool_and_round_trips(vmlinux) -> None:
    bpftool = shutil.which("bpftool")
    if bpftool is None:
        pytest.skip("bpftool not installed")
    theirs = subprocess.run(
        [bpftool, "btf", "dump", "file", VMLINUX_PATH], capture_output=True, text=True, check=True
    ).stdout
    ours = format_raw(vmlinux)  # decodes (and validates) every type
    assert ours == theirs
    assert vmlinux.to_bytes() == Path(VMLINUX_PATH).read_bytes()


def test_unreadable_vmlinux_is_a_btf_error(tmp_path: Path) -> None:
    with pytest.raises(BtfError, match="cannot read kernel BTF") as ei:
        load_vmlinux_btf(tmp_path / "missing")
    assert ei.value.file == str(tmp_path / "missing")
    bad = tmp_path / "vmlinux"
    bad.write_bytes(b"\x9f\xeb\x01\x00" + b"\xff" * 20)
    with pytest.raises(BtfError, match="hdr_len") as ei:
        load_vmlinux_btf(bad)
    assert ei.value.section == ".BTF"
