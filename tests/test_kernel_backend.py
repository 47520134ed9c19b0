"""KernelBackend: loading hand-built programs and BPF_PROG_TEST_RUN on the real kernel.

The expected values here are the running kernel's own behaviour (e.g. that socket
filters see the packet from the network header on); they document what the simulator
must reproduce.
"""

from __future__ import annotations

import errno
import struct

import pytest

from netbpf import KernelBackend, ProgramSpec, TestRunResult
from netbpf.backend import Backend, Program
from netbpf.errors import KernelError, TestRunError
from netbpf.isa.instruction import Instruction as I
from netbpf.kernel import KernelProgram
from netbpf.kernel import syscall as sysc
from netbpf.kernel.backend import sanitize_name
from netbpf.uapi import ProgramType, ctx_field

EXIT = I(0x95)


def mov(dst: int, imm: int) -> I:
    return I(0xB7, dst, 0, 0, imm)


def ldxw(dst: int, src: int, off: int) -> I:
    return I(0x61, dst, src, off, 0)


def spec(
    insns: list[I], prog_type: str = "xdp", *, name: str = "t", section: str = ""
) -> ProgramSpec:
    raw = b"".join(i.encode() for i in insns)
    s = ProgramSpec.from_bytes(raw, prog_type=prog_type, name=name)
    if section:
        s = ProgramSpec(s.name, s.prog_type, s.insns, s.attach_type, section=section)
    return s


# An Ethernet + IPv4 header and payload: bytes that every skb/XDP test run accepts.
PKT = bytes(range(12)) + b"\x08\x00" + bytes(range(14, 64))

SKB_OFF_LEN = ctx_field("__sk_buff", "len")[0]
SKB_OFF_MARK = ctx_field("__sk_buff", "mark")[0]
SKB_OFF_PROTOCOL = ctx_field("__sk_buff", "protocol")[0]
SKB_SIZE = 192
XDP_OFF_DATA = ctx_field("xdp_md", "data")[0]
XDP_OFF_DATA_END = ctx_field("xdp_md", "data_end")[0]


def test_backend_satisfies_protocols(kernel: KernelBackend) -> None:
    assert isinstance(kernel, Backend)
    assert kernel.name == "kernel"
    with kernel.load_program(spec([mov(0, 2), EXIT])) as prog:
        assert isinstance(prog, Program)
        assert isinstance(prog, KernelProgram)


@pytest.mark.parametrize(
    ("prog_type", "ret"),
    [("xdp", 2), ("tc", 2), ("socket", 0xFFFF), ("cgroup_skb/ingress", 1), ("action", 0)],
)
def test_return_constant(kernel: KernelBackend, prog_type: str, ret: int) -> None:
    with kernel.load_program(spec([mov(0, ret), EXIT], prog_type)) as prog:
        res = prog.test_run(PKT)
    assert isinstance(res, TestRunResult)
    assert res.retval == ret
    assert res.ctx_out is None  # no ctx_in given
    assert isinstance(res.duration_ns, int) and res.duration_ns >= 0


def test_xdp_returns_unchanged_packet(kernel: KernelBackend) -> None:
    with kernel.load_program(spec([mov(0, 2), EXIT])) as prog:
        assert prog.test_run(PKT).data_out == PKT


def test_retval_is_u32(kernel: KernelBackend) -> None:
    with kernel.load_program(spec([mov(0, -1), EXIT], "tc")) as prog:
        assert prog.test_run(PKT).retval == 0xFFFFFFFF


@pytest.mark.parametrize("size", [14, 64, 1500])
def test_xdp_sees_data_end_minus_data(kernel: KernelBackend, size: int) -> None:
    prog_insns = [
        ldxw(2, 1, XDP_OFF_DATA),
        ldxw(0, 1, XDP_OFF_DATA_END),
        I(0x1F, 0, 2),  # r0 -= r2
        EXIT,
    ]
    with kernel.load_program(spec(prog_insns)) as prog:
        assert prog.test_run(PKT[:14] + bytes(size - 14)).retval == size


def test_xdp_writes_packet(kernel: KernelBackend) -> None:
    prog_insns = [
        ldxw(2, 1, XDP_OFF_DATA),
        ldxw(3, 1, XDP_OFF_DATA_END),
        I(0xBF, 4, 2),  # r4 = r2
        I(0x07, 4, 0, 0, 2),  # r4 += 2
        I(0x2D, 4, 3, 2, 0),  # if r4 > r3 goto +2
        I(0x72, 2, 0, 0, 0xAB),  # *(u8 *)(r2 + 0) = 0xab
        I(0x72, 2, 0, 1, 0xCD),  # *(u8 *)(r2 + 1) = 0xcd
        mov(0, 2),
        EXIT,
    ]
    with kernel.load_program(spec(prog_insns)) as prog:
        res = prog.test_run(PKT)
    assert res.data_out == b"\xab\xcd" + PKT[2:]


