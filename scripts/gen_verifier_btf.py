#!/usr/bin/env python3
"""Dump the kernel structs a program may read through a map pointer.

``r1 = map ll; r0 = *(u32 *)(r1 + 76)`` reads ``max_entries`` out of the map's
``struct bpf_map``: the kernel verifies such loads by walking the map type's kernel
struct in vmlinux BTF (``check_ptr_to_map_access`` / ``btf_struct_access``).  netbpf's
verifier walks the same layouts, taken from the running kernel:

* which struct each map type has (``bpf_array``, ``bpf_htab``...): asked of the kernel
  itself, by loading a program that reads before the start of the map pointer (the
  refusal names the struct), with a fallback table for map types that cannot be
  created without extra setup;
* every struct/union reachable by value from those (nested structs, unions, arrays),
  and from the structs they point to, members with bit offsets, bitfield sizes and a
  compact type: int size, pointer (to a named struct, or to anything else), nested
  aggregate, array;
* the same for the socket structs ``bpf_skc_to_tcp_sock`` and friends return.

The result is written to ``src/netbpf/verifier/_kernel_structs.py`` (generated; rerun
on a newer kernel rather than editing it).  Run as root::

    sudo python3 scripts/gen_verifier_btf.py
"""

from __future__ import annotations

import pprint
import re
import sys
from pathlib import Path

from netbpf import ProgramSpec
from netbpf.errors import KernelError, NetbpfError
from netbpf.kernel import KernelBackend
from netbpf.obj.btf import types as B
from netbpf.uapi import MapType

OUT = Path(__file__).resolve().parent.parent / "src/netbpf/verifier/_kernel_structs.py"

#: how many pointer hops from a map struct have their structs dumped
POINTER_LEVELS = 1

#: the structs the socket-cast helpers (bpf_skc_to_tcp_sock...) return pointers to:
#: dumped with what they hold by value (not what they point to)
SOCKET_STRUCTS = (
    "tcp_sock",
    "tcp6_sock",
    "tcp_timewait_sock",
    "tcp_request_sock",
    "udp6_sock",
    "unix_sock",
    "mptcp_sock",
)

#: map types that need more than key/value/max_entries to be created: the struct the
#: kernel's map ops name (kernel/bpf/*.c ``*_map_btf_ids``)
FALLBACK = {
    MapType.CGROUP_STORAGE: "bpf_cgroup_storage_map",
    MapType.PERCPU_CGROUP_STORAGE: "bpf_cgroup_storage_map",
    MapType.SK_STORAGE: "bpf_local_storage_map",
    MapType.INODE_STORAGE: "bpf_local_storage_map",
    MapType.TASK_STORAGE: "bpf_local_storage_map",
    MapType.CGRP_STORAGE: "bpf_local_storage_map",
    MapType.STRUCT_OPS: "bpf_struct_ops_map",
    MapType.ARENA: "bpf_arena",
}

#: key size, value size, max entries, flags, map_extra
PARAMS = {
    MapType.LPM_TRIE: (8, 8, 4, 1, 0),  # BPF_F_NO_PREALLOC
    MapType.STACK_TRACE: (4, 8, 4, 0, 0),
    MapType.CGROUP_ARRAY: (4, 4, 4, 0, 0),
    MapType.PROG_ARRAY: (4, 4, 4, 0, 0),
    MapType.PERF_EVENT_ARRAY: (4, 4, 4, 0, 0),
    MapType.DEVMAP: (4, 4, 4, 0, 0),
    MapType.DEVMAP_HASH: (4, 4, 4, 0, 0),
    MapType.CPUMAP: (4, 4, 4, 0, 0),
    MapType.XSKMAP: (4, 4, 4, 0, 0),
    MapType.SOCKMAP: (4, 4, 4, 0, 0),
    MapType.SOCKHASH: (4, 4, 4, 0, 0),
    MapType.REUSEPORT_SOCKARRAY: (4, 4, 4, 0, 0),
    MapType.QUEUE: (0, 8, 4, 0, 0),
    MapType.STACK: (0, 8, 4, 0, 0),
    MapType.RINGBUF: (0, 0, 4096, 0, 0),
    MapType.USER_RINGBUF: (0, 0, 4096, 0, 0),
    MapType.BLOOM_FILTER: (0, 8, 4, 0, 0),
}


def map_struct(k: KernelBackend, mt: MapType) -> str | None:
    """The struct name of a map type, from the kernel's refusal of a far read."""
    key, value, entries, flags, extra = PARAMS.get(mt, (4, 8, 4, 0, 0))
    inner = None
    try:
        if mt in (MapType.ARRAY_OF_MAPS, MapType.HASH_OF_MAPS):
            inner = k.create_map(MapType.ARRAY, 4, 8, 1, name="inner")
            value = 4
        m = k.create_map(
            mt, key, value, entries, flags=flags, map_extra=extra, name="probe", inner_map=inner
        )
    except NetbpfError:
        return FALLBACK.get(mt)
    try:
        text = f"r1 = map_fd({m.fd}) ll\nr0 = *(u8 *)(r1 - 8)\nr0 = 0\nexit"
        try:
            k.load_program(ProgramSpec.from_asm(text, prog_type="xdp"), log_level=1).close()
        except KernelError as e:
            hit = re.search(r"R1 is (\w+) invalid negative access", e.log)
            if hit:
                return hit.group(1)
            if "map_ptr access not supported" in e.log:
                return None
            return FALLBACK.get(mt)
        return FALLBACK.get(mt)
    finally:
        m.close()
        if inner is not None:
            inner.close()


