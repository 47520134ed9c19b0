"""KernelBackend.load: what only the kernel shows about whole objects (our C in
tests/progs/coll_*.c) -- libbpf's map names, the BTF the maps carry, file descriptors
released, verifier logs with C source lines, BTF fallbacks -- and, where bpftool is
present, the same object loaded by libbpf (``bpftool prog loadall``) as the
reference: the kernel must hold the same instructions after verification and maps of
the same shape.

The behaviour of loaded collections (global data and knobs, typed maps, tail calls
and map-in-maps from .maps initialisers, subprograms, callbacks, CO-RE, pinning,
objects without BTF) is tested on both backends in tests/test_collection_both.py."""

from __future__ import annotations

import errno
import json
import os
import shutil
import struct
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from netbpf.backend import Map, Program
from netbpf.collection import Collection
from netbpf.errors import KernelError, MapError
from netbpf.kernel import KernelBackend
from netbpf.kernel.loader import internal_map_name, object_name
from netbpf.obj.collection import CollectionSpec, load_collection_spec
from netbpf.uapi import XdpAction


def open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


@pytest.fixture
def bpffs(kernel: KernelBackend) -> Iterator[Path]:
    """A private bpffs mount (pinning needs one), removed afterwards."""
    d = Path(tempfile.mkdtemp(prefix="netbpf-bpffs-"))
    res = subprocess.run(["mount", "-t", "bpf", "bpf", str(d)], capture_output=True, text=True)
    if res.returncode != 0:
        d.rmdir()
        pytest.skip(f"cannot mount a bpffs: {res.stderr.strip()}")
    try:
        yield d
    finally:
        subprocess.run(["umount", str(d)], check=False)
        d.rmdir()


@pytest.mark.parametrize(
    ("obj", "section", "name"),
    [
        ("counter", ".rodata", "counter.rodata"),
        ("my_object_name", ".rodata", "my_objec.rodata"),
        ("my_object_name", ".bss", "my_objec.bss"),  # 7 characters kept for the suffix
        ("my_object_name", ".kconfig", "my_obje.kconfig"),
        ("my_object_name", ".rodata.abracadabra", ".rodata.abracad"),  # no prefix, cut
        ("my_object_name", ".data.custom", ".data.custom"),
        ("a-b", ".data", "a_b.data"),  # characters the kernel refuses
    ],
)
def test_internal_map_names_follow_libbpf(obj: str, section: str, name: str) -> None:
    assert internal_map_name(obj, section) == name


def test_object_name_is_the_file_stem_before_the_first_dot() -> None:
    spec = CollectionSpec({}, {}, {}, file="/x/counter.bpf.o")
    assert object_name(spec) == "counter"


# -- global data, knobs, typed maps, subprograms, bpf_loop ------------------------------


def test_kernel_names_and_btf_of_a_loaded_object(kernel: KernelBackend, compile_bpf) -> None:
    """What only the kernel shows: libbpf's map names and the BTF ids the maps carry.
    (Behaviour -- knobs, counters, typed values, frozen .rodata -- is tested on both
    backends in tests/test_collection_both.py.)"""
    spec = load_collection_spec(compile_bpf("coll_globals.c"))
    with kernel.load(spec) as coll:
        assert isinstance(coll, Collection) and coll.warnings == ()
        assert all(isinstance(m, Map) for m in coll.maps.values())
        assert all(isinstance(p, Program) for p in coll.programs.values())
        prefix = object_name(spec)[:8]
        assert coll.maps[".bss"].info().name == f"{prefix}.bss"
        assert coll.maps[".rodata"].info().name == f"{prefix}.rodata"
        assert coll.maps[".rodata.str1.1"].info().name == ".rodata.str1.1"
        info = coll.maps["stats"].info()
        assert (info.btf_key_type_id, info.btf_value_type_id) == (
            spec.maps["stats"].btf_key_type_id,
            spec.maps["stats"].btf_value_type_id,
        )
        assert info.btf_id != 0
        assert coll.maps[".data"].info().btf_value_type_id == spec.btf.find(".data", "datasec").id


def test_close_is_idempotent_and_frees_everything(kernel: KernelBackend, compile_bpf) -> None:
    spec = load_collection_spec(compile_bpf("coll_globals.c"))
    fds = open_fds()
    coll = kernel.load(spec)
    assert len(open_fds() - fds) >= len(coll.maps) + len(coll.programs)
    coll.close()
    coll.close()
    assert open_fds() == fds
    assert all(p.closed for p in coll.programs.values())
    with pytest.raises(MapError):
        coll.variables["runs"].get()


