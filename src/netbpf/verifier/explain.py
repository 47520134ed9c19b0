"""Beyond the kernel: say where the offending value came from and how such errors are
usually fixed.

Every register carries an ``origin`` (the instruction that produced its value and
what it was: "bpf_map_lookup_elem (may be NULL)", "the context field at offset 76
(pkt)", "the constant 5"...), copied along with the value.  When a check fails on a
register, the explanation names that origin along the failing path; the hint is
chosen by the class of the error.
"""

from __future__ import annotations

__all__ = ["HINTS", "explain"]

#: error class -> the usual fix, phrased for C programmers
HINTS: dict[str, str] = {
    "null_deref": "check the pointer before using it: `if (!val) return ...;` right after the "
    "call that may return NULL, then dereference `val`",
    "null_arith": "NULL-check the pointer first (`if (!p) return ...;`), then do the arithmetic",
    "pkt": "compare the end of the bytes you read with data_end before the access: "
    "`if (data + off + size > data_end) return ...;` (e.g. `if ((void *)(eth + 1) > "
    "data_end)`), and re-check after any helper that changes the packet",
    "oob": "bound the index against the size of the object before the access, e.g. "
    "`if (idx >= sizeof(val->arr) / sizeof(val->arr[0])) return ...;`",
    "neg_index": "use an unsigned index, or check `if (idx < 0) return ...;` before using it",
    "unbounded": "bound the variable first: `if (idx >= N) return ...;` or `idx &= N - 1;`",
    "ctx": "only access fields of the context struct this program type may use, with "
    "their declared size; read packet bytes through data/data_end instead",
    "invalid_mem": "only pointers can be dereferenced; this register holds a number "
    "(was a pointer overwritten, or the value not checked against NULL?)",
    "uninit_reg": "give the register a value on every path before reading it; after a "
    "helper call r1-r5 are clobbered (keep values in r6-r9 or on the stack)",
    "stack": "stack accesses must stay within the 512-byte frame: fp-512 .. fp-1",
    "ref_leak": "release what you acquired on every path: bpf_sk_release() for sockets "
    "from bpf_sk_lookup_*(), bpf_ringbuf_submit()/bpf_ringbuf_discard() for records "
    "from bpf_ringbuf_reserve()",
    "retval": "return one of the values this hook accepts (e.g. 0 or 1 for cgroup "
    "programs); make the return value a constant or bound it",
    "div0": "division by the constant 0 is refused; divide by a non-zero value",
    "shift": "shift amounts must be 0..31 for 32-bit and 0..63 for 64-bit operations",
    "fp_ro": "r10 is the read-only frame pointer; copy it to another register first",
    "helper_type": "this program type cannot call that helper; check the helper list "
    "of the hook (man bpf-helpers) or use another program type",
    "helper_arg": "pass the argument type the helper expects (see its prototype): e.g. "
    "a pointer to initialised stack for keys, a map for map arguments",
    "map_func": "this helper does not work with that map type",
    "ptr_arith": "only add or subtract scalars to pointers; do not combine pointers",
    "cfg": "remove the dead code (or jump to it); every instruction must be reachable",
    "limit": "the verifier explored too many instructions: bound loops with a "
    "small constant, or split the program (tail calls, bpf_loop)",
    "infinite_loop": "the loop does not make progress on every path; bound it",
    "size": "bound the size argument: `if (len > sizeof(buf)) return ...;` or "
    "`len &= sizeof(buf) - 1;`, and make sure it cannot be 0 where that is refused",
    "ref": "only release references acquired on this path, and each exactly once",
    "lock": "unlock the bpf_spin_lock before calling helpers or exiting",
    "frames": "reduce the nesting of bpf-to-bpf calls (at most 8 frames)",
    "stack_depth": "use less stack in the call chain (512 bytes in total): move big "
    "buffers into a per-CPU array map",
    "pkt_write": "this program type may only read packet data",
    "map_rdonly": "the map is read-only for programs (const/.rodata); write into a "
    "writable map instead",
    "align": "access the stack (and atomics) at offsets aligned to the access size",
    "unsupported": "netbpf's verifier does not model this feature; load the program "
    "in the kernel (KernelBackend) to verify it",
}


def explain(kind: str, reg: int | None, origin: tuple[int, str] | None) -> tuple[str, str]:
    """(where the value came from, the usual fix) for an error of class ``kind`` on
    register ``reg`` whose value was produced at ``origin``."""
    why = ""
    if reg is not None:
        if origin is not None:
            idx, what = origin
            why = f"R{reg} came from {what} at insn {idx}"
            if kind in ("null_deref", "null_arith"):
                why += " and was not checked against NULL on this path"
            elif kind == "pkt":
                why += " and no comparison with data_end on this path covers the access"
            elif kind in ("oob", "unbounded", "neg_index"):
                why += " and its bounds on this path allow the access to leave the object"
        elif kind == "uninit_reg":
            why = f"R{reg} was never written on this path (or was clobbered by a call)"
        else:
            why = f"R{reg} has no recorded origin on this path"
    return why, HINTS.get(kind, "")