def main() -> int:
    k = KernelBackend()
    btf = k.vmlinux_btf()
    structs: dict[str, tuple] = {}
    names: dict[int, str] = {}

    def agg_name(tid: int) -> str:
        t = btf.type(tid)
        if tid not in names:
            names[tid] = t.name if t.name else f"<anon {btf.name_of(tid) or ''}#{tid}>"
        return names[tid]

    def skip_mods(tid: int) -> int:
        while True:
            t = btf.type(tid)
            if isinstance(t, (B.Typedef, B.Volatile, B.Const, B.Restrict, B.TypeTag)):
                tid = t.type_id
                continue
            return tid

    def ref(tid: int, pending: list[int]) -> tuple:
        """A compact type: ("int", size) | ("ptr", struct or None) | ("agg", name) |
        ("array", elem, nelems)."""
        tags: list[str] = []
        while True:
            t = btf.type(tid)
            if isinstance(t, B.TypeTag):
                tags.append(t.name)
            if isinstance(t, (B.Typedef, B.Volatile, B.Const, B.Restrict, B.TypeTag)):
                tid = t.type_id
                continue
            break
        if isinstance(t, B.Ptr):
            # type tags sit between the pointer and its pointee: ptr -> type_tag -> struct
            ptags: list[str] = []
            pid = t.type_id
            while True:
                pt = btf.type(pid)
                if isinstance(pt, B.TypeTag):
                    ptags.append(pt.name)
                if isinstance(pt, (B.Typedef, B.Volatile, B.Const, B.Restrict, B.TypeTag)):
                    pid = pt.type_id
                    continue
                break
            target = pt.name if isinstance(pt, B.Struct) and pt.name else None
            if isinstance(pt, B.Struct) and not pt.name:
                target = None
            return ("ptr", target, tuple(sorted(ptags)))
        if isinstance(t, (B.Struct, B.Union)):
            pending.append(tid)
            return ("agg", agg_name(tid))
        if isinstance(t, B.Array):
            return ("array", ref(t.type_id, pending), t.nelems)
        if isinstance(t, B.Void):
            return ("void",)
        if isinstance(t, B.FuncProto):
            return ("func",)
        return ("int", btf.size_of(tid))

    seen: set[int] = set()
    by_type: dict[int, str | None] = {}
    pending: list[int] = []
    for mt in MapType:
        if mt == MapType.UNSPEC:
            continue
        name = map_struct(k, mt)
        by_type[int(mt)] = name
        if name:
            t = btf.find(name, "struct")
            if t is None:
                print(f"warning: struct {name} not in vmlinux BTF", file=sys.stderr)
                by_type[int(mt)] = None
                continue
            pending.append(t.id)
            agg_name(t.id)
        print(f"{mt.name}: {by_type[int(mt)]}")

    def closure(pending: list[int]) -> None:
        while pending:
            tid = pending.pop()
            if tid in seen:
                continue
            seen.add(tid)
            t = btf.type(tid)
            assert isinstance(t, (B.Struct, B.Union))
            members = tuple(
                (m.name, m.bit_offset, m.bitfield_size, ref(m.type_id, pending)) for m in t.members
            )
            kind = "union" if isinstance(t, B.Union) else "struct"
            structs[agg_name(tid)] = (kind, t.size, members)

    closure(pending)
    # one level further: the structs the map structs point to (ptr_bpf_map,
    # ptr_bpf_array_aux...), and what they hold by value
    for _ in range(POINTER_LEVELS):
        targets = {
            m[3][1]
            for _, _, members in list(structs.values())
            for m in members
            if m[3][0] == "ptr" and m[3][1] is not None
        }
        for name in sorted(targets - set(structs)):
            t = btf.find(name, "struct")
            if t is not None and t.size:
                agg_name(t.id)
                pending.append(t.id)
        closure(pending)
    for name in SOCKET_STRUCTS:
        t = btf.find(name, "struct")
        if t is not None:
            agg_name(t.id)
            pending.append(t.id)
    closure(pending)
    body = (
        '"""Generated by scripts/gen_verifier_btf.py from the running kernel\'s BTF: the\n'
        "struct of each map type (struct bpf_map and friends) and every aggregate inside\n"
        "them, for loads through a map pointer; the socket structs the socket-cast helpers\n"
        "return.  Do not edit; regenerate.\n"
        "\n"
        "STRUCTS: name -> (kind, size, members); a member is (name, bit offset,\n"
        'bitfield size, type) with type one of ("int", size), ("ptr", struct name or\n'
        'None, type tags), ("agg", name), ("array", element type, nelems), ("void",),\n'
        '("func",).\n'
        '"""\n\n'
        "# fmt: off\n"
        f"MAP_STRUCT: dict[int, str | None] = {pprint.pformat(by_type, width=100)}\n\n"
        f"STRUCTS: dict[str, tuple] = {pprint.pformat(structs, width=100)}\n"
    )
    OUT.write_text(body)
    print(f"wrote {OUT}: {len(structs)} aggregates")
    return 0


if __name__ == "__main__":
    sys.exit(main())
