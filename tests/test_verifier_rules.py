"""Verifier rules, one small program per rule, accept and reject, in the kernel's words.

Every case runs through netbpf's verifier (``test_ours``) and, where the running
kernel is usable, through BPF_PROG_LOAD as well (``test_kernel``): same verdict, and
for refusals the same error lines as the kernel's log ends with.
"""

from __future__ import annotations

import pytest
from _vcases import Case, M, check_kernel, check_ours, run_kernel, run_ours

from netbpf.isa.instruction import Instruction

H = M("h", "hash", 4, 8, 16)
A = M("a", "array", 4, 8, 4)
A1 = M("g", "array", 4, 16, 1)
RO = M("ro", "array", 4, 8, 1, flags=0x80)  # BPF_F_RDONLY_PROG
WO = M("wo", "array", 4, 8, 1, flags=0x100)  # BPF_F_WRONLY_PROG
Q = M("q", "queue", 0, 8, 4)
LK = "r1 = 0\n*(u32 *)(r10 - 4) = r1\nr2 = r10\nr2 += -4\n"


def sk(body: str, n: int) -> str:
    """tc: skb->sk, NULL-checked, cast with bpf_skc_to_tcp_sock, NULL-checked, then
    ``body`` (``n`` instructions)."""
    return (
        f"r1 = *(u64 *)(r1 + 168)\nif r1 == 0 goto +{n + 2}\ncall 137\n"
        f"if r0 == 0 goto +{n}\n{body}\nr0 = 0\nexit"
    )


