"""``netbpf-conformance-plugin``: netbpf's VM as a plugin of the bpf_conformance suite,
and the harness that runs one conformance program in netbpf or in the kernel.

The bpf_conformance runner (github.com/Alan-Jowett/bpf_conformance) starts the plugin
once per test::

    echo "b7 00 00 00 ...  95 00 ..." | netbpf-conformance-plugin ["<memory hex>"] [options]

* stdin: one line, the program's instruction bytes as hex (the runner writes each
  byte as two hex digits followed by spaces; contiguous hex is accepted too);
* ``argv[1]``: the memory the program gets, in the same hex form; absent when the test
  has no ``-- mem`` section.  r1 points at a copy of it and r2 holds its length (r1 =
  r2 = 0 without memory);
* stdout: r0 in hex, one line, exit status 0;
* on failure (malformed program, memory fault, instruction budget) nothing on stdout,
  one line on stderr naming the instruction, exit status 1.

Options (placed after the memory, as the runner passes ``--plugin_options``):
``--engine interpreter|fast`` picks the netbpf engine; ``--kernel`` runs the program in
the running kernel instead, wrapped in the XDP harness below (a cross-check of the
suite's expectations); ``--program HEX`` gives the program instead of stdin;
``--elf`` is refused (the runner only sends it when asked to with ``--elf true``).

The harness functions are what ``tests/test_conformance.py`` runs our own corpus with:
:func:`run_vm` / :func:`run_vm_skb` in netbpf's engines, :func:`run_kernel` /
:func:`run_kernel_skb` in the kernel, through the wrappers :func:`xdp_harness` and
:func:`skb_harness` that make a bare conformance program acceptable to the kernel
verifier and get the full 64-bit r0 back out of BPF_PROG_TEST_RUN (whose retval has
only 32 bits).

netbpf's side does **not** run netbpf's verifier (unlike ``SimBackend``, which
verifies every program at load): bpf_conformance tests the instruction set's
semantics (RFC 9669), including programs the kernel's verifier refuses (immediate
shifts out of range, division by a constant zero, ``callx``), and a bare conformance
program (r1 = raw memory, r2 = its length) is not a program of any kernel program
type the verifier could check.  The kernel plugin gets through the kernel's verifier
only with the XDP wrapper and then fails the cases the verifier refuses (see
docs/conformance.md); the VM here runs every case with the RFC's semantics, and a
sandbox violation faults at run time (ProgramFault) instead of being refused.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from netbpf.errors import NetbpfError, NotSupportedError
from netbpf.isa.asm import assemble
from netbpf.isa.instruction import Instruction, decode_program
from netbpf.uapi import BPF_CALL, BPF_EXIT, BPF_JA, BPF_JMP, ProgramType, ctx_field
from netbpf.vm.env import HelperFn, RunEnv
from netbpf.vm.memory import AddressSpace, Region

if TYPE_CHECKING:  # pragma: no cover
    from netbpf.kernel import KernelBackend
    from netbpf.kernel.backend import KernelProgram

__all__ = [
    "DEFAULT_INSN_LIMIT",
    "ETH_HLEN",
    "SKF_LL_OFF",
    "SKF_NET_OFF",
    "XDP_RESULT_AREA",
    "ConformanceInputError",
    "Outcome",
    "conformance_helpers",
    "main",
    "parse_hex",
    "run_kernel",
    "run_kernel_skb",
    "run_vm",
    "run_vm_skb",
    "skb_harness",
    "skb_load_from",
    "xdp_harness",
]

#: The instruction budget of one conformance run: far above what any case needs (the
#: largest bpf_conformance test runs a few thousand instructions), low enough that a
#: runaway loop stops in well under a second.
DEFAULT_INSN_LIMIT = 1_000_000

#: linux/filter.h: LD_ABS/LD_IND offsets relative to the network / link-layer header.
SKF_NET_OFF = -0x100000
SKF_LL_OFF = -0x200000
#: The skb test run needs at least an Ethernet header, and places the network header
#: right after it.
ETH_HLEN = 14

#: Bytes in front of the case memory in the XDP harness's packet: the full 64-bit r0 is
#: stored in the first 8; 16 keeps the case memory 8-byte aligned and the packet at
#: least ETH_HLEN long even with no case memory.
XDP_RESULT_AREA = 16

_XDP_PASS = 2
#: the virtual clock (ns) bpf_ktime_get_ns reads during a conformance run
_CLOCK = 10**9
_SKB_EPILOGUE_RAN = 1
_M64 = (1 << 64) - 1


class ConformanceInputError(NetbpfError):
    """The plugin's input (program or memory hex) is malformed."""


