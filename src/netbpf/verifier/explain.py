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
    "struct_access": "read kernel structs (struct bpf_map...) only at whole fields of "
    "their layout, with the field's size, and never write them; CO-RE "
    "(`BPF_CORE_READ`) keeps the offsets right",
    "map_ptr": "this map type has no readable kernel struct; keep the value you need "
    "in a map of your own",
    "map_wronly": "the map is write-only for programs (BPF_F_WRONLY_PROG); read it from "
    "user space, or create it without the flag",
    "spin_lock": "use bpf_spin_lock only in program types that may (not socket filters "
    "or tracing), on a map value holding a struct bpf_spin_lock",
    "verifier_bug": "Linux 6.18 refuses this with an internal check: restructure the "
    "code (here: do the tail call outside the callback, e.g. after bpf_loop returns)",
    "rdonly": "this memory is read-only (e.g. a read-only map value or helper memory); "
    "copy it to the stack to modify it",
    "sock_write": "socket pointers are read-only; change sockets through helpers",
    "sock": "only read the fields struct bpf_sock (or bpf_tcp_sock...) exposes, with "
    "their declared size",
    "map_key": "map keys are read-only in callbacks; copy the key to change it",
    "stack_read": "initialise the stack bytes before reading them (e.g. `__u8 buf[16] = "
    "{};`, or `__builtin_memset`), on every path",
    "spill": "spill pointers to the stack only with 8-byte aligned stores",
    "fill": "read a spilled pointer back whole (8 bytes, same offset)",
    "gpl": "this helper (or kernel struct) needs a GPL-compatible license: "
    'char LICENSE[] SEC("license") = "GPL";',
    "callback": "pass a static function as the callback, with the signature the helper expects",
    "cb_ret": "return 0 (continue) or 1 (stop) from the callback",
    "ret_stack": "do not return pointers to the stack from a function: its frame is gone "
    "after the return",
    "ptr_off": "pass the pointer the helper expects unmodified (no offset added)",
    "ld_abs": "LD_ABS/LD_IND need r6 = the skb context and exist only for socket "
    "filters and tc programs; read packet data through data/data_end instead",
    "zero_size": "the size argument may be 0 on some path where the helper refuses 0: "
    "check `if (len == 0) return ...;` or use a helper taking a size-or-zero",
    "helper_pkt": "this helper cannot take a packet pointer here: copy the bytes to the "
    "stack first",
    "global_arg": "pass arguments matching the global function's BTF signature (a "
    "context pointer, a scalar, or memory of the declared size)",
    "ptr_mismatch": "the same instruction may not access different kinds of memory on "
    "different paths: split the code so each access uses one pointer type",
    "flow_keys": "stay within struct bpf_flow_keys (56 bytes)",
    "atomic": "atomic operations work on the stack and map values, with 4/8-byte aligned accesses",
    "kfunc": "kfunc calls are not modelled by netbpf's verifier; verify the program "
    "with the kernel",
    "map_ref": "reference maps through relocations the loader resolves (a map in "
    "`.maps`, or a global variable in .data/.bss/.rodata)",
    "insn": "the instruction is malformed; reassemble it",
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