CASES: list[Case] = [
    # --- registers and structure -----------------------------------------------------------
    Case("r0 uninit at exit", "exit", "R0 !read_ok"),
    Case("r2 uninit read", "r0 = r2\nexit", "R2 !read_ok"),
    Case("unreachable", "r0 = 0\nexit\nr0 = 1\nexit", "unreachable insn 2"),
    Case("div by zero", "r0 = 1\nr0 /= 0\nexit", "div by zero"),
    Case("mod by zero 32", "w0 = 1\nw0 %= 0\nexit", "div by zero"),
    Case("div by zero reg ok", "r0 = 1\nr1 = 0\nr0 /= r1\nexit"),
    Case("shift 64", "r0 = 1\nr0 <<= 64\nexit", "invalid shift 64"),
    Case("shift 32 on w", "w0 = 1\nw0 >>= 32\nexit", "invalid shift 32"),
    Case("shift negative", "r0 = 1\nr0 s>>= -1\nexit", "invalid shift -1"),
    Case("shift 63 ok", "r0 = 1\nr0 <<= 63\nr0 = 0\nexit"),
    Case("bounded loop", "r0 = 0\nr0 += 1\nif r0 < 10 goto -2\nexit"),
    Case("infinite loop", "r0 = 0\nif r0 == 0 goto -1\nexit", "infinite loop detected at insn 1"),
    # --- pointer arithmetic ------------------------------------------------------------------
    Case(
        "ctx ptr arith then load",
        "r1 += 4\nr0 = *(u32 *)(r1 + 0)\nexit",
        "dereference of modified ctx ptr R1 off=4 disallowed",
    ),
    Case("ptr plus ptr", "r1 += r10\nr0 = 0\nexit", "R1 pointer += pointer prohibited"),
    Case("ptr minus ptr ok", "r0 = r10\nr0 -= r10\nexit"),
    Case("ptr and", "r1 &= 4\nr0 = 0\nexit", "R1 bitwise operator &= on pointer prohibited"),
    Case("ptr mul", "r1 *= 4\nr0 = 0\nexit", "R1 pointer arithmetic with *= operator prohibited"),
    Case("ptr 32-bit add", "w1 += 4\nr0 = 0\nexit", "R1 32-bit pointer arithmetic prohibited"),
    Case("scalar minus ptr", "r0 = 1\nr0 -= r10\nexit", "R0 tried to subtract pointer from scalar"),
    Case(
        "fp minus scalar",
        "r2 = 8\nr0 = r10\nr0 -= r2\nr0 = 0\nexit",
        "R0 subtraction from stack pointer prohibited",
    ),
    Case(
        "ptr unbounded add",
        "r2 = *(u32 *)(r1 + 12)\nr2 <<= 32\nr3 = r10\nr3 += r2\nr0 = 0\nexit",
        "math between fp pointer and register with unbounded min value is not allowed",
    ),
    Case("scalar deref", "r1 = 5\nr0 = *(u32 *)(r1 + 0)\nexit", "R1 invalid mem access 'scalar'"),
    Case("fp read only", "r10 = 0\nr0 = 0\nexit", "frame pointer is read only"),
    Case(
        "neg of pointer gives scalar",
        "r1 = -r1\nr0 = *(u32 *)(r1 + 0)\nexit",
        "R1 invalid mem access 'scalar'",
    ),
    # --- stack -------------------------------------------------------------------------------
    Case(
        "stack spill fill ptr",
        "*(u64 *)(r10 - 8) = r1\nr2 = *(u64 *)(r10 - 8)\nr0 = *(u32 *)(r2 + 0)\nexit",
    ),
    Case("stack uninit read ok for root", "r0 = *(u64 *)(r10 - 8)\nr0 = 0\nexit"),
    Case(
        "stack too far",
        "r0 = 0\n*(u64 *)(r10 - 520) = r0\nexit",
        "invalid write to stack R10 off=-520 size=8",
    ),
    Case(
        "stack positive",
        "r0 = 0\n*(u64 *)(r10 + 0) = r0\nexit",
        "invalid write to stack R10 off=0 size=8",
    ),
    Case(
        "stack read positive",
        "r0 = *(u8 *)(r10 + 0)\nexit",
        "invalid read from stack R10 off=0 size=1",
    ),
    Case(
        "stack misaligned",
        "r0 = 0\n*(u64 *)(r10 - 4) = r0\nexit",
        "misaligned stack access off 0+0+-4 size 8",
    ),
    Case(
        "stack partial fill of ptr",
        "*(u64 *)(r10 - 8) = r1\nr0 = *(u32 *)(r10 - 8)\nexit",
        "invalid size of register fill",
    ),
    Case(
        "stack partial spill of ptr",
        "*(u32 *)(r10 - 8) = r1\nr0 = 0\nexit",
        "invalid size of register spill",
    ),
    Case(
        "stack spilled scalar keeps bounds",
        "r2 = *(u32 *)(r1 + 12)\nr2 &= 7\n*(u64 *)(r10 - 8) = r2\nr3 = *(u64 *)(r10 - 8)\n"
        "r4 = r10\nr4 += -16\nr4 += r3\nr0 = *(u8 *)(r4 + 0)\nexit",
    ),
    Case(
        "stack var off write",
        "r2 = *(u32 *)(r1 + 12)\nr2 &= 7\nr3 = r10\nr3 += -16\nr3 += r2\n"
        "r0 = 0\n*(u8 *)(r3 + 0) = r0\nexit",
    ),
    Case(
        "stack var off out of range",
        "r2 = *(u32 *)(r1 + 12)\nr2 &= 15\nr3 = r10\nr3 += -8\nr3 += r2\n"
        "r0 = 0\n*(u8 *)(r3 + 0) = r0\nexit",
        "invalid variable-offset write to stack R3 var_off=(0x0; 0xf) off=-8 size=1",
    ),
    Case("stack zero read", "r0 = 0\n*(u64 *)(r10 - 8) = r0\nr0 = *(u32 *)(r10 - 4)\nexit"),
    # --- context -----------------------------------------------------------------------------
    Case("xdp ctx ok", "r0 = *(u32 *)(r1 + 16)\nr0 = 2\nexit"),
    Case(
        "xdp ctx narrow", "r0 = *(u8 *)(r1 + 12)\nexit", "invalid bpf_context access off=12 size=1"
    ),
    Case(
        "xdp ctx write",
        "r0 = 0\n*(u32 *)(r1 + 12) = r0\nexit",
        "invalid bpf_context access off=12 size=4",
    ),
    Case("xdp ctx oob", "r0 = *(u32 *)(r1 + 24)\nexit", "invalid bpf_context access off=24 size=4"),
    Case(
        "xdp egress not devmap",
        "r0 = *(u32 *)(r1 + 20)\nexit",
        "invalid bpf_context access off=20 size=4",
    ),
    Case("tc mark write", "r0 = 1\n*(u32 *)(r1 + 8) = r0\nr0 = 0\nexit", prog_type="tc"),
    Case("tc narrow read", "r0 = *(u8 *)(r1 + 1)\nexit", prog_type="tc"),
    Case(
        "socket write mark",
        "r0 = 1\n*(u32 *)(r1 + 8) = r0\nr0 = 0\nexit",
        "invalid bpf_context access off=8 size=4",
        prog_type="socket",
    ),
    Case(
        "socket data",
        "r0 = *(u32 *)(r1 + 76)\nr0 = 0\nexit",
        "invalid bpf_context access off=76 size=4",
        prog_type="socket",
    ),
    Case(
        "ctx variable offset",
        "r2 = *(u32 *)(r1 + 12)\nr2 &= 4\nr1 += r2\nr0 = *(u32 *)(r1 + 0)\nexit",
        "variable ctx access var_off=(0x0; 0x4) disallowed",
    ),
    Case("ctx st imm", "*(u32 *)(r1 + 8) = 1\nr0 = 0\nexit", prog_type="tc"),
    Case(
        "ctx atomic",
        "r2 = 1\nlock *(u32 *)(r1 + 8) += r2\nr0 = 0\nexit",
        "BPF_ATOMIC stores into R1 ctx is not allowed",
        prog_type="tc",
    ),
    # --- packets -----------------------------------------------------------------------------
    Case(
        "pkt no check",
        "r2 = *(u32 *)(r1 + 0)\nr0 = *(u8 *)(r2 + 0)\nexit",
        "invalid access to packet, off=0 size=1, R2(id=0,off=0,r=0)",
    ),
    Case(
        "pkt checked",
        "r2 = *(u32 *)(r1 + 0)\nr3 = *(u32 *)(r1 + 4)\nr4 = r2\nr4 += 8\n"
        "if r4 > r3 goto +1\nr0 = *(u64 *)(r2 + 0)\nr0 = 2\nexit",
    ),
    Case(
        "pkt off by one",
        "r2 = *(u32 *)(r1 + 0)\nr3 = *(u32 *)(r1 + 4)\nr4 = r2\nr4 += 8\n"
        "if r4 > r3 goto +1\nr0 = *(u64 *)(r2 + 1)\nr0 = 2\nexit",
        "invalid access to packet, off=1 size=8, R2(id=0,off=1,r=8)",
    ),
    Case(
        "pkt reversed compare",
        "r2 = *(u32 *)(r1 + 0)\nr3 = *(u32 *)(r1 + 4)\nr4 = r2\nr4 += 14\n"
        "if r3 < r4 goto +1\nr0 = *(u16 *)(r2 + 12)\nr0 = 2\nexit",
    ),
    Case(
        "pkt jge open",
        "r2 = *(u32 *)(r1 + 0)\nr3 = *(u32 *)(r1 + 4)\nr4 = r2\nr4 += 8\n"
        "if r4 >= r3 goto +1\nr0 = *(u8 *)(r2 + 8)\nr0 = 2\nexit",
    ),
    Case(
        "pkt jge open too far",
        "r2 = *(u32 *)(r1 + 0)\nr3 = *(u32 *)(r1 + 4)\nr4 = r2\nr4 += 8\n"
        "if r4 >= r3 goto +1\nr0 = *(u16 *)(r2 + 8)\nr0 = 2\nexit",
        "invalid access to packet, off=8 size=2, R2(id=0,off=8,r=9)",
    ),
    Case(
        "pkt in taken branch",
        "r2 = *(u32 *)(r1 + 0)\nr3 = *(u32 *)(r1 + 4)\nr4 = r2\nr4 += 4\n"
        "if r4 <= r3 goto +2\nr0 = 1\nexit\nr0 = *(u32 *)(r2 + 0)\nr0 = 2\nexit",
    ),
    Case(
        "pkt write xdp",
        "r2 = *(u32 *)(r1 + 0)\nr3 = *(u32 *)(r1 + 4)\nr4 = r2\nr4 += 1\n"
        "if r4 > r3 goto +1\n*(u8 *)(r2 + 0) = 1\nr0 = 2\nexit",
    ),
    Case(
        "pkt write cgroup_skb",
        "r2 = *(u32 *)(r1 + 76)\nr3 = *(u32 *)(r1 + 80)\nr4 = r2\nr4 += 1\n"
        "if r4 > r3 goto +1\n*(u8 *)(r2 + 0) = 1\nr0 = 1\nexit",
        "cannot write into packet",
        prog_type="cgroup_skb/ingress",
    ),
    Case(
        "pkt var offset",
        "r2 = *(u32 *)(r1 + 0)\nr3 = *(u32 *)(r1 + 4)\nr5 = *(u8 *)(r1 + 0)\n"
        "r5 = *(u32 *)(r1 + 16)\nr5 &= 15\nr2 += r5\nr4 = r2\nr4 += 4\nif r4 > r3 goto +1\n"
        "r0 = *(u32 *)(r2 + 0)\nr0 = 2\nexit",
        "invalid bpf_context access off=0 size=1",
    ),
    Case(
        "pkt var offset ok",
        "r2 = *(u32 *)(r1 + 0)\nr3 = *(u32 *)(r1 + 4)\n"
        "r5 = *(u32 *)(r1 + 16)\nr5 &= 15\nr2 += r5\nr4 = r2\nr4 += 4\nif r4 > r3 goto +1\n"
        "r0 = *(u32 *)(r2 + 0)\nr0 = 2\nexit",
    ),
    Case(
        "pkt negative var",
        "r2 = *(u32 *)(r1 + 0)\nr3 = *(u32 *)(r1 + 4)\n"
        "r5 = *(u32 *)(r1 + 16)\nr5 &= 15\nr5 -= 8\nr2 += r5\nr4 = r2\nr4 += 4\nif r4 > r3 goto +1\n"
        "r0 = *(u32 *)(r2 + 0)\nr0 = 2\nexit",
        "R2 min value is negative, either use unsigned index or do a if (index >=0) check.",
    ),
    Case(
        "pkt end deref",
        "r3 = *(u32 *)(r1 + 4)\nr0 = *(u8 *)(r3 + 0)\nexit",
        "R3 invalid mem access 'pkt_end'",
    ),
    Case(
        "pkt invalidated by helper",
        "r6 = r1\nr2 = *(u32 *)(r1 + 0)\nr3 = *(u32 *)(r1 + 4)\nr4 = r2\n"
        "r4 += 4\nif r4 > r3 goto +5\nr7 = r2\nr1 = r6\nr2 = 0\ncall 44\nr0 = *(u8 *)(r7 + 0)\n"
        "r0 = 2\nexit",
        "R7 invalid mem access 'scalar'",
    ),
    Case(
        "pkt meta",
        "r2 = *(u32 *)(r1 + 8)\nr3 = *(u32 *)(r1 + 0)\nr4 = r2\nr4 += 4\n"
        "if r4 > r3 goto +1\nr0 = *(u32 *)(r2 + 0)\nr0 = 2\nexit",
    ),
    Case(
        "pkt jmp32 no range",
        "r2 = *(u32 *)(r1 + 0)\nr3 = *(u32 *)(r1 + 4)\nr4 = r2\nr4 += 8\n"
        "if w4 > w3 goto +1\nr0 = *(u8 *)(r2 + 0)\nr0 = 2\nexit",
        "invalid access to packet, off=0 size=1, R2(id=0,off=0,r=0)",
    ),
    # --- maps ----------------------------------------------------------------------------------
    Case(
        "lookup no null check",
        "r1 = 0\n*(u32 *)(r10 - 4) = r1\nr2 = r10\nr2 += -4\nr1 = {h} ll\n"
        "call 1\nr0 = *(u64 *)(r0 + 0)\nexit",
        "R0 invalid mem access 'map_value_or_null'",
        maps={"h": H},
    ),
    Case(
        "lookup null checked",
        "r1 = 0\n*(u32 *)(r10 - 4) = r1\nr2 = r10\nr2 += -4\nr1 = {h} ll\n"
        "call 1\nif r0 == 0 goto +1\nr0 = *(u64 *)(r0 + 0)\nr0 = 0\nexit",
        maps={"h": H},
    ),
    Case(
        "lookup oob",
        "r1 = 0\n*(u32 *)(r10 - 4) = r1\nr2 = r10\nr2 += -4\nr1 = {h} ll\n"
        "call 1\nif r0 == 0 goto +1\nr0 = *(u8 *)(r0 + 8)\nr0 = 0\nexit",
        "invalid access to map value, value_size=8 off=8 size=1",
        maps={"h": H},
    ),
    Case(
        "lookup copy null checked",
        "r1 = 0\n*(u32 *)(r10 - 4) = r1\nr2 = r10\nr2 += -4\nr1 = {h} ll\n"
        "call 1\nr6 = r0\nif r0 == 0 goto +1\nr0 = *(u64 *)(r6 + 0)\nr0 = 0\nexit",
        maps={"h": H},
    ),
    Case(
        "lookup null arith",
        "r1 = 0\n*(u32 *)(r10 - 4) = r1\nr2 = r10\nr2 += -4\nr1 = {h} ll\n"
        "call 1\nr0 += 4\nr0 = 0\nexit",
        "R0 pointer arithmetic on map_value_or_null prohibited, null-check it first",
        maps={"h": H},
    ),
    Case(
        "array key misc needs check",
        "r1 = 1\n*(u32 *)(r10 - 4) = r1\nr2 = r10\nr2 += -4\n"
        "r1 = {a} ll\ncall 1\nr0 = *(u64 *)(r0 + 0)\nexit",
        "R0 invalid mem access 'map_value_or_null'",
        maps={"a": A},
    ),
    Case(
        "array const key no null check",
        "r1 = 1\n*(u32 *)(r10 - 8) = r1\nr2 = r10\nr2 += -8\n"
        "r1 = {a} ll\ncall 1\nr0 = *(u64 *)(r0 + 0)\nexit",
        maps={"a": A},
    ),
    Case(
        "array key out of range needs check",
        "r1 = 4\n*(u32 *)(r10 - 8) = r1\nr2 = r10\nr2 += -8\n"
        "r1 = {a} ll\ncall 1\nr0 = *(u64 *)(r0 + 0)\nexit",
        "R0 invalid mem access 'map_value_or_null'",
        maps={"a": A},
    ),
    Case(
        "map value var index",
        "r1 = 0\n*(u32 *)(r10 - 4) = r1\nr2 = r10\nr2 += -4\nr1 = {h} ll\n"
        "call 1\nif r0 == 0 goto +4\nr1 = *(u32 *)(r0 + 0)\nr1 &= 7\nr0 += r1\nr0 = *(u8 *)(r0 + 0)\n"
        "r0 = 0\nexit",
        maps={"h": H},
    ),
    Case(
        "map value var index too big",
        "r1 = 0\n*(u32 *)(r10 - 4) = r1\nr2 = r10\nr2 += -4\nr1 = {h} ll\n"
        "call 1\nif r0 == 0 goto +4\nr1 = *(u32 *)(r0 + 0)\nr1 &= 15\nr0 += r1\nr0 = *(u8 *)(r0 + 0)\n"
        "r0 = 0\nexit",
        "invalid access to map value, value_size=8 off=15 size=1",
        maps={"h": H},
    ),
    Case(
        "map value unbounded",
        "r1 = 0\n*(u32 *)(r10 - 4) = r1\nr2 = r10\nr2 += -4\nr1 = {h} ll\n"
        "call 1\nif r0 == 0 goto +3\nr1 = *(u32 *)(r0 + 0)\nr0 += r1\nr0 = *(u8 *)(r0 + 0)\n"
        "r0 = 0\nexit",
        "R0 unbounded memory access, make sure to bounds check any such access",
        maps={"h": H},
    ),
    Case(
        "map update",
        "r1 = 0\n*(u32 *)(r10 - 4) = r1\n*(u64 *)(r10 - 16) = r1\nr2 = r10\nr2 += -4\n"
        "r3 = r10\nr3 += -16\nr1 = {h} ll\nr4 = 0\ncall 2\nr0 = 0\nexit",
        maps={"h": H},
    ),
    Case(
        "map key not a pointer",
        "r2 = 0\nr1 = {h} ll\ncall 1\nr0 = 0\nexit",
        "R2 type=scalar expected=fp, pkt, pkt_meta, map_key, map_value, mem, ringbuf_mem, buf, trusted_ptr_",
        maps={"h": H},
    ),
    Case(
        "map arg not a map",
        "r1 = 0\n*(u32 *)(r10 - 4) = r1\nr2 = r10\nr2 += -4\ncall 1\nr0 = 0\nexit",
        "R1 type=scalar expected=map_ptr",
    ),
    Case(
        "map key past stack",
        "r2 = r10\nr2 += -2\nr1 = {h} ll\ncall 1\nr0 = 0\nexit",
        "invalid read from stack R2 off=-2 size=4",
        maps={"h": H},
    ),
    Case("global data", "r1 = {g:8} ll\nr0 = *(u64 *)(r1 + 0)\nr0 = 0\nexit", maps={"g": A1}),
    Case(
        "global data oob",
        "r1 = {g:8} ll\nr0 = *(u64 *)(r1 + 4)\nr0 = 0\nexit",
        "invalid access to map value, value_size=16 off=12 size=8",
        maps={"g": A1},
    ),
    Case(
        "rdonly map write",
        "r1 = {g:0} ll\nr0 = 0\n*(u64 *)(r1 + 0) = r0\nexit",
        "write into map forbidden, value_size=16 off=0 size=8",
        maps={"g": M("g", "array", 4, 16, 1, flags=0x80)},
    ),
    Case(
        "map type for helper",
        "r1 = {a} ll\nr2 = 0\nr3 = 0\ncall 51\nr0 = 0\nexit",
        "cannot pass map_type 2 into func bpf_redirect_map#51",
        maps={"a": A},
    ),
    # --- helpers -----------------------------------------------------------------------------------
    Case(
        "helper not for type",
        "r1 = 0\ncall 44\nr0 = 0\nexit",
        "program of this type cannot use helper bpf_xdp_adjust_head#44",
        prog_type="socket",
    ),
    Case("helper invalid id", "call 300\nr0 = 0\nexit", "invalid func unknown#300"),
    Case("helper clobbers r1", "call 7\nr0 = r1\nexit", "R1 !read_ok"),
    Case("helper keeps r6", "r6 = 1\ncall 7\nr0 = r6\nexit"),
    Case("helper ctx arg", "r2 = 0\ncall 44\nr0 = 0\nexit"),
    Case(
        "helper ctx arg wrong", "r1 = r10\nr2 = 0\ncall 44\nr0 = 0\nexit", "R1 type=fp expected=ctx"
    ),
    Case(
        "helper size negative",
        "r6 = r1\nr4 = *(u32 *)(r1 + 12)\nr4 -= 2\nr1 = r6\nr2 = 0\nr3 = r10\n"
        "r3 += -16\ncall 26\nr0 = 0\nexit",
        "R4 min value is negative, either use unsigned or 'var &= const'",
        prog_type="tc",
    ),
    Case(
        "helper size zero",
        "r2 = 0\nr3 = r10\nr3 += -16\nr4 = 0\ncall 26\nr0 = 0\nexit",
        "R4 invalid zero-sized read: u64=[0,0]",
        prog_type="tc",
    ),
    Case(
        "helper size ok",
        "r2 = 0\nr3 = r10\nr3 += -16\nr4 = 16\ncall 26\nr0 = 0\nexit",
        prog_type="tc",
    ),
    Case(
        "helper size too big",
        "r2 = 0\nr3 = r10\nr3 += -16\nr4 = 17\ncall 26\nr0 = 0\nexit",
        "invalid write to stack R3 off=-16 size=17",
        prog_type="tc",
    ),
    Case(
        "helper pkt not allowed",
        "r2 = *(u32 *)(r1 + 76)\nr3 = *(u32 *)(r1 + 80)\nr4 = r2\nr4 += 4\n"
        "if r4 > r3 goto +3\nr3 = r2\nr2 = 0\nr4 = 4\ncall 26\nr0 = 0\nexit",
        "helper access to the packet is not allowed",
        prog_type="tc",
    ),
    # --- references --------------------------------------------------------------------------------
    Case(
        "sk lookup leak",
        "r6 = r1\nr1 = 0\n*(u64 *)(r10 - 8) = r1\n*(u64 *)(r10 - 16) = r1\n"
        "*(u64 *)(r10 - 24) = r1\n*(u64 *)(r10 - 32) = r1\n*(u64 *)(r10 - 40) = r1\nr1 = r6\n"
        "r2 = r10\nr2 += -40\nr3 = 36\nr4 = -1\nr5 = 0\ncall 84\nr0 = 0\nexit",
        "Unreleased reference id=2 alloc_insn=13",
        prog_type="tc",
    ),
    Case(
        "sk lookup release",
        "r6 = r1\nr1 = 0\n*(u64 *)(r10 - 8) = r1\n*(u64 *)(r10 - 16) = r1\n"
        "*(u64 *)(r10 - 24) = r1\n*(u64 *)(r10 - 32) = r1\n*(u64 *)(r10 - 40) = r1\nr1 = r6\n"
        "r2 = r10\nr2 += -40\nr3 = 36\nr4 = -1\nr5 = 0\ncall 84\nif r0 == 0 goto +2\nr1 = r0\ncall 86\n"
        "r0 = 0\nexit",
        prog_type="tc",
    ),
    Case(
        "sk release unchecked",
        "r6 = r1\nr1 = 0\n*(u64 *)(r10 - 8) = r1\n*(u64 *)(r10 - 16) = r1\n"
        "*(u64 *)(r10 - 24) = r1\n*(u64 *)(r10 - 32) = r1\n*(u64 *)(r10 - 40) = r1\nr1 = r6\n"
        "r2 = r10\nr2 += -40\nr3 = 36\nr4 = -1\nr5 = 0\ncall 84\nr1 = r0\ncall 86\nr0 = 0\nexit",
        "R1 type=sock_or_null expected=sock_common, sock, tcp_sock, xdp_sock, ptr_, trusted_ptr_",
        prog_type="tc",
    ),
    Case(
        "sk use after release",
        "r6 = r1\nr1 = 0\n*(u64 *)(r10 - 8) = r1\n*(u64 *)(r10 - 16) = r1\n"
        "*(u64 *)(r10 - 24) = r1\n*(u64 *)(r10 - 32) = r1\n*(u64 *)(r10 - 40) = r1\nr1 = r6\n"
        "r2 = r10\nr2 += -40\nr3 = 36\nr4 = -1\nr5 = 0\ncall 84\nif r0 == 0 goto +4\nr7 = r0\n"
        "r1 = r0\ncall 86\nr0 = *(u32 *)(r7 + 4)\nr0 = 0\nexit",
        "R7 invalid mem access 'scalar'",
        prog_type="tc",
    ),
    Case(
        "sock field read",
        "r6 = r1\nr1 = 0\n*(u64 *)(r10 - 8) = r1\n*(u64 *)(r10 - 16) = r1\n"
        "*(u64 *)(r10 - 24) = r1\n*(u64 *)(r10 - 32) = r1\n*(u64 *)(r10 - 40) = r1\nr1 = r6\n"
        "r2 = r10\nr2 += -40\nr3 = 36\nr4 = -1\nr5 = 0\ncall 84\nif r0 == 0 goto +4\nr7 = *(u32 *)(r0 + 4)\n"
        "r1 = r0\ncall 86\nr0 = 0\nexit",
        prog_type="tc",
    ),
    # --- return codes ------------------------------------------------------------------------------
    Case(
        "cgroup_skb ret 2",
        "r0 = 2\nexit",
        "At program exit the register R0 has smin=2 smax=2 should have been in [0, 1]",
        prog_type="cgroup_skb/ingress",
    ),
    Case("cgroup_skb egress ret 3", "r0 = 3\nexit", prog_type="cgroup_skb/egress"),
    Case(
        "cgroup_skb ret unknown",
        "r0 = *(u32 *)(r1 + 0)\nexit",
        "At program exit the register R0 has smin=0 smax=4294967295 should have been in [0, 1]",
        prog_type="cgroup_skb/ingress",
    ),
    Case(
        "cgroup_skb ret ptr",
        "r0 = r1\nexit",
        "At program exit the register R0 is not a known value (ctx)",
        prog_type="cgroup_skb/ingress",
    ),
    Case("xdp ret anything", "r0 = 77\nexit"),
    Case("xdp ret pointer", "r0 = r1\nexit"),
    Case("sockops ret", "r0 = 1\nexit", prog_type="sockops"),
    Case(
        "sk_lookup ret 2",
        "r0 = 2\nexit",
        "At program exit the register R0 has smin=2 smax=2 should have been in [0, 1]",
        prog_type="sk_lookup",
    ),
    Case(
        "getpeername ret 0",
        "r0 = 0\nexit",
        "At program exit the register R0 has smin=0 smax=0 should have been in [1, 1]",
        prog_type="cgroup/getpeername4",
    ),
    # --- ld_abs ------------------------------------------------------------------------------------
    Case("ld_abs ok", "r6 = r1\nr0 = *(u8 *)skb[12]\nexit", prog_type="socket"),
    Case(
        "ld_abs xdp",
        "r6 = r1\nr0 = *(u8 *)skb[12]\nexit",
        "BPF_LD_[ABS|IND] instructions not allowed for this program type",
    ),
    Case("ld_abs no r6", "r0 = *(u8 *)skb[12]\nexit", "R6 !read_ok", prog_type="socket"),
    Case(
        "ld_abs r6 not ctx",
        "r6 = r10\nr0 = *(u8 *)skb[12]\nexit",
        "at the time of BPF_LD_ABS|IND R6 != pointer to skb",
        prog_type="socket",
    ),
    Case(
        "ld_abs clobbers",
        "r6 = r1\nr2 = 1\nr0 = *(u8 *)skb[12]\nr0 = r2\nexit",
        "R2 !read_ok",
        prog_type="socket",
    ),
    # --- calls -------------------------------------------------------------------------------------
    Case("bpf2bpf call", "r1 = 1\ncall pc+2\nr0 = 0\nexit\nr0 = r1\nexit"),
    Case("bpf2bpf r6 not passed", "r6 = 1\ncall pc+2\nr0 = 0\nexit\nr0 = r6\nexit", "R6 !read_ok"),
    Case(
        "bpf2bpf return stack ptr",
        "call pc+2\nr0 = 0\nexit\nr0 = r10\nexit",
        "cannot return stack pointer to the caller",
    ),
    Case(
        "bpf2bpf caller stack via ptr",
        "r1 = r10\nr1 += -8\ncall pc+3\nr0 = *(u64 *)(r10 - 8)\nr0 = 0\nexit\n"
        "r2 = 5\n*(u64 *)(r1 + 0) = r2\nr0 = 0\nexit",
    ),
    # --- map pointers: struct bpf_map and friends --------------------------------------------
    Case("map ptr max_entries", "r1 = {a} ll\nr0 = *(u32 *)(r1 + 76)\nexit", maps={"a": A}),
    Case("map ptr key_size narrow", "r1 = {h} ll\nr0 = *(u8 *)(r1 + 68)\nexit", maps={"h": H}),
    Case(
        "map ptr write",
        "r1 = {a} ll\nr2 = 0\n*(u32 *)(r1 + 76) = r2\nr0 = 0\nexit",
        "only read from bpf_array is supported",
        maps={"a": A},
    ),
    Case(
        "map ptr negative",
        "r1 = {h} ll\nr0 = *(u32 *)(r1 - 4)\nexit",
        "R1 is bpf_htab invalid negative access: off=-4",
        maps={"h": H},
    ),
    Case(
        "map ptr straddle",
        "r1 = {a} ll\nr0 = *(u64 *)(r1 + 72)\nexit",
        "access beyond the end of member value_size (mend:76) in struct bpf_map with off 72 size 8",
        maps={"a": A},
    ),
    Case(
        "map ptr hole",
        "r1 = {a} ll\nr0 = *(u32 *)(r1 + 36)\nexit",
        "struct bpf_map doesn't have field at offset 36",
        maps={"a": A},
    ),
    Case(
        "map ptr beyond",
        "r1 = {a} ll\nr0 = *(u8 *)(r1 + 1000)\nexit",
        "access beyond struct bpf_array at off 1000 size 1",
        maps={"a": A},
    ),
    Case(
        "map ptr inner map meta",
        "r1 = {a} ll\nr1 = *(u64 *)(r1 + 48)\nr0 = *(u32 *)(r1 + 76)\nr0 = 0\nexit",
        maps={"a": A},
    ),
    Case(
        "map ptr partial ptr",
        "r1 = {a} ll\nr0 = *(u32 *)(r1 + 48)\nexit",
        "cannot access ptr member inner_map_meta with moff 48 in struct bpf_map with off 48 size 4",
        maps={"a": A},
    ),
    Case(
        "map ptr btf var off",
        "r1 = {a} ll\nr2 = *(u32 *)(r1 + 76)\nr2 &= 7\nr1 = *(u64 *)(r1 + 48)\nr1 += r2\nr0 = *(u32 *)(r1 + 0)\nexit",
        "R1 is ptr_bpf_map invalid variable offset: off=0, var_off=(0x0; 0x7)",
        maps={"a": A},
    ),
    Case(
        "map ptr btf write",
        "r1 = {a} ll\nr1 = *(u64 *)(r1 + 48)\nr2 = 0\n*(u32 *)(r1 + 76) = r2\nr0 = 0\nexit",
        "only read is supported",
        maps={"a": A},
    ),
    Case(
        "map ptr untrusted mem",
        "r1 = {a} ll\nr1 = *(u64 *)(r1 + 56)\nr0 = *(u64 *)(r1 + 4096)\nr0 = 0\nexit",
        maps={"a": A},
    ),
    Case(
        "map ptr untrusted mem write",
        "r1 = {a} ll\nr1 = *(u64 *)(r1 + 56)\nr2 = 0\n*(u64 *)(r1 + 0) = r2\nr0 = 0\nexit",
        "R1 cannot write into rdonly_untrusted_mem",
        maps={"a": A},
    ),
    Case(
        "map ptr flexible array",
        "r1 = {q} ll\nr0 = *(u64 *)(r1 + 4000)\nr0 = 0\nexit",
        maps={"q": Q},
    ),
    Case(
        "map ptr arith",
        "r1 = {a} ll\nr1 += 8\nr0 = 0\nexit",
        "R1 pointer arithmetic on map_ptr prohibited",
        maps={"a": A},
    ),
    # --- map permissions ---------------------------------------------------------------------
    Case(
        "rdonly prog update",
        LK
        + "*(u64 *)(r10 - 16) = r1\nr3 = r10\nr3 += -16\nr1 = {ro} ll\nr4 = 0\ncall 2\nr0 = 0\nexit",
        "write into map forbidden",
        maps={"ro": RO},
    ),
    Case(
        "rdonly prog delete",
        LK + "r1 = {ro} ll\ncall 3\nr0 = 0\nexit",
        "write into map forbidden",
        maps={"ro": RO},
    ),
    Case(
        "rdonly prog value store",
        LK
        + "r1 = {ro} ll\ncall 1\nif r0 == 0 goto +2\nr1 = 1\n*(u64 *)(r0 + 0) = r1\nr0 = 0\nexit",
        "write into map forbidden, value_size=8 off=0 size=8",
        maps={"ro": RO},
    ),
    Case(
        "rdonly prog value load",
        LK + "r1 = {ro} ll\ncall 1\nif r0 == 0 goto +1\nr0 = *(u64 *)(r0 + 0)\nr0 = 0\nexit",
        maps={"ro": RO},
    ),
    Case(
        "wronly prog value load",
        LK + "r1 = {wo} ll\ncall 1\nif r0 == 0 goto +1\nr0 = *(u64 *)(r0 + 0)\nr0 = 0\nexit",
        "read from map forbidden, value_size=8 off=0 size=8",
        maps={"wo": WO},
    ),
    Case(
        "wronly prog value store",
        LK
        + "r1 = {wo} ll\ncall 1\nif r0 == 0 goto +2\nr1 = 1\n*(u64 *)(r0 + 0) = r1\nr0 = 0\nexit",
        maps={"wo": WO},
    ),
    # --- limits ------------------------------------------------------------------------------
    Case(
        "stack frame too deep",
        "call pc+1\nexit\ncall pc+1\nexit\ncall pc+1\nexit\ncall pc+1\nexit\ncall pc+1\nexit\n"
        "call pc+1\nexit\ncall pc+1\nexit\ncall pc+1\nexit\nr0 = 0\nexit",
        "the call stack of 9 frames is too deep",
    ),
    Case(
        "stack frames ok",
        "call pc+1\nexit\ncall pc+1\nexit\ncall pc+1\nexit\ncall pc+1\nexit\ncall pc+1\nexit\n"
        "call pc+1\nexit\ncall pc+1\nexit\nr0 = 0\nexit",
    ),
    Case(
        "combined stack too large",
        "r1 = 0\n*(u64 *)(r10 - 512) = r1\ncall pc+2\nr0 = 0\nexit\n"
        "r1 = 0\n*(u64 *)(r10 - 64) = r1\nr0 = 0\nexit",
        "combined stack size of 2 calls is 576. Too large",
    ),
    Case("may_goto loop", "r0 = 0\nmay_goto +2\nr0 += 1\ngoto -3\nexit"),
    # --- pointer comparisons and null propagation ---------------------------------------------
    Case(
        "null check via copy compare",
        LK + "r1 = {h} ll\ncall 1\nr6 = r0\nif r6 != 0 goto +2\nr0 = 0\nexit\n"
        "r0 = *(u64 *)(r0 + 0)\nr0 = 0\nexit",
        maps={"h": H},
    ),
    Case(
        "null check wrong branch",
        LK + "r1 = {h} ll\ncall 1\nif r0 != 0 goto +2\nr0 = *(u64 *)(r0 + 0)\nexit\nr0 = 0\nexit",
        "R0 invalid mem access 'scalar'",
        maps={"h": H},
    ),
    Case("ptr compare ptr ok", "r2 = r10\nif r2 > r10 goto +0\nr0 = 0\nexit"),
    # --- other hooks --------------------------------------------------------------------------
    Case("sockops write reply", "r2 = 1\n*(u32 *)(r1 + 4) = r2\nr0 = 1\nexit", prog_type="sockops"),
    Case(
        "sockops write op",
        "r2 = 1\n*(u32 *)(r1 + 0) = r2\nr0 = 1\nexit",
        "invalid bpf_context access off=0 size=4",
        prog_type="sockops",
    ),
    Case(
        "sk_msg data",
        "r2 = *(u64 *)(r1 + 0)\nr3 = *(u64 *)(r1 + 8)\nr4 = r2\nr4 += 1\nif r4 > r3 goto +1\nr0 = *(u8 *)(r2 + 0)\nr0 = 1\nexit",
        prog_type="sk_msg",
    ),
    Case(
        "sk_lookup sk read",
        "r2 = *(u64 *)(r1 + 0)\nr0 = *(u32 *)(r2 + 0)\nr0 = 1\nexit",
        "R2 invalid mem access 'sock_or_null'",
        prog_type="sk_lookup",
    ),
    # --- BTF socket pointers (bpf_skc_to_tcp_sock) ----------------------------------------
    Case("tcp_sock field read", sk("r2 = *(u32 *)(r0 + 1680)", 1), prog_type="tc"),
    Case("tcp_sock ptr field read", sk("r2 = *(u64 *)(r0 + 24)", 1), prog_type="tc"),
    Case(
        "tcp_sock write",
        sk("r2 = 0\n*(u32 *)(r0 + 1680) = r2", 2),
        "only read is supported",
        prog_type="tc",
    ),
    Case(
        "tcp_sock negative",
        sk("r2 = *(u32 *)(r0 - 4)", 1),
        "R0 is ptr_tcp_sock invalid negative access: off=-4",
        prog_type="tc",
    ),
    Case(
        "tcp_sock beyond",
        sk("r2 = *(u8 *)(r0 + 4000)", 1),
        "access beyond struct tcp_sock at off 4000 size 1",
        prog_type="tc",
    ),
    Case(
        "tcp_sock unchecked",
        "r1 = *(u64 *)(r1 + 168)\nif r1 == 0 goto +2\ncall 137\nr2 = *(u32 *)(r0 + 1680)\nr0 = 0\nexit",
        "R0 invalid mem access 'ptr_or_null_'",
        prog_type="tc",
    ),
]