def test_xdp_adjust_tail_grows_data_out(kernel: KernelBackend) -> None:
    prog_insns = [
        mov(2, 100),
        I(0x85, 0, 0, 0, 65),  # call bpf_xdp_adjust_tail
        mov(0, 2),
        EXIT,
    ]
    with kernel.load_program(spec(prog_insns)) as prog:
        res = prog.test_run(PKT)
    assert len(res.data_out) == len(PKT) + 100
    assert res.data_out[: len(PKT)] == PKT


def _count_then(counter_fd: int, tail: list[I]) -> list[I]:
    """Instructions: counter[0] += 1 (an ARRAY map of u64), then ``tail``."""
    return [
        I(0xBF, 6, 1),  # r6 = ctx
        I(0x18, 1, 1, 0, counter_fd),  # r1 = map (LD_IMM64, BPF_PSEUDO_MAP_FD)
        I(0, 0, 0, 0, 0),
        I(0x62, 10, 0, -4, 0),  # *(u32 *)(r10 - 4) = 0
        I(0xBF, 2, 10),  # r2 = r10
        I(0x07, 2, 0, 0, -4),  # r2 += -4
        I(0x85, 0, 0, 0, 1),  # call bpf_map_lookup_elem
        I(0x15, 0, 0, 2, 0),  # if r0 == 0 goto +2
        mov(1, 1),
        I(0xDB, 0, 1, 0, 0),  # lock *(u64 *)(r0 + 0) += r1
        I(0xBF, 1, 6),  # r1 = ctx
        *tail,
    ]