@dataclass(frozen=True)
class Outcome:
    """What one run produced: r0, and the case memory (or packet) after the run."""

    r0: int
    memory: bytes


def parse_hex(text: str, *, what: str) -> bytes:
    """Bytes from the hex the bpf_conformance runner writes (``"b7  00  01 "``: each byte
    as two digits, separated by whitespace) or from contiguous hex (``"b70001"``).  A
    ``0x`` prefix on a token is allowed."""
    out = bytearray()
    for n, token in enumerate(text.split(), 1):
        digits = token[2:] if token[:2].lower() == "0x" else token
        if len(digits) % 2:
            digits = "0" + digits if len(digits) == 1 else digits
        try:
            out += bytes.fromhex(digits)
        except ValueError:
            raise ConformanceInputError(f"{what}: token {n} ({token!r}) is not hex bytes") from None
    return bytes(out)


def conformance_helpers(prog_type: ProgramType) -> dict[int, HelperFn]:
    """The helpers a conformance run may call: those netbpf's helper registry gives
    ``prog_type`` (XDP for memory cases, as the kernel runs them; SCHED_CLS for packet
    cases).  bpf_conformance's ``call_unwind_fail`` calls helper 5,
    ``bpf_ktime_get_ns``, which reads the run's virtual clock."""
    from netbpf.helpers import DEFAULT_REGISTRY

    return DEFAULT_REGISTRY.for_prog_type(prog_type)


def _helpers(prog_type: ProgramType, extra: Mapping[int, HelperFn] | None) -> dict[int, HelperFn]:
    helpers = conformance_helpers(prog_type)
    if extra:
        helpers.update(extra)
    return helpers


def run_vm(
    insns: Sequence[Instruction],
    memory: bytes | None,
    *,
    engine: str = "interpreter",
    insn_limit: int = DEFAULT_INSN_LIMIT,
    helpers: Mapping[int, HelperFn] | None = None,
    name: str = "conformance",
) -> Outcome:
    """Run a conformance program in a netbpf engine: r1 = address of a copy of
    ``memory`` (a writable region of exactly its length), r2 = its length; without
    memory r1 = r2 = 0.  Raises InstructionError (malformed program), ProgramFault
    (sandbox violation) or InstructionLimitExceeded."""
    from netbpf.vm.engine import load_executable

    exe = load_executable(insns, name=name, engine=engine)
    space = AddressSpace()
    region = Region("mem", bytearray(memory or b""), kind="mem")
    base = space.map(region)
    env = RunEnv(
        mem=space,
        helpers=_helpers(ProgramType.XDP, helpers),
        insn_limit=insn_limit,
        ktime_ns=_CLOCK,
    )
    if memory:
        r0 = exe.run(env, base, r2=len(memory))
    else:
        r0 = exe.run(env, 0, r2=0)
    return Outcome(r0 & _M64, bytes(region.buf))


def skb_load_from(packet: bytes) -> object:
    """An ``env.skb_load`` for a linear packet whose link-layer (Ethernet) header starts
    at offset 0 and whose network header follows at ETH_HLEN, as in the kernel's skb
    test run: big-endian reads, None (-> r0 = 0, exit) when the read does not fit;
    SKF_NET_OFF / SKF_LL_OFF address the network / link-layer header."""

    def load(offset: int, size: int) -> int | None:
        if offset >= 0:
            start = offset
        elif offset >= SKF_NET_OFF:
            start = ETH_HLEN + offset - SKF_NET_OFF
        elif offset >= SKF_LL_OFF:
            start = offset - SKF_LL_OFF
        else:
            return None
        if start + size > len(packet):
            return None
        return int.from_bytes(packet[start : start + size], "big")

    return load


def run_vm_skb(
    insns: Sequence[Instruction],
    packet: bytes,
    *,
    engine: str = "interpreter",
    insn_limit: int = DEFAULT_INSN_LIMIT,
    helpers: Mapping[int, HelperFn] | None = None,
    name: str = "conformance",
) -> Outcome:
    """Run a conformance program as an skb program: r1 = a context pointer (the kernel
    requires it in r6 for LD_ABS/LD_IND; no field of it is readable here), LD_ABS and
    LD_IND read ``packet`` (see :func:`skb_load_from`)."""
    from netbpf.vm.engine import load_executable

    exe = load_executable(insns, name=name, engine=engine)
    space = AddressSpace()
    ctx = space.map(Region("ctx", bytearray(), kind="ctx", writable=False))
    env = RunEnv(
        mem=space,
        helpers=_helpers(ProgramType.SCHED_CLS, helpers),
        skb_load=skb_load_from(packet),  # type: ignore[arg-type]
        insn_limit=insn_limit,
        ktime_ns=_CLOCK,
    )
    return Outcome(exe.run(env, ctx) & _M64, bytes(packet))