# --- checks Linux makes only on the paths it walks -----------------------------------------
# Reserved fields, registers above r10 and writes to r10 are checked in do_check, when
# a path reaches the instruction: on a branch a constant decides (``if r0 == 2`` with
# r0 = 2) the kernel accepts them and patches the dead code out; reached, they are
# refused with these messages, after the instruction's log line.  What Linux checks up
# front (opcodes, LDX fields, LD_IMM64 halves and sources, jumps) is refused anywhere.


def q(opcode: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> str:
    """One raw slot as assembly (``.quad``): fields the assembler would refuse."""
    return (
        f".quad {int.from_bytes(Instruction(opcode, dst, src, off, imm).encode(), 'little'):#018x}"
    )


def on_path(bad: str, *, dead: bool, slots: int = 1) -> str:
    """``bad`` behind a branch on the constant r0 = 2: never taken (``dead``) or always
    taken into it."""
    return f"r0 = 2\nif r0 == {2 if dead else 3} goto +{slots}\n{bad}\nexit"


#: (id, the instruction, the kernel's message when a path reaches it, slots, prog type)
WALKED: list[tuple[str, str, str, int, str]] = [
    ("r10 alu", "r10 += 8", "frame pointer is read only", 1, "xdp"),
    ("r10 mov", "r10 = 0", "frame pointer is read only", 1, "xdp"),
    ("r10 ldx", "r10 = *(u64 *)(r10 - 8)", "frame pointer is read only", 1, "xdp"),
    ("r10 ld_imm64", "r10 = 1 ll", "frame pointer is read only", 2, "xdp"),
    ("r10 neg", "r10 = -r10", "frame pointer is read only", 1, "xdp"),
    ("r10 fetch_add src", q(0xDB, 10, 10, -8, 0x01), "frame pointer is read only", 1, "xdp"),
    ("r10 load_acquire dst", q(0xDB, 10, 10, -8, 0x100), "frame pointer is read only", 1, "xdp"),
    ("r11 src", "r0 = r11", "R11 is invalid", 1, "xdp"),
    ("r11 dst", "r11 = 1", "R11 is invalid", 1, "xdp"),
    ("r15 dst alu32", q(0x04, 15, 0, 0, 1), "R15 is invalid", 1, "xdp"),
    ("r12 ldx base", "r0 = *(u64 *)(r12 + 0)", "R12 is invalid", 1, "xdp"),
    ("r11 stx src", q(0x7B, 10, 11, -8), "R11 is invalid", 1, "xdp"),
    ("r11 jcc", "if r11 == 0 goto +0", "R11 is invalid", 1, "xdp"),
    ("r13 atomic", q(0xDB, 10, 13, -8, 0), "R13 is invalid", 1, "xdp"),
    ("r11 ld_imm64", "r11 = 1 ll", "R11 is invalid", 2, "xdp"),
    ("r15 ld_ind", "r6 = r1\n" + q(0x40, 0, 15), "R15 is invalid", 2, "socket"),
    ("alu off", q(0x07, 1, 0, 5, 8), "BPF_ALU uses reserved fields", 1, "xdp"),
    ("alu K src", q(0x07, 0, 1, 0, 1), "BPF_ALU uses reserved fields", 1, "xdp"),
    ("sdiv off 2", q(0x37, 0, 0, 2, 1), "BPF_ALU uses reserved fields", 1, "xdp"),
    ("neg imm", q(0x87, 0, 0, 0, 1), "BPF_NEG uses reserved fields", 1, "xdp"),
    ("mov K off", q(0xB7, 0, 0, 1, 0), "BPF_MOV uses reserved fields", 1, "xdp"),
    ("mov X imm", q(0xBF, 0, 1, 0, 5), "BPF_MOV uses reserved fields", 1, "xdp"),
    ("mov32 X off 1", q(0xBC, 0, 1, 1, 0), "BPF_MOV uses reserved fields", 1, "xdp"),
    (
        "addr_space_cast imm",
        q(0xBF, 0, 1, 1, 2),
        "addr_space_cast insn can only convert between address space 1 and 0",
        1,
        "xdp",
    ),
    (
        "addr_space_cast without arena",
        q(0xBF, 0, 1, 1, 1),
        "addr_space_cast insn can only be used in a program that has an associated arena",
        1,
        "xdp",
    ),
    ("end width 8", q(0xD4, 0, 0, 0, 8), "BPF_END uses reserved fields", 1, "xdp"),
    ("st src", q(0x62, 10, 1, -8, 1), "BPF_ST uses reserved fields", 1, "xdp"),
    ("stx imm", q(0x63, 10, 1, -8, 1), "BPF_STX uses reserved fields", 1, "xdp"),
    (
        "atomic op",
        q(0xDB, 10, 1, -8, 0x1234),
        "BPF_ATOMIC uses invalid atomic opcode 1234",
        1,
        "xdp",
    ),
    ("atomic8 add", q(0xD3, 10, 1, -8, 0), "invalid atomic operand size", 1, "xdp"),
    (
        "ld_imm64 off",
        q(0x18, 0, 0, 1, 1) + "\n" + q(0),
        "BPF_LD_IMM64 uses reserved fields",
        2,
        "xdp",
    ),
    ("ld_abs dst", "r6 = r1\n" + q(0x20, 1), "BPF_LD_[ABS|IND] uses reserved fields", 2, "socket"),
    ("ja imm", q(0x05, 0, 0, 0, 1), "BPF_JA uses reserved fields", 1, "xdp"),
    ("gotol off", q(0x06, 0, 0, 1, 0), "BPF_JA uses reserved fields", 1, "xdp"),
    ("jcc K src", q(0x15, 0, 1, 0, 0), "BPF_JMP/JMP32 uses reserved fields", 1, "xdp"),
    ("jcc32 X imm", q(0x1E, 0, 1, 0, 1), "BPF_JMP/JMP32 uses reserved fields", 1, "xdp"),
    ("call dst", q(0x85, 1, 0, 0, 5), "BPF_CALL uses reserved fields", 1, "xdp"),
    ("call helper off", q(0x85, 0, 0, 1, 5), "BPF_CALL uses reserved fields", 1, "xdp"),
    ("call src 3", q(0x85, 0, 3, 0, 5), "BPF_CALL uses reserved fields", 1, "xdp"),
    ("exit src", q(0x95, 0, 1), "BPF_EXIT uses reserved fields", 1, "xdp"),
    ("may_goto imm", q(0xE5, 0, 0, 0, 1), "invalid may_goto imm 1", 1, "xdp"),
    ("div by zero", "r0 /= 0", "div by zero", 1, "xdp"),
    ("shift 64", "r0 <<= 64", "invalid shift 64", 1, "xdp"),
]

#: (id, program, the kernel's message) -- refused before any path is walked, so dead
#: code does not help
UPFRONT: list[tuple[str, str, str]] = [
    ("unknown opcode", on_path(q(0x8E), dead=True), "unknown opcode 8e"),
    ("callx", on_path(q(0x8D, 1), dead=True), "unknown opcode 8d"),
    ("ldx imm", on_path(q(0x61, 0, 10, -8, 1), dead=True), "BPF_LDX uses reserved fields"),
    ("ldx mode", on_path(q(0x01), dead=True), "BPF_LDX uses reserved fields"),
    (
        "ld_imm64 src 7",
        on_path(q(0x18, 0, 7, 0, 1) + "\n" + q(0), dead=True, slots=2),
        "unrecognized bpf_ld_imm64 insn",
    ),
    (
        "ld_imm64 second half",
        on_path(q(0x18, 0, 0, 0, 1) + "\n" + q(0, 1), dead=True, slots=2),
        "invalid bpf_ld_imm64 insn",
    ),
    ("jump out of range", on_path("goto +9", dead=True), "jump out of range from insn 2 to 12"),
    ("call out of range", on_path(q(0x85, 0, 1, 0, 50), dead=True), "call to invalid destination"),
]

CASES += [
    *(
        Case(f"dead {cid}", on_path(bad, dead=True, slots=n), None, prog_type=pt)
        for cid, bad, _msg, n, pt in WALKED
    ),
    *(
        Case(f"reached {cid}", on_path(bad, dead=False, slots=n), msg, prog_type=pt)
        for cid, bad, msg, n, pt in WALKED
    ),
    *(Case(f"upfront {cid}", text, msg) for cid, text, msg in UPFRONT),
    Case("reached exit off ignored", "r0 = 2\n" + q(0x95, 0, 0, 1)),
    Case(
        "reached cmpxchg src r10",
        "r0 = 0\n*(u64 *)(r10 - 8) = r0\n" + q(0xDB, 10, 10, -8, 0xF1) + "\nr0 = 0\nexit",
    ),
    # netbpf does not model kfuncs and BTF variables; both are refused up front (the
    # kernel resolves them there too), in our words
    Case(
        "upfront kfunc",
        on_path(q(0x85, 0, 2, 0, 1), dead=True),
        "calling kernel function is not supported without CONFIG_DEBUG_INFO_BTF",
        verdict_only=True,
    ),
    Case(
        "upfront ld_imm64 btf_id",
        on_path(q(0x18, 1, 3, 0, 1) + "\n" + q(0), dead=True, slots=2),
        "BTF variable addresses (ld_imm64 btf_id) are not modelled by netbpf",
        verdict_only=True,
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_ours(case: Case) -> None:
    check_ours(case)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_kernel(kernel, case: Case) -> None:
    check_kernel(kernel, case)


def test_insn_limit() -> None:
    """The processed-instruction limit (1,000,000 like the kernel's by default) can be
    lowered; hitting it is the kernel's refusal."""
    from netbpf import ProgramSpec
    from netbpf.errors import VerifierError
    from netbpf.verifier import verify

    spec = ProgramSpec.from_asm("r0 = 0\nr0 += 1\nif r0 < 1000 goto -2\nexit", prog_type="xdp")
    assert verify(spec).processed_insns == 2002
    with pytest.raises(VerifierError) as ei:
        verify(spec, insn_limit=100)
    assert ei.value.summary == "BPF program is too large. Processed 101 insn"
    assert ei.value.log.endswith(
        "processed 101 insns (limit 100) max_states_per_insn 3 "
        "total_states 4 peak_states 4 mark_read 0\n"
    )


def test_reached_reserved_field_log_point() -> None:
    """The refusal comes right after the instruction's log line, which shows the
    instruction as the kernel does: its must-be-zero fields ignored."""
    err = run_ours(Case("alu off", on_path(q(0x07, 1, 0, 5, 8), dead=False)), log_level=1)
    assert err is not None
    assert "2: (07) r1 += 8\nBPF_ALU uses reserved fields\n" in err.log


def test_reached_reserved_field_log_point_kernel(kernel) -> None:
    kerr = run_kernel(kernel, Case("alu off", on_path(q(0x07, 1, 0, 5, 8), dead=False)))
    assert kerr is not None
    assert "2: (07) r1 += 8\nBPF_ALU uses reserved fields\n" in kerr.log