def test_data_out_too_small_is_retried(
    kernel: KernelBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    # With no margin the kernel says ENOSPC (the packet grew); the backend runs again
    # with the size the kernel asked for - so the program runs twice.
    from netbpf.kernel import backend as kb

    monkeypatch.setattr(kb, "_DATA_OUT_MARGIN", 0)
    with kernel.create_map("array", 4, 8, 1) as counter:
        grow = [mov(2, 100), I(0x85, 0, 0, 0, 65), mov(0, 2), EXIT]  # bpf_xdp_adjust_tail
        with kernel.load_program(spec(_count_then(counter.fd, grow))) as prog:
            res = prog.test_run(PKT)
        assert len(res.data_out) == len(PKT) + 100 and res.data_out[: len(PKT)] == PKT
        assert struct.unpack("<Q", counter.lookup(bytes(4)))[0] == 2


def test_skb_len_per_type(kernel: KernelBackend) -> None:
    # tc programs see the frame from the Ethernet header; socket filters and LWT see
    # it from the network header (the kernel pulls the 14-byte Ethernet header).
    read_len = [ldxw(0, 1, SKB_OFF_LEN), EXIT]
    got = {}
    for t in ("tc", "action", "socket", "lwt_in", "lwt_xmit"):
        with kernel.load_program(spec(read_len, t)) as prog:
            got[t] = prog.test_run(PKT).retval
    assert got == {"tc": 64, "action": 64, "socket": 50, "lwt_in": 50, "lwt_xmit": 50}


def test_cgroup_skb_len(kernel: KernelBackend) -> None:
    # cgroup_skb must return 0 or 1: r0 = (skb->len == n)
    def prog_for(n: int) -> list[I]:
        return [ldxw(2, 1, SKB_OFF_LEN), mov(0, 0), I(0x55, 2, 0, 1, n), mov(0, 1), EXIT]

    with kernel.load_program(spec(prog_for(50), "cgroup_skb/ingress")) as prog:
        assert prog.test_run(PKT).retval == 1
    with kernel.load_program(spec(prog_for(64), "cgroup_skb/egress")) as prog:
        assert prog.test_run(PKT).retval == 0


def test_skb_protocol_is_network_order(kernel: KernelBackend) -> None:
    with kernel.load_program(spec([ldxw(0, 1, SKB_OFF_PROTOCOL), EXIT], "tc")) as prog:
        assert prog.test_run(PKT).retval == 0x0008  # htons(ETH_P_IP)


def test_ld_abs_is_relative_to_skb_data(kernel: KernelBackend) -> None:
    prog_insns = [I(0xBF, 6, 1), I(0x30, 0, 0, 0, 12), EXIT]  # r6 = r1; r0 = skb[12] (u8)
    with kernel.load_program(spec(prog_insns, "tc")) as prog:
        assert prog.test_run(PKT).retval == PKT[12]
    with kernel.load_program(spec(prog_insns, "socket")) as prog:
        assert prog.test_run(PKT).retval == PKT[14 + 12]


def test_tc_ctx_in_and_ctx_out(kernel: KernelBackend) -> None:
    read_mark = [ldxw(0, 1, SKB_OFF_MARK), EXIT]
    ctx = bytearray(SKB_SIZE)
    struct.pack_into("<I", ctx, SKB_OFF_MARK, 0x1234)
    with kernel.load_program(spec(read_mark, "tc")) as prog:
        res = prog.test_run(PKT, ctx_in=bytes(ctx))
    assert res.retval == 0x1234
    assert res.ctx_out is not None and len(res.ctx_out) == SKB_SIZE
    assert struct.unpack_from("<I", res.ctx_out, SKB_OFF_MARK)[0] == 0x1234

    write_mark = [mov(2, 7), I(0x63, 1, 2, SKB_OFF_MARK, 0), mov(0, 0), EXIT]
    with kernel.load_program(spec(write_mark, "tc")) as prog:
        # ctx_in shorter than __sk_buff: the kernel zero-fills it, and still hands
        # back the whole struct.
        res = prog.test_run(PKT, ctx_in=bytes(12))
    assert res.ctx_out is not None and len(res.ctx_out) == SKB_SIZE
    assert struct.unpack_from("<I", res.ctx_out, SKB_OFF_MARK)[0] == 7


def test_xdp_ctx_out(kernel: KernelBackend) -> None:
    ctx = struct.pack("<6I", 0, len(PKT), 0, 0, 0, 0)
    with kernel.load_program(spec([mov(0, 2), EXIT])) as prog:
        res = prog.test_run(PKT, ctx_in=ctx)
    assert res.ctx_out is not None
    assert struct.unpack_from("<II", res.ctx_out) == (0, len(PKT))


def test_xdp_frags_section_sets_the_frags_flag(
    kernel: KernelBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[int] = []
    real = sysc.prog_load

    def spy(*args, **kwargs):
        seen.append(kwargs["prog_flags"])
        return real(*args, **kwargs)

    monkeypatch.setattr(sysc, "prog_load", spy)
    big = PKT + bytes(8000 - len(PKT))
    with kernel.load_program(spec([mov(0, 2), EXIT], section="xdp.frags")) as prog:
        res = prog.test_run(big)
    with kernel.load_program(spec([mov(0, 2), EXIT], section="xdp")) as prog:
        pass
    assert seen == [1 << 5, 0]  # BPF_F_XDP_HAS_FRAGS
    assert res.retval == 2 and res.data_out == big


def test_repeat_runs_the_program_repeat_times(kernel: KernelBackend) -> None:
    with kernel.create_map("array", 4, 8, 1) as counter:
        with kernel.load_program(spec(_count_then(counter.fd, [mov(0, 2), EXIT]))) as prog:
            prog.test_run(PKT, repeat=5)
            prog.test_run(PKT)  # repeat=1
            prog.test_run(PKT, repeat=0)  # the kernel runs repeat=0 once
        assert struct.unpack("<Q", counter.lookup(bytes(4)))[0] == 7


def test_test_run_rejects_short_packet(kernel: KernelBackend) -> None:
    with kernel.load_program(spec([mov(0, 2), EXIT])) as prog:
        with pytest.raises(TestRunError) as ei:
            prog.test_run(b"\x00" * 5)
    assert ei.value.errno == errno.EINVAL
    assert "EINVAL" in str(ei.value) and "5-byte data_in" in str(ei.value)


def test_test_run_rejects_ctx_field_the_kernel_refuses(kernel: KernelBackend) -> None:
    ctx = bytearray(SKB_SIZE)
    struct.pack_into("<I", ctx, SKB_OFF_LEN, 5)  # len is not accepted in ctx_in
    with kernel.load_program(spec([mov(0, 0), EXIT], "tc")) as prog:
        with pytest.raises(TestRunError) as ei:
            prog.test_run(PKT, ctx_in=bytes(ctx))
    assert ei.value.errno == errno.EINVAL


def test_test_run_unsupported_type_says_enotsupp(kernel: KernelBackend) -> None:
    kprobe = ProgramSpec("kp", ProgramType.KPROBE, (mov(0, 0), EXIT))
    with kernel.load_program(kprobe) as prog:
        with pytest.raises(TestRunError) as ei:
            prog.test_run(PKT)
    assert ei.value.errno == sysc.ENOTSUPP
    assert "ENOTSUPP" in str(ei.value)


def test_test_run_after_close_and_bad_repeat(kernel: KernelBackend) -> None:
    prog = kernel.load_program(spec([mov(0, 2), EXIT]))
    with pytest.raises(TestRunError):
        prog.test_run(PKT, repeat=-1)
    prog.close()
    prog.close()  # idempotent
    assert prog.closed
    with pytest.raises(TestRunError) as ei:
        prog.test_run(PKT)
    assert ei.value.errno == errno.EBADF


def test_verifier_rejection_carries_log(kernel: KernelBackend) -> None:
    with pytest.raises(KernelError) as ei:
        kernel.load_program(spec([EXIT], name="no_r0"))
    e = ei.value
    assert e.op == "BPF_PROG_LOAD"
    assert e.errno == errno.EACCES
    assert "R0 !read_ok" in e.log
    # the message ends with the verdict, not the statistics line after it
    assert str(e).endswith("R0 !read_ok")
    assert "prog 'no_r0'" in str(e)


def test_verifier_rejects_bad_ctx_access(kernel: KernelBackend) -> None:
    with pytest.raises(KernelError) as ei:
        kernel.load_program(spec([ldxw(0, 1, 1000), EXIT]))
    assert "invalid bpf_context access" in ei.value.log


def test_verifier_rejects_jump_out_of_range(kernel: KernelBackend) -> None:
    with pytest.raises(KernelError) as ei:
        kernel.load_program(spec([mov(0, 0), I(0x05, 0, 0, 5, 0), EXIT]))
    assert ei.value.errno == errno.EINVAL
    assert "jump out of range" in ei.value.log


def test_log_level_keeps_log_of_successful_load(kernel: KernelBackend) -> None:
    with kernel.load_program(spec([mov(0, 2), EXIT]), log_level=1) as prog:
        assert "processed 2 insns" in prog.log
    with kernel.load_program(spec([mov(0, 2), EXIT])) as prog:
        assert prog.log == ""


def test_log_buffer_grows_on_enospc(kernel: KernelBackend) -> None:
    # 300 instructions at log_level 2 log far more than the 4 KiB we start with.
    insns = [mov(0, 0)] + [I(0x07, 0, 0, 0, 1)] * 300 + [EXIT]
    raw = b"".join(i.encode() for i in insns)
    fd, log = sysc.prog_load(
        int(ProgramType.SOCKET_FILTER), raw, log_level=2, log_size=4096, name="big"
    )
    with fd:
        assert len(log) > 4096
        assert "processed 302 insns" in log


def test_program_name_is_sanitized(kernel: KernelBackend) -> None:
    with kernel.load_program(spec([mov(0, 2), EXIT], name="xdp/my-long-program.name")) as prog:
        info = prog.info()
    assert info.name == "xdp_my_long_pro"
    assert info.type == ProgramType.XDP
    assert info.gpl_compatible


def test_sanitize_name() -> None:
    assert sanitize_name("ok_name.1") == "ok_name.1"
    assert sanitize_name("a-b/c d") == "a_b_c_d"
    assert sanitize_name("x" * 40) == "x" * 15


def test_license_reaches_the_kernel(kernel: KernelBackend) -> None:
    s = ProgramSpec.from_bytes(
        b"".join(i.encode() for i in [mov(0, 2), EXIT]), prog_type="xdp", license="Proprietary"
    )
    with kernel.load_program(s) as prog:
        assert not prog.info().gpl_compatible


def test_xlated_shows_ctx_rewrite(kernel: KernelBackend) -> None:
    # The kernel rewrites the 32-bit xdp_md->data load into a 64-bit pointer load.
    with kernel.load_program(spec([ldxw(0, 1, XDP_OFF_DATA), mov(0, 2), EXIT])) as prog:
        xl = prog.xlated()
    assert xl[0] == 0x79  # BPF_LDX | BPF_MEM | BPF_DW


def test_kernel_backend_exported() -> None:
    import netbpf
    from netbpf import kernel as kpkg

    assert netbpf.KernelBackend is KernelBackend
    assert set(kpkg.__all__) == {
        "KernelBackend",
        "KernelMap",
        "KernelPerfBuffer",
        "KernelProgram",
        "KernelRingBuffer",
        "ProbeResult",
        "Support",
        "bpf_usable",
        "map_type_supported",
        "prog_type_supported",
        "test_run_supported",
    }