def test_line_info_reaches_the_verifier_log(kernel: KernelBackend, compile_bpf) -> None:
    spec = load_collection_spec(compile_bpf("coll_globals.c"))
    with kernel.load(spec, log_level=2) as coll:
        log = coll.programs["globals_prog"].log
    # with func_info/line_info and the BTF fd, the log quotes the C source
    assert "bpf_loop(len % 8 + 1, loop_step, &lc, 0);" in log
    assert "func#1" in log or "Func#1" in log  # the subprograms were seen as functions


BAD_PROG = r"""
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
__u32 seen;
SEC("xdp")
int reads_past_the_end(struct xdp_md *ctx)
{
	unsigned char *data = (void *)(long)ctx->data;
	seen = data[20]; /* no bounds check: the verifier must refuse */
	return XDP_PASS;
}
char LICENSE[] SEC("license") = "GPL";
"""


def test_verifier_refusal_names_program_and_source(kernel: KernelBackend, compile_bpf) -> None:
    spec = load_collection_spec(compile_bpf(BAD_PROG))
    fds = open_fds()
    with pytest.raises(KernelError) as ei:
        kernel.load(spec)
    e = ei.value
    assert e.op == "BPF_PROG_LOAD" and e.errno == errno.EACCES
    assert "program 'reads_past_the_end' (section 'xdp')" in str(e)
    assert "offset is outside of the packet" in str(e)  # the verifier's verdict
    assert "seen = data[20];" in e.log  # line_info made it into the log
    assert open_fds() == fds  # the maps and BTF created before the refusal are closed


# Tail calls, map-in-maps, CO-RE, pinning by name and objects without BTF are tested on
# both backends in tests/test_collection_both.py.


# -- libbpf as the reference ------------------------------------------------------------------