def xdp_harness(insns: Sequence[Instruction], mem_len: int | None) -> list[Instruction]:
    """Wrap a conformance program so the kernel verifier accepts it as an XDP program.

    The packet is ``XDP_RESULT_AREA`` bytes followed by the case memory.  The wrapper
    checks ``data + XDP_RESULT_AREA + mem_len <= data_end`` (so the verifier knows the
    memory's bounds), calls the conformance program as a bpf-to-bpf subprogram with
    r1 = the memory, r2 = its length (r1 = r2 = 0 without memory), and stores the
    returned r0, all 64 bits, in the packet's first 8 bytes, where ``data_out`` carries
    it back; it returns XDP_PASS.  Being a subprogram, the case gets its own stack
    frame and keeps every exit, and the wrapper's packet pointer survives in r6."""
    n = mem_len or 0
    args = f"r1 = r6\n        r1 += {XDP_RESULT_AREA}" if n else "r1 = 0"
    wrapper = assemble(
        f"""
        r2 = *(u32 *)(r1 + {ctx_field("xdp_md", "data_end")[0]})
        r6 = *(u32 *)(r1 + {ctx_field("xdp_md", "data")[0]})
        r3 = r6
        r3 += {XDP_RESULT_AREA + n}
        if r3 > r2 goto short
        {args}
        r2 = {n}
        r3 = 0
        r4 = 0
        r5 = 0
        call program
        *(u64 *)(r6 + 0) = r0
        r0 = {_XDP_PASS}
        exit
    short:
        r0 = 0
        exit
    program:
        """
    )
    return [*wrapper, *insns]


def skb_harness(insns: Sequence[Instruction]) -> list[Instruction]:
    """Wrap a conformance program that uses LD_ABS/LD_IND so the kernel runs it as a
    SCHED_CLS program.

    LD_ABS needs the context in r6 throughout, so the program cannot be a subprogram
    (the ctx would not be the callee's r6 of the caller's choosing) and runs inline:
    every ``exit`` becomes a jump to an epilogue that stores the full r0 in the first 8
    bytes of the packet and returns 1.  A failed LD_ABS ends the program with
    retval 0 before the epilogue, which is how :func:`run_kernel_skb` tells the two
    apart.  Programs with bpf-to-bpf calls are refused (their exits belong to callees)."""
    body = list(insns)
    end = len(body)
    out: list[Instruction] = []
    for i, insn in enumerate(body):
        if insn.opcode == BPF_JMP | BPF_CALL and insn.src == 1:
            raise NotSupportedError("skb harness", f"insn {i}: bpf-to-bpf calls")
        if insn.opcode == BPF_JMP | BPF_EXIT:
            insn = Instruction(BPF_JMP | BPF_JA, off=end - (i + 1))
        out.append(insn)
    data_off = ctx_field("__sk_buff", "data")[0]
    end_off = ctx_field("__sk_buff", "data_end")[0]
    epilogue = assemble(
        f"""
        r2 = *(u32 *)(r6 + {data_off})
        r3 = *(u32 *)(r6 + {end_off})
        r4 = r2
        r4 += 8
        if r4 > r3 goto short
        *(u64 *)(r2 + 0) = r0
        r0 = {_SKB_EPILOGUE_RAN}
        exit
    short:
        r0 = 3
        exit
        """
    )
    return [*out, *epilogue]


def _load(
    backend: KernelBackend, insns: Sequence[Instruction], ptype: ProgramType, name: str
) -> KernelProgram:
    from netbpf.obj.spec import ProgramSpec

    spec = ProgramSpec(name=name, prog_type=ptype, insns=tuple(insns), license="GPL")
    return backend.load_program(spec)


