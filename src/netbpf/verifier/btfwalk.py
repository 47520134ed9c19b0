"""Loads through pointers to kernel structs: the kernel's ``btf_struct_walk``.

A program may read the fields of the ``struct bpf_map`` (``bpf_array``, ``bpf_htab``...)
a map pointer points to (``check_ptr_to_map_access``) and follow the struct pointers it
finds there (``ptr_bpf_map``...), and read the socket structs the socket-cast helpers
return (``bpf_skc_to_tcp_sock`` gives ``ptr_tcp_sock``).  The kernel checks such loads
against the struct layouts of vmlinux BTF; netbpf carries those layouts (the map
structs, what they point to, the socket structs, and every aggregate inside them) in
:mod:`netbpf.verifier._kernel_structs`, generated from the running kernel by
``scripts/gen_verifier_btf.py`` and imported on first use.

:func:`struct_access` answers like ``btf_struct_access``: a scalar, a pointer to a
named struct (``PTR_TO_BTF_ID``), or read-only untrusted memory (a pointer to anything
else), with the type flags collected on the way (``untrusted`` below a union or in a
flexible array, ``rcu`` / ``percpu`` / ``user`` from type tags); or the kernel's
refusal message.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

from netbpf.verifier.regs import T

__all__ = ["WalkError", "WalkResult", "has_struct", "map_struct", "struct_access"]


@cache
def _tables() -> tuple[dict[int, str | None], dict[str, Any]]:
    """The generated layouts (imported on first use: they are large)."""
    from netbpf.verifier._kernel_structs import MAP_STRUCT, STRUCTS

    return MAP_STRUCT, STRUCTS


def has_struct(name: str) -> bool:
    """netbpf carries the layout of ``struct name`` (loads through it are checked)."""
    return name in _tables()[1]


class WalkError(Exception):
    """The kernel's refusal of the access (the message is the exception text)."""


@dataclass(frozen=True)
class WalkResult:
    #: T.SCALAR, T.PTR_TO_BTF_ID or T.PTR_TO_MEM (read-only untrusted memory)
    type: int
    #: the struct a PTR_TO_BTF_ID points to
    btf_name: str = ""
    #: MEM_RCU / MEM_PERCPU / MEM_USER / PTR_UNTRUSTED / MEM_RDONLY
    flags: int = 0


_TAG_FLAGS = {"user": T.MEM_USER, "percpu": T.MEM_PERCPU, "rcu": T.MEM_RCU}


def map_struct(map_type: int) -> str | None:
    """The struct behind a map pointer of this map type (None: not readable)."""
    name = _tables()[0].get(map_type)
    return name if name is not None and has_struct(name) else None


def _resolve(ref: tuple[Any, ...]) -> tuple[int, tuple[Any, ...], int]:
    """__btf_resolve_size: (total size, innermost element type, total element count)
    of a member type; arrays of arrays are linearized."""
    nelems = 1
    while ref[0] == "array":
        nelems *= ref[2]
        ref = ref[1]
    kind = ref[0]
    if kind == "int":
        size = ref[1]
    elif kind == "ptr":
        size = 8
    elif kind == "agg":
        size = _tables()[1][ref[1]][1]
    else:
        raise WalkError("")
    return size * nelems, ref, nelems


def _walk(name: str, off: int, size: int, flag: int) -> tuple[str, str | None, int]:
    """One btf_struct_walk: ("scalar", None), ("ptr", target struct),
    ("untrusted_mem", None) or ("struct", name of a nested struct at exactly ``off``);
    with the updated flag."""
    while True:  # the kernel's ``goto again``: descend into a nested aggregate
        step = _walk_one(name, off, size, flag)
        if step[0] != "again":
            return step[1], step[2], step[3]
        _, name, off, flag = step


def _walk_one(name: str, off: int, size: int, flag: int) -> tuple[Any, ...]:
    structs = _tables()[1]
    kind, tsize, members = structs[name]
    tname = "(anon)" if name.startswith("<anon") else name  # __btf_name_by_offset
    if kind == "union" and len(members) != 1 and not flag & T.PTR_UNTRUSTED:
        # walking unions yields untrusted pointers
        flag |= T.PTR_UNTRUSTED
    if off + size > tsize:
        # a flexible array as the last member relaxes the rule
        if members:
            _, bit_off, _, mref = members[-1]
            moff = bit_off // 8
            if mref[0] == "array" and mref[2] == 0 and off >= moff:
                elem = mref[1]
                if elem[0] == "int":
                    return ("done", "scalar", None, flag)
                if elem[0] == "agg" and structs[elem[1]][0] == "struct":
                    # (Linux 6.18 treats what it finds there as untrusted: accesses
                    # straddling members are allowed, pointers are untrusted_ptr_)
                    elem_off = (off - moff) % structs[elem[1]][1]
                    return ("again", elem[1], elem_off, flag | T.PTR_UNTRUSTED)
        raise WalkError(f"access beyond struct {tname} at off {off} size {size}")
    for mname, bit_off, bitfield, mref in members:
        mname = mname or "(anon)"
        moff = bit_off // 8
        if off + size <= moff:
            break  # already past the access
        if bitfield:
            end_bit = bit_off + bitfield
            if off <= moff and (end_bit + 7) // 8 <= off + size:
                return ("done", "scalar", None, flag)
            continue
        if off < moff:
            break  # a hole
        try:
            msize, elem, nelems = _resolve(mref)
        except WalkError:
            raise WalkError(f"field {mname} doesn't have size") from None
        mtrue_end = moff + msize
        if off >= mtrue_end:
            continue
        if mref[0] == "array":
            if moff == mtrue_end:
                continue  # empty array
            esize = msize // nelems
            moff += (off - moff) // esize * esize
            mref = elem
        if mref[0] == "agg":
            if off == moff:
                return ("done", "struct", mref[1], flag)
            return ("again", mref[1], off - moff, flag)
        if mref[0] == "ptr":
            if size != 8 or off != moff:
                raise WalkError(
                    f"cannot access ptr member {mname} with moff {moff} in struct {tname}"
                    f" with off {off} size {size}"
                )
            target, tags = mref[1], mref[2]
            if target is None:
                return ("done", "untrusted_mem", None, flag)
            tflag = 0
            for tag in tags:
                tflag = _TAG_FLAGS.get(tag, tflag)
            return ("done", "ptr", target, flag | tflag)
        if off + size > mtrue_end and not flag & T.PTR_UNTRUSTED:
            raise WalkError(
                f"access beyond the end of member {mname} (mend:{mtrue_end}) in struct"
                f" {tname} with off {off} size {size}"
            )
        return ("done", "scalar", None, flag)
    raise WalkError(f"struct {tname} doesn't have field at offset {off}")


def struct_access(name: str, off: int, size: int) -> WalkResult:
    """btf_struct_access for a read of ``size`` bytes at ``off`` of ``struct name``."""
    flag = 0
    while True:
        what, arg, flag = _walk(name, off, size, flag)
        if what == "scalar":
            return WalkResult(T.SCALAR)
        if what == "ptr":
            return WalkResult(T.PTR_TO_BTF_ID, str(arg), flag)
        if what == "untrusted_mem":
            return WalkResult(T.PTR_TO_MEM, "", T.MEM_RDONLY | T.PTR_UNTRUSTED)
        # a nested struct starting exactly at off: continue inside it
        name, off = str(arg), 0
