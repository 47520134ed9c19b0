"""The path-by-path abstract interpreter: the kernel's ``do_check`` in Python.

Every path from the entry is simulated on abstract register and stack states; a path
ends at ``exit``, when a state equivalent to (or more specific than) an already fully
explored one is reached at a prune point, or with a rejection.  Instruction by
instruction the rules of kernel/bpf/verifier.c (Linux 6.18) apply, with its messages:
memory access checks per pointer type, pointer arithmetic rules, helper argument and
return types, bpf-to-bpf calls and callbacks, reference tracking, return codes.

Privileges are those of root (CAP_BPF + CAP_PERFMON + CAP_NET_ADMIN): bounded loops,
pointer comparisons, reads of uninitialised stack and returning pointers are allowed,
as the kernel allows them for the tests' loads.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from netbpf.isa.disasm import format_insn
from netbpf.isa.instruction import Instruction
from netbpf.isa.opcodes import ATOMIC_OPS, BPF_LOAD_ACQ, BPF_STORE_REL, OPCODES, OpInfo
from netbpf.isa.validate import field_errors, reserved_cleared
from netbpf.uapi import (
    BPF_ALU64,
    BPF_CMPXCHG,
    BPF_FETCH,
    BPF_JMP32,
    BPF_PSEUDO_BTF_ID,
    BPF_PSEUDO_CALL,
    BPF_PSEUDO_FUNC,
    BPF_PSEUDO_KFUNC_CALL,
    BPF_PSEUDO_MAP_FD,
    BPF_PSEUDO_MAP_IDX,
    BPF_PSEUDO_MAP_IDX_VALUE,
    BPF_PSEUDO_MAP_VALUE,
    AttachType,
    MapType,
    ProgramType,
)
from netbpf.verifier import kinds as K
from netbpf.verifier.btfwalk import WalkError, WalkResult, has_struct, map_struct, struct_access
from netbpf.verifier.cfg import CALLBACK_HELPERS, Cfg, analyse, live_str
from netbpf.verifier.ctx import ctx_access, sock_access
from netbpf.verifier.fmt import STACK_DYNPTR, STACK_ITER, frame_str, snum
from netbpf.verifier.helpers import (
    PROTOS,
    RET_TYPES,
    Arg,
    Proto,
    args_for,
    helper_allowed,
    helper_name,
)
from netbpf.verifier.log import VLog
from netbpf.verifier.maps import MapInfo
from netbpf.verifier.precision import (
    ALL_SLOTS,
    REGS,
    SLOT0,
    ZERO_SHIFT,
    HelperUse,
    analyse_relevance,
)
from netbpf.verifier.regs import (
    ADD,
    AND,
    ARSH,
    AT_PKT_END,
    BEYOND_PKT_END,
    DIV,
    END,
    FLIP,
    JEQ,
    JGE,
    JGT,
    JLE,
    JLT,
    JNE,
    LSH,
    MAX_PACKET_OFF,
    MAX_VAR_OFF,
    MOD,
    MOV,
    MUL,
    NEG,
    OR,
    REV,
    RSH,
    S32_MAX,
    S64_MAX,
    S64_MIN,
    SUB,
    XOR,
    Reg,
    T,
    is_branch_taken,
    refine_cond_op,
    s32,
    s64,
    scalar32_add,
    scalar64_add,
    scalar_alu,
    scalar_byte_swap,
    type_str,
)
from netbpf.verifier.state import (
    MAX_BPF_STACK,
    REG_SIZE,
    STACK_INVALID,
    STACK_MISC,
    STACK_SPILL,
    STACK_ZERO,
    FuncState,
    RefState,
    StackSlot,
    VState,
)
from netbpf.verifier.tnum import U32, U64, tadd, tconst, tin, tis_aligned, tstr

__all__ = ["Abandon", "Reject", "Verifier"]

MAX_CALL_FRAMES = 8
BPF_COMPLEXITY_LIMIT_JMP_SEQ = 8192
BPF_MAX_VAR_SIZ = 1 << 29
BPF_ADD_AS_FAKE_ID = 1 << 31
#: netbpf's marker for a link made by a 32-bit add/sub (the copies differ by the
#: constant modulo 2**32, zero-extended)
BPF_ADD_AS_FAKE_ID32 = 1 << 30
MAX_LINKED_REGS = 6
_ID_FLAGS = BPF_ADD_AS_FAKE_ID | BPF_ADD_AS_FAKE_ID32
SIZE_NAMES = {1: "u8", 2: "u16", 4: "u32", 8: "u64"}

_ALU_WORDS = {
    ADD: "+=",
    SUB: "-=",
    MUL: "*=",
    DIV: "/=",
    OR: "|=",
    AND: "&=",
    LSH: "<<=",
    RSH: ">>=",
    NEG: "neg",
    MOD: "%=",
    XOR: "^=",
    MOV: "=",
    ARSH: "s>>=",
    END: "endian",
}

#: packet-reading types and whether they may write packet data directly
_PKT_WRITE = {
    ProgramType.SCHED_CLS,
    ProgramType.SCHED_ACT,
    ProgramType.XDP,
    ProgramType.LWT_XMIT,
    ProgramType.SK_SKB,
    ProgramType.SK_MSG,
    ProgramType.SOCK_OPS,
    ProgramType.CGROUP_SOCKOPT,
}
_PKT_READ = _PKT_WRITE | {
    ProgramType.LWT_IN,
    ProgramType.LWT_OUT,
    ProgramType.LWT_SEG6LOCAL,
    ProgramType.SK_REUSEPORT,
    ProgramType.FLOW_DISSECTOR,
    ProgramType.CGROUP_SKB,
}
_LD_ABS_TYPES = {ProgramType.SOCKET_FILTER, ProgramType.SCHED_CLS, ProgramType.SCHED_ACT}
#: their reserved fields are checked after the program type (check_ld_abs)
_LD_ABS_KINDS = (K.LD_ABS, K.LD_IND)


class Abandon(Exception):
    """A run whose verdict cannot count (it predicted jumps its pruning ignored) has
    gone on long enough: verification starts over."""


#: how many more instructions a run explores after its first new predicted jump,
#: collecting more of them for the next run
ABANDON_AFTER = 4096


class Reject(Exception):
    """Internal: the program is refused; the messages are in ``Verifier.err_lines``."""

    def __init__(self, reg: int | None = None, kind: str = "", why: str = "") -> None:
        super().__init__(kind)
        self.reg = reg
        self.kind = kind
        #: an explanation that does not come from a register's origin
        self.why = why


@dataclass(slots=True)
class _StackElem:
    st: VState
    insn_idx: int
    prev_insn_idx: int
    log_pos: int


@dataclass(slots=True)
class _Explored:
    st: VState
    hit_cnt: int = 0
    miss_cnt: int = 0


@dataclass(slots=True)
class InsnAux:
    """Per-instruction facts gathered over every path (``bpf_insn_aux_data``): what
    engines or tools may use after verification."""

    seen: bool = False
    #: base pointer type a load/store used (same insn, different pointer: refused)
    ptr_type: int = 0
    #: narrow context load: the kernel field width the access is rewritten to
    ctx_field_size: int = 0
    #: LD_IMM64 of a map / map value: the map name and value offset
    map_name: str | None = None
    map_off: int | None = None
    #: helper calls: the helper id; local calls: the callee's first slot
    call_target: int | None = None
    #: conditional jumps whose direction was always the same on every path (0/1), or
    #: None if both directions were taken (-1 internal: not seen)
    branch: int = -1


@dataclass
class _Meta:
    """bpf_call_arg_meta."""

    func_id: int = 0
    map: MapInfo | None = None
    map_uid: int = 0
    raw_mode: bool = False
    access_size: int = 0
    regno: int = -1
    release_regno: int = 0
    ref_obj_id: int = 0
    mem_size: int = 0
    msize_max_value: int = 0
    subprogno: int = -1
    const_map_key: int = -1
    pkt_access: bool = False


class Verifier:
    """One verification run (``struct bpf_verifier_env``)."""

    def __init__(
        self,
        insns: Sequence[Instruction],
        prog_type: ProgramType,
        attach_type: AttachType | None,
        *,
        maps_by_slot: Mapping[int, tuple[MapInfo, int | None]],
        log_level: int,
        insn_limit: int,
        gpl: bool,
        has_func_info: bool,
        btf: Any = None,
        func_info: Sequence[Any] = (),
        source: Any = None,
        predicted: frozenset[int] = frozenset(),
        cache: dict[str, Any] | None = None,
    ) -> None:
        self.insns = list(insns)
        #: analyses kept between the runs of one verification (they do not depend on
        #: the predicted jumps)
        self.cache: dict[str, Any] = {} if cache is None else cache
        #: conditional jumps known to be predicted (see precision.py)
        self.predicted = predicted
        #: jumps predicted in this run that were not in ``predicted``: if any, the run's
        #: verdict does not count and verification starts over with them
        self.new_predicted: set[int] = set()
        #: processed-instruction count at which a run with new predictions stops
        self.abandon_at = 1 << 62
        self._rel_ids: frozenset[int] | None = None
        self.n = len(self.insns)
        self.prog_type = prog_type
        self.attach_type = attach_type
        self.maps_by_slot = maps_by_slot
        self.log = VLog(log_level)
        self.log_level = log_level
        self.insn_limit = insn_limit
        self.gpl = gpl
        self.has_func_info = has_func_info
        self.btf = btf
        self.func_info = tuple(func_info)
        self.source = source
        #: global (non-static) functions: subprog index -> (name, argument kinds)
        self.globals: dict[int, tuple[str, list[tuple[str, int]]]] = {}
        self.globals_called: list[int] = []
        infos = self.cache.get("infos")
        if infos is None:
            infos = self.cache["infos"] = [OPCODES.get(i.opcode) for i in self.insns]
        self.infos: list[OpInfo | None] = infos
        #: the origin of the constant each ``rX = imm`` sets (built once per insn)
        self._const_origins: dict[int, tuple[int, str]] = {}
        self.aux = [InsnAux() for _ in self.insns]
        self.err_lines: list[str] = []
        self.id_gen = 0
        self.insn_processed = 0
        self.jmps_processed = 0
        self.prev_jmps_processed = 0
        self.prev_insn_processed = 0
        self.total_states = 0
        self.peak_states = 0
        self.explored_size = 0
        self.max_states_per_insn = 0
        self.explored: dict[int, list[_Explored]] = {}
        self.stack: list[_StackElem] = []
        self.cur: VState = VState()
        self.insn_idx = 0
        self.prev_insn_idx = 0
        self.scratched_regs = 0
        self.scratched_slots = 0
        self.prev_log_pos = 0
        self.prev_insn_print_pos = 0
        self.cfg: Cfg | None = None
        #: slot -> the kernel's message for its reserved fields, refused when a path
        #: reaches the slot (Linux checks them in do_check, not up front)
        self.field_errors: dict[int, str] = {}
        self.ptype_name = ProgramType(prog_type).name
        self.attach_name = AttachType(attach_type).name if attach_type is not None else None
        self.fake_id = 0
        #: number of times each subprog was entered as a callback (for explanations)
        self.error_insn: int | None = None
        self.error_reg: int | None = None
        self.error_state: VState | None = None
        self._return_range = self._compute_return_range()

    # ------------------------------------------------------------------ logging ------

    def verbose(self, text: str) -> None:
        self.log.write(text)

    def fail(self, text: str, *, reg: int | None = None, kind: str = "", why: str = "") -> Reject:
        """Log an error line and return the exception to raise."""
        self.log.write(text + "\n")
        self.err_lines.append(text)
        return Reject(reg, kind, why)

    def note(self, text: str) -> None:
        """An error line that is followed by another (both are kept)."""
        self.log.write(text + "\n")
        self.err_lines.append(text)

    def mark_reg_scratched(self, regno: int) -> None:
        self.scratched_regs |= 1 << regno

    def mark_slot_scratched(self, spi: int) -> None:
        self.scratched_slots |= 1 << spi

    def mark_all_scratched(self) -> None:
        self.scratched_regs = -1
        self.scratched_slots = -1

    def print_state(self, st: VState, print_all: bool, frameno: int | None = None) -> None:
        f = st.frames[-1 if frameno is None else frameno]
        refs = [r.id for r in st.refs if r.kind == "ptr"] or None
        if print_all or self.scratched_regs == -1:
            text = frame_str(f, refs=refs)
        else:
            rs = {i for i in range(11) if self.scratched_regs >> i & 1}
            ss = {i for i in range(64) if self.scratched_slots >> i & 1}
            text = frame_str(f, regs=rs, slots=ss, refs=refs)
        self.log.write(text + "\n")
        if not print_all:
            self.scratched_regs = 0
            self.scratched_slots = 0

    def _state_text(self, st: VState) -> str:
        refs = [r.id for r in st.refs if r.kind == "ptr"] or None
        return frame_str(st.frames[-1], refs=refs)

    def print_insn_state(self, st: VState) -> None:
        if not self.log_level:
            return
        if self.prev_log_pos and self.prev_log_pos == self.log.end_pos:
            self.log.reset(self.prev_log_pos - 1)
            self.log.write(" " * VLog.alignment(self.prev_insn_print_pos) + ";")
        else:
            self.log.write(f"{self.insn_idx}:")
        self.print_state(st, False)

    def insn_text(self, idx: int) -> str:
        insn = self.insns[idx]
        info = self.infos[idx]
        text = format_insn(self.insns, idx, style="verifier")
        if text.startswith(".quad") and info is not None:
            # reserved fields set (refused if reached): the kernel prints the
            # instruction as if they were zero
            shown = [reserved_cleared(insn, info), *self.insns[idx + 1 : idx + 2]]
            text = format_insn(shown, 0, style="verifier")
        if info is not None and info.kind is K.LD_IMM64:
            if insn.src in (BPF_PSEUDO_MAP_FD, BPF_PSEUDO_MAP_IDX):
                m = self.maps_by_slot.get(idx)
                text = f"r{insn.dst} = map[id:{m[0].name if m else insn.imm}]"
            elif insn.src in (BPF_PSEUDO_MAP_VALUE, BPF_PSEUDO_MAP_IDX_VALUE):
                m = self.maps_by_slot.get(idx)
                off = m[1] if m else self.insns[idx + 1].imm
                text = f"r{insn.dst} = map[id:{m[0].name if m else insn.imm}][0]+{off}"
            else:
                text = text.removesuffix(" ll")
        return f"({insn.opcode:02x}) {text}"

    # ----------------------------------------------------------------- top level ------

    def run(self) -> None:
        nargs = _helper_nargs()
        cfg = self.cache.get("cfg")
        if cfg is None:
            cfg = self.cache["cfg"] = analyse(self.insns, nargs)
        for sp in cfg.subprogs:
            sp.stack_depth = 0  # grown again by this run
        self.cfg = cfg
        bad = self.cache.get("field_errors")
        if bad is None:
            bad = self.cache["field_errors"] = field_errors(self.insns)
        self.field_errors = bad
        uses = _helper_uses()
        if any(
            m.type in (MapType.ARRAY_OF_MAPS, MapType.HASH_OF_MAPS)
            for m, _ in self.maps_by_slot.values()
        ):
            # a lookup may return an inner map pointer, whose struct holds pointers
            lk = uses[1]
            uses = dict(uses)
            uses[1] = HelperUse(
                lk.checked_args, True, lk.reads_stack_for_checks, 0, returns_struct_ptr=True
            )
        self.rel = analyse_relevance(
            self.insns,
            [(sp.start, sp.end) for sp in cfg.subprogs],
            cfg.second_half,
            uses,
            main_exit_r0=self.return_range() is not None,
            callbacks=frozenset(k for k, sp in enumerate(cfg.subprogs) if sp.is_cb),
            quiet_key_sites=self._nonarray_key_sites(),
            predicted=self.predicted,
            cache=self.cache,
        )
        if self.log_level >= 2:
            for k, sp in enumerate(cfg.subprogs):
                self.verbose(f"func#{k} @{sp.start}\n")
        self._resolve_ldimm64()
        self._find_global_funcs()
        if cfg.unreachable is not None:
            raise self.fail(f"unreachable insn {cfg.unreachable}", kind="cfg")
        if self.log_level >= 2:
            self.verbose("Live regs before insn:\n")
            for i in range(self.n):
                if i in cfg.second_half:
                    continue
                self.verbose(f"{i:7d}: {live_str(cfg.live_before[i])} {self.insn_text(i)}\n")
        self._do_check_main()
        self._check_max_stack_depth()

    def _nonarray_key_sites(self) -> frozenset[int]:
        """Helper calls with a map key argument whose map (loaded into r1 just before,
        in straight-line code) is not an array: the key's bytes decide nothing the
        verifier checks (only array lookups with a constant key skip the NULL check)."""
        cfg = self.cfg
        assert cfg is not None
        out = set()
        for i, insn in enumerate(self.insns):
            info = self.infos[i]
            if info is None or info.kind is not K.CALL or insn.src != 0:
                continue
            if insn.imm != 1:
                continue
            j = i - 1
            while j >= 0 and not cfg.jmp_point[j + 1]:
                ij = self.insns[j]
                inf = self.infos[j]
                if j in cfg.second_half:
                    j -= 1
                    continue
                if inf is None or inf.kind in (
                    K.JA,
                    K.JCC,
                    K.EXIT,
                    K.CALL,
                    K.MAY_GOTO,
                ):
                    break
                if inf.kind is K.LD_IMM64 and ij.dst == 1:
                    m = self.maps_by_slot.get(j)
                    if (
                        m is not None
                        and m[1] is None
                        and m[0].type
                        not in (
                            MapType.ARRAY,
                            MapType.PERCPU_ARRAY,
                        )
                    ):
                        out.add(i)
                    break
                if ij.dst == 1 and inf.kind not in (K.ST, K.STX):
                    break
                j -= 1
        return frozenset(out)

    def _resolve_ldimm64(self) -> None:
        """resolve_pseudo_ldimm64 (and add_subprog_and_kfunc's kfunc lookup): map
        references, BTF variables and kfuncs are resolved before any path is walked, so
        they are refused wherever they are, dead code included."""
        for i, insn in enumerate(self.insns):
            if insn.opcode == 0x85 and insn.src == BPF_PSEUDO_KFUNC_CALL:
                self.insn_idx = i
                raise self.fail(
                    "calling kernel function is not supported without CONFIG_DEBUG_INFO_BTF",
                    kind="kfunc",
                )
        for i, insn in enumerate(self.insns):
            info = self.infos[i]
            if info is None or info.kind is not K.LD_IMM64 or i in self.cfg.second_half:  # type: ignore[union-attr]
                continue
            src = insn.src
            if src == BPF_PSEUDO_BTF_ID:
                self.insn_idx = i
                raise self.fail(
                    "BTF variable addresses (ld_imm64 btf_id) are not modelled by netbpf",
                    kind="unsupported",
                )
            if src in (
                BPF_PSEUDO_MAP_FD,
                BPF_PSEUDO_MAP_IDX,
                BPF_PSEUDO_MAP_VALUE,
                BPF_PSEUDO_MAP_IDX_VALUE,
            ):
                m = self.maps_by_slot.get(i)
                if m is None:
                    self.insn_idx = i
                    if src in (BPF_PSEUDO_MAP_IDX, BPF_PSEUDO_MAP_IDX_VALUE):
                        raise self.fail(f"unknown map index {insn.imm}", kind="map_ref")
                    raise self.fail(
                        f"fd {insn.imm} is not pointing to valid bpf_map", kind="map_ref"
                    )
                info_m, off = m
                self.aux[i].map_name = info_m.name
                # check_map_prog_compatibility
                if info_m.spin_lock_off is not None and self.prog_type == ProgramType.SOCKET_FILTER:
                    self.insn_idx = i
                    raise self.fail(
                        "socket filter progs cannot use bpf_spin_lock yet", kind="spin_lock"
                    )
                if src in (BPF_PSEUDO_MAP_VALUE, BPF_PSEUDO_MAP_IDX_VALUE):
                    off = off or 0
                    self.aux[i].map_off = off
                    if off >= MAX_VAR_OFF:
                        self.insn_idx = i
                        raise self.fail(
                            f"direct value offset of {off} is not allowed", kind="map_ref"
                        )
                    if info_m.type not in (MapType.ARRAY,) or info_m.max_entries != 1:
                        self.insn_idx = i
                        raise self.fail(
                            "no direct value access support for this map type", kind="map_ref"
                        )
                    if off >= info_m.value_size:
                        self.insn_idx = i
                        raise self.fail(
                            f"invalid access to map value pointer, value_size={info_m.value_size} off={off}",
                            kind="map_ref",
                        )

    # ------------------------------------------------------------------- states ------

    def _init_state(self) -> VState:
        st = VState()
        f = FuncState(0, -1, 0)
        f.regs[10].type = T.PTR_TO_STACK
        f.regs[10].mark_known(0)
        f.regs[10].frameno = 0
        f.regs[1].mark_unknown()
        f.regs[1].type = T.PTR_TO_CTX
        f.regs[1].mark_known(0)
        f.regs[1].origin = (0, "the program's context argument")
        st.frames.append(f)
        return st

    def _do_check_main(self) -> None:
        self.cur = self._init_state()
        self.mark_all_scratched()
        self._do_check(0)
        # global functions are verified once each, on their own, from their BTF
        # signature (do_check_subprogs)
        done: set[int] = set()
        while self.globals_called:
            sub = self.globals_called.pop(0)
            if sub in done:
                continue
            done.add(sub)
            name, args = self.globals[sub]
            start = self.cfg.subprogs[sub].start  # type: ignore[union-attr]
            if self.log_level:
                self.verbose(f"Validating {name}() func#{sub}...\n")
            self.stack = []
            self.explored_reset_for_global()
            self.cur = self._global_entry_state(sub, args)
            self.mark_all_scratched()
            self._do_check(start)

    def explored_reset_for_global(self) -> None:
        """States explored for one entry point do not prune another's paths."""
        self.explored = {}
        self.explored_size = 0

    def _find_global_funcs(self) -> None:
        btf = self.btf
        if btf is None or not self.func_info:
            return
        from netbpf.obj.btf.types import Enum as BtfEnum
        from netbpf.obj.btf.types import Func, FuncLinkage, FuncProto, Int, Ptr
        from netbpf.verifier.ctx import ctx_struct

        cfg = self.cfg
        assert cfg is not None
        ctx_name = ctx_struct(self.prog_type)
        for fi in self.func_info:
            sub = cfg.subprog_of(fi.slot)
            if sub == 0 or cfg.subprogs[sub].start != fi.slot:
                continue
            try:
                func = btf.type(fi.type_id)
                if not isinstance(func, Func) or func.linkage != FuncLinkage.GLOBAL:
                    continue
                proto = btf.type(func.type_id)
                assert isinstance(proto, FuncProto)
                args: list[tuple[str, int]] = []
                for prm in proto.params:
                    t = btf.resolve(prm.type_id)
                    if isinstance(t, Int | BtfEnum):
                        args.append(("scalar", 0))
                    elif isinstance(t, Ptr):
                        target = btf.resolve(t.type_id)
                        if ctx_name is not None and target.name == ctx_name:
                            args.append(("ctx", 0))
                        else:
                            args.append(("mem", btf.size_of(t.type_id)))
                    else:
                        args.append(("scalar", 0))
                self.globals[sub] = (func.name, args)
            except Exception:  # BTF we cannot read: the function stays static
                continue

    def _global_entry_state(self, sub: int, args: list[tuple[str, int]]) -> VState:
        st = VState()
        f = FuncState(0, -1, sub)
        f.regs[10].type = T.PTR_TO_STACK
        f.regs[10].mark_known(0)
        name = self.globals[sub][0]
        for i, (kind, size) in enumerate(args[:5], start=1):
            r = f.regs[i]
            if kind == "scalar":
                r.mark_unknown()
            elif kind == "ctx":
                r.mark_known_zero()
                r.type = T.PTR_TO_CTX
            else:
                r.mark_known_zero()
                r.type = T.PTR_TO_MEM | T.MAYBE_NULL
                r.mem_size = size
                r.id = self.new_id()
            r.origin = (self.cfg.subprogs[sub].start, f"argument {i} of global function {name}()")  # type: ignore[union-attr]
        st.frames.append(f)
        return st

    def check_global_call(self, idx: int, sub: int) -> None:
        """A call to a global function: its arguments must match its BTF signature;
        it is assumed valid (verified separately) and returns an unknown scalar."""
        name, args = self.globals[sub]
        caller = self.frame
        for i, (kind, size) in enumerate(args[:5], start=1):
            r = caller.regs[i]
            ok = True
            if r.type == T.NOT_INIT:
                raise self.fail(f"R{i} !read_ok", reg=i, kind="uninit_reg")
            if kind == "scalar":
                if r.type != T.SCALAR:
                    self.note(f"R{i} is not a scalar")
                    ok = False
            elif kind == "ctx":
                if r.type != T.PTR_TO_CTX:
                    self.note(f"arg#{i - 1} expects pointer to ctx")
                    ok = False
            elif not r.is_null():
                # a maybe-NULL pointer is checked as if it were not NULL (check_mem_reg)
                saved = r.copy()
                if r.type & T.MAYBE_NULL:
                    _mark_ptr_not_null(r)
                try:
                    self.check_helper_mem_access(i, size, False, True, None)
                    self.check_helper_mem_access(i, size, True, True, None)
                except Reject:
                    ok = False
                finally:
                    r.assign(saved)
            if not ok:
                raise self.fail(
                    f"Caller passes invalid args into func#{sub} ('{name}')",
                    reg=i,
                    kind="global_arg",
                )
        if self.log_level:
            self.verbose(f"Func#{sub} ('{name}') is global and assumed valid.\n")
        if sub not in self.globals_called:
            self.globals_called.append(sub)
        if self.cfg.subprogs[sub].changes_pkt_data:  # type: ignore[union-attr]
            self.clear_all_pkt_pointers()
        for i in range(6):
            caller.regs[i].mark_not_init()
        caller.regs[0].mark_unknown()
        caller.regs[0].origin = (idx, f"global function {name}()")
        self.insn_idx = idx + 1

    def push_stack(self, insn_idx: int, prev_idx: int) -> VState:
        cur = self.cur
        st = cur.copy()
        self.stack.append(_StackElem(st, insn_idx, prev_idx, self.log.end_pos))
        if len(self.stack) > BPF_COMPLEXITY_LIMIT_JMP_SEQ:
            raise self.fail(
                f"The sequence of {len(self.stack)} jumps is too complex.", kind="limit"
            )
        if st.parent is not None:
            st.parent.branches += 1
        return st

    def pop_stack(self) -> bool:
        if not self.stack:
            return False
        e = self.stack.pop()
        self.cur = e.st
        if self.log_level == 1:
            self.log.reset(e.log_pos)
        self.insn_idx = e.insn_idx
        self.prev_insn_idx = e.prev_insn_idx
        return True

    def update_branch_counts(self, st: VState | None) -> None:
        while st is not None:
            st.branches -= 1
            if st.branches:
                break
            st = st.parent

    def new_id(self) -> int:
        self.id_gen += 1
        return self.id_gen

    # ------------------------------------------------------------------ main loop ------

    def _do_check(self, start: int = 0) -> None:
        cfg = self.cfg
        assert cfg is not None
        do_print_state = False
        self.insn_idx = start
        self.prev_insn_idx = start
        self.log_at_start = True
        # loop invariants in locals (this loop runs once per processed instruction)
        prune = cfg.prune
        aux = self.aux
        n = self.n
        limit = self.insn_limit
        log_level = self.log_level
        while True:
            idx = self.insn_idx
            if idx >= n or idx < 0:
                raise self.fail(f"invalid insn idx {idx} insn_cnt {n}", kind="cfg")
            processed = self.insn_processed = self.insn_processed + 1
            if processed > self.abandon_at:
                # this run's verdict will not count (new predicted jumps): stop
                # collecting them after a while and start over
                raise Abandon()
            if processed > limit:
                raise self.fail(
                    f"BPF program is too large. Processed {processed} insn", kind="limit"
                )
            st = self.cur
            st.insn_idx = idx
            if self.err_lines:
                self.err_lines = []
            if prune[idx]:
                if self._is_state_visited(idx):
                    if log_level:
                        if do_print_state:
                            self.verbose(f"\nfrom {self.prev_insn_idx} to {idx}: safe\n")
                        else:
                            self.verbose(f"{idx}: safe\n")
                    if not self._exit_path():
                        return
                    do_print_state = True
                    continue
            if log_level:
                st = self.cur
                if log_level >= 2 and do_print_state:
                    self.verbose(f"\nfrom {self.prev_insn_idx} to {idx}:")
                    self.print_state(st, True)
                    do_print_state = False
                if self.scratched_regs or self.scratched_slots:
                    self.print_insn_state(st)
                self.prev_log_pos = self.log.end_pos
                line = f"{idx}: {self.insn_text(idx)}\n"
                self.verbose(line)
                self.prev_insn_print_pos = len(line)
                self.prev_log_pos = self.log.end_pos
            aux[idx].seen = True
            self.prev_insn_idx = idx
            result = self._do_check_insn(idx)
            if result == "exit":
                if not self._exit_path():
                    return
                do_print_state = True
            elif result == "frame":
                do_print_state = True

    def _exit_path(self) -> bool:
        """process_bpf_exit: this path is done; continue with a pushed one."""
        self.mark_all_scratched()
        self.update_branch_counts(self.cur)
        return self.pop_stack()

    # -------------------------------------------------------------- instructions ------

    def _do_check_insn(self, idx: int) -> str | None:
        insn = self.insns[idx]
        info = self.infos[idx]
        assert info is not None
        k = info.kind
        if self.field_errors and idx in self.field_errors and k not in _LD_ABS_KINDS:
            raise self.fail(self.field_errors[idx], kind="insn")
        # (the kinds are exclusive: tested in order of frequency)
        if k in K.ALU_KINDS:
            self.check_alu_op(insn, info)
        elif k is K.JCC:
            self.jmps_processed += 1
            self.check_cond_jmp_op(insn, info)
            return None
        elif k is K.LDX:
            self.check_load(insn, info)
        elif k is K.STX:
            self.check_store_reg(insn, info)
        elif k is K.ST:
            self.check_reg_arg(insn.dst, src=True)
            dtype = self.regs[insn.dst].type
            self.check_mem_access(insn.dst, insn.off, info.size, write=True, value_regno=-1)
            self.save_aux_ptr_type(dtype)
        elif k is K.ATOMIC:
            self.check_atomic(insn, info)
        elif k is K.LD_IMM64:
            self.check_ld_imm(insn, idx)
            self.insn_idx += 2
            return None
        elif k in (K.LD_ABS, K.LD_IND):
            self.check_ld_abs(insn, info)
        elif k is K.JA:
            self.jmps_processed += 1
            off = insn.imm if info.cls == BPF_JMP32 else insn.off
            self.insn_idx += off + 1
            return None
        elif k is K.MAY_GOTO:
            self.jmps_processed += 1
            self.check_may_goto(insn)
            return None
        elif k is K.CALL:
            self.jmps_processed += 1
            if self.cur.active_lock_id or any(r.kind == "lock" for r in self.cur.refs):
                if (insn.src == 0 and insn.imm != 94) or insn.src == BPF_PSEUDO_KFUNC_CALL:
                    raise self.fail(
                        "function calls are not allowed while holding a lock", kind="lock"
                    )
            if insn.src == BPF_PSEUDO_CALL:
                r = self.check_func_call(insn, idx)
                self.mark_reg_scratched(0)
                return r
            if insn.src == BPF_PSEUDO_KFUNC_CALL:
                raise self.fail(
                    "calling kernel function is not supported without CONFIG_DEBUG_INFO_BTF",
                    kind="kfunc",
                )
            self.check_helper_call(insn, idx)
            self.mark_reg_scratched(0)
        elif k is K.CALLX:
            raise self.fail(f"unknown opcode {insn.opcode:02x}", kind="insn")
        elif k is K.EXIT:
            self.jmps_processed += 1
            return self.process_exit()
        self.insn_idx += 1
        return None

    @property
    def regs(self) -> list[Reg]:
        return self.cur.frames[-1].regs

    @property
    def frame(self) -> FuncState:
        return self.cur.frames[-1]

    def check_reg_arg(self, regno: int, *, src: bool = False, mark: bool = True) -> None:
        """check_reg_arg: SRC_OP needs an initialised register; DST_OP makes it an
        unknown scalar (DST_OP_NO_MARK: ``mark=False`` leaves it to the caller)."""
        if regno > 10:
            raise self.fail(f"R{regno} is invalid", kind="insn")
        self.scratched_regs |= 1 << regno
        r = self.cur.frames[-1].regs[regno]
        if src:
            if r.type == T.NOT_INIT:
                raise self.fail(f"R{regno} !read_ok", reg=regno, kind="uninit_reg")
            return
        if regno == 10:
            raise self.fail("frame pointer is read only", kind="fp_ro")
        if mark:
            r.mark_unknown()
            r.origin = None

    def set_origin(self, regno: int, what: str) -> None:
        self.regs[regno].origin = (self.insn_idx, what)

    # ---------------------------------------------------------------------- ALU ------

    def check_alu_op(self, insn: Instruction, info: OpInfo) -> None:
        op = info.op
        alu32 = info.cls != BPF_ALU64
        regs = self.cur.frames[-1].regs
        if info.kind in (K.END, K.NEG):
            self.check_reg_arg(insn.dst, src=True)
            d = regs[insn.dst]
            if info.kind is K.NEG and d.type == T.SCALAR:
                self.mark_reg_scratched(insn.dst)
                scalar_alu(d, d, NEG, alu32)
                d.id = 0
                self.set_origin(insn.dst, "a negation")
            elif d.type == T.SCALAR:
                self.mark_reg_scratched(insn.dst)
                # bswap (ALU64) always swaps; le/be swap when the order differs from
                # the machine's (little-endian)
                swap = not alu32 or bool(insn.opcode & 0x08)
                if swap or insn.imm != 64:  # le64 is a no-op on little-endian
                    scalar_byte_swap(d, insn.imm, swap)
                    d.id = 0
                    self.set_origin(insn.dst, "a byte swap")
            else:
                self.check_reg_arg(insn.dst)
                d = regs[insn.dst]
                if info.kind is K.END:
                    self.set_origin(insn.dst, "a byte swap")
            self.bounds_sanity(insn.dst, "alu")
            return
        if info.kind is K.MOV:
            if info.use_src_reg and not alu32 and insn.off == 1:
                raise self.fail(
                    "addr_space_cast insn can only be used in a program that has an "
                    "associated arena",
                    kind="unsupported",
                )
            if info.use_src_reg:
                self.check_reg_arg(insn.src, src=True)
            self.check_reg_arg(insn.dst, mark=False)
            d = regs[insn.dst]
            if info.use_src_reg:
                s = regs[insn.src]
                if not alu32:
                    if insn.off == 1:  # addr_space_cast
                        d.mark_unknown()
                        if insn.imm == 1:
                            d.type = T.PTR_TO_ARENA
                    elif insn.off == 0:
                        self.assign_scalar_id_before_mov(s)
                        d.assign(s)
                    else:
                        if s.type == T.SCALAR:
                            no_sext = s.umax < (1 << (insn.off - 1))
                            if no_sext:
                                self.assign_scalar_id_before_mov(s)
                            d.assign(s)
                            if not no_sext:
                                d.id = 0
                            d.coerce_to_size_sx(insn.off >> 3)
                            d.origin = (self.insn_idx, "a sign extension")
                        else:
                            d.mark_unknown()
                            self.set_origin(
                                insn.dst, f"a sign extension of a pointer (R{insn.src})"
                            )
                else:
                    if s.type == T.SCALAR:
                        if insn.off == 0:
                            is_u32 = s.width() <= 32
                            if is_u32:
                                self.assign_scalar_id_before_mov(s)
                            d.assign(s)
                            if not is_u32:
                                d.id = 0
                        else:
                            no_sext = s.umax < (1 << (insn.off - 1))
                            if no_sext:
                                self.assign_scalar_id_before_mov(s)
                            d.assign(s)
                            if not no_sext:
                                d.id = 0
                            d.coerce_subreg_to_size_sx(insn.off >> 3)
                    else:
                        d.mark_unknown()
                        self.set_origin(insn.dst, f"the low 32 bits of a pointer (R{insn.src})")
                    d.zext_32_to_64()
                    d.sync()
            else:
                d.mark_scalar_known(insn.imm if not alu32 else insn.imm & U32)
                idx = self.insn_idx
                origin = self._const_origins.get(idx)
                if origin is None:
                    origin = self._const_origins[idx] = (idx, f"the constant {snum(d.value)}")
                d.origin = origin
                # (a known constant's bounds are consistent: no sanity check needed)
                return
            self.bounds_sanity(insn.dst, "alu")
            return
        # all other ALU ops: check_reg_arg(src, SRC_OP), check_reg_arg(dst, SRC_OP),
        # the constant checks, check_reg_arg(dst, DST_OP_NO_MARK), inlined (the most
        # frequent instructions)
        dst = insn.dst
        if info.use_src_reg:
            if insn.src > 10:
                raise self.fail(f"R{insn.src} is invalid", kind="insn")
            self.scratched_regs |= 1 << insn.src
            if regs[insn.src].type == T.NOT_INIT:
                raise self.fail(f"R{insn.src} !read_ok", reg=insn.src, kind="uninit_reg")
        if dst > 10:
            raise self.fail(f"R{dst} is invalid", kind="insn")
        self.scratched_regs |= 1 << dst
        if regs[dst].type == T.NOT_INIT:
            raise self.fail(f"R{dst} !read_ok", reg=dst, kind="uninit_reg")
        if not info.use_src_reg:
            if op in (DIV, MOD) and insn.imm == 0:
                raise self.fail("div by zero", kind="div0")
            if op in (LSH, RSH, ARSH) and not 0 <= insn.imm < (32 if alu32 else 64):
                raise self.fail(f"invalid shift {insn.imm}", kind="shift")
        if dst == 10:
            raise self.fail("frame pointer is read only", kind="fp_ro")
        if self.adjust_reg_min_max_vals(insn, info):
            return  # a concretely computed constant: consistent bounds
        d = regs[dst]
        if d.type == T.SCALAR:
            self.reg_bounds_sanity(d, "alu")

    def bounds_sanity(self, regno: int, ctx: str) -> None:
        r = self.cur.frames[-1].regs[regno]
        if r.type == T.SCALAR:
            self.reg_bounds_sanity(r, ctx)

    def reg_bounds_sanity(self, r: Reg, ctx: str) -> None:
        """reg_bounds_sanity_check: Linux 6.18 logs the inconsistency as a verifier
        bug, forgets the register's ranges (keeping its tnum) and goes on."""
        msg = r.bounds_violation()
        if msg is None:
            return
        self.verbose(
            f"verifier bug: REG INVARIANTS VIOLATION ({ctx}): {msg} "
            f"u64=[{r.umin:#x}, {r.umax:#x}] s64=[{r.smin & U64:#x}, {r.smax & U64:#x}] "
            f"u32=[{r.u32_min:#x}, {r.u32_max:#x}] s32=[{r.s32_min & U32:#x}, {r.s32_max & U32:#x}] "
            f"var_off=({r.value:#x}, {r.mask:#x})\n"
        )
        r.mark_unbounded()

    def assign_scalar_id_before_mov(self, s: Reg) -> None:
        if s.type != T.SCALAR:
            return
        if s.id & BPF_ADD_AS_FAKE_ID:
            s.id = 0
            s.off = 0
        if not s.id and s.mask != 0:
            s.id = self.new_id()

    def adjust_reg_min_max_vals(self, insn: Instruction, info: OpInfo) -> bool:
        """adjust_reg_min_max_vals; True when the destination became a constant
        computed concretely (no bounds sanity check needed)."""
        regs = self.cur.frames[-1].regs
        d = regs[insn.dst]
        op = info.op
        alu32 = info.cls != BPF_ALU64
        ptr_reg = d if d.type != T.SCALAR else None
        if info.use_src_reg:
            s = regs[insn.src]
            if s.type != T.SCALAR:
                if d.type != T.SCALAR:
                    if op == SUB:
                        d.mark_unknown()
                        d.origin = (self.insn_idx, "a difference of two pointers")
                        return False
                    raise self.fail(
                        f"R{insn.dst} pointer {_ALU_WORDS[op]} pointer prohibited",
                        reg=insn.dst,
                        kind="ptr_arith",
                    )
                # scalar += pointer
                self.adjust_ptr_min_max_vals(insn, info, s, d, off_is_dst=True)
                return False
            if ptr_reg is not None:
                self.adjust_ptr_min_max_vals(insn, info, d, s)
                return False
            # scalar_alu reads its source only: a copy is needed when it is the
            # destination itself
            src = s.copy() if insn.src == insn.dst else s
        elif ptr_reg is not None:
            src = Reg()
            src.type = T.SCALAR
            src.mark_known(insn.imm)
            self.adjust_ptr_min_max_vals(insn, info, d, src)
            return False
        else:
            src = _const_reg(insn.imm)
        # (only a 32-bit add/sub link needs the width before the operation)
        width_before = d.width() if alu32 and op in (ADD, SUB) else 0
        if op in (AND, OR) and src.type == T.SCALAR and src.mask == 0:
            self.maybe_fork_scalars(insn.dst, d)
        concrete = scalar_alu(d, src, op, alu32)
        src_const = (src.mask & U32) == 0 if alu32 else src.mask == 0
        if op in (ADD, SUB) and d.id and src_const:
            # remember "d = (linked value) + val" so a later comparison of d also
            # bounds its copies (sync_linked_regs); 32-bit links only for values that
            # fit in 32 bits before the operation
            val = s32(src.value) if alu32 else s64(src.value)
            if op == SUB:
                val = -val
            if (
                (d.id & BPF_ADD_AS_FAKE_ID)
                or not (-(1 << 31) <= val <= S32_MAX)
                or (alu32 and width_before > 32)
            ):
                d.off = 0
                d.id = 0
            else:
                d.id |= BPF_ADD_AS_FAKE_ID | (BPF_ADD_AS_FAKE_ID32 if alu32 else 0)
                d.off = val
        else:
            d.id = 0
        return concrete

    def maybe_fork_scalars(self, regno: int, d: Reg) -> None:
        """A value known to be 0 or -1 (``x s>> 63``) masked with a constant: explore
        the two values separately (the current path takes -1, a pushed one 0), as
        the kernel does to keep LLVM's branch-free selects precise."""
        if d.smin == -1 and d.smax == 0:
            alu32 = False
        elif d.s32_min == -1 and d.s32_max == 0:
            alu32 = True
        else:
            return
        other = self.push_stack(self.insn_idx, self.insn_idx)
        o = other.frames[-1].regs[regno]
        if alu32:
            o.mark_known32(0)
            d.mark_known32(U32)
        else:
            o.mark_known(0)
            d.mark_known(-1)

    def check_reg_sane_offset(self, r: Reg, ptype: int) -> None:
        known = r.mask == 0
        val = s64(r.value)
        if known and (val >= MAX_VAR_OFF or val <= -MAX_VAR_OFF):
            raise self.fail(
                f"math between {type_str(ptype)} pointer and {val} is not allowed", kind="ptr_arith"
            )
        if r.off >= MAX_VAR_OFF or r.off <= -MAX_VAR_OFF:
            raise self.fail(
                f"{type_str(ptype)} pointer offset {r.off} is not allowed", kind="ptr_arith"
            )
        if r.smin == S64_MIN:
            raise self.fail(
                f"math between {type_str(ptype)} pointer and register with unbounded min value is not allowed",
                kind="ptr_arith",
            )
        if r.smin >= MAX_VAR_OFF or r.smin <= -MAX_VAR_OFF:
            raise self.fail(
                f"value {r.smin} makes {type_str(ptype)} pointer be out of bounds", kind="ptr_arith"
            )

    def adjust_ptr_min_max_vals(
        self, insn: Instruction, info: OpInfo, ptr: Reg, off_reg: Reg, *, off_is_dst: bool = False
    ) -> None:
        dst = insn.dst
        d = self.regs[dst]
        op = info.op
        known = off_reg.mask == 0
        smin_val, smax_val = off_reg.smin, off_reg.smax
        umin_val, umax_val = off_reg.umin, off_reg.umax
        smin_ptr, smax_ptr = ptr.smin, ptr.smax
        umin_ptr, umax_ptr = ptr.umin, ptr.umax
        if (
            (known and (smin_val != smax_val or umin_val != umax_val))
            or smin_val > smax_val
            or umin_val > umax_val
        ):
            d.mark_unknown()
            return
        if info.cls != BPF_ALU64:
            if op == SUB:
                d.mark_unknown()
                return
            raise self.fail(
                f"R{dst} 32-bit pointer arithmetic prohibited", reg=dst, kind="ptr_arith"
            )
        if ptr.type & T.BASE_MASK == T.PTR_TO_MEM and ptr.type & T.PTR_UNTRUSTED:
            # untrusted memory is read with probe loads: no offset tracking, the
            # destination keeps what it was
            return
        if ptr.type & T.MAYBE_NULL:
            raise self.fail(
                f"R{dst} pointer arithmetic on {type_str(ptr.type)} prohibited, null-check it first",
                reg=dst,
                kind="null_arith",
            )
        base = ptr.type & T.BASE_MASK
        allowed = base in (
            T.PTR_TO_CTX,
            T.PTR_TO_MAP_VALUE,
            T.PTR_TO_MAP_KEY,
            T.PTR_TO_STACK,
            T.PTR_TO_PACKET_META,
            T.PTR_TO_PACKET,
            T.PTR_TO_TP_BUFFER,
            T.PTR_TO_BTF_ID,
            T.PTR_TO_MEM,
            T.PTR_TO_BUF,
            T.PTR_TO_FUNC,
            T.CONST_PTR_TO_DYNPTR,
        )
        if not allowed and base == T.PTR_TO_FLOW_KEYS and known:
            allowed = True
        if not allowed and base in (T.PTR_TO_FLOW_KEYS, T.CONST_PTR_TO_MAP):
            if known and smin_val == 0 and op == ADD:
                allowed = True
        if not allowed:
            raise self.fail(
                f"R{dst} pointer arithmetic on {type_str(ptr.type)} prohibited",
                reg=dst,
                kind="ptr_arith",
            )
        ptr_copy = ptr.copy()
        off_copy = off_reg.copy()
        ptr, off_reg = ptr_copy, off_copy
        d.type = ptr.type
        d.id = ptr.id
        self.check_reg_sane_offset(off_reg, ptr.type)
        self.check_reg_sane_offset(ptr, ptr.type)
        d.mark_32_unbounded()
        if op == ADD:
            if (
                known
                and ptr.off + smin_val == s32(ptr.off + smin_val)
                and -(1 << 31) <= ptr.off + smin_val <= S32_MAX
            ):
                d.smin, d.smax, d.umin, d.umax = smin_ptr, smax_ptr, umin_ptr, umax_ptr
                d.value, d.mask = ptr.value, ptr.mask
                d.off = ptr.off + smin_val
                _copy_raw(d, ptr)
            else:
                lo, hi = smin_ptr + smin_val, smax_ptr + smax_val
                if not (S64_MIN <= lo <= S64_MAX and S64_MIN <= hi <= S64_MAX):
                    d.smin, d.smax = S64_MIN, S64_MAX
                else:
                    d.smin, d.smax = lo, hi
                lo, hi = umin_ptr + umin_val, umax_ptr + umax_val
                if lo > U64 or hi > U64:
                    d.umin, d.umax = 0, U64
                else:
                    d.umin, d.umax = lo, hi
                d.var_off = tadd(ptr.var_off, off_reg.var_off)
                d.off = ptr.off
                _copy_raw(d, ptr)
                if base in (T.PTR_TO_PACKET, T.PTR_TO_PACKET_META):
                    d.id = self.new_id()
                    d.range = 0
        elif op == SUB:
            if off_is_dst:
                raise self.fail(
                    f"R{dst} tried to subtract pointer from scalar", reg=dst, kind="ptr_arith"
                )
            if base == T.PTR_TO_STACK:
                raise self.fail(
                    f"R{dst} subtraction from stack pointer prohibited", reg=dst, kind="ptr_arith"
                )
            if known and -(1 << 31) <= ptr.off - smin_val <= S32_MAX:
                d.smin, d.smax, d.umin, d.umax = smin_ptr, smax_ptr, umin_ptr, umax_ptr
                d.value, d.mask = ptr.value, ptr.mask
                d.id = ptr.id
                d.off = ptr.off - smin_val
                _copy_raw(d, ptr)
            else:
                lo, hi = smin_ptr - smax_val, smax_ptr - smin_val
                if not (S64_MIN <= lo <= S64_MAX and S64_MIN <= hi <= S64_MAX):
                    d.smin, d.smax = S64_MIN, S64_MAX
                else:
                    d.smin, d.smax = lo, hi
                if umin_ptr < umax_val:
                    d.umin, d.umax = 0, U64
                else:
                    d.umin, d.umax = umin_ptr - umax_val, umax_ptr - umin_val
                from netbpf.verifier.tnum import tsub

                d.var_off = tsub(ptr.var_off, off_reg.var_off)
                d.off = ptr.off
                _copy_raw(d, ptr)
                if base in (T.PTR_TO_PACKET, T.PTR_TO_PACKET_META):
                    d.id = self.new_id()
                    if smin_val < 0:
                        d.range = 0
        elif op in (AND, OR, XOR):
            raise self.fail(
                f"R{dst} bitwise operator {_ALU_WORDS[op]} on pointer prohibited",
                reg=dst,
                kind="ptr_arith",
            )
        else:
            raise self.fail(
                f"R{dst} pointer arithmetic with {_ALU_WORDS[op]} operator prohibited",
                reg=dst,
                kind="ptr_arith",
            )
        d.frameno = ptr.frameno
        d.map = ptr.map
        d.mem_size = ptr.mem_size
        d.btf_name = ptr.btf_name
        d.ref_obj_id = ptr.ref_obj_id
        d.subprogno = ptr.subprogno
        if known or off_reg.origin is None:
            d.origin = ptr.origin
        else:
            pdesc = f"{ptr.origin[1]} (insn {ptr.origin[0]})" if ptr.origin else "a pointer"
            d.origin = (
                self.insn_idx,
                f"{pdesc} plus a variable offset, itself from {off_reg.origin[1]} "
                f"(insn {off_reg.origin[0]}),",
            )
        self.check_reg_sane_offset(d, ptr.type)
        d.sync()

    # ------------------------------------------------------------------ memory ------

    def check_load(self, insn: Instruction, info: OpInfo) -> None:
        self.check_reg_arg(insn.src, src=True)
        self.check_reg_arg(insn.dst, mark=False)
        stype = self.cur.frames[-1].regs[insn.src].type
        self.check_mem_access(
            insn.src, insn.off, info.size, write=False, value_regno=insn.dst, ldsx=info.signed
        )
        self.save_aux_ptr_type(stype)
        self.bounds_sanity(insn.dst, "ldx")

    def check_store_reg(self, insn: Instruction, info: OpInfo) -> None:
        self.check_reg_arg(insn.src, src=True)
        self.check_reg_arg(insn.dst, src=True)
        dtype = self.cur.frames[-1].regs[insn.dst].type
        self.check_mem_access(insn.dst, insn.off, info.size, write=True, value_regno=insn.src)
        self.save_aux_ptr_type(dtype)

    def save_aux_ptr_type(self, t: int) -> None:
        aux = self.aux[self.insn_idx]
        if aux.ptr_type == T.NOT_INIT:
            aux.ptr_type = t
            return
        prev = aux.ptr_type
        if t != prev and (not _mismatch_ok(t) or not _mismatch_ok(prev)):
            raise self.fail("same insn cannot be used with different pointers", kind="ptr_mismatch")

    def check_ptr_alignment(self, r: Reg, off: int, size: int, strict: bool) -> None:
        base = r.type
        desc = ""
        if base in (T.PTR_TO_PACKET, T.PTR_TO_PACKET_META):
            if not strict or size == 1:
                return
            reg_off = tadd(r.var_off, tconst(2 + r.off + off))
            if not tis_aligned(reg_off, size):
                raise self.fail(
                    f"misaligned packet access off 2+{_voff(r)}+{r.off}+{off} size {size}",
                    kind="align",
                )
            return
        if base == T.PTR_TO_FLOW_KEYS:
            desc = "flow keys "
        elif base == T.PTR_TO_MAP_KEY:
            desc = "key "
        elif base == T.PTR_TO_MAP_VALUE:
            desc = "value "
        elif base == T.PTR_TO_CTX:
            desc = "context "
        elif base == T.PTR_TO_STACK:
            desc = "stack "
            strict = True
        elif base == T.PTR_TO_SOCKET:
            desc = "sock "
        elif base == T.PTR_TO_SOCK_COMMON:
            desc = "sock_common "
        elif base == T.PTR_TO_TCP_SOCK:
            desc = "tcp_sock "
        elif base == T.PTR_TO_XDP_SOCK:
            desc = "xdp_sock "
        elif base == T.PTR_TO_ARENA:
            return
        if not strict or size == 1:
            return
        reg_off = tadd(r.var_off, tconst(r.off + off))
        if not tis_aligned(reg_off, size):
            raise self.fail(
                f"misaligned {desc}access off {_voff(r)}+{r.off}+{off} size {size}",
                kind="align",
            )

    def check_mem_access(
        self,
        regno: int,
        off: int,
        size: int,
        *,
        write: bool,
        value_regno: int,
        strict: bool = False,
        ldsx: bool = False,
    ) -> None:
        regs = self.cur.frames[-1].regs
        r = regs[regno]
        self.check_ptr_alignment(r, off, size, strict)
        off += r.off
        t = r.type
        base = t & T.BASE_MASK
        val_ptr = value_regno >= 0 and regs[value_regno].type not in (T.SCALAR, T.NOT_INIT)
        if t == T.PTR_TO_MAP_KEY:
            if write:
                raise self.fail(
                    f"write to change key R{regno} not allowed", reg=regno, kind="map_key"
                )
            self.check_mem_region_access(regno, off, size, r.map.key_size, False)
            if value_regno >= 0:
                regs[value_regno].mark_unknown()
                self.set_origin(value_regno, "a load from a map key")
        elif t == T.PTR_TO_MAP_VALUE:
            m: MapInfo = r.map
            self.check_map_access_type(regno, off, size, write)
            self.check_map_access(regno, off, size, False)
            if not write and value_regno >= 0:
                if r.mask == 0 and m.rdonly_const and m.type != MapType.UNSPEC:
                    moff = off + r.value
                    assert m.data is not None
                    raw = m.data[moff : moff + size]
                    val = int.from_bytes(raw, "little")
                    if ldsx:
                        bits = size * 8
                        if val >> (bits - 1):
                            val -= 1 << bits
                    regs[value_regno].mark_unknown()
                    regs[value_regno].mark_known(val)
                    self.set_origin(value_regno, f"read-only map '{m.name}' (a constant)")
                else:
                    regs[value_regno].mark_unknown()
                    self.set_origin(value_regno, f"a load from map '{m.name}'")
        elif base == T.PTR_TO_MEM:
            rdonly = bool(t & T.MEM_RDONLY)
            if t & T.MAYBE_NULL:
                raise self.fail(
                    f"R{regno} invalid mem access '{type_str(t)}'", reg=regno, kind="null_deref"
                )
            if write and rdonly:
                raise self.fail(
                    f"R{regno} cannot write into {type_str(t)}", reg=regno, kind="rdonly"
                )
            # read-only untrusted memory is read through probe loads: no bounds
            if not (rdonly and t & T.PTR_UNTRUSTED):
                self.check_mem_region_access(regno, off, size, r.mem_size, False)
            if value_regno >= 0 and (not write or rdonly):
                regs[value_regno].mark_unknown()
                self.set_origin(value_regno, "a load from a ringbuf/helper memory")
        elif t == T.PTR_TO_CTX:
            self.check_ptr_off_reg(r, regno)
            res = ctx_access(self.prog_type, self.attach_type, off, size, write, ldsx)
            if res is None:
                raise self.fail(
                    f"invalid bpf_context access off={off} size={size}", reg=regno, kind="ctx"
                )
            self.aux[self.insn_idx].ctx_field_size = res.field_size
            if not write and value_regno >= 0:
                v = regs[value_regno]
                if res.reg_type == T.SCALAR:
                    v.mark_unknown()
                    self.set_origin(value_regno, f"the context (offset {off})")
                else:
                    v.mark_known_zero()
                    v.type = res.reg_type
                    if res.reg_type & T.MAYBE_NULL:
                        v.id = self.new_id()
                    self.set_origin(
                        value_regno, f"the context field at offset {off} ({type_str(res.reg_type)})"
                    )
        elif t == T.PTR_TO_STACK:
            self.check_stack_access_within_bounds(regno, off, size, write)
            if write:
                self.check_stack_write(regno, off, size, value_regno)
            else:
                self.check_stack_read(regno, off, size, value_regno)
        elif t in (T.PTR_TO_PACKET, T.PTR_TO_PACKET_META):
            if write and self.prog_type not in _PKT_WRITE:
                raise self.fail("cannot write into packet", reg=regno, kind="pkt_write")
            self.check_packet_access(regno, off, size, False)
            if not write and value_regno >= 0:
                regs[value_regno].mark_unknown()
                self.set_origin(value_regno, "packet data")
        elif t == T.PTR_TO_FLOW_KEYS:
            if size < 0 or off < 0 or off + size > 56:
                raise self.fail(
                    f"invalid access to flow keys off={off} size={size}",
                    reg=regno,
                    kind="flow_keys",
                )
            if not write and value_regno >= 0:
                regs[value_regno].mark_unknown()
                self.set_origin(value_regno, "the flow keys")
        elif t in (T.PTR_TO_SOCKET, T.PTR_TO_SOCK_COMMON, T.PTR_TO_TCP_SOCK, T.PTR_TO_XDP_SOCK):
            if write:
                raise self.fail(
                    f"R{regno} cannot write into {type_str(t)}", reg=regno, kind="sock_write"
                )
            if r.smin < 0:
                raise self.fail(
                    f"R{regno} min value is negative, either use unsigned index or do a if (index >=0) check.",
                    reg=regno,
                    kind="neg_index",
                )
            kind = {
                T.PTR_TO_SOCKET: "sock",
                T.PTR_TO_SOCK_COMMON: "sock_common",
                T.PTR_TO_TCP_SOCK: "tcp_sock",
                T.PTR_TO_XDP_SOCK: "xdp_sock",
            }[t]
            res = sock_access(kind, off, size)
            if res is None:
                raise self.fail(
                    f"R{regno} invalid {type_str(t)} access off={off} size={size}",
                    reg=regno,
                    kind="sock",
                )
            if value_regno >= 0:
                regs[value_regno].mark_unknown()
                self.set_origin(value_regno, f"a {type_str(t)} field")
        elif base == T.PTR_TO_BTF_ID and not (t & T.MAYBE_NULL) and has_struct(r.btf_name):
            self.check_ptr_to_btf_access(regno, off, size, write, value_regno)
        elif base == T.PTR_TO_BTF_ID and not (t & T.MAYBE_NULL):
            raise self.fail(
                f"R{regno} access through BTF pointer ptr_{r.btf_name} is not modelled by netbpf",
                reg=regno,
                kind="unsupported",
            )
        elif t == T.CONST_PTR_TO_MAP:
            self.check_ptr_to_map_access(regno, off, size, write, value_regno)
        elif t == T.PTR_TO_ARENA:
            if not write and value_regno >= 0:
                regs[value_regno].mark_unknown()
        else:
            raise self.fail(
                f"R{regno} invalid mem access '{type_str(t)}'",
                reg=regno,
                kind="null_deref" if t & T.MAYBE_NULL else "invalid_mem",
            )
        _ = val_ptr
        if (
            size < REG_SIZE
            and value_regno >= 0
            and not write
            and regs[value_regno].type == T.SCALAR
        ):
            if ldsx:
                regs[value_regno].coerce_to_size_sx(size)
            else:
                regs[value_regno].coerce_to_size(size)

    def check_ptr_off_reg(self, r: Reg, regno: int, fixed_off_ok: bool = False) -> None:
        if r.off < 0:
            raise self.fail(
                f"negative offset {type_str(r.type)} ptr R{regno} off={r.off} disallowed",
                reg=regno,
                kind="ptr_off",
            )
        if not fixed_off_ok and r.off:
            raise self.fail(
                f"dereference of modified {type_str(r.type)} ptr R{regno} off={r.off} disallowed",
                reg=regno,
                kind="ptr_off",
            )
        if r.mask != 0 or r.value:
            raise self.fail(
                f"variable {type_str(r.type)} access var_off={tstr(r.var_off)} disallowed",
                reg=regno,
                kind="ptr_off",
            )

    def _mem_access_msg(self, regno: int, off: int, size: int, mem_size: int) -> str:
        r = self.regs[regno]
        t = r.type & T.BASE_MASK
        if t == T.PTR_TO_MAP_KEY:
            return f"invalid access to map key, key_size={mem_size} off={off} size={size}"
        if t == T.PTR_TO_MAP_VALUE:
            return f"invalid access to map value, value_size={mem_size} off={off} size={size}"
        if t in (T.PTR_TO_PACKET, T.PTR_TO_PACKET_META, T.PTR_TO_PACKET_END):
            return f"invalid access to packet, off={off} size={size}, R{regno}(id={r.id},off={off},r={mem_size})"
        return f"invalid access to memory, mem_size={mem_size} off={off} size={size}"

    def _check_mem_access_raw(
        self, regno: int, off: int, size: int, mem_size: int, zero_ok: bool
    ) -> bool:
        size_ok = size > 0 or (size == 0 and zero_ok)
        if off >= 0 and size_ok and off + size <= mem_size:
            return True
        self.note(self._mem_access_msg(regno, off, size, mem_size))
        return False

    def check_mem_region_access(
        self, regno: int, off: int, size: int, mem_size: int, zero_ok: bool
    ) -> None:
        r = self.regs[regno]
        if r.smin < 0 and (
            r.smin == S64_MIN or not (-(1 << 31) <= off + r.smin <= S32_MAX) or r.smin + off < 0
        ):
            raise self.fail(
                f"R{regno} min value is negative, either use unsigned index or do a if (index >=0) check.",
                reg=regno,
                kind="neg_index",
            )
        if not self._check_mem_access_raw(regno, r.smin + off, size, mem_size, zero_ok):
            raise self.fail(
                f"R{regno} min value is outside of the allowed memory range", reg=regno, kind="oob"
            )
        if r.umax >= MAX_VAR_OFF:
            raise self.fail(
                f"R{regno} unbounded memory access, make sure to bounds check any such access",
                reg=regno,
                kind="unbounded",
            )
        if not self._check_mem_access_raw(regno, r.umax + off, size, mem_size, zero_ok):
            raise self.fail(
                f"R{regno} max value is outside of the allowed memory range", reg=regno, kind="oob"
            )

    def _mark_btf_ld_reg(self, value_regno: int, res: WalkResult, what: str) -> None:
        v = self.regs[value_regno]
        if res.type == T.SCALAR:
            v.mark_unknown()
        else:
            v.mark_known_zero()
            v.type = res.type | res.flags
            v.btf_name = res.btf_name
            v.mem_size = 0
        self.set_origin(value_regno, what)

    def check_ptr_to_map_access(
        self, regno: int, off: int, size: int, write: bool, value_regno: int
    ) -> None:
        """Loads from the map's kernel struct (struct bpf_array...) through a map
        pointer."""
        m: MapInfo = self.regs[regno].map
        tname = map_struct(m.type)
        if tname is None:
            raise self.fail(
                f"map_ptr access not supported for map type {m.type}", reg=regno, kind="map_ptr"
            )
        if off < 0:
            raise self.fail(
                f"R{regno} is {tname} invalid negative access: off={off}",
                reg=regno,
                kind="struct_access",
            )
        if write:
            raise self.fail(f"only read from {tname} is supported", reg=regno, kind="struct_access")
        try:
            res = struct_access(tname, off, size)
        except WalkError as e:
            raise self.fail(str(e), reg=regno, kind="struct_access") from None
        if value_regno >= 0:
            self._mark_btf_ld_reg(
                value_regno, res, f"struct {tname} of map '{m.name}' (offset {off})"
            )

    def check_ptr_to_btf_access(
        self, regno: int, off: int, size: int, write: bool, value_regno: int
    ) -> None:
        """Loads through a pointer to a kernel struct found in a map's struct."""
        r = self.regs[regno]
        tname = r.btf_name
        if not self.gpl:
            raise self.fail(
                f"Cannot access kernel 'struct {tname}' from non-GPL compatible program",
                reg=regno,
                kind="gpl",
            )
        if off < 0:
            raise self.fail(
                f"R{regno} is ptr_{tname} invalid negative access: off={off}",
                reg=regno,
                kind="struct_access",
            )
        if r.mask != 0 or r.value:
            raise self.fail(
                f"R{regno} is ptr_{tname} invalid variable offset: off={off}, var_off={tstr(r.var_off)}",
                reg=regno,
                kind="struct_access",
            )
        if r.type & T.MEM_USER:
            raise self.fail(
                f"R{regno} is ptr_{tname} access user memory: off={off}",
                reg=regno,
                kind="struct_access",
            )
        if r.type & T.MEM_PERCPU:
            raise self.fail(
                f"R{regno} is ptr_{tname} access percpu memory: off={off}",
                reg=regno,
                kind="struct_access",
            )
        if write:
            raise self.fail("only read is supported", reg=regno, kind="struct_access")
        try:
            res = struct_access(tname, off, size)
        except WalkError as e:
            raise self.fail(str(e), reg=regno, kind="struct_access") from None
        if res.type == T.PTR_TO_BTF_ID:
            if r.type & T.PTR_UNTRUSTED:
                res = WalkResult(res.type, res.btf_name, T.PTR_UNTRUSTED)
            else:
                # pointers found walking an untrusted (not trusted, not rcu) pointer
                # lose rcu/trusted flags: "old compat"
                res = WalkResult(
                    res.type, res.btf_name, res.flags & ~(T.PTR_TRUSTED | T.MEM_RCU | T.MEM_ALLOC)
                )
        if value_regno >= 0:
            self._mark_btf_ld_reg(value_regno, res, f"struct {tname} (offset {off})")

    def check_map_access_type(self, regno: int, off: int, size: int, write: bool) -> None:
        m: MapInfo = self.regs[regno].map
        if write and not m.can_write:
            raise self.fail(
                f"write into map forbidden, value_size={m.value_size} off={off} size={size}",
                reg=regno,
                kind="map_rdonly",
            )
        if not write and not m.can_read:
            raise self.fail(
                f"read from map forbidden, value_size={m.value_size} off={off} size={size}",
                reg=regno,
                kind="map_wronly",
            )

    def check_map_access(self, regno: int, off: int, size: int, zero_ok: bool) -> None:
        r = self.regs[regno]
        m: MapInfo = r.map
        self.check_mem_region_access(regno, off, size, m.value_size, zero_ok)
        if m.spin_lock_off is not None:
            p = m.spin_lock_off
            if r.smin + off < p + 4 and p < r.umax + off + size:
                raise self.fail(
                    "bpf_spin_lock cannot be accessed directly by load/store",
                    reg=regno,
                    kind="spin_lock",
                )

    def check_packet_access(self, regno: int, off: int, size: int, zero_ok: bool) -> None:
        r = self.regs[regno]
        if r.smin < 0:
            raise self.fail(
                f"R{regno} min value is negative, either use unsigned index or do a if (index >=0) check.",
                reg=regno,
                kind="neg_index",
            )
        ok = r.range >= 0 and self._check_mem_access_raw(regno, off, size, r.range, zero_ok)
        if not ok:
            raise self.fail(f"R{regno} offset is outside of the packet", reg=regno, kind="pkt")

    # ------------------------------------------------------------------- stack ------

    def func_of(self, r: Reg) -> FuncState:
        return self.cur.frames[r.frameno]

    def check_stack_access_within_bounds(
        self, regno: int, off: int, size: int, write: bool
    ) -> None:
        r = self.regs[regno]
        st = self.func_of(r)
        extra = " write to" if write else " read from"
        if r.mask == 0:
            min_off = s64(r.value) + off
            max_off = min_off + size
        else:
            if r.smax >= MAX_VAR_OFF or r.smin <= -MAX_VAR_OFF:
                raise self.fail(
                    f"invalid unbounded variable-offset{extra} stack R{regno}",
                    reg=regno,
                    kind="stack",
                )
            min_off = r.smin + off
            max_off = r.smax + off + size
        err = min_off < -MAX_BPF_STACK or min_off > -1
        if not err and max_off > 0:
            err = True
        if not err and size < 0:
            err = True
        if err:
            if r.mask == 0:
                raise self.fail(
                    f"invalid{extra} stack R{regno} off={off} size={size}", reg=regno, kind="stack"
                )
            raise self.fail(
                f"invalid variable-offset{extra} stack R{regno} var_off={tstr(r.var_off)} off={off} size={size}",
                reg=regno,
                kind="stack",
            )
        self.grow_stack(st, -min_off)

    def grow_stack(self, st: FuncState, size: int) -> None:
        st.grow_stack(size)
        sp = self.cfg.subprogs[st.subprogno]  # type: ignore[union-attr]
        if sp.stack_depth < size:
            sp.stack_depth = size

    def check_stack_write(self, regno: int, off: int, size: int, value_regno: int) -> None:
        r = self.regs[regno]
        st = self.func_of(r)
        if r.mask == 0:
            self.check_stack_write_fixed_off(st, off + s64(r.value), size, value_regno)
        else:
            self.check_stack_write_var_off(st, regno, off, size, value_regno)

    def check_stack_write_fixed_off(
        self, st: FuncState, off: int, size: int, value_regno: int
    ) -> None:
        cur = self.frame
        slot = -off - 1
        spi = slot // REG_SIZE
        s = st.stack[spi]
        reg = cur.regs[value_regno] if value_regno >= 0 else None
        insn = self.insns[self.insn_idx]
        is_st = self.infos[self.insn_idx].kind is K.ST  # type: ignore[union-attr]
        self.mark_slot_scratched(spi)
        if reg is not None and not off % REG_SIZE and reg.type == T.SCALAR:
            fits = reg.width() <= 8 * size
            if fits:
                self.assign_scalar_id_before_mov(reg)
            self.save_register_state(s, reg, size)
            if not fits:
                s.spilled.id = 0
        elif reg is None and not off % REG_SIZE and is_st:
            tmp = Reg()
            tmp.type = T.SCALAR
            tmp.mark_known(insn.imm)
            tmp.origin = (self.insn_idx, f"the constant {insn.imm}")
            self.save_register_state(s, tmp, size)
        elif reg is not None and reg.type != T.SCALAR:
            if size != REG_SIZE:
                raise self.fail("invalid size of register spill", kind="spill")
            if st is not cur and reg.type == T.PTR_TO_STACK:
                raise self.fail(
                    "cannot spill pointers to stack into stack frame of the caller", kind="spill"
                )
            self.save_register_state(s, reg, size)
        else:
            typ = STACK_MISC
            s.spilled.mark_not_init()
            if s.types[7] == STACK_SPILL:
                for i in range(REG_SIZE):
                    if s.types[i] != STACK_INVALID:
                        s.types[i] = STACK_MISC
            if (reg is not None and reg.is_null()) or (reg is None and is_st and insn.imm == 0):
                typ = STACK_ZERO
            for i in range(size):
                s.types[(slot - i) % REG_SIZE] = typ

    def save_register_state(self, s: StackSlot, reg: Reg, size: int) -> None:
        s.spilled.assign(reg)
        i = REG_SIZE
        while i > REG_SIZE - size:
            s.types[i - 1] = STACK_SPILL
            i -= 1
        while i:
            t = s.types[i - 1]
            if t != STACK_ZERO and t != STACK_INVALID:
                s.types[i - 1] = STACK_MISC
            i -= 1

    def check_stack_write_var_off(
        self, st: FuncState, regno: int, off: int, size: int, value_regno: int
    ) -> None:
        cur = self.frame
        ptr = cur.regs[regno]
        min_off = ptr.smin + off
        max_off = ptr.smax + off + size
        value = cur.regs[value_regno] if value_regno >= 0 else None
        insn = self.insns[self.insn_idx]
        is_st = self.infos[self.insn_idx].kind is K.ST  # type: ignore[union-attr]
        writing_zero = (value is not None and value.is_null()) or (
            value is None and is_st and insn.imm == 0
        )
        for i in range(min_off, max_off):
            slot = -i - 1
            spi = slot // REG_SIZE
            s = st.stack[spi]
            k = slot % REG_SIZE
            self.mark_slot_scratched(spi)
            if writing_zero and s.types[k] == STACK_SPILL and s.is_spilled_scalar():
                if s.spilled.mask == 0 and s.spilled.value == 0:
                    continue
            s.spilled.mark_not_init()
            new = STACK_MISC
            if writing_zero and s.types[k] == STACK_ZERO:
                new = STACK_ZERO
            s.types[k] = new

    def check_stack_read(self, regno: int, off: int, size: int, dst: int) -> None:
        r = self.regs[regno]
        st = self.func_of(r)
        var = r.mask != 0
        if dst < 0 and var:
            raise self.fail(
                "variable offset stack pointer cannot be passed into helper function; "
                f"var_off={tstr(r.var_off)} off={off} size={size}",
                reg=regno,
                kind="stack",
            )
        if not var:
            self.check_stack_read_fixed_off(st, off + s64(r.value), size, dst)
        else:
            self.check_stack_range_initialized(regno, off, size, False, False, None)
            min_off = r.smin + off
            max_off = r.smax + off
            self.mark_reg_stack_read(st, min_off, max_off + size, dst)

    def check_stack_read_fixed_off(self, st: FuncState, off: int, size: int, dst: int) -> None:
        cur = self.frame
        slot = -off - 1
        spi = slot // REG_SIZE
        s = st.stack[spi]
        types = s.types
        reg = s.spilled
        self.mark_slot_scratched(spi)
        if types[7] == STACK_SPILL:
            spill_size = 1
            i = REG_SIZE - 1
            while i > 0 and types[i - 1] == STACK_SPILL:
                spill_size += 1
                i -= 1
            if size != REG_SIZE or spill_size != REG_SIZE:
                if reg.type != T.SCALAR:
                    raise self.fail("invalid size of register fill", kind="fill")
                if dst < 0:
                    return
                if size <= spill_size and not off % REG_SIZE:
                    if size == 4 and spill_size == 4 and reg.width() <= 32:
                        self.assign_scalar_id_before_mov(reg)
                    cur.regs[dst].assign(reg)
                    if reg.width() > size * 8:
                        cur.regs[dst].id = 0
                else:
                    spill_cnt = zero_cnt = 0
                    for i in range(size):
                        t = types[(slot - i) % REG_SIZE]
                        if t == STACK_SPILL:
                            spill_cnt += 1
                        elif t == STACK_ZERO:
                            zero_cnt += 1
                        elif t not in (STACK_MISC, STACK_INVALID):
                            raise self.fail(
                                f"invalid read from stack off {off}+{i} size {size}",
                                kind="stack_read",
                            )
                    d = cur.regs[dst]
                    if spill_cnt == size and reg.mask == 0 and reg.value == 0:
                        d.mark_const_zero()
                    elif zero_cnt == size:
                        d.mark_const_zero()
                    else:
                        d.mark_unknown()
                    d.origin = (self.insn_idx, f"the stack at fp{off}")
            elif dst >= 0:
                self.assign_scalar_id_before_mov(reg)
                cur.regs[dst].assign(reg)
            return
        for i in range(size):
            t = types[(slot - i) % REG_SIZE]
            if t not in (STACK_MISC, STACK_ZERO, STACK_INVALID):
                raise self.fail(
                    f"invalid read from stack off {off}+{i} size {size}", kind="stack_read"
                )
        if dst >= 0:
            self.mark_reg_stack_read(st, off, off + size, dst)

    def mark_reg_stack_read(self, st: FuncState, min_off: int, max_off: int, dst: int) -> None:
        zeros = 0
        for i in range(min_off, max_off):
            slot = -i - 1
            spi = slot // REG_SIZE
            self.mark_slot_scratched(spi)
            if st.stack[spi].types[slot % REG_SIZE] != STACK_ZERO:
                break
            zeros += 1
        d = self.frame.regs[dst]
        if zeros == max_off - min_off:
            d.mark_const_zero()
        else:
            d.mark_unknown()
        d.origin = (self.insn_idx, f"the stack at fp{min_off}")

    def check_stack_range_initialized(
        self, regno: int, off: int, size: int, zero_ok: bool, write: bool, meta: _Meta | None
    ) -> None:
        r = self.regs[regno]
        st = self.func_of(r)
        if size == 0 and not zero_ok:
            raise self.fail("invalid zero-sized read", reg=regno, kind="zero_size")
        self.check_stack_access_within_bounds(regno, off, size, write)
        if r.mask == 0:
            min_off = max_off = s64(r.value) + off
        else:
            if meta is not None and meta.raw_mode:
                meta = None
            min_off = r.smin + off
            max_off = r.smax + off
        if meta is not None and meta.raw_mode:
            meta.access_size = size
            meta.regno = regno
            return
        for i in range(min_off, max_off + size):
            slot = -i - 1
            spi = slot // REG_SIZE
            s = st.stack[spi]
            k = slot % REG_SIZE
            t = s.types[k]
            if t == STACK_MISC:
                continue
            if t in (STACK_ZERO, STACK_INVALID):
                if write:
                    s.types[k] = STACK_MISC
                continue
            if s.types[7] == STACK_SPILL:
                if write:
                    s.spilled.mark_unknown()
                    for j in range(REG_SIZE):
                        if s.types[j] != STACK_INVALID:
                            s.types[j] = STACK_MISC
                continue
            if r.mask == 0:
                raise self.fail(
                    f"invalid read from stack R{regno} off {min_off}+{i - min_off} size {size}",
                    reg=regno,
                    kind="stack_read",
                )
            raise self.fail(
                f"invalid read from stack R{regno} var_off {tstr(r.var_off)}+{i - min_off} size {size}",
                reg=regno,
                kind="stack_read",
            )

    # ------------------------------------------------------------------ atomics ------

    def check_atomic(self, insn: Instruction, info: OpInfo) -> None:
        imm = insn.imm
        if imm == BPF_LOAD_ACQ:
            self._atomic_load(insn, info)
            return
        if imm == BPF_STORE_REL:
            self._atomic_store(insn, info)
            return
        op = ATOMIC_OPS[imm]
        if info.size not in (4, 8):
            raise self.fail("invalid atomic operand size", kind="insn")
        self.check_reg_arg(insn.src, src=True)
        self.check_reg_arg(insn.dst, src=True)
        if imm == BPF_CMPXCHG:
            self.check_reg_arg(0, src=True)
        d = self.regs[insn.dst]
        if (
            d.type == T.PTR_TO_CTX
            or d.type in (T.PTR_TO_PACKET, T.PTR_TO_PACKET_META)
            or d.type == T.PTR_TO_FLOW_KEYS
            or d.type
            in (T.PTR_TO_SOCKET, T.PTR_TO_SOCK_COMMON, T.PTR_TO_TCP_SOCK, T.PTR_TO_XDP_SOCK)
        ):
            raise self.fail(
                f"BPF_ATOMIC stores into R{insn.dst} {type_str(d.type)} is not allowed",
                reg=insn.dst,
                kind="atomic",
            )
        load_reg = -1
        if op.fetch:
            load_reg = 0 if imm == BPF_CMPXCHG else insn.src
            self.check_reg_arg(load_reg)
        self.check_mem_access(
            insn.dst, insn.off, info.size, write=False, value_regno=-1, strict=True
        )
        if load_reg >= 0:
            self.check_mem_access(
                insn.dst, insn.off, info.size, write=False, value_regno=load_reg, strict=True
            )
            self.set_origin(load_reg, "the old value of an atomic operation")
        self.check_mem_access(
            insn.dst, insn.off, info.size, write=True, value_regno=-1, strict=True
        )
        _ = imm & BPF_FETCH

    def _atomic_load(self, insn: Instruction, info: OpInfo) -> None:
        self.check_reg_arg(insn.src, src=True)
        self.check_reg_arg(insn.dst, mark=False)
        s = self.regs[insn.src]
        if s.type in (T.PTR_TO_CTX, T.PTR_TO_PACKET, T.PTR_TO_PACKET_META, T.PTR_TO_FLOW_KEYS):
            raise self.fail(
                f"BPF_ATOMIC loads from R{insn.src} {type_str(s.type)} is not allowed",
                reg=insn.src,
                kind="atomic",
            )
        self.check_mem_access(
            insn.src, insn.off, info.size, write=False, value_regno=insn.dst, strict=True
        )

    def _atomic_store(self, insn: Instruction, info: OpInfo) -> None:
        self.check_reg_arg(insn.src, src=True)
        self.check_reg_arg(insn.dst, src=True)
        d = self.regs[insn.dst]
        if d.type in (T.PTR_TO_CTX, T.PTR_TO_PACKET, T.PTR_TO_PACKET_META, T.PTR_TO_FLOW_KEYS):
            raise self.fail(
                f"BPF_ATOMIC stores into R{insn.dst} {type_str(d.type)} is not allowed",
                reg=insn.dst,
                kind="atomic",
            )
        self.check_mem_access(
            insn.dst, insn.off, info.size, write=True, value_regno=insn.src, strict=True
        )

    # ------------------------------------------------------------------ ld_imm64 ------

    def check_ld_imm(self, insn: Instruction, idx: int) -> None:
        self.check_reg_arg(insn.dst)
        d = self.regs[insn.dst]
        if insn.src == 0:
            imm = ((self.insns[idx + 1].imm & U32) << 32) | (insn.imm & U32)
            d.type = T.SCALAR
            d.mark_known(imm)
            d.origin = (idx, f"the constant {snum(imm)}")
            return
        d.mark_known_zero()
        if insn.src == BPF_PSEUDO_FUNC:
            if not self.has_func_info:
                raise self.fail("missing btf func_info", kind="btf")
            d.type = T.PTR_TO_FUNC
            d.subprogno = self.cfg.subprog_of(idx + insn.imm + 1)  # type: ignore[union-attr]
            d.origin = (idx, "a callback address")
            return
        if insn.src in (
            BPF_PSEUDO_MAP_FD,
            BPF_PSEUDO_MAP_IDX,
            BPF_PSEUDO_MAP_VALUE,
            BPF_PSEUDO_MAP_IDX_VALUE,
        ):
            m, off = self.maps_by_slot[idx]
            d.map = m
            if insn.src in (BPF_PSEUDO_MAP_VALUE, BPF_PSEUDO_MAP_IDX_VALUE):
                d.type = T.PTR_TO_MAP_VALUE
                d.off = off or 0
                d.origin = (idx, f"the address of map '{m.name}' value (global data)")
            else:
                d.type = T.CONST_PTR_TO_MAP
                d.origin = (idx, f"the map '{m.name}'")
            return
        raise self.fail(
            "BTF variable addresses (ld_imm64 btf_id) are not modelled by netbpf",
            kind="unsupported",
        )

    def check_ld_abs(self, insn: Instruction, info: OpInfo) -> None:
        if self.prog_type not in _LD_ABS_TYPES:
            raise self.fail(
                "BPF_LD_[ABS|IND] instructions not allowed for this program type", kind="ld_abs"
            )
        if self.insn_idx in self.field_errors:
            raise self.fail(self.field_errors[self.insn_idx], kind="insn")
        self.check_reg_arg(6, src=True)
        self.check_resource_leak(False, True, "BPF_LD_[ABS|IND]")
        if self.regs[6].type != T.PTR_TO_CTX:
            raise self.fail(
                "at the time of BPF_LD_ABS|IND R6 != pointer to skb", reg=6, kind="ld_abs"
            )
        if info.kind is K.LD_IND:
            self.check_reg_arg(insn.src, src=True)
        self.check_ptr_off_reg(self.regs[6], 6)
        for i in range(6):
            self.regs[i].mark_not_init()
            self.mark_reg_scratched(i)
        self.regs[0].mark_unknown()
        self.set_origin(0, "a legacy packet load (LD_ABS/LD_IND)")

    # ----------------------------------------------------------------- branches ------

    def check_may_goto(self, insn: Instruction) -> None:
        """The current path takes the exit (the loop budget ran out); a pushed one
        runs the body once more, its imprecise scalars widened against the previous
        iteration so the loop converges."""
        idx = self.insn_idx
        prev = self.find_prev_entry(self.cur.parent, idx) if self.cur.parent is not None else None
        q = self.push_stack(idx + 1, idx)
        q.may_goto_depth += 1
        if prev is not None:
            self.widen_imprecise_scalars(prev, q, idx)
        self.insn_idx += insn.off + 1

    def find_prev_entry(self, cur: VState, idx: int) -> VState | None:
        """A checkpoint at ``idx`` on the current path from an earlier iteration."""
        for e in self.explored.get(idx, ()):
            st = e.st
            if (
                st.insn_idx == idx
                and st.branches
                and len(st.frames) == len(cur.frames)
                and all(a.callsite == b.callsite for a, b in zip(st.frames, cur.frames))
                and st.dfs_depth < cur.dfs_depth
            ):
                return st
        return None

    def widen_imprecise_scalars(self, old: VState, cur: VState, idx: int) -> None:
        """Scalars of the current frame that differ from the previous iteration and
        cannot reach a check become unknown (sound: only precision is lost)."""
        rel = self.rel.widen[idx]
        fo, fc = old.frames[-1], cur.frames[-1]
        idmap: dict[int, int] = {}
        rev: dict[int, int] = {}
        for i in range(10):
            if rel >> i & 1:
                continue
            self._maybe_widen(fo.regs[i], fc.regs[i], idmap, rev)
        for spi in range(min(len(fo.stack), len(fc.stack))):
            if rel >> (SLOT0 + spi) & 1:
                continue
            if fo.stack[spi].types[7] == STACK_SPILL and fc.stack[spi].types[7] == STACK_SPILL:
                self._maybe_widen(fo.stack[spi].spilled, fc.stack[spi].spilled, idmap, rev)

    def _maybe_widen(self, o: Reg, c: Reg, idmap: dict[int, int], rev: dict[int, int]) -> None:
        if o.type != T.SCALAR or c.type != T.SCALAR:
            return
        if self._regs_exact(o, c, idmap, rev):
            return
        origin = c.origin
        c.mark_unknown()
        c.origin = origin

    def check_cond_jmp_op(self, insn: Instruction, info: OpInfo) -> None:
        this = self.cur
        regs = this.frames[-1].regs
        op = info.op
        self.check_reg_arg(insn.dst, src=True)
        dst = regs[insn.dst]
        if info.use_src_reg:
            self.check_reg_arg(insn.src, src=True)
            src = regs[insn.src]
        else:
            # shared and read-only: copied below before anything refines it
            src = _const_reg(insn.imm)
        jmp32 = info.cls == BPF_JMP32
        pred = is_branch_taken(dst, src, op, jmp32)
        idx = self.insn_idx
        if pred >= 0 and idx not in self.predicted:
            # state pruning in this run assumed this jump's operands decide nothing:
            # the run goes on for a while (to find more such jumps at once) but its
            # verdict does not count (see precision.py)
            if not self.new_predicted:
                self.abandon_at = self.insn_processed + ABANDON_AFTER
            self.new_predicted.add(idx)
        aux = self.aux[idx]
        if pred >= 0:
            aux.branch = pred if aux.branch in (-1, pred) else 2
        else:
            aux.branch = 2
        if pred == 1:
            if self.log_level:
                self.print_insn_state(this)
            self.insn_idx += insn.off + 1
            return
        if pred == 0:
            if self.log_level:
                self.print_insn_state(this)
            self.insn_idx += 1
            return
        linked: list[tuple[int, bool, int]] = []
        if info.use_src_reg and src.type == T.SCALAR and src.id:
            self._collect_linked(this, src.id, linked)
        if dst.type == T.SCALAR and dst.id:
            self._collect_linked(this, dst.id, linked)
        other = self.push_stack(idx + insn.off + 1, idx)
        oregs = other.frames[-1].regs
        if info.use_src_reg:
            self.reg_set_min_max(oregs[insn.dst], oregs[insn.src], dst, src, op, jmp32)
        else:
            fake0 = src.copy()
            fake1 = src.copy()
            self.reg_set_min_max(oregs[insn.dst], fake0, dst, fake1, op, jmp32)
        if info.use_src_reg and src.type == T.SCALAR and src.id:
            self.sync_linked_regs(this, src, linked)
            self.sync_linked_regs(other, oregs[insn.src], linked)
        if dst.type == T.SCALAR and dst.id:
            self.sync_linked_regs(this, dst, linked)
            self.sync_linked_regs(other, oregs[insn.dst], linked)
        if (
            not jmp32
            and info.use_src_reg
            and src.type != T.SCALAR
            and dst.type != T.SCALAR
            and bool(src.type & T.MAYBE_NULL) != bool(dst.type & T.MAYBE_NULL)
            and src.type & T.BASE_MASK != T.PTR_TO_BTF_ID
            and dst.type & T.BASE_MASK != T.PTR_TO_BTF_ID
        ):
            eq = oregs if op == JEQ else regs if op == JNE else None
            if eq is not None:
                if src.type & T.MAYBE_NULL:
                    _mark_ptr_not_null(eq[insn.src])
                else:
                    _mark_ptr_not_null(eq[insn.dst])
        if (
            not jmp32
            and not info.use_src_reg
            and insn.imm == 0
            and op in (JEQ, JNE)
            and dst.type & T.MAYBE_NULL
        ):
            self.mark_ptr_or_null_regs(this, insn.dst, op == JNE)
            self.mark_ptr_or_null_regs(other, insn.dst, op == JEQ)
        elif info.use_src_reg and not jmp32:
            self.try_match_pkt_pointers(op, insn, dst, regs[insn.src], this, other)
        self.print_insn_state(this)
        self.insn_idx += 1

    def reg_set_min_max(self, t1: Reg, t2: Reg, f1: Reg, f2: Reg, op: int, jmp32: bool) -> None:
        if f1.type != T.SCALAR or f2.type != T.SCALAR:
            return
        refine_cond_op(f1, f2, REV[op], jmp32)
        f1.sync()
        f2.sync()
        refine_cond_op(t1, t2, op, jmp32)
        t1.sync()
        t2.sync()
        for r, name in (
            (t1, "true_reg1"),
            (t2, "true_reg2"),
            (f1, "false_reg1"),
            (f2, "false_reg2"),
        ):
            self.reg_bounds_sanity(r, name)

    def _collect_linked(self, st: VState, rid: int, out: list[tuple[int, bool, int]]) -> None:
        """collect_linked_regs: live registers and spilled scalars of every frame that
        share ``rid`` (at most MAX_LINKED_REGS; the rest lose their id)."""
        base = rid & ~_ID_FLAGS
        cfg = self.cfg
        assert cfg is not None
        nf = len(st.frames)
        for fi in range(nf - 1, -1, -1):
            f = st.frames[fi]
            at = st.insn_idx if fi == nf - 1 else st.frames[fi + 1].callsite
            live = cfg.live_before[at]
            for j in range(10):
                if not live >> j & 1:
                    continue
                self._push_linked(f.regs[j], base, (fi, True, j), out)
            for spi, slot in enumerate(f.stack):
                if slot.types[7] == STACK_SPILL:
                    self._push_linked(slot.spilled, base, (fi, False, spi), out)

    @staticmethod
    def _push_linked(
        r: Reg, base: int, where: tuple[int, bool, int], out: list[tuple[int, bool, int]]
    ) -> None:
        if r.type != T.SCALAR or (r.id & ~_ID_FLAGS) != base:
            return
        if len(out) < MAX_LINKED_REGS:
            out.append(where)
        else:
            r.id = 0

    def sync_linked_regs(self, st: VState, known: Reg, linked: list[tuple[int, bool, int]]) -> None:
        base = known.id & ~_ID_FLAGS
        for fi, is_reg, k in linked:
            f = st.frames[fi]
            r = f.regs[k] if is_reg else f.stack[k].spilled
            if r.type != T.SCALAR or r is known:
                continue
            if (r.id & ~_ID_FLAGS) != base:
                continue
            if (
                not (r.id & BPF_ADD_AS_FAKE_ID) and not (known.id & BPF_ADD_AS_FAKE_ID)
            ) or r.off == known.off:
                origin = r.origin
                r.assign(known)
                r.origin = origin
            else:
                saved_off = r.off
                saved_id = r.id
                origin = r.origin
                fake = Reg()
                fake.type = T.SCALAR
                fake.mark_known(s32(saved_off) - s32(known.off))
                r.assign(known)
                r.off = saved_off
                r.id = saved_id if saved_id else r.id
                r.origin = origin
                scalar32_add(r, fake)
                scalar64_add(r, fake)
                r.var_off = tadd(r.var_off, fake.var_off)
                if (r.id | known.id) & BPF_ADD_AS_FAKE_ID32:
                    r.zext_32_to_64()
                r.sync()

    def mark_ptr_or_null_regs(self, st: VState, regno: int, is_null: bool) -> None:
        r = st.frames[-1].regs[regno]
        ref = r.ref_obj_id
        rid = r.id
        if ref and ref == rid and is_null:
            st.refs = [x for x in st.refs if x.id != rid]
        for reg in st.all_regs():
            if reg.type & T.MAYBE_NULL and reg.id == rid:
                if is_null:
                    origin = reg.origin
                    reg.type = T.SCALAR
                    reg.mark_known(0)
                    reg.id = 0
                    reg.ref_obj_id = 0
                    reg.map = None
                    reg.origin = origin
                    continue
                _mark_ptr_not_null(reg)
                reg.id = 0 if not _may_point_to_spin_lock(reg) else reg.id

    def try_match_pkt_pointers(
        self, op: int, insn: Instruction, d: Reg, s: Reg, this: VState, other: VState
    ) -> bool:
        P, E, M = T.PTR_TO_PACKET, T.PTR_TO_PACKET_END, T.PTR_TO_PACKET_META
        fwd = (d.type == P and s.type == E) or (d.type == M and _init_pkt(s, P))
        back = (d.type == E and s.type == P) or (_init_pkt(d, P) and s.type == M)
        if op == JGT:
            if fwd:
                self.find_good_pkt_pointers(this, d, d.type, False)
                self.mark_pkt_end(other, insn.dst, True)
            elif back:
                self.find_good_pkt_pointers(other, s, s.type, True)
                self.mark_pkt_end(this, insn.src, False)
            else:
                return False
        elif op == JLT:
            if fwd:
                self.find_good_pkt_pointers(other, d, d.type, True)
                self.mark_pkt_end(this, insn.dst, False)
            elif back:
                self.find_good_pkt_pointers(this, s, s.type, False)
                self.mark_pkt_end(other, insn.src, True)
            else:
                return False
        elif op == JGE:
            if fwd:
                self.find_good_pkt_pointers(this, d, d.type, True)
                self.mark_pkt_end(other, insn.dst, False)
            elif back:
                self.find_good_pkt_pointers(other, s, s.type, False)
                self.mark_pkt_end(this, insn.src, True)
            else:
                return False
        elif op == JLE:
            if fwd:
                self.find_good_pkt_pointers(other, d, d.type, False)
                self.mark_pkt_end(this, insn.dst, True)
            elif back:
                self.find_good_pkt_pointers(this, s, s.type, True)
                self.mark_pkt_end(other, insn.src, False)
            else:
                return False
        else:
            return False
        return True

    def find_good_pkt_pointers(self, st: VState, d: Reg, typ: int, right_open: bool) -> None:
        if d.off < 0 or (d.off == 0 and right_open):
            return
        if d.umax > MAX_PACKET_OFF or d.umax + d.off > MAX_PACKET_OFF:
            return
        new_range = d.off + (1 if right_open else 0)
        did = d.id
        for r in st.all_regs():
            if r.type == typ and r.id == did:
                r.range = max(r.range, new_range)

    def mark_pkt_end(self, st: VState, regno: int, range_open: bool) -> None:
        r = st.frames[-1].regs[regno]
        if r.type != T.PTR_TO_PACKET:
            return
        r.range = BEYOND_PKT_END if range_open else AT_PKT_END

    # ------------------------------------------------------------------- calls ------

    def check_func_call(self, insn: Instruction, idx: int) -> str | None:
        st = self.cur
        target = idx + insn.imm + 1
        self.aux[idx].call_target = target
        if len(st.frames) >= MAX_CALL_FRAMES:
            raise self.fail(
                f"the call stack of {len(st.frames) + 1} frames is too deep", kind="frames"
            )
        sub = self.cfg.subprog_of(target)  # type: ignore[union-attr]
        if sub in self.globals:
            self.check_global_call(idx, sub)
            return None
        caller = st.frames[-1]
        callee = FuncState(len(st.frames), idx, sub)
        for i in range(1, 6):
            callee.regs[i].assign(caller.regs[i])
        callee.regs[10].type = T.PTR_TO_STACK
        callee.regs[10].mark_known(0)
        callee.regs[10].frameno = callee.frameno
        st.frames.append(callee)
        for i in range(6):
            caller.regs[i].mark_not_init()
        self.insn_idx = target
        if self.log_level:
            self.verbose("caller:\n")
            self.print_state(st, True, frameno=len(st.frames) - 2)
            self.verbose("callee:\n")
            self.print_state(st, True)
        # Linux goes on into the callee without a "from X to Y:" line: its next line
        # is "7: frame1: R1=... R10=fp0", the callee's state as scratched by the call
        self.mark_all_scratched()
        return None

    def setup_callback(self, meta: _Meta, idx: int, func_id: int) -> None:
        """push_callback_call: explore the callback body as a new frame from here;
        this path continues as if the callback was not called (yet)."""
        st = self.cur
        caller = st.frames[-1]
        sub = meta.subprogno
        assert self.cfg is not None
        start = self.cfg.subprogs[sub].start
        self.cfg.subprogs[sub].is_cb = True
        if len(st.frames) >= MAX_CALL_FRAMES:
            raise self.fail(
                f"the call stack of {len(st.frames) + 1} frames is too deep", kind="frames"
            )
        cb = self.push_stack(start, idx)
        ccaller = cb.frames[-1]
        callee = FuncState(len(cb.frames), idx, sub)
        callee.regs[10].type = T.PTR_TO_STACK
        callee.regs[10].mark_known(0)
        callee.regs[10].frameno = callee.frameno
        if func_id == 181:  # bpf_loop: callback(index, ctx)
            callee.regs[1].mark_unknown()
            callee.regs[1].origin = (idx, "the bpf_loop index")
            callee.regs[2].assign(ccaller.regs[3])
        else:  # bpf_for_each_map_elem: callback(map, key, value, ctx)
            m = ccaller.regs[1].map
            if m.type not in (
                MapType.ARRAY,
                MapType.PERCPU_ARRAY,
                MapType.HASH,
                MapType.PERCPU_HASH,
                MapType.LRU_HASH,
                MapType.LRU_PERCPU_HASH,
            ):
                raise self.fail("callback function not allowed for map", kind="callback")
            callee.regs[1].assign(ccaller.regs[1])
            callee.regs[2].mark_known_zero()
            callee.regs[2].type = T.PTR_TO_MAP_KEY
            callee.regs[2].map = m
            callee.regs[3].mark_known_zero()
            callee.regs[3].type = T.PTR_TO_MAP_VALUE
            callee.regs[3].map = m
            callee.regs[3].origin = (idx, f"the map '{m.name}' element given to the callback")
            callee.regs[4].assign(ccaller.regs[3])
        callee.in_callback_fn = True
        callee.callback_ret_range = (0, 1)
        cb.frames.append(callee)
        cb.callback_unroll_depth += 1
        ccaller.callback_depth += 1
        caller.callback_depth = 0

    def prepare_func_exit(self) -> str:
        st = self.cur
        callee = st.frames[-1]
        r0 = callee.regs[0]
        if r0.type == T.PTR_TO_STACK:
            raise self.fail("cannot return stack pointer to the caller", reg=0, kind="ret_stack")
        caller = st.frames[-2]
        if callee.in_callback_fn:
            if r0.type != T.SCALAR:
                raise self.fail("R0 not a scalar value", reg=0, kind="cb_ret")
            lo, hi = callee.callback_ret_range
            if not (lo <= r0.smin and r0.smax <= hi):
                raise self.fail(
                    self._invalid_scalar_msg(r0, (lo, hi), "At callback return", "R0"),
                    reg=0,
                    kind="retval",
                )
            self.insn_idx = callee.callsite
        else:
            caller.regs[0].assign(r0)
            self.insn_idx = callee.callsite + 1
        if self.log_level:
            self.verbose("returning from callee:\n")
            self.print_state(st, True)
            self.verbose(f"to caller at {self.insn_idx}:\n")
            self.print_state(st, True, frameno=len(st.frames) - 2)
        st.frames.pop()
        if callee.in_callback_fn:
            prev = self.find_prev_entry(st, self.insn_idx)
            if prev is not None:
                self.widen_imprecise_scalars(prev, st, self.insn_idx)
        return "frame"

    def process_exit(self) -> str:
        st = self.cur
        self.check_resource_leak(False, len(st.frames) == 1, "BPF_EXIT instruction in main prog")
        if len(st.frames) > 1:
            return self.prepare_func_exit()
        self.check_return_code()
        return "exit"

    def check_resource_leak(self, exception_exit: bool, check_lock: bool, prefix: str) -> None:
        st = self.cur
        if check_lock and any(r.kind == "lock" for r in st.refs):
            raise self.fail(f"{prefix} cannot be used inside bpf_spin_lock-ed region", kind="lock")
        if not exception_exit and len(st.frames) > 1:
            return
        leaked = [r for r in st.refs if r.kind == "ptr"]
        if leaked:
            for r in leaked:
                self.note(f"Unreleased reference id={r.id} alloc_insn={r.insn_idx}")
            held = "; ".join(
                f"id={r.id} from {r.what or 'a helper'} at insn {r.insn_idx}" for r in leaked
            )
            raise self.fail(
                f"{prefix} would lead to reference leak",
                kind="ref_leak",
                why=f"still held on this path: {held} (never released after being acquired)",
            )

    def _invalid_scalar_msg(self, r: Reg, rng: tuple[int, int], ctx: str, name: str) -> str:
        parts = [f"{ctx} the register {name} has"]
        unknown = True
        if r.smin > S64_MIN:
            parts.append(f" smin={r.smin}")
            unknown = False
        if r.smax < S64_MAX:
            parts.append(f" smax={r.smax}")
            unknown = False
        if unknown:
            parts.append(" unknown scalar value")
        parts.append(f" should have been in [{rng[0]}, {rng[1]}]")
        return "".join(parts)

    def return_range(self) -> tuple[int, int] | None:
        """The range the program's return value must lie in (None: any), computed
        once per run (in ``__init__``): it is asked at every exit, and comparing
        enum members is slow."""
        return self._return_range

    def _compute_return_range(self) -> tuple[int, int] | None:
        pt, at = self.prog_type, self.attach_type
        A = AttachType
        if pt == ProgramType.CGROUP_SOCK_ADDR:
            if at in (
                A.CGROUP_UDP4_RECVMSG,
                A.CGROUP_UDP6_RECVMSG,
                A.CGROUP_UNIX_RECVMSG,
                A.CGROUP_INET4_GETPEERNAME,
                A.CGROUP_INET6_GETPEERNAME,
                A.CGROUP_UNIX_GETPEERNAME,
                A.CGROUP_INET4_GETSOCKNAME,
                A.CGROUP_INET6_GETSOCKNAME,
                A.CGROUP_UNIX_GETSOCKNAME,
            ):
                return (1, 1)
            if at in (A.CGROUP_INET4_BIND, A.CGROUP_INET6_BIND):
                return (0, 3)
            return (0, 1)
        if pt == ProgramType.CGROUP_SKB:
            return (0, 3) if at == A.CGROUP_INET_EGRESS else (0, 1)
        if pt in (
            ProgramType.CGROUP_SOCK,
            ProgramType.SOCK_OPS,
            ProgramType.CGROUP_DEVICE,
            ProgramType.CGROUP_SYSCTL,
            ProgramType.CGROUP_SOCKOPT,
        ):
            return (0, 1)
        if pt == ProgramType.SK_LOOKUP:
            return (0, 1)
        if pt == ProgramType.NETFILTER:
            return (0, 1)
        return None

    def check_return_code(self) -> None:
        self.check_reg_arg(0, src=True)
        r0 = self.regs[0]
        if self.frame.subprogno:
            if r0.type != T.SCALAR:
                raise self.fail(
                    "At subprogram exit the register R0 is not a scalar value "
                    f"({type_str(r0.type)})",
                    reg=0,
                    kind="retval",
                )
            return
        rng = self.return_range()
        if rng is None:
            return
        if r0.type != T.SCALAR:
            raise self.fail(
                f"At program exit the register R0 is not a known value ({type_str(r0.type)})",
                reg=0,
                kind="retval",
            )
        if not (rng[0] <= r0.smin and r0.smax <= rng[1]):
            raise self.fail(
                self._invalid_scalar_msg(r0, rng, "At program exit", "R0"), reg=0, kind="retval"
            )

    # ---------------------------------------------------------------- helpers ------

    def check_helper_call(self, insn: Instruction, idx: int) -> str | None:
        func_id = insn.imm
        self.aux[idx].call_target = func_id
        name = helper_name(func_id)
        proto = PROTOS.get(func_id)
        if func_id < 0 or func_id > 211:
            raise self.fail(f"invalid func unknown#{func_id}", kind="helper")
        if proto is None or not helper_allowed(func_id, self.ptype_name, self.attach_name):
            raise self.fail(
                f"program of this type cannot use helper {name}#{func_id}", kind="helper_type"
            )
        if proto.unsupported:
            raise self.fail(
                f"netbpf does not model helper {name}#{func_id} ({proto.unsupported})",
                kind="unsupported",
            )
        if not self.gpl and proto.gpl_only:
            raise self.fail(
                "cannot call GPL-restricted function from non-GPL compatible program", kind="gpl"
            )
        meta = _Meta(func_id=func_id, pkt_access=proto.pkt_access)
        args = args_for(proto, self.ptype_name)
        for i, arg in enumerate(args):
            self.check_func_arg(i, arg, args, meta, proto)
        # record_func_map
        if meta.map is not None and not meta.map.can_write and func_id in (2, 3, 87, 88):
            raise self.fail("write into map forbidden", kind="map_rdonly")
        # record_func_key: Linux 6.18 marks the tail call index precise, and that
        # backtracking trips over a callback frame (a kernel-internal check, but a
        # refusal all the same)
        if func_id == 12 and self.frame.in_callback_fn:
            raise self.fail("verifier bug: callback unexpected regs 1", kind="verifier_bug")
        regs = self.regs
        if meta.access_size:
            for i in range(meta.access_size):
                self.check_mem_access(meta.regno, i, 1, write=True, value_regno=-1)
        if meta.release_regno:
            if meta.ref_obj_id:
                if not self.release_reference(meta.ref_obj_id):
                    raise self.fail(
                        f"func {name}#{func_id} reference has not been acquired before", kind="ref"
                    )
            elif not regs[meta.release_regno].is_null():
                raise self.fail(
                    f"func {name}#{func_id} reference has not been acquired before", kind="ref"
                )
        if func_id == 12:  # tail_call
            self.check_resource_leak(False, True, "tail_call")
        elif func_id == 81:  # get_local_storage
            if not regs[2].is_null():
                raise self.fail(
                    "get_local_storage() doesn't support non-zero flags", kind="helper_arg"
                )
        elif func_id == 164:
            self.setup_callback(meta, idx, func_id)
        elif func_id == 181:
            r1 = regs[1]
            if self.frame.callback_depth < r1.umax:
                self.setup_callback(meta, idx, func_id)
            else:
                self.frame.callback_depth = 0
                if self.log_level >= 2:
                    self.verbose(
                        f"frame{len(self.cur.frames) - 1} bpf_loop iteration limit reached\n"
                    )
        elif func_id == 165:  # snprintf: the format must be a constant string
            pass
        regs = self.regs
        for i in range(6):
            regs[i].mark_not_init()
            self.mark_reg_scratched(i)
        r0 = regs[0]
        ret = proto.ret
        nullable = ret.endswith("?")
        base = ret.rstrip("?")
        if base == "int":
            r0.mark_unknown()
        elif base == "void":
            r0.type = T.NOT_INIT
        elif base == "map_value":
            r0.mark_known_zero()
            m = meta.map
            assert m is not None
            if (
                func_id == 1
                and m.type in (MapType.ARRAY, MapType.PERCPU_ARRAY)
                and 0 <= meta.const_map_key < m.max_entries
            ):
                nullable = False
            r0.map = m
            r0.type = T.PTR_TO_MAP_VALUE | (T.MAYBE_NULL if nullable else 0)
            if not nullable and m.spin_lock_off is not None:
                r0.id = self.new_id()
        elif base in RET_TYPES:
            r0.mark_known_zero()
            r0.type = RET_TYPES[base] | (T.MAYBE_NULL if nullable else 0)
            if base == "ringbuf_mem":
                r0.mem_size = meta.mem_size
        elif base.startswith("btf:"):
            r0.mark_known_zero()
            r0.type = T.PTR_TO_BTF_ID | (T.MAYBE_NULL if nullable else 0)
            r0.btf_name = base[4:]
        else:  # pragma: no cover - table error
            raise self.fail(f"unknown return type of func {name}#{func_id}", kind="internal")
        if r0.type & T.MAYBE_NULL:
            r0.id = self.new_id()
        if proto.ptr_cast:
            r0.ref_obj_id = meta.ref_obj_id
        elif proto.acquire or (
            func_id == 1
            and meta.map is not None
            and meta.map.type in (MapType.SOCKMAP, MapType.SOCKHASH)
        ):
            rid = self.new_id()
            self.cur.refs.append(RefState(rid, idx, "ptr", name))
            r0.id = rid
            r0.ref_obj_id = rid
        r0.origin = (idx, f"{name}" + (" (may be NULL)" if r0.type & T.MAYBE_NULL else ""))
        self.check_map_func_compatibility(meta.map, func_id, name)
        if proto.changes_pkt_data:
            self.clear_all_pkt_pointers()
        return None

    def check_func_arg(
        self, i: int, arg: Arg, args: tuple[Arg, ...], meta: _Meta, proto: Proto
    ) -> None:
        regno = i + 1
        self.check_reg_arg(regno, src=True)
        reg = self.regs[regno]
        kind = arg.kind
        if kind == "any":
            return
        if reg.type in (T.PTR_TO_PACKET, T.PTR_TO_PACKET_META, T.PTR_TO_PACKET_END):
            if not (meta.pkt_access and self.prog_type in _PKT_READ):
                raise self.fail(
                    "helper access to the packet is not allowed", reg=regno, kind="helper_pkt"
                )
        if (
            kind == "value"
            and meta.map is not None
            and meta.map.type in (MapType.SOCKMAP, MapType.SOCKHASH)
        ):
            if arg.uninit or arg.maybe_null:
                raise self.fail("invalid arg_type for sockmap/sockhash", kind="helper_arg")
            arg = Arg("btf_sock")
            kind = "btf_sock"
        if reg.is_null() and arg.maybe_null:
            pass
        else:
            self.check_reg_type(regno, arg, meta)
            self.check_func_arg_reg_off(reg, regno, arg)
        if arg.release:
            if not reg.ref_obj_id and not reg.is_null():
                raise self.fail(
                    f"R{regno} must be referenced when passed to release function",
                    reg=regno,
                    kind="ref",
                )
            meta.release_regno = regno
        if reg.ref_obj_id:
            if meta.ref_obj_id:
                raise self.fail(
                    f"more than one arg with ref_obj_id R{regno} {reg.ref_obj_id} {meta.ref_obj_id}",
                    reg=regno,
                    kind="ref",
                )
            meta.ref_obj_id = reg.ref_obj_id
        if kind == "map":
            meta.map = reg.map
        elif kind == "key":
            assert meta.map is not None
            self.check_helper_mem_access(regno, meta.map.key_size, False, False, None)
            if meta.map.type in (MapType.ARRAY, MapType.PERCPU_ARRAY):
                meta.const_map_key = self.get_constant_map_key(reg, meta.map.key_size)
        elif kind == "value":
            if arg.maybe_null and reg.is_null():
                return
            assert meta.map is not None
            meta.raw_mode = arg.uninit
            self.check_helper_mem_access(regno, meta.map.value_size, arg.write, False, meta)
        elif kind == "func":
            meta.subprogno = reg.subprogno
        elif kind == "mem":
            meta.raw_mode = arg.uninit
            if arg.fixed:
                if not (reg.is_null() and arg.maybe_null):
                    self.check_helper_mem_access(regno, arg.fixed, arg.write, False, meta)
                    if arg.aligned:
                        self.check_ptr_alignment(reg, 0, arg.fixed, True)
        elif kind in ("size", "size0"):
            prev = args[i - 1]
            self.check_mem_size_reg(reg, regno, prev.write, kind == "size0", meta)
        elif kind == "alloc0":
            if reg.mask != 0:
                raise self.fail(f"R{regno} is not a known constant'", reg=regno, kind="helper_arg")
            meta.mem_size = reg.value
        elif kind == "const_str":
            self.check_reg_const_str(reg, regno)
        elif kind == "spin_lock":
            self.process_spin_lock(regno, meta.func_id == 93)

    _COMPAT: dict[str, tuple[int, ...]] = {
        "map": (T.CONST_PTR_TO_MAP,),
        "key": (
            T.PTR_TO_STACK,
            T.PTR_TO_PACKET,
            T.PTR_TO_PACKET_META,
            T.PTR_TO_MAP_KEY,
            T.PTR_TO_MAP_VALUE,
            T.PTR_TO_MEM,
            T.PTR_TO_MEM | T.MEM_RINGBUF,
            T.PTR_TO_BUF,
            T.PTR_TO_BTF_ID | T.PTR_TRUSTED,
        ),
        "ctx": (T.PTR_TO_CTX,),
        "sock_common": (
            T.PTR_TO_SOCK_COMMON,
            T.PTR_TO_SOCKET,
            T.PTR_TO_TCP_SOCK,
            T.PTR_TO_XDP_SOCK,
        ),
        "btf_sock": (
            T.PTR_TO_SOCK_COMMON,
            T.PTR_TO_SOCKET,
            T.PTR_TO_TCP_SOCK,
            T.PTR_TO_XDP_SOCK,
            T.PTR_TO_BTF_ID,
            T.PTR_TO_BTF_ID | T.PTR_TRUSTED,
        ),
        "sock": (T.PTR_TO_SOCKET,),
        "size": (T.SCALAR,),
        "size0": (T.SCALAR,),
        "alloc0": (T.SCALAR,),
        "ringbuf": (T.PTR_TO_MEM | T.MEM_RINGBUF,),
        "func": (T.PTR_TO_FUNC,),
        "stack": (T.PTR_TO_STACK,),
        "const_str": (T.PTR_TO_MAP_VALUE,),
        "spin_lock": (T.PTR_TO_MAP_VALUE, T.PTR_TO_BTF_ID | T.MEM_ALLOC),
    }

    def check_reg_type(self, regno: int, arg: Arg, meta: _Meta) -> None:
        reg = self.regs[regno]
        kind = arg.kind
        compat = self._COMPAT.get(kind) or self._COMPAT["key"]
        t = reg.type
        if arg.rdonly:
            t &= ~T.MEM_RDONLY
        if arg.maybe_null:
            t &= ~T.MAYBE_NULL
        if t in compat:
            if (
                kind == "btf_sock"
                and reg.base == T.PTR_TO_BTF_ID
                and not _is_sock_btf(reg.btf_name)
            ):
                raise self.fail(
                    f"R{regno} is of type {reg.btf_name} but sock_common is expected",
                    reg=regno,
                    kind="helper_arg",
                )
            return
        names = ", ".join(type_str(c) for c in compat)
        raise self.fail(
            f"R{regno} type={type_str(reg.type)} expected={names}", reg=regno, kind="helper_arg"
        )

    def check_func_arg_reg_off(self, reg: Reg, regno: int, arg: Arg) -> None:
        if arg.release:
            if reg.off:
                raise self.fail(
                    f"R{regno} must have zero offset when passed to release func or trusted arg to kfunc",
                    reg=regno,
                    kind="ptr_off",
                )
            self.check_ptr_off_reg(reg, regno)
            return
        t = reg.type
        if t in (
            T.PTR_TO_STACK,
            T.PTR_TO_PACKET,
            T.PTR_TO_PACKET_META,
            T.PTR_TO_MAP_KEY,
            T.PTR_TO_MAP_VALUE,
            T.PTR_TO_MEM,
            T.PTR_TO_MEM | T.MEM_RDONLY,
            T.PTR_TO_MEM | T.MEM_RINGBUF,
            T.PTR_TO_BUF,
            T.PTR_TO_BUF | T.MEM_RDONLY,
            T.PTR_TO_ARENA,
            T.SCALAR,
        ):
            return
        if t & T.BASE_MASK == T.PTR_TO_BTF_ID:
            self.check_ptr_off_reg(reg, regno, fixed_off_ok=True)
            return
        self.check_ptr_off_reg(reg, regno)

    def check_helper_mem_access(
        self, regno: int, size: int, write: bool, zero_ok: bool, meta: _Meta | None
    ) -> None:
        reg = self.regs[regno]
        base = reg.type & T.BASE_MASK
        if reg.type in (T.PTR_TO_PACKET, T.PTR_TO_PACKET_META):
            self.check_packet_access(regno, reg.off, size, zero_ok)
            return
        if reg.type == T.PTR_TO_MAP_KEY:
            if write:
                raise self.fail(
                    f"R{regno} cannot write into {type_str(reg.type)}", reg=regno, kind="rdonly"
                )
            self.check_mem_region_access(regno, reg.off, size, reg.map.key_size, False)
            return
        if reg.type == T.PTR_TO_MAP_VALUE:
            self.check_map_access_type(regno, reg.off, size, write)
            self.check_map_access(regno, reg.off, size, zero_ok)
            return
        if base == T.PTR_TO_MEM and not reg.type & T.MAYBE_NULL:
            if reg.type & T.MEM_RDONLY and write:
                raise self.fail(
                    f"R{regno} cannot write into {type_str(reg.type)}", reg=regno, kind="rdonly"
                )
            self.check_mem_region_access(regno, reg.off, size, reg.mem_size, zero_ok)
            return
        if reg.type == T.PTR_TO_STACK:
            self.check_stack_range_initialized(regno, reg.off, size, zero_ok, write, meta)
            return
        if zero_ok and size == 0 and reg.is_null():
            return
        raise self.fail(
            f"R{regno} type={type_str(reg.type)} expected={type_str(T.PTR_TO_STACK)}",
            reg=regno,
            kind="helper_arg",
        )

    def check_mem_size_reg(
        self, reg: Reg, regno: int, write: bool, zero_ok: bool, meta: _Meta
    ) -> None:
        meta.msize_max_value = reg.umax
        m: _Meta | None = meta if reg.mask == 0 else None
        if reg.smin < 0:
            raise self.fail(
                f"R{regno} min value is negative, either use unsigned or 'var &= const'",
                reg=regno,
                kind="size",
            )
        if reg.umin == 0 and not zero_ok:
            raise self.fail(
                f"R{regno} invalid zero-sized read: u64=[{reg.umin},{s64(reg.umax)}]",
                reg=regno,
                kind="size",
            )
        if reg.umax >= BPF_MAX_VAR_SIZ:
            raise self.fail(
                f"R{regno} unbounded memory access, use 'var &= const' or 'if (var < const)'",
                reg=regno,
                kind="size",
            )
        self.check_helper_mem_access(regno - 1, reg.umax, write, zero_ok, m)
        if m is None and meta.raw_mode:
            meta.raw_mode = False

    def check_reg_const_str(self, reg: Reg, regno: int) -> None:
        m: MapInfo | None = reg.map
        if reg.type != T.PTR_TO_MAP_VALUE or m is None:
            raise self.fail(
                f"R{regno} type={type_str(reg.type)} expected=map_value",
                reg=regno,
                kind="helper_arg",
            )
        if not m.rdonly_const:
            raise self.fail(
                f"R{regno} does not point to a readonly map'", reg=regno, kind="helper_arg"
            )
        if reg.mask != 0:
            raise self.fail(f"R{regno} is not a constant address'", reg=regno, kind="helper_arg")
        off = reg.off + reg.value
        self.check_map_access(regno, reg.off, 1, False)
        assert m.data is not None
        if b"\0" not in m.data[off:]:
            raise self.fail("string is not zero-terminated", reg=regno, kind="helper_arg")

    def get_constant_map_key(self, key: Reg, key_size: int) -> int:
        if key.type != T.PTR_TO_STACK or key.mask != 0:
            return -1
        st = self.func_of(key)
        stack_off = key.off + s64(key.value)
        slot = -stack_off - 1
        spi = slot // REG_SIZE
        off = slot % REG_SIZE
        if spi >= len(st.stack):
            return -1
        s = st.stack[spi]
        zero = 0
        i = off
        while i >= 0 and s.types[i] == STACK_ZERO:
            zero += 1
            i -= 1
        if zero >= key_size:
            return 0
        if not s.is_spilled_scalar():
            return -1
        spill = 0
        i = off
        while i >= 0 and s.types[i] == STACK_SPILL:
            spill += 1
            i -= 1
        if spill != key_size:
            return -1
        if s.spilled.mask != 0:
            return -1
        return s.spilled.value

    def process_spin_lock(self, regno: int, is_lock: bool) -> None:
        reg = self.regs[regno]
        st = self.cur
        if reg.mask != 0:
            raise self.fail(
                f"R{regno} doesn't have constant offset. bpf_spin_lock has to be at the constant offset",
                reg=regno,
                kind="spin_lock",
            )
        m: MapInfo = reg.map
        if m.spin_lock_off is None:
            raise self.fail(
                f"map '{m.name}' has to have BTF in order to use bpf_spin_lock",
                reg=regno,
                kind="spin_lock",
            )
        val = reg.value + reg.off
        if val != m.spin_lock_off:
            raise self.fail(
                f"off {val} doesn't point to 'struct bpf_spin_lock' that is at {m.spin_lock_off}",
                reg=regno,
                kind="spin_lock",
            )
        locks = [r for r in st.refs if r.kind == "lock"]
        if is_lock:
            if locks:
                raise self.fail("Locking two bpf_spin_locks are not allowed", kind="spin_lock")
            st.refs.append(RefState(reg.id, self.insn_idx, "lock", m.name))
            st.active_lock_id = reg.id
            st.active_lock_ptr = m
        else:
            if not locks:
                raise self.fail("bpf_spin_unlock without taking a lock", kind="spin_lock")
            if not any(r.id == reg.id for r in locks) or st.active_lock_ptr is not m:
                raise self.fail("bpf_spin_unlock of different lock", kind="spin_lock")
            st.refs = [r for r in st.refs if not (r.kind == "lock" and r.id == reg.id)]
            st.active_lock_id = 0
            st.active_lock_ptr = None

    def release_reference(self, ref_obj_id: int) -> bool:
        st = self.cur
        before = len(st.refs)
        st.refs = [r for r in st.refs if not (r.kind == "ptr" and r.id == ref_obj_id)]
        if len(st.refs) == before:
            return False
        for reg in st.all_regs():
            if reg.ref_obj_id == ref_obj_id:
                origin = reg.origin
                reg.mark_unknown()
                reg.origin = (
                    (self.insn_idx, f"a pointer released at insn {self.insn_idx}")
                    if origin
                    else None
                )
        return True

    def clear_all_pkt_pointers(self) -> None:
        for reg in self.cur.all_regs():
            if reg.type in (T.PTR_TO_PACKET, T.PTR_TO_PACKET_META, T.PTR_TO_PACKET_END):
                reg.mark_unknown()
                reg.origin = (
                    self.insn_idx,
                    "a packet pointer invalidated by a packet-changing helper",
                )

    def check_map_func_compatibility(self, m: MapInfo | None, func_id: int, name: str) -> None:
        if m is None:
            return
        mt = m.type
        M = MapType
        ok = True
        allowed = _MAP_HELPERS.get(mt)
        if allowed is not None and func_id not in allowed:
            if mt in (M.SOCKMAP, M.SOCKHASH) and func_id in (2, 3):
                if not self.may_update_sockmap(func_id):
                    ok = False
            else:
                ok = False
        fa = _HELPER_MAPS.get(func_id)
        if fa is not None and mt not in fa:
            ok = False
        if not ok:
            raise self.fail(
                f"cannot pass map_type {mt} into func {name}#{func_id}", kind="map_func"
            )

    def may_update_sockmap(self, func_id: int) -> bool:
        P = ProgramType
        if self.prog_type == P.SOCK_OPS and func_id == 3:
            return True
        if self.prog_type in (
            P.SOCKET_FILTER,
            P.SCHED_CLS,
            P.SCHED_ACT,
            P.XDP,
            P.SK_REUSEPORT,
            P.FLOW_DISSECTOR,
            P.SK_LOOKUP,
        ):
            return True
        self.note("cannot update sockmap in this context")
        return False

    # ---------------------------------------------------------------- pruning ------

    def _is_state_visited(self, idx: int) -> bool:
        cfg = self.cfg
        assert cfg is not None
        cur = self.cur
        force_new = bool(cfg.force_checkpoint[idx])
        add_new = force_new
        jmps_since = self.jmps_processed - self.prev_jmps_processed
        insns_since = self.insn_processed - self.prev_insn_processed
        if jmps_since >= 2 and insns_since >= 8:
            add_new = True
        lst = self.explored.get(idx)
        states_cnt = 0
        if lst:
            is_may_goto = force_new and self.infos[idx].kind is K.MAY_GOTO  # type: ignore[union-attr]
            calls_callback = cfg.calls_callback[idx]
            # (constant over the loop below: nothing is processed while it runs)
            keep_looping_checkpoint = not force_new and jmps_since < 20 and insns_since < 100
            for e in list(lst):
                states_cnt += 1
                old = e.st
                if old.branches:
                    if is_may_goto:
                        if old.may_goto_depth != cur.may_goto_depth and self.states_equal(
                            old, cur, idx, 1
                        ):
                            e.hit_cnt += 1
                            return True
                    elif calls_callback:
                        if self.states_equal(old, cur, idx, 1):
                            e.hit_cnt += 1
                            return True
                    elif (
                        self._states_maybe_looping(old, cur)
                        and self.states_equal(old, cur, idx, 2)
                        and old.may_goto_depth == cur.may_goto_depth
                        and old.callback_unroll_depth == cur.callback_unroll_depth
                    ):
                        self.note(f"infinite loop detected at insn {idx}")
                        self.note("cur state:" + self._state_text(cur))
                        self.note("old state:" + self._state_text(old))
                        raise Reject(None, "infinite_loop")
                    if keep_looping_checkpoint:
                        add_new = False
                elif self.states_equal(old, cur, idx, 0):
                    e.hit_cnt += 1
                    return True
                if add_new:
                    e.miss_cnt += 1
                n = 64 if (force_new and old.branches > 0) else 3
                if e.miss_cnt > e.hit_cnt * n + n:
                    lst.remove(e)
                    self.explored_size -= 1
        if self.max_states_per_insn < states_cnt:
            self.max_states_per_insn = states_cnt
        if not add_new:
            return False
        self.total_states += 1
        self.explored_size += 1
        if self.explored_size > self.peak_states:
            self.peak_states = self.explored_size
        self.prev_jmps_processed = self.jmps_processed
        self.prev_insn_processed = self.insn_processed
        new = cur.copy()
        new.insn_idx = idx
        cur.parent = new
        cur.dfs_depth = new.dfs_depth + 1
        self.explored.setdefault(idx, []).insert(0, _Explored(new))
        return False

    def _states_maybe_looping(self, old: VState, cur: VState) -> bool:
        """states_maybe_looping: the registers of the current frames are exactly
        equal (``_regs_exact_simple`` on each, written out: in a loop this runs
        against every state of the loop head, and the numbers usually differ, so
        they are compared first)."""
        if len(old.frames) != len(cur.frames):
            return False
        for o, c in zip(old.frames[-1].regs, cur.frames[-1].regs):
            if (
                o.value != c.value
                or o.mask != c.mask
                or o.type != c.type
                or o.umin != c.umin
                or o.umax != c.umax
                or o.smin != c.smin
                or o.smax != c.smax
                or o.u32_min != c.u32_min
                or o.u32_max != c.u32_max
                or o.s32_min != c.s32_min
                or o.s32_max != c.s32_max
                or o.off != c.off
                or o.range != c.range
                or o.map is not c.map
                or o.mem_size != c.mem_size
                or o.subprogno != c.subprogno
                or o.btf_name != c.btf_name
                or o.frameno != c.frameno
            ):
                return False
        return True

    def states_equal(self, old: VState, cur: VState, idx: int, exact: int) -> bool:
        """exact: 0 NOT_EXACT, 1 RANGE_WITHIN, 2 EXACT."""
        if len(old.frames) != len(cur.frames):
            return False
        idmap: dict[int, int] = {}
        rev: dict[int, int] = {}
        self._tmp_id = 1 << 40
        if not self._refsafe(old, cur, idmap, rev):
            return False
        cfg = self.cfg
        assert cfg is not None
        nf = len(old.frames)
        rel_top = self.rel.prune[idx]
        zero = rel_top >> ZERO_SHIFT & ~rel_top & REGS
        if zero and exact == 0:
            # a register whose zero-ness alone can matter (it only reaches stack bytes
            # that are not a spill): if old's value cannot be 0, every path from old
            # stored STACK_MISC, and anything cur stores (MISC or ZERO) is as good;
            # if it may be 0, its value is compared (and what it is linked to)
            top = old.frames[-1].regs
            for i in range(10):
                if zero >> i & 1:
                    o = top[i]
                    if o.type != T.SCALAR or o.umin == 0:
                        rel_top |= 1 << i
        # a scalar that cannot reach a check itself may still be linked (same id) to
        # one that does: a branch on it then narrows the other, so it matters too
        if exact == 0:
            # old is an explored state: its registers never change, so its linked ids
            # are computed once (per relevance and liveness masks)
            live_top = cfg.live_before[idx]
            cached = old.linked_ids
            if cached is not None and cached[0] == rel_top and cached[1] == live_top:
                self._rel_ids = cached[2]
            else:
                self._rel_ids = _linked_ids(old, rel_top, live_top)
                old.linked_ids = (rel_top, live_top, self._rel_ids)
        else:
            self._rel_ids = None
        for i in range(nf):
            if old.frames[i].callsite != cur.frames[i].callsite:
                return False
            insn_idx = idx if i == nf - 1 else old.frames[i + 1].callsite
            live = cfg.live_before[insn_idx]
            # scalars that cannot reach a check need not match (the kernel's
            # "imprecise"); caller frames are compared in full
            rel = rel_top if i == nf - 1 else REGS | ALL_SLOTS
            # stack slots of the top frame no path from here reads before
            # overwriting them whole are ignored, whatever they hold (the kernel's
            # stack liveness); caller frames are compared in full
            slive = self.rel.stack_live[idx] if i == nf - 1 and exact == 0 else ALL_SLOTS
            if not self._func_states_equal(
                old.frames[i], cur.frames[i], live, rel, idmap, rev, exact, slive
            ):
                return False
        return True

    def _check_ids(self, o: int, c: int, idmap: dict[int, int], rev: dict[int, int]) -> bool:
        if bool(o) != bool(c):
            return False
        if not o:
            return True
        m = idmap.get(o)
        if m is not None:
            return m == c
        if c in rev:
            return False
        idmap[o] = c
        rev[c] = o
        return True

    def _check_scalar_ids(self, o: int, c: int, idmap: dict[int, int], rev: dict[int, int]) -> bool:
        if not o:
            return True
        if not c:
            self._tmp_id += 1
            c = self._tmp_id
        return self._check_ids(o, c, idmap, rev)

    def _refsafe(
        self, old: VState, cur: VState, idmap: dict[int, int], rev: dict[int, int]
    ) -> bool:
        if len(old.refs) != len(cur.refs):
            return False
        if old.active_lock_ptr is not cur.active_lock_ptr:
            return False
        if not self._check_ids(old.active_lock_id, cur.active_lock_id, idmap, rev):
            return False
        for a, b in zip(old.refs, cur.refs):
            if a.kind != b.kind or not self._check_ids(a.id, b.id, idmap, rev):
                return False
        return True

    def _func_states_equal(
        self,
        old: FuncState,
        cur: FuncState,
        live: int,
        rel: int,
        idmap: dict[int, int],
        rev: dict[int, int],
        exact: int,
        slive: int = ALL_SLOTS,
    ) -> bool:
        if old.callback_depth > cur.callback_depth:
            return False
        for i in range(10):
            if not live >> i & 1:
                continue
            o, c = old.regs[i], cur.regs[i]
            if (
                exact == 0
                and not rel >> i & 1
                and o.type == T.SCALAR
                and c.type == T.SCALAR
                and not (o.id and o.id & _ID_MASK in self._rel_ids)  # type: ignore[operator]
            ):
                continue
            if not self._regsafe(o, c, idmap, rev, exact):
                return False
        return self._stacksafe(old, cur, rel, idmap, rev, exact, slive)

    def _regsafe(
        self, o: Reg, c: Reg, idmap: dict[int, int], rev: dict[int, int], exact: int
    ) -> bool:
        if exact == 2:
            return self._regs_exact(o, c, idmap, rev)
        if o.type == T.NOT_INIT:
            if exact == 0 or c.type == T.NOT_INIT:
                return True
        if o.type != c.type:
            return False
        base = o.type & T.BASE_MASK
        if base == T.SCALAR:
            # the most frequent comparison: _range_within and tin written out
            ofake = o.id & BPF_ADD_AS_FAKE_ID
            if ofake != (c.id & BPF_ADD_AS_FAKE_ID):
                return False
            if ofake and o.off != c.off:
                return False
            if not (
                o.umin <= c.umin
                and c.umax <= o.umax
                and o.smin <= c.smin
                and c.smax <= o.smax
                and o.u32_min <= c.u32_min
                and c.u32_max <= o.u32_max
                and o.s32_min <= c.s32_min
                and c.s32_max <= o.s32_max
            ):
                return False
            om = o.mask
            if c.mask & ~om or o.value != (c.value & ~om):
                return False
            return self._check_scalar_ids(o.id, c.id, idmap, rev)
        if base in (
            T.PTR_TO_MAP_KEY,
            T.PTR_TO_MAP_VALUE,
            T.PTR_TO_MEM,
            T.PTR_TO_BUF,
            T.PTR_TO_TP_BUFFER,
        ):
            return (
                _head_equal(o, c)
                and _range_within(o, c)
                and tin(o.var_off, c.var_off)
                and self._check_ids(o.id, c.id, idmap, rev)
                and self._check_ids(o.ref_obj_id, c.ref_obj_id, idmap, rev)
            )
        if base in (T.PTR_TO_PACKET, T.PTR_TO_PACKET_META):
            if o.range < 0 or c.range < 0:
                if o.range != c.range:
                    return False
            elif o.range > c.range:
                return False
            if o.off != c.off:
                return False
            if not self._check_ids(o.id, c.id, idmap, rev):
                return False
            return _range_within(o, c) and tin(o.var_off, c.var_off)
        if base == T.PTR_TO_STACK:
            return self._regs_exact(o, c, idmap, rev) and o.frameno == c.frameno
        if base == T.PTR_TO_ARENA:
            return True
        return self._regs_exact(o, c, idmap, rev)

    def _regs_exact(self, o: Reg, c: Reg, idmap: dict[int, int], rev: dict[int, int]) -> bool:
        return (
            _regs_exact_simple(o, c)
            and self._check_ids(o.id, c.id, idmap, rev)
            and self._check_ids(o.ref_obj_id, c.ref_obj_id, idmap, rev)
        )

    def _stacksafe(
        self,
        old: FuncState,
        cur: FuncState,
        rel: int,
        idmap: dict[int, int],
        rev: dict[int, int],
        exact: int,
        slive: int = ALL_SLOTS,
    ) -> bool:
        n_old = len(old.stack) * REG_SIZE
        n_cur = len(cur.stack) * REG_SIZE
        i = 0
        while i < n_old:
            spi = i // REG_SIZE
            k = i % REG_SIZE
            if k == 0 and not slive >> (SLOT0 + spi) & 1:
                # a dead slot: nothing reads it before it is written whole
                i += REG_SIZE
                continue
            os_ = old.stack[spi]
            if (
                exact == 0
                and k == 0
                and not rel >> (SLOT0 + spi) & 1
                and i < n_cur
                and _scalarish(os_)
                and _scalarish(cur.stack[spi])
                and not (
                    os_.types[7] == STACK_SPILL
                    and os_.spilled.type == T.SCALAR
                    and os_.spilled.id
                    and os_.spilled.id & _ID_MASK in self._rel_ids  # type: ignore[operator]
                )
            ):
                # a slot whose value cannot reach a check: any scalar content will do
                i += REG_SIZE
                continue
            ot = os_.types[k]
            if exact != 0 and (i >= n_cur or ot != cur.stack[spi].types[k]):
                return False
            if ot == STACK_INVALID:
                i += 1
                continue
            if ot == STACK_MISC:
                # reading MISC gives an unknown scalar, as reading uninitialised stack
                # does for privileged programs: anything in cur is at least as good...
                # except a spilled pointer, whose partial reads are refused
                if i < n_cur:
                    cs = cur.stack[spi]
                    if cs.types[7] == STACK_SPILL and cs.spilled.type != T.SCALAR:
                        return False
                i += 1
                continue
            if i >= n_cur:
                return False
            cs = cur.stack[spi]
            oreg = _scalar_reg_for_stack(os_)
            creg = _scalar_reg_for_stack(cs)
            if oreg is not None and creg is not None:
                if not self._regsafe(oreg, creg, idmap, rev, exact):
                    return False
                i = (spi + 1) * REG_SIZE
                continue
            ct = cs.types[k]
            if ot == STACK_MISC and ct == STACK_ZERO:
                i += 1
                continue
            if ot != ct:
                return False
            if k != REG_SIZE - 1:
                i += 1
                continue
            if ot == STACK_SPILL:
                if not self._regsafe(os_.spilled, cs.spilled, idmap, rev, exact):
                    return False
            i += 1
        return True

    # ----------------------------------------------------------- stack depth ------

    def _check_max_stack_depth(self) -> None:
        cfg = self.cfg
        assert cfg is not None
        subs = cfg.subprogs

        def depth_of(k: int) -> int:
            d = subs[k].stack_depth
            return (d + 15) // 16 * 16

        # walk every call chain from the main program and from each callback
        roots = [0] + [k for k, s in enumerate(subs) if s.is_cb]
        for root in roots:
            stack: list[tuple[int, int, list[int]]] = [(root, depth_of(root), [root])]
            while stack:
                k, depth, chain = stack.pop()
                if depth > MAX_BPF_STACK:
                    raise self.fail(
                        f"combined stack size of {len(chain)} calls is {depth}. Too large",
                        kind="stack_depth",
                    )
                for callee in sorted(subs[k].calls):
                    if callee in chain:
                        continue
                    if subs[callee].has_tail_call and depth >= 256:
                        raise self.fail(
                            f"tail_calls are not allowed when call stack of previous frames is {depth} bytes. Too large",
                            kind="stack_depth",
                        )
                    stack.append((callee, depth + depth_of(callee), [*chain, callee]))

    def stats_line(self) -> str:
        return (
            f"processed {self.insn_processed} insns (limit {self.insn_limit}) "
            f"max_states_per_insn {self.max_states_per_insn} total_states {self.total_states} "
            f"peak_states {self.peak_states} mark_read 0"
        )


# ----------------------------------------------------------------------------- utils ------


#: read-only constant scalars for immediate operands (see _const_reg)
_CONST_REGS: dict[int, Reg] = {}


def _const_reg(imm: int) -> Reg:
    """A scalar register known to be ``imm``, shared: only for operands that are read
    and never modified (the source of a scalar ALU operation, a branch that is
    predicted), so that the most frequent instructions do not build one each time."""
    r = _CONST_REGS.get(imm)
    if r is None:
        if len(_CONST_REGS) >= 4096:
            _CONST_REGS.clear()
        r = Reg()
        r.type = T.SCALAR
        r.mark_known(imm)
        # published only when complete (verifications may run in several threads)
        _CONST_REGS[imm] = r
    return r


def _voff(r: Reg) -> str:
    """A register's variable offset in messages: the number when known, else the tnum."""
    return snum(r.value) if r.mask == 0 else tstr(r.var_off)


def _copy_raw(d: Reg, p: Reg) -> None:
    d.range = p.range
    d.map = p.map
    d.mem_size = p.mem_size
    d.subprogno = p.subprogno
    d.btf_name = p.btf_name


def _init_pkt(r: Reg, typ: int) -> bool:
    return r.type == typ and r.id == 0 and r.off == 0 and r.mask == 0 and r.value == 0


def _mark_ptr_not_null(r: Reg) -> None:
    if r.type & T.BASE_MASK == T.PTR_TO_MAP_VALUE:
        m: MapInfo = r.map
        if m.inner is not None:
            r.type = T.CONST_PTR_TO_MAP
            r.map = m.inner
        elif m.type == MapType.XSKMAP:
            r.type = T.PTR_TO_XDP_SOCK
        elif m.type in (MapType.SOCKMAP, MapType.SOCKHASH):
            r.type = T.PTR_TO_SOCKET
        else:
            r.type = T.PTR_TO_MAP_VALUE
        return
    r.type &= ~T.MAYBE_NULL


def _may_point_to_spin_lock(r: Reg) -> bool:
    return (
        r.type & T.BASE_MASK == T.PTR_TO_MAP_VALUE
        and r.map is not None
        and r.map.spin_lock_off is not None
    )


def _mismatch_ok(t: int) -> bool:
    b = t & T.BASE_MASK
    return b not in (
        T.PTR_TO_CTX,
        T.PTR_TO_SOCKET,
        T.PTR_TO_SOCK_COMMON,
        T.PTR_TO_TCP_SOCK,
        T.PTR_TO_XDP_SOCK,
        T.PTR_TO_BTF_ID,
        T.PTR_TO_ARENA,
    )


def _range_within(o: Reg, c: Reg) -> bool:
    return (
        o.umin <= c.umin
        and c.umax <= o.umax
        and o.smin <= c.smin
        and c.smax <= o.smax
        and o.u32_min <= c.u32_min
        and c.u32_max <= o.u32_max
        and o.s32_min <= c.s32_min
        and c.s32_max <= o.s32_max
    )


def _head_equal(o: Reg, c: Reg) -> bool:
    """memcmp(rold, rcur, offsetof(var_off)): type, off and the raw union."""
    return (
        o.type == c.type
        and o.off == c.off
        and o.range == c.range
        and o.map is c.map
        and o.mem_size == c.mem_size
        and o.subprogno == c.subprogno
        and o.btf_name == c.btf_name
    )


def _regs_exact_simple(o: Reg, c: Reg) -> bool:
    return (
        _head_equal(o, c)
        and o.value == c.value
        and o.mask == c.mask
        and o.smin == c.smin
        and o.smax == c.smax
        and o.umin == c.umin
        and o.umax == c.umax
        and o.s32_min == c.s32_min
        and o.s32_max == c.s32_max
        and o.u32_min == c.u32_min
        and o.u32_max == c.u32_max
        and o.frameno == c.frameno
    )


def _scalarish(s: StackSlot) -> bool:
    """A slot holding no pointer (a spilled scalar, or plain bytes).  The slot type
    codes INVALID, SPILL, MISC and ZERO are 0-3 (DYNPTR and ITER above), so "every
    byte is one of them" is ``max(types) <= 3``, one C-level pass."""
    types = s.types
    if types[7] == STACK_SPILL:
        return s.spilled.type == T.SCALAR and max(types) <= _MAX_PLAIN_SLOT_TYPE
    return max(types) <= _MAX_PLAIN_SLOT_TYPE and STACK_SPILL not in types


_MAX_PLAIN_SLOT_TYPE = max(STACK_INVALID, STACK_SPILL, STACK_MISC, STACK_ZERO)
assert _MAX_PLAIN_SLOT_TYPE == 3 and STACK_DYNPTR > 3 and STACK_ITER > 3


def _helper_nargs() -> dict[int, int]:
    """helper id -> number of register arguments (for liveness), built once."""
    global _HELPER_NARGS
    if _HELPER_NARGS is None:
        _HELPER_NARGS = {hid: len(p.args) for hid, p in PROTOS.items() if not p.unsupported}
    return _HELPER_NARGS


_HELPER_NARGS: dict[int, int] | None = None


#: map type -> the helpers that may take it (check_map_func_compatibility), and
#: helper -> the map types it takes; module constants, not rebuilt per call
_MAP_HELPERS: dict[int, tuple[int, ...]] = {
    MapType.PROG_ARRAY: (12,),
    MapType.PERF_EVENT_ARRAY: (22, 25, 111, 55, 121),
    MapType.RINGBUF: (130, 131, 134, 198, 199, 200),
    MapType.USER_RINGBUF: (209,),
    MapType.STACK_TRACE: (27,),
    MapType.CGROUP_ARRAY: (33, 37),
    MapType.CGROUP_STORAGE: (81,),
    MapType.PERCPU_CGROUP_STORAGE: (81,),
    MapType.DEVMAP: (51, 1),
    MapType.DEVMAP_HASH: (51, 1),
    MapType.CPUMAP: (51,),
    MapType.XSKMAP: (51, 1),
    MapType.ARRAY_OF_MAPS: (1,),
    MapType.HASH_OF_MAPS: (1,),
    MapType.SOCKMAP: (52, 53, 60, 82, 1),
    MapType.SOCKHASH: (72, 70, 71, 82, 1),
    MapType.REUSEPORT_SOCKARRAY: (82,),
    MapType.QUEUE: (89, 88, 87),
    MapType.STACK: (89, 88, 87),
    MapType.SK_STORAGE: (107, 108, 194),
    MapType.BLOOM_FILTER: (89, 87),
}

_HELPER_MAPS: dict[int, tuple[int, ...]] = {
    12: (MapType.PROG_ARRAY,),
    22: (MapType.PERF_EVENT_ARRAY,),
    25: (MapType.PERF_EVENT_ARRAY,),
    55: (MapType.PERF_EVENT_ARRAY,),
    121: (MapType.PERF_EVENT_ARRAY,),
    130: (MapType.RINGBUF,),
    131: (MapType.RINGBUF,),
    134: (MapType.RINGBUF,),
    27: (MapType.STACK_TRACE,),
    33: (MapType.CGROUP_ARRAY,),
    37: (MapType.CGROUP_ARRAY,),
    51: (MapType.DEVMAP, MapType.DEVMAP_HASH, MapType.CPUMAP, MapType.XSKMAP),
    52: (MapType.SOCKMAP,),
    60: (MapType.SOCKMAP,),
    53: (MapType.SOCKMAP,),
    72: (MapType.SOCKHASH,),
    71: (MapType.SOCKHASH,),
    70: (MapType.SOCKHASH,),
    81: (MapType.CGROUP_STORAGE, MapType.PERCPU_CGROUP_STORAGE),
    82: (MapType.REUSEPORT_SOCKARRAY, MapType.SOCKMAP, MapType.SOCKHASH),
    88: (MapType.QUEUE, MapType.STACK),
    89: (MapType.QUEUE, MapType.STACK, MapType.BLOOM_FILTER),
    87: (MapType.QUEUE, MapType.STACK, MapType.BLOOM_FILTER),
    195: (MapType.PERCPU_ARRAY, MapType.PERCPU_HASH, MapType.LRU_PERCPU_HASH),
    107: (MapType.SK_STORAGE,),
    108: (MapType.SK_STORAGE,),
}


def _helper_uses() -> dict[int, HelperUse]:
    global _HELPER_USES
    if _HELPER_USES is None:
        uses = {}
        for hid, p in PROTOS.items():
            checked = 0
            for i, a in enumerate(p.args):
                if a.kind != "any":
                    checked |= 1 << (i + 1)
            if hid == 181:  # bpf_loop: the iteration count bounds the callback's visits
                checked |= 1 << 1
            if hid == 81:  # get_local_storage: flags must be 0
                checked |= 1 << 2
            uses[hid] = HelperUse(
                checked_args=checked if not p.unsupported else 0b111110,
                returns_ptr=p.ret not in ("int", "void"),
                # only bpf_map_lookup_elem reads its key for a check (a constant
                # in-range array key makes the result non-NULL)
                reads_stack_for_checks=hid == 1 or bool(p.unsupported),
                callback_arg=2 if hid in (164, 181) else 0,
            )
        _HELPER_USES = uses
    return _HELPER_USES


_HELPER_USES: dict[int, HelperUse] | None = None


_ID_MASK = (1 << 30) - 1


def _linked_ids(st: VState, rel_top: int, live_top: int) -> frozenset[int]:
    """Ids of the scalars of ``st`` that state comparison looks at: relevant live
    registers and relevant stack slots of the innermost frame, everything in the
    callers' frames."""
    out: set[int] = set()
    nf = len(st.frames)
    for k, f in enumerate(st.frames):
        top = k == nf - 1
        for i in range(10):
            r = f.regs[i]
            if (
                r.id
                and r.type == T.SCALAR
                and (not top or (rel_top >> i & 1 and live_top >> i & 1))
            ):
                out.add(r.id & _ID_MASK)
        for spi, slot in enumerate(f.stack):
            if slot.is_spilled_scalar() and slot.spilled.id:
                if not top or rel_top >> (SLOT0 + spi) & 1:
                    out.add(slot.spilled.id & _ID_MASK)
    return frozenset(out)


def _scalar_reg_for_stack(s: StackSlot) -> Reg | None:
    """The scalar a slot holds for state comparison: the spilled one, or an unknown
    scalar for eight MISC bytes (shared and read-only: comparison only reads it)."""
    types = s.types
    if types[7] == STACK_SPILL and s.spilled.type == T.SCALAR:
        return s.spilled
    if types == _ALL_MISC:
        return _UNKNOWN_SCALAR
    return None


_ALL_MISC = bytes([STACK_MISC]) * REG_SIZE
_UNKNOWN_SCALAR = Reg()
_UNKNOWN_SCALAR.mark_unknown()


def _is_sock_btf(name: str) -> bool:
    return name in (
        "sock_common",
        "sock",
        "tcp_sock",
        "tcp6_sock",
        "udp6_sock",
        "unix_sock",
        "mptcp_sock",
        "tcp_timewait_sock",
        "tcp_request_sock",
        "inet_sock",
    )


__all__ += ["CALLBACK_HELPERS", "FLIP", "InsnAux"]