def _bpftool(*args: str) -> object:
    out = subprocess.run(["bpftool", "-j", *args], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def _xlated(raw: bytes, map_names: dict[int, str]) -> list[tuple[int, int, int, object]]:
    """Instructions after verification with map ids replaced by map names (the ids
    differ between two loads; everything else must not)."""
    out: list[tuple[int, int, int, object]] = []
    i = 0
    n = len(raw) // 8
    while i < n:
        op, regs, off, imm = struct.unpack_from("<BBhi", raw, i * 8)
        if op == 0x18 and regs >> 4 in (1, 2):  # map fd / map value: imm is the map id
            out.append((op, regs, off, map_names.get(imm, f"id {imm}")))
            out.append(struct.unpack_from("<BBhi", raw, i * 8 + 8))
            i += 2
            continue
        out.append((op, regs, off, imm))
        i += 1
    return out


def _map_shape(m: dict) -> tuple:
    return (
        m["name"],
        m["type"],
        m["bytes_key"],
        m["bytes_value"],
        m["max_entries"],
        m["flags"],
        m.get("frozen", 0),
        "btf_id" in m,
    )


@pytest.mark.parametrize("source", ["coll_globals.c", "coll_tail.c", "coll_core.c"])
def test_same_as_libbpf(kernel: KernelBackend, compile_bpf, bpffs: Path, source: str) -> None:
    if shutil.which("bpftool") is None:
        pytest.skip("bpftool not installed (the libbpf reference)")
    obj = compile_bpf(source)
    # libbpf names global-data maps after the file: give the object its source's name
    tmpdir = Path(tempfile.mkdtemp())
    try:
        named = tmpdir / f"{Path(source).stem}.o"
        shutil.copy(obj, named)
        subprocess.run(
            ["bpftool", "prog", "loadall", str(named), str(bpffs / "progs")],
            check=True,
            capture_output=True,
        )
        spec = load_collection_spec(named)
        with kernel.load(spec) as coll:
            ours_by_id = {m.info().id: m for m in coll.maps.values()}
            ours = {i: _bpftool("map", "show", "id", str(i)) for i in ours_by_id}
            for name, prog in coll.programs.items():
                ref = _bpftool("prog", "show", "pinned", str(bpffs / "progs" / name))
                ref_maps = {i: _bpftool("map", "show", "id", str(i)) for i in ref["map_ids"]}
                dump = tmpdir / "xlated.bin"
                subprocess.run(
                    ["bpftool", "prog", "dump", "xlated", "id", str(ref["id"]), "file", str(dump)],
                    check=True,
                    capture_output=True,
                )
                assert _xlated(prog.xlated(), {i: m["name"] for i, m in ours.items()}) == _xlated(
                    dump.read_bytes(), {i: m["name"] for i, m in ref_maps.items()}
                ), name
                used = {ours[i]["name"] for i in prog.info().map_ids}
                assert sorted(_map_shape(m) for m in ref_maps.values()) == sorted(
                    _map_shape(m) for m in ours.values() if m["name"] in used
                ), name
                # global data starts out with the same bytes
                for i, m in ref_maps.items():
                    if m["name"].endswith((".data", ".rodata", ".bss")):
                        (entry,) = _bpftool("map", "dump", "id", str(i))
                        ref_value = bytes(int(b, 16) for b in entry["value"])
                        mine = next(x for x in coll.maps.values() if x.info().name == m["name"])
                        assert mine.lookup(bytes(4)) == ref_value, m["name"]
    finally:
        shutil.rmtree(tmpdir)


def _same_as_bpftool(ours: object, theirs: object) -> bool:
    """Our decoded value against bpftool's BTF-formatted one, allowing for bpftool's
    spelling: bitfields as hex strings, char arrays as C strings."""
    if isinstance(ours, dict) and isinstance(theirs, dict):
        return ours.keys() == theirs.keys() and all(
            _same_as_bpftool(ours[k], theirs[k]) for k in ours
        )
    if isinstance(ours, list) and isinstance(theirs, list):
        return len(ours) == len(theirs) and all(map(_same_as_bpftool, ours, theirs))
    if isinstance(ours, bytes) and isinstance(theirs, str):
        return ours.split(b"\0")[0].decode() == theirs
    if isinstance(ours, int) and isinstance(theirs, str):
        return ours == int(theirs, 16)
    return ours == theirs


def test_typed_values_match_bpftools_btf_dump(kernel: KernelBackend, compile_bpf) -> None:
    if shutil.which("bpftool") is None:
        pytest.skip("bpftool not installed")
    spec = load_collection_spec(compile_bpf("coll_globals.c"))
    with kernel.load(spec) as coll:
        for n in (61, 77, 130, 131):
            coll.programs["globals_prog"].test_run(bytes(n))
        for name in ("counts", "stats", "pcpu_bytes", ".bss", ".data", ".rodata"):
            dump = _bpftool("map", "dump", "id", str(coll.maps[name].info().id))
            typed = coll.typed_map(name)
            ours = list(typed.items())
            assert len(ours) == len(dump), name
            for (key, value), entry in zip(sorted(ours), sorted(dump, key=lambda e: e["key"])):
                fmt = entry["formatted"]
                if name.startswith("."):  # a DATASEC: a list of {variable: value}
                    (sec,) = fmt["value"].values()
                    theirs = {k: v for d in sec for k, v in d.items()}
                    assert _same_as_bpftool(value, theirs), (name, value, theirs)
                    continue
                assert fmt["key"] == key, name
                if typed.percpu:
                    theirs = [c["value"] for c in sorted(fmt["values"], key=lambda c: c["cpu"])]
                else:
                    theirs = fmt["value"]
                assert _same_as_bpftool(value, theirs), (name, value, theirs)


LPM_U64_KEY = r"""
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 8);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, __u64); /* the kernel wants a struct key type for an LPM trie */
	__type(value, __u32);
} prefixes SEC(".maps");
SEC("tc")
int match(struct __sk_buff *skb)
{
	__u64 key = ((__u64)0x0101a8c0 << 32) | 32; /* prefixlen 32, 192.168.1.1 */
	__u32 *v = bpf_map_lookup_elem(&prefixes, &key);
	return v ? *v : 0;
}
char LICENSE[] SEC("license") = "GPL";
"""


def test_map_the_kernel_refuses_btf_for_falls_back(kernel: KernelBackend, compile_bpf) -> None:
    spec = load_collection_spec(compile_bpf(LPM_U64_KEY))
    with kernel.load(spec) as coll:
        assert len(coll.warnings) == 1
        assert (
            "map 'prefixes': the kernel refused its BTF description (EINVAL)" in (coll.warnings[0])
        )
        assert coll.maps["prefixes"].info().btf_id == 0
        # typed access still uses the object's BTF
        prefixes = coll.typed_map("prefixes")
        prefixes[(0x00A8C0 << 32) | 16] = 7  # 192.168.0.0/16
        assert coll.programs["match"].test_run(bytes(64)).retval == 7
        assert list(prefixes.items()) == [((0x00A8C0 << 32) | 16, 7)]


def test_object_btf_the_kernel_refuses_loads_without_btf(
    kernel: KernelBackend, compile_bpf
) -> None:
    from netbpf.obj.btf import Func, Int

    spec = load_collection_spec(compile_bpf("coll_tail.c")).copy()
    btf = spec.btf
    func = next(t for t in btf.types if isinstance(t, Func))
    an_int = next(t for t in btf.types if isinstance(t, Int))
    spec.btf = btf.with_types([Func(func.id, func.name, an_int.id, func.linkage)])
    with kernel.load(spec) as coll:
        assert len(coll.warnings) == 1
        assert coll.warnings[0].startswith("the kernel refused the object's BTF")
        assert all(m.info().btf_id == 0 for m in coll.maps.values())
        assert coll.programs["entry"].test_run(bytes(65)).retval == XdpAction.DROP
        assert coll.variables["tail_hits"].get() == 1