def run_kernel(
    backend: KernelBackend,
    insns: Sequence[Instruction],
    memory: bytes | None,
    *,
    name: str = "conformance",
) -> Outcome:
    """Run a conformance program in the kernel through :func:`xdp_harness` and
    BPF_PROG_TEST_RUN.  A verifier refusal raises KernelError (with the log)."""
    mem = memory or b""
    with _load(backend, xdp_harness(insns, len(mem)), ProgramType.XDP, name) as prog:
        res = prog.test_run(bytes(range(0xA0, 0xA0 + XDP_RESULT_AREA)) + mem)
    if res.retval != _XDP_PASS:
        raise NetbpfError(f"XDP harness returned {res.retval}, not XDP_PASS: the packet was short")
    r0 = int.from_bytes(res.data_out[:8], "little")
    return Outcome(r0, bytes(res.data_out[XDP_RESULT_AREA : XDP_RESULT_AREA + len(mem)]))


def run_kernel_skb(
    backend: KernelBackend,
    insns: Sequence[Instruction],
    packet: bytes,
    *,
    name: str = "conformance",
) -> Outcome:
    """Run a conformance program as SCHED_CLS through :func:`skb_harness`.  r0 is 0 when
    an LD_ABS/LD_IND read failed (retval 0: the epilogue did not run); otherwise the
    epilogue's copy in the packet.  The returned memory is the packet as it came in
    (the epilogue overwrites its first 8 bytes)."""
    if len(packet) < ETH_HLEN:
        raise NotSupportedError(
            "kernel skb test run", f"packet of {len(packet)} bytes (needs {ETH_HLEN})"
        )
    with _load(backend, skb_harness(insns), ProgramType.SCHED_CLS, name) as prog:
        res = prog.test_run(packet)
    if res.retval == 0:
        return Outcome(0, bytes(packet))
    if res.retval != _SKB_EPILOGUE_RAN:
        raise NetbpfError(f"skb harness returned {res.retval}: the packet was short")
    return Outcome(int.from_bytes(res.data_out[:8], "little"), bytes(packet))


_USAGE = """\
usage: netbpf-conformance-plugin [MEMORY_HEX] [--engine interpreter|fast] [--kernel]
                                 [--program PROGRAM_HEX] [--debug]
Reads a BPF program as hex bytes from stdin (one line), runs it with r1 = MEMORY,
r2 = its length, and prints r0 in hex.  Errors go to stderr with exit status 1.
"""


def _parse_args(args: list[str]) -> dict[str, object]:
    opts: dict[str, object] = {"memory": None, "engine": None, "kernel": False, "program": None}
    if args and not args[0].startswith("--"):
        opts["memory"] = args.pop(0)
    it = iter(args)
    for arg in it:
        if arg in ("--help", "-h"):
            opts["help"] = True
        elif arg == "--kernel":
            opts["kernel"] = True
        elif arg == "--debug":
            continue  # accepted for compatibility with other plugins; errors are always shown
        elif arg == "--elf":
            raise NotSupportedError("--elf", "pass programs as raw instruction bytes")
        elif arg in ("--engine", "--program"):
            value = next(it, None)
            if value is None:
                raise ConformanceInputError(f"{arg} needs a value")
            opts[arg[2:]] = value
        elif arg.startswith(("--engine=", "--program=")):
            key, _, value = arg[2:].partition("=")
            opts[key] = value
        elif arg == "" or arg.isspace():
            continue  # an empty --plugin_options still arrives as an argument
        else:
            raise ConformanceInputError(f"unexpected argument {arg!r}")
    return opts


def _default_engine() -> str:
    from netbpf.vm.engine import ENGINES

    return "fast" if "fast" in ENGINES else ENGINES[0]


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``netbpf-conformance-plugin`` (see the module docstring)."""
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        opts = _parse_args(args)
        if opts.get("help"):
            sys.stdout.write(_USAGE)
            return 0
        program_hex = opts["program"]
        if program_hex is None:
            program_hex = sys.stdin.readline()
        raw = parse_hex(str(program_hex), what="program")
        if not raw:
            raise ConformanceInputError("program: no instruction bytes on stdin")
        insns = decode_program(raw)
        memory = parse_hex(str(opts["memory"]), what="memory") if opts["memory"] else None
        if opts["kernel"]:
            from netbpf.kernel import KernelBackend

            outcome = run_kernel(KernelBackend(), insns, memory)
        else:
            engine = str(opts["engine"] or _default_engine())
            outcome = run_vm(insns, memory, engine=engine)
    except NetbpfError as e:
        # One line: the runner compares it with a test's expected error text.
        sys.stderr.write(f"{e}\n")
        return 1
    sys.stdout.write(f"{outcome.r0:x}\n")
    return 0
