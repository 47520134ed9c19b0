"""Register states and the arithmetic of what the verifier knows about numbers.

A :class:`Reg` is the kernel's ``struct bpf_reg_state``: a type (scalar or one of the
pointer types, with flags such as "may be NULL"), a fixed offset ``off`` for pointers,
the variable part as a tnum plus signed/unsigned 64- and 32-bit bounds, an ``id`` that
links copies of one value (NULL checks and packet ranges propagate through it) and a
``ref_obj_id`` for acquired references.

The bound-keeping functions below follow kernel/bpf/verifier.c of Linux 6.18
(``reg_bounds_sync`` and friends, ``adjust_scalar_min_max_vals``,
``is_branch_taken``, ``regs_refine_cond_op``): the verifier log prints these numbers
and netbpf's log is compared with the kernel's, so "as precise as the kernel, no
more" is the goal, not merely "sound".
"""

from __future__ import annotations

from typing import Any

from netbpf.verifier.tnum import (
    TUNKNOWN,
    U32,
    U64,
    Tnum,
    tadd,
    tand,
    tarshift,
    tclear_subreg,
    tconst,
    tintersect,
    tis_const,
    tlshift,
    tmul,
    tneg,
    tor,
    trange,
    trshift,
    tstep,
    tsub,
    tsubreg,
    twith_subreg,
    txor,
)

__all__ = ["Reg", "RegType"]

S64_MIN = -(1 << 63)
S64_MAX = (1 << 63) - 1
S32_MIN = -(1 << 31)
S32_MAX = (1 << 31) - 1
SIGN64 = 1 << 63


def s64(x: int) -> int:
    """The u64 ``x`` as a signed 64-bit int."""
    x &= U64
    return x - (1 << 64) if x & SIGN64 else x


def s32(x: int) -> int:
    x &= U32
    return x - (1 << 32) if x & 0x8000_0000 else x


# --- register types ---------------------------------------------------------------------


class RegType:
    """``enum bpf_reg_type``: a base type in the low byte plus flag bits, as ints (the
    verifier compares and copies them constantly)."""

    NOT_INIT = 0
    SCALAR = 1
    PTR_TO_CTX = 2
    CONST_PTR_TO_MAP = 3
    PTR_TO_MAP_VALUE = 4
    PTR_TO_MAP_KEY = 5
    PTR_TO_STACK = 6
    PTR_TO_PACKET_META = 7
    PTR_TO_PACKET = 8
    PTR_TO_PACKET_END = 9
    PTR_TO_FLOW_KEYS = 10
    PTR_TO_SOCKET = 11
    PTR_TO_SOCK_COMMON = 12
    PTR_TO_TCP_SOCK = 13
    PTR_TO_TP_BUFFER = 14
    PTR_TO_XDP_SOCK = 15
    PTR_TO_BTF_ID = 16
    PTR_TO_MEM = 17
    PTR_TO_BUF = 18
    PTR_TO_FUNC = 19
    CONST_PTR_TO_DYNPTR = 20
    PTR_TO_ARENA = 21

    BASE_MASK = 0xFF
    MAYBE_NULL = 1 << 8
    MEM_RDONLY = 1 << 9
    MEM_RINGBUF = 1 << 10
    PTR_TRUSTED = 1 << 11
    PTR_UNTRUSTED = 1 << 12
    MEM_RCU = 1 << 13
    MEM_ALLOC = 1 << 14
    MEM_USER = 1 << 15
    MEM_PERCPU = 1 << 16


T = RegType

#: base type -> the name reg_type_str() prints
_BASE_NAMES: dict[int, str] = {
    T.NOT_INIT: "?",
    T.SCALAR: "scalar",
    T.PTR_TO_CTX: "ctx",
    T.CONST_PTR_TO_MAP: "map_ptr",
    T.PTR_TO_MAP_VALUE: "map_value",
    T.PTR_TO_MAP_KEY: "map_key",
    T.PTR_TO_STACK: "fp",
    T.PTR_TO_PACKET_META: "pkt_meta",
    T.PTR_TO_PACKET: "pkt",
    T.PTR_TO_PACKET_END: "pkt_end",
    T.PTR_TO_FLOW_KEYS: "flow_keys",
    T.PTR_TO_SOCKET: "sock",
    T.PTR_TO_SOCK_COMMON: "sock_common",
    T.PTR_TO_TCP_SOCK: "tcp_sock",
    T.PTR_TO_TP_BUFFER: "tp_buffer",
    T.PTR_TO_XDP_SOCK: "xdp_sock",
    T.PTR_TO_BTF_ID: "ptr_",
    T.PTR_TO_MEM: "mem",
    T.PTR_TO_BUF: "buf",
    T.PTR_TO_FUNC: "func",
    T.CONST_PTR_TO_DYNPTR: "dynptr_ptr",
    T.PTR_TO_ARENA: "arena",
}


def type_str(t: int) -> str:
    """The kernel's ``reg_type_str``: ``map_value_or_null``, ``ringbuf_mem``,
    ``rdonly_mem``, ``trusted_ptr_``..."""
    base = t & T.BASE_MASK
    prefix = ""
    if t & T.MEM_RDONLY:
        prefix += "rdonly_"
    if t & T.MEM_RINGBUF:
        prefix += "ringbuf_"
    if t & T.MEM_USER:
        prefix += "user_"
    if t & T.MEM_PERCPU:
        prefix += "percpu_"
    if t & T.MEM_RCU:
        prefix += "rcu_"
    if t & T.PTR_UNTRUSTED:
        prefix += "untrusted_"
    if t & T.PTR_TRUSTED:
        prefix += "trusted_"
    postfix = ""
    if t & T.MAYBE_NULL:
        postfix = "or_null_" if base == T.PTR_TO_BTF_ID else "_or_null"
    return prefix + _BASE_NAMES.get(base, "?") + postfix


PKT_TYPES = frozenset({T.PTR_TO_PACKET, T.PTR_TO_PACKET_META})
SK_TYPES = frozenset({T.PTR_TO_SOCKET, T.PTR_TO_SOCK_COMMON, T.PTR_TO_TCP_SOCK, T.PTR_TO_XDP_SOCK})

# packet range special values (the kernel's AT_PKT_END / BEYOND_PKT_END)
AT_PKT_END = -1
BEYOND_PKT_END = -2

#: the largest variable offset the kernel lets a pointer carry (BPF_MAX_VAR_OFF)
MAX_VAR_OFF = 1 << 29
MAX_PACKET_OFF = 0xFFFF


# --- the register ----------------------------------------------------------------------


class Reg:
    """One register (or spilled stack slot) state.  Mutable: the verifier updates the
    current state in place and copies states only where paths split."""

    __slots__ = (
        "btf_name",
        "frameno",
        "id",
        "map",
        "mask",
        "mem_size",
        "off",
        "origin",
        "range",
        "ref_obj_id",
        "s32_max",
        "s32_min",
        "smax",
        "smin",
        "subprogno",
        "type",
        "u32_max",
        "u32_min",
        "umax",
        "umin",
        "value",
    )

    def __init__(self) -> None:
        self.type = T.NOT_INIT
        self.off = 0
        self.range = 0  # PTR_TO_PACKET*: bytes known to be inside the packet
        self.map: Any = None  # CONST_PTR_TO_MAP / PTR_TO_MAP_VALUE / _KEY: the MapInfo
        self.mem_size = 0  # PTR_TO_MEM
        self.subprogno = 0  # PTR_TO_FUNC
        self.btf_name = ""  # PTR_TO_BTF_ID: the struct name
        self.value = 0
        self.mask = U64
        self.smin = S64_MIN
        self.smax = S64_MAX
        self.umin = 0
        self.umax = U64
        self.s32_min = S32_MIN
        self.s32_max = S32_MAX
        self.u32_min = 0
        self.u32_max = U32
        self.id = 0
        self.ref_obj_id = 0
        self.frameno = 0
        #: (insn index, what produced the value): for error explanations only; never
        #: part of state comparison
        self.origin: tuple[int, str] | None = None

    def copy(self) -> Reg:
        r = Reg.__new__(Reg)
        r.type = self.type
        r.off = self.off
        r.range = self.range
        r.map = self.map
        r.mem_size = self.mem_size
        r.subprogno = self.subprogno
        r.btf_name = self.btf_name
        r.value = self.value
        r.mask = self.mask
        r.smin = self.smin
        r.smax = self.smax
        r.umin = self.umin
        r.umax = self.umax
        r.s32_min = self.s32_min
        r.s32_max = self.s32_max
        r.u32_min = self.u32_min
        r.u32_max = self.u32_max
        r.id = self.id
        r.ref_obj_id = self.ref_obj_id
        r.frameno = self.frameno
        r.origin = self.origin
        return r

    def assign(self, o: Reg) -> None:
        """``*self = *o`` (copy_register_state)."""
        self.type = o.type
        self.off = o.off
        self.range = o.range
        self.map = o.map
        self.mem_size = o.mem_size
        self.subprogno = o.subprogno
        self.btf_name = o.btf_name
        self.value = o.value
        self.mask = o.mask
        self.smin = o.smin
        self.smax = o.smax
        self.umin = o.umin
        self.umax = o.umax
        self.s32_min = o.s32_min
        self.s32_max = o.s32_max
        self.u32_min = o.u32_min
        self.u32_max = o.u32_max
        self.id = o.id
        self.ref_obj_id = o.ref_obj_id
        self.frameno = o.frameno
        self.origin = o.origin

    # -- small predicates -------------------------------------------------------------

    @property
    def base(self) -> int:
        return self.type & T.BASE_MASK

    @property
    def var_off(self) -> Tnum:
        return (self.value, self.mask)

    @var_off.setter
    def var_off(self, t: Tnum) -> None:
        self.value, self.mask = t

    def is_scalar(self) -> bool:
        return self.type == T.SCALAR

    def is_pointer(self) -> bool:
        return self.type != T.SCALAR and self.type != T.NOT_INIT

    def is_const(self) -> bool:
        return self.mask == 0

    def is_null(self) -> bool:
        """A scalar known to be 0 (register_is_null)."""
        return self.type == T.SCALAR and self.mask == 0 and self.value == 0

    def is_pkt(self) -> bool:
        return self.type == T.PTR_TO_PACKET or self.type == T.PTR_TO_PACKET_META

    def is_pkt_any(self) -> bool:
        return self.type in (T.PTR_TO_PACKET, T.PTR_TO_PACKET_META, T.PTR_TO_PACKET_END)

    def may_be_null(self) -> bool:
        return bool(self.type & T.MAYBE_NULL)

    def __repr__(self) -> str:  # pragma: no cover - debugging aid
        from netbpf.verifier.fmt import reg_str

        return f"<Reg {reg_str(self, 0)}>"

    # -- whole-register markings -----------------------------------------------------

    def mark_known(self, imm: int) -> None:
        """__mark_reg_known: exactly ``imm`` (taken modulo 2**64)."""
        imm &= U64
        self.value = imm
        self.mask = 0
        self.smin = self.smax = s64(imm)
        self.umin = self.umax = imm
        self.s32_min = self.s32_max = s32(imm)
        self.u32_min = self.u32_max = imm & U32

    def mark_scalar_known(self, imm: int) -> None:
        """mark_unknown() then mark_known(imm) in one step: a fresh scalar constant
        (ids, offsets and pointer fields cleared; ``origin`` left to the caller)."""
        self.type = T.SCALAR
        self.off = 0
        self.range = 0
        self.map = None
        self.mem_size = 0
        self.subprogno = 0
        self.btf_name = ""
        self.id = 0
        self.ref_obj_id = 0
        self.frameno = 0
        imm &= U64
        self.value = self.umin = self.umax = imm
        self.mask = 0
        self.smin = self.smax = imm - (1 << 64) if imm & SIGN64 else imm
        v32 = imm & U32
        self.u32_min = self.u32_max = v32
        self.s32_min = self.s32_max = v32 - (1 << 32) if v32 & 0x8000_0000 else v32

    def mark_known32(self, imm: int) -> None:
        """__mark_reg32_known: the low 32 bits are ``imm``."""
        self.value, self.mask = twith_subreg(self.var_off, tconst(imm & U32))
        self.s32_min = self.s32_max = s32(imm)
        self.u32_min = self.u32_max = imm & U32

    def mark_unbounded(self) -> None:
        self.smin, self.smax = S64_MIN, S64_MAX
        self.umin, self.umax = 0, U64
        self.s32_min, self.s32_max = S32_MIN, S32_MAX
        self.u32_min, self.u32_max = 0, U32

    def mark_64_unbounded(self) -> None:
        self.smin, self.smax = S64_MIN, S64_MAX
        self.umin, self.umax = 0, U64

    def mark_32_unbounded(self) -> None:
        self.s32_min, self.s32_max = S32_MIN, S32_MAX
        self.u32_min, self.u32_max = 0, U32

    def mark_unknown(self) -> None:
        """__mark_reg_unknown: a scalar nothing is known about (ids dropped)."""
        self.type = T.SCALAR
        self.off = 0
        self.range = 0
        self.map = None
        self.mem_size = 0
        self.subprogno = 0
        self.btf_name = ""
        self.id = 0
        self.ref_obj_id = 0
        self.frameno = 0
        self.value, self.mask = TUNKNOWN
        self.mark_unbounded()

    def mark_not_init(self) -> None:
        self.mark_unknown()
        self.type = T.NOT_INIT
        self.origin = None

    def mark_known_zero(self) -> None:
        """mark_reg_known_zero: a fresh value with offset 0 (the caller sets the type)."""
        self.mark_unknown()
        self.mark_known(0)

    def mark_const_zero(self) -> None:
        self.mark_unknown()
        self.mark_known(0)

    # -- bounds bookkeeping (reg_bounds_sync and its parts) ------------------------

    def update_bounds(self) -> None:
        """__update_reg_bounds: learn min/max from the tnum; when the u64 range and
        the tnum have a single value in common, the register is that constant."""
        self.update_bounds32()
        v, m = self.value, self.mask
        self.smin = max(self.smin, s64(v | (m & SIGN64)))
        self.smax = min(self.smax, s64(v | (m & (SIGN64 - 1))))
        self.umin = max(self.umin, v)
        self.umax = min(self.umax, v | m)
        # does the u64 range hold a single value of the tnum?
        t = (v, m)
        umin, umax = self.umin, self.umax
        nxt = tstep(t, umin)
        umin_in = (umin & ~m) == v
        tmax = v | m
        if umin_in and nxt > umax:
            self._set_known(umin)
        elif not umin_in and nxt == tmax:
            self._set_known(tmax)
        elif not umin_in and nxt <= umax and tstep(t, nxt) > umax:
            self._set_known(nxt)

    def _set_known(self, imm: int) -> None:
        self.value, self.mask = imm & U64, 0
        self.smin = self.smax = s64(imm)
        self.umin = self.umax = imm & U64
        self.s32_min = self.s32_max = s32(imm)
        self.u32_min = self.u32_max = imm & U32

    def update_bounds32(self) -> None:
        v32 = self.value & U32
        m32 = self.mask & U32
        self.s32_min = max(self.s32_min, s32(v32 | (m32 & 0x8000_0000)))
        self.s32_max = min(self.s32_max, s32(v32 | (m32 & 0x7FFF_FFFF)))
        self.u32_min = max(self.u32_min, v32)
        self.u32_max = min(self.u32_max, v32 | m32)

    def _deduce32(self) -> None:
        umin, umax, smin, smax = self.umin, self.umax, self.smin, self.smax
        if (umin >> 32) == (umax >> 32):
            # u64 -> u32 keeps a valid range when the upper halves agree
            self.u32_min = max(self.u32_min, umin & U32)
            self.u32_max = min(self.u32_max, umax & U32)
            if s32(umin) <= s32(umax):
                self.s32_min = max(self.s32_min, s32(umin))
                self.s32_max = min(self.s32_max, s32(umax))
        if (smin >> 32) == (smax >> 32):
            if (smin & U32) <= (smax & U32):
                self.u32_min = max(self.u32_min, smin & U32)
                self.u32_max = min(self.u32_max, smax & U32)
            if s32(smin) <= s32(smax):
                self.s32_min = max(self.s32_min, s32(smin))
                self.s32_max = min(self.s32_max, s32(smax))
        # upper halves two consecutive numbers, low halves a sign-crossing s32 range
        if ((umin >> 32) + 1) & U32 == (umax >> 32) & U32 and s32(umin) < 0 <= s32(umax):
            self.s32_min = max(self.s32_min, s32(umin))
            self.s32_max = min(self.s32_max, s32(umax))
        if ((smin >> 32) + 1) & U32 == (smax >> 32) & U32 and s32(smin) < 0 <= s32(smax):
            self.s32_min = max(self.s32_min, s32(smin))
            self.s32_max = min(self.s32_max, s32(smax))
        if s32(self.u32_min) <= s32(self.u32_max):
            self.s32_min = max(self.s32_min, s32(self.u32_min))
            self.s32_max = min(self.s32_max, s32(self.u32_max))
        if (self.s32_min & U32) <= (self.s32_max & U32):
            self.u32_min = max(self.u32_min, self.s32_min & U32)
            self.u32_max = min(self.u32_max, self.s32_max & U32)
        elif self.u32_max < (self.s32_min & U32):
            # the s32 range crosses the sign boundary and the u32 range lies in its
            # non-negative part [0, s32_max]
            self.s32_min = s32(self.u32_min)
            self.u32_max = min(self.u32_max, self.s32_max & U32)
        elif (self.s32_max & U32) < self.u32_min:
            # ... or in its negative part [s32_min, -1]
            self.s32_max = s32(self.u32_max)
            self.u32_min = max(self.u32_min, self.s32_min & U32)

    def _deduce64(self) -> None:
        if s64(self.umin) <= s64(self.umax):
            self.smin = max(self.smin, s64(self.umin))
            self.smax = min(self.smax, s64(self.umax))
        if (self.smin & U64) <= (self.smax & U64):
            self.umin = max(self.umin, self.smin & U64)
            self.umax = min(self.umax, self.smax & U64)
        else:
            # the s64 range crosses the sign boundary: it splits in two u64 ranges;
            # a u64 range inside one half tells the signed bounds
            if self.umax < (self.smin & U64):
                # the u64 range lies in the non-negative part [0, smax]
                self.smin = s64(self.umin)
                self.umax = min(self.umax, self.smax & U64)
            elif (self.smax & U64) < self.umin:
                # the u64 range lies in the negative part [smin, -1]
                self.smax = s64(self.umax)
                self.umin = max(self.umin, self.smin & U64)

    def _deduce_mixed(self) -> None:
        new_umin = (self.umin & ~U32 & U64) | self.u32_min
        new_umax = (self.umax & ~U32 & U64) | self.u32_max
        self.umin = max(self.umin, new_umin)
        self.umax = min(self.umax, new_umax)
        new_smin = s64((self.smin & ~U32 & U64) | self.u32_min)
        new_smax = s64((self.smax & ~U32 & U64) | self.u32_max)
        self.smin = max(self.smin, new_smin)
        self.smax = min(self.smax, new_smax)
        # after a sign-extending load the upper 32 bits are all 0s or all 1s
        if self.s32_min >= 0 and self.smin >= S32_MIN and self.smax <= S32_MAX:
            self.smin = self.s32_min
            self.smax = self.s32_max
            # (s32 -> u64 sign-extends: a contradictory s32_max < 0 gives a huge umax)
            self.umin = self.s32_min & U64
            self.umax = self.s32_max & U64
            self.var_off = tintersect(self.var_off, trange(self.smin & U64, self.smax & U64))

    def deduce_bounds(self) -> None:
        self._deduce32()
        self._deduce64()
        self._deduce_mixed()

    def bound_offset(self) -> None:
        """__reg_bound_offset: learn tnum bits from the ranges."""
        var64 = tintersect(self.var_off, trange(self.umin, self.umax))
        var32 = tintersect(tsubreg(var64), trange(self.u32_min, self.u32_max))
        self.var_off = tor(tclear_subreg(var64), var32)

    def sync_reference(self) -> None:
        """reg_bounds_sync, step by step as the kernel writes it (the specification
        :meth:`sync` is tested against)."""
        self.update_bounds()
        self.deduce_bounds()
        self.deduce_bounds()
        self.bound_offset()
        self.update_bounds()

    def sync(self) -> None:
        """reg_bounds_sync: make tnum and all eight bounds agree (the same steps as
        :meth:`sync_reference`, on local variables: this is the verifier's hottest
        function).

        The result depends on nothing but the ten numbers, and a program keeps
        meeting the same few combinations (a loop revisits them every iteration, a
        restarted run all of them), so results are memoized in ``_SYNC_MEMO``:
        looking up a tuple costs a fraction of recomputing it."""
        key = (
            self.value,
            self.mask,
            self.umin,
            self.umax,
            self.smin,
            self.smax,
            self.u32_min,
            self.u32_max,
            self.s32_min,
            self.s32_max,
        )
        res = _SYNC_MEMO.get(key)
        if res is None:
            if len(_SYNC_MEMO) >= _SYNC_MEMO_MAX:
                _SYNC_MEMO.clear()
            res = _SYNC_MEMO[key] = _sync(*key)
        (
            self.value,
            self.mask,
            self.umin,
            self.umax,
            self.smin,
            self.smax,
            self.u32_min,
            self.u32_max,
            self.s32_min,
            self.s32_max,
        ) = res

    def bounds_violation(self) -> str | None:
        """reg_bounds_sanity_check: what is inconsistent, or None.  Only a dead path
        (or an imprecision the kernel shares) gets here."""
        if (
            self.umin > self.umax
            or self.smin > self.smax
            or self.u32_min > self.u32_max
            or self.s32_min > self.s32_max
        ):
            return "range bounds violation"
        if self.mask == 0:
            v = self.value
            if not (self.umin == self.umax == v and self.smin == self.smax == s64(v)):
                return "const tnum out of sync with range bounds"
        if self.mask & U32 == 0:
            v32 = self.value & U32
            if not (
                self.u32_min == self.u32_max == v32 and self.s32_min == self.s32_max == s32(v32)
            ):
                return "const subreg tnum out of sync with range bounds"
        return None

    def assign_32_into_64(self) -> None:
        self.umin = self.u32_min
        self.umax = self.u32_max
        if 0 <= self.s32_min and 0 <= self.s32_max:
            self.smin = self.s32_min
            self.smax = self.s32_max
        else:
            self.smin = 0
            self.smax = U32

    def zext_32_to_64(self) -> None:
        self.var_off = tsubreg(self.var_off)
        self.assign_32_into_64()

    def width(self) -> int:
        """get_reg_width: how many low bits may be non-zero."""
        return (self.value | self.mask).bit_length()

    # -- casts ------------------------------------------------------------------------

    def coerce_to_size(self, size: int) -> None:
        """coerce_reg_to_size: zero-extend from ``size`` bytes (narrow loads)."""
        self.var_off = tcast_size(self.var_off, size)
        mask = (1 << (size * 8)) - 1
        if (self.umin & ~mask) == (self.umax & ~mask):
            self.umin &= mask
            self.umax &= mask
        else:
            self.umin = 0
            self.umax = mask
        self.smin = self.umin
        self.smax = self.umax
        if size < 4:
            self.mark_32_unbounded()
        self.sync()

    def coerce_to_size_sx(self, size: int) -> None:
        """coerce_reg_to_size_sx: sign-extend from ``size`` bytes (ldsx, movsx)."""
        bits = size * 8
        if self.mask == 0:
            v = _sx(self.value, bits)
            self.value, self.mask = v & U64, 0
            self.smin = self.smax = v
            self.umin = self.umax = v & U64
            self.s32_min = self.s32_max = s32(v)
            self.u32_min = self.u32_max = v & U32
            return
        top_smax = (self.smax & U64) >> bits
        top_smin = (self.smin & U64) >> bits
        if top_smax == top_smin:
            a = _sx(self.smax, bits)
            b = _sx(self.smin, bits)
            hi, lo = max(a, b), min(a, b)
            if (hi >= 0) == (lo >= 0):
                self.s32_min = s32(lo)
                self.smin = lo
                self.s32_max = s32(hi)
                self.smax = hi
                self.u32_min = lo & U32
                self.umin = lo & U64
                self.u32_max = hi & U32
                self.umax = hi & U64
                self.var_off = trange(lo & U64, hi & U64)
                return
        self.smin = self.s32_min = -(1 << (bits - 1))
        self.smax = self.s32_max = (1 << (bits - 1)) - 1
        self.umin = self.u32_min = 0
        self.umax = U64
        self.u32_max = U32
        self.var_off = TUNKNOWN

    def coerce_subreg_to_size_sx(self, size: int) -> None:
        """coerce_subreg_to_size_sx: ``w = (s8/s16) w`` (32-bit movsx)."""
        bits = size * 8
        if self.mask == 0:
            v = _sx(self.value, bits)
            self.value, self.mask = v & U64, 0
            self.s32_min = self.s32_max = s32(v)
            self.u32_min = self.u32_max = v & U32
            return
        top_smax = (self.s32_max & U32) >> bits
        top_smin = (self.s32_min & U32) >> bits
        if top_smax == top_smin:
            a = _sx(self.s32_max, bits)
            b = _sx(self.s32_min, bits)
            hi, lo = max(a, b), min(a, b)
            if (lo >= 0) == (hi >= 0):
                self.s32_min, self.s32_max = lo, hi
                self.u32_min, self.u32_max = lo & U32, hi & U32
                self.var_off = tsubreg(trange(lo & U64, hi & U64))
                return
        self.s32_min = -(1 << (bits - 1))
        self.s32_max = (1 << (bits - 1)) - 1
        self.u32_min, self.u32_max = 0, U32
        self.var_off = (0, U32)


#: the ten numbers of a register -> their values after reg_bounds_sync (see
#: :meth:`Reg.sync`); cleared when full, so memory stays bounded
_SYNC_MEMO: dict[tuple[int, ...], tuple[int, ...]] = {}
_SYNC_MEMO_MAX = 1 << 16

Synced = tuple[int, int, int, int, int, int, int, int, int, int]


def clear_sync_memo() -> None:
    """Forget the memoized reg_bounds_sync results (see :meth:`Reg.sync`)."""
    _SYNC_MEMO.clear()


def _sync(
    v: int,
    m: int,
    umin: int,
    umax: int,
    smin: int,
    smax: int,
    u32min: int,
    u32max: int,
    s32min: int,
    s32max: int,
) -> Synced:
    """reg_bounds_sync on locals: update, deduce twice, bound the tnum, update.
    Takes and returns (value, mask, umin, umax, smin, smax, u32_min, u32_max, s32_min,
    s32_max)."""
    for step in range(2):
        # __update_reg_bounds (32 then 64)
        v32, m32 = v & U32, m & U32
        t = v32 | (m32 & 0x8000_0000)
        t = t - (1 << 32) if t & 0x8000_0000 else t
        if t > s32min:
            s32min = t
        t = v32 | (m32 & 0x7FFF_FFFF)
        t = t - (1 << 32) if t & 0x8000_0000 else t
        if t < s32max:
            s32max = t
        if v32 > u32min:
            u32min = v32
        if (v32 | m32) < u32max:
            u32max = v32 | m32
        t = v | (m & SIGN64)
        t = t - (1 << 64) if t & SIGN64 else t
        if t > smin:
            smin = t
        t = v | (m & (SIGN64 - 1))
        t = t - (1 << 64) if t & SIGN64 else t
        if t < smax:
            smax = t
        if v > umin:
            umin = v
        if (v | m) < umax:
            umax = v | m
        # a single tnum value in the u64 range
        tmax = v | m
        nxt = tstep((v, m), umin)
        umin_in = (umin & ~m) == v
        known = None
        if umin_in and nxt > umax:
            known = umin
        elif not umin_in and nxt == tmax:
            known = tmax
        elif not umin_in and nxt <= umax and tstep((v, m), nxt) > umax:
            known = nxt
        if known is not None:
            v, m = known, 0
            smin = smax = known - (1 << 64) if known & SIGN64 else known
            umin = umax = known
            u32min = u32max = known & U32
            s32min = s32max = u32min - (1 << 32) if u32min & 0x8000_0000 else u32min
        if step:
            break
        # the deduction below is a function of these ten numbers: when its first pass
        # leaves them unchanged, the second would too
        before = (v, m, umin, umax, smin, smax, u32min, u32max, s32min, s32max)
        for rnd in range(2):
            if rnd and (v, m, umin, umax, smin, smax, u32min, u32max, s32min, s32max) == before:
                break
            # __reg32_deduce_bounds
            if (umin >> 32) == (umax >> 32):
                if (umin & U32) > u32min:
                    u32min = umin & U32
                if (umax & U32) < u32max:
                    u32max = umax & U32
                a, b = (
                    (((umin) & 0xFFFFFFFF) ^ 0x80000000) - 0x80000000,
                    (((umax) & 0xFFFFFFFF) ^ 0x80000000) - 0x80000000,
                )
                if a <= b:
                    if a > s32min:
                        s32min = a
                    if b < s32max:
                        s32max = b
            if (smin >> 32) == (smax >> 32):
                if (smin & U32) <= (smax & U32):
                    if (smin & U32) > u32min:
                        u32min = smin & U32
                    if (smax & U32) < u32max:
                        u32max = smax & U32
                a, b = (
                    (((smin) & 0xFFFFFFFF) ^ 0x80000000) - 0x80000000,
                    (((smax) & 0xFFFFFFFF) ^ 0x80000000) - 0x80000000,
                )
                if a <= b:
                    if a > s32min:
                        s32min = a
                    if b < s32max:
                        s32max = b
            if ((umin >> 32) + 1) & U32 == (umax >> 32) & U32:
                a, b = (
                    (((umin) & 0xFFFFFFFF) ^ 0x80000000) - 0x80000000,
                    (((umax) & 0xFFFFFFFF) ^ 0x80000000) - 0x80000000,
                )
                if a < 0 <= b:
                    if a > s32min:
                        s32min = a
                    if b < s32max:
                        s32max = b
            if ((smin >> 32) + 1) & U32 == (smax >> 32) & U32:
                a, b = (
                    (((smin) & 0xFFFFFFFF) ^ 0x80000000) - 0x80000000,
                    (((smax) & 0xFFFFFFFF) ^ 0x80000000) - 0x80000000,
                )
                if a < 0 <= b:
                    if a > s32min:
                        s32min = a
                    if b < s32max:
                        s32max = b
            a, b = (
                (((u32min) & 0xFFFFFFFF) ^ 0x80000000) - 0x80000000,
                (((u32max) & 0xFFFFFFFF) ^ 0x80000000) - 0x80000000,
            )
            if a <= b:
                if a > s32min:
                    s32min = a
                if b < s32max:
                    s32max = b
            a, b = s32min & U32, s32max & U32
            if a <= b:
                if a > u32min:
                    u32min = a
                if b < u32max:
                    u32max = b
            elif u32max < a:
                s32min = (((u32min) & 0xFFFFFFFF) ^ 0x80000000) - 0x80000000
                if b < u32max:
                    u32max = b
            elif b < u32min:
                s32max = (((u32max) & 0xFFFFFFFF) ^ 0x80000000) - 0x80000000
                if a > u32min:
                    u32min = a
            # __reg64_deduce_bounds
            a, b = (((umin) & U64) ^ SIGN64) - SIGN64, (((umax) & U64) ^ SIGN64) - SIGN64
            if a <= b:
                if a > smin:
                    smin = a
                if b < smax:
                    smax = b
            a, b = smin & U64, smax & U64
            if a <= b:
                if a > umin:
                    umin = a
                if b < umax:
                    umax = b
            elif umax < a:
                smin = (((umin) & U64) ^ SIGN64) - SIGN64
                if b < umax:
                    umax = b
            elif b < umin:
                smax = (((umax) & U64) ^ SIGN64) - SIGN64
                if a > umin:
                    umin = a
            # __reg_deduce_mixed_bounds
            hi = ~U32 & U64
            t = (umin & hi) | u32min
            if t > umin:
                umin = t
            t = (umax & hi) | u32max
            if t < umax:
                umax = t
            t = ((((smin & hi) | u32min) & U64) ^ SIGN64) - SIGN64
            if t > smin:
                smin = t
            t = ((((smax & hi) | u32max) & U64) ^ SIGN64) - SIGN64
            if t < smax:
                smax = t
            if s32min >= 0 and smin >= S32_MIN and smax <= S32_MAX:
                smin, smax = s32min, s32max
                umin, umax = s32min & U64, s32max & U64
                # v, m = tintersect((v, m), trange(smin, smax)), inlined
                lo = smin & U64
                bits = (lo ^ (smax & U64)).bit_length()
                if bits > 63:
                    rv, rm = 0, U64
                else:
                    rm = (1 << bits) - 1
                    rv = lo & ~rm
                m &= rm
                v = (v | rv) & ~m & U64
        # __reg_bound_offset
        # var64 = tintersect((v, m), trange(umin, umax)), inlined
        bits = ((umin ^ umax) & U64).bit_length()
        if bits > 63:
            rv, rm = 0, U64
        else:
            rm = (1 << bits) - 1
            rv = umin & ~rm & U64
        m64 = m & rm
        v64 = (v | rv) & ~m64 & U64
        # var32 = tintersect(tsubreg(var64), trange(u32_min, u32_max)), inlined
        bits = ((u32min ^ u32max) & U64).bit_length()
        if bits > 63:
            rv, rm = 0, U64
        else:
            rm = (1 << bits) - 1
            rv = u32min & ~rm & U64
        m32 = m64 & U32 & rm
        v32 = ((v64 & U32) | rv) & ~m32 & U64
        v = (v64 & ~U32 & U64) | v32
        m = ((m64 & ~U32 & U64) | m32) & ~v & U64
    return (v, m, umin, umax, smin, smax, u32min, u32max, s32min, s32max)


def _sx(v: int, bits: int) -> int:
    v &= (1 << bits) - 1
    return v - (1 << bits) if v >> (bits - 1) else v


def tcast_size(t: Tnum, size: int) -> Tnum:
    m = (1 << (size * 8)) - 1
    return (t[0] & m, t[1] & m)


def new_scalar_known(v: int) -> Reg:
    r = Reg()
    r.type = T.SCALAR
    r.mark_known(v)
    return r


def new_unknown() -> Reg:
    r = Reg()
    r.mark_unknown()
    return r


# --- scalar ALU (adjust_scalar_min_max_vals) ---------------------------------------------


def _add_ovf_s64(a: int, b: int) -> tuple[int, bool]:
    r = a + b
    return s64(r), not (S64_MIN <= r <= S64_MAX)


def _add_ovf_s32(a: int, b: int) -> tuple[int, bool]:
    r = a + b
    return s32(r), not (S32_MIN <= r <= S32_MAX)


def _sub_ovf_s64(a: int, b: int) -> tuple[int, bool]:
    r = a - b
    return s64(r), not (S64_MIN <= r <= S64_MAX)


def _sub_ovf_s32(a: int, b: int) -> tuple[int, bool]:
    r = a - b
    return s32(r), not (S32_MIN <= r <= S32_MAX)


def scalar32_add(d: Reg, s: Reg) -> None:
    smin, o1 = _add_ovf_s32(d.s32_min, s.s32_min)
    smax, o2 = _add_ovf_s32(d.s32_max, s.s32_max)
    if o1 or o2:
        d.s32_min, d.s32_max = S32_MIN, S32_MAX
    else:
        d.s32_min, d.s32_max = smin, smax
    umin = d.u32_min + s.u32_min
    umax = d.u32_max + s.u32_max
    min_ovf = umin > U32
    max_ovf = umax > U32
    if not min_ovf and max_ovf:
        d.u32_min, d.u32_max = 0, U32
    else:
        d.u32_min, d.u32_max = umin & U32, umax & U32


def scalar64_add(d: Reg, s: Reg) -> None:
    smin, o1 = _add_ovf_s64(d.smin, s.smin)
    smax, o2 = _add_ovf_s64(d.smax, s.smax)
    if o1 or o2:
        d.smin, d.smax = S64_MIN, S64_MAX
    else:
        d.smin, d.smax = smin, smax
    umin = d.umin + s.umin
    umax = d.umax + s.umax
    min_ovf = umin > U64
    max_ovf = umax > U64
    if not min_ovf and max_ovf:
        d.umin, d.umax = 0, U64
    else:
        d.umin, d.umax = umin & U64, umax & U64


def scalar32_sub(d: Reg, s: Reg) -> None:
    smin, o1 = _sub_ovf_s32(d.s32_min, s.s32_max)
    smax, o2 = _sub_ovf_s32(d.s32_max, s.s32_min)
    if o1 or o2:
        d.s32_min, d.s32_max = S32_MIN, S32_MAX
    else:
        d.s32_min, d.s32_max = smin, smax
    umin = d.u32_min - s.u32_max
    umax = d.u32_max - s.u32_min
    min_unf = umin < 0
    max_unf = umax < 0
    if min_unf and not max_unf:
        d.u32_min, d.u32_max = 0, U32
    else:
        d.u32_min, d.u32_max = umin & U32, umax & U32


def scalar64_sub(d: Reg, s: Reg) -> None:
    smin, o1 = _sub_ovf_s64(d.smin, s.smax)
    smax, o2 = _sub_ovf_s64(d.smax, s.smin)
    if o1 or o2:
        d.smin, d.smax = S64_MIN, S64_MAX
    else:
        d.smin, d.smax = smin, smax
    umin = d.umin - s.umax
    umax = d.umax - s.umin
    min_unf = umin < 0
    max_unf = umax < 0
    if min_unf and not max_unf:
        d.umin, d.umax = 0, U64
    else:
        d.umin, d.umax = umin & U64, umax & U64


def scalar32_mul(d: Reg, s: Reg) -> None:
    umax = d.u32_max * s.u32_max
    umin = d.u32_min * s.u32_min
    if umax > U32 or umin > U32:
        d.u32_min, d.u32_max = 0, U32
    else:
        d.u32_min, d.u32_max = umin, umax
    prods = (
        d.s32_min * s.s32_min,
        d.s32_min * s.s32_max,
        d.s32_max * s.s32_min,
        d.s32_max * s.s32_max,
    )
    if any(not (S32_MIN <= p <= S32_MAX) for p in prods):
        d.s32_min, d.s32_max = S32_MIN, S32_MAX
    else:
        d.s32_min, d.s32_max = min(prods), max(prods)


def scalar64_mul(d: Reg, s: Reg) -> None:
    umax = d.umax * s.umax
    umin = d.umin * s.umin
    if umax > U64 or umin > U64:
        d.umin, d.umax = 0, U64
    else:
        d.umin, d.umax = umin, umax
    prods = (d.smin * s.smin, d.smin * s.smax, d.smax * s.smin, d.smax * s.smax)
    if any(not (S64_MIN <= p <= S64_MAX) for p in prods):
        d.smin, d.smax = S64_MIN, S64_MAX
    else:
        d.smin, d.smax = min(prods), max(prods)


def _s32_from_u32_bounds(d: Reg) -> None:
    if s32(d.u32_min) <= s32(d.u32_max):
        d.s32_min, d.s32_max = s32(d.u32_min), s32(d.u32_max)
    else:
        d.s32_min, d.s32_max = S32_MIN, S32_MAX


def _s64_from_u64_bounds(d: Reg) -> None:
    if s64(d.umin) <= s64(d.umax):
        d.smin, d.smax = s64(d.umin), s64(d.umax)
    else:
        d.smin, d.smax = S64_MIN, S64_MAX


def scalar32_and(d: Reg, s: Reg) -> None:
    src_known = (s.mask & U32) == 0
    dst_known = (d.mask & U32) == 0
    v32 = d.value & U32
    if src_known and dst_known:
        d.mark_known32(v32)
        return
    d.u32_min = v32
    d.u32_max = min(d.u32_max, s.u32_max)
    _s32_from_u32_bounds(d)


def scalar64_and(d: Reg, s: Reg) -> None:
    if s.mask == 0 and d.mask == 0:
        d.mark_known(d.value)
        return
    d.umin = d.value
    d.umax = min(d.umax, s.umax)
    _s64_from_u64_bounds(d)
    d.update_bounds()


def scalar32_or(d: Reg, s: Reg) -> None:
    src_known = (s.mask & U32) == 0
    dst_known = (d.mask & U32) == 0
    v32, m32 = d.value & U32, d.mask & U32
    if src_known and dst_known:
        d.mark_known32(v32)
        return
    d.u32_min = max(d.u32_min, s.u32_min)
    d.u32_max = v32 | m32
    _s32_from_u32_bounds(d)


def scalar64_or(d: Reg, s: Reg) -> None:
    if s.mask == 0 and d.mask == 0:
        d.mark_known(d.value)
        return
    d.umin = max(d.umin, s.umin)
    d.umax = d.value | d.mask
    _s64_from_u64_bounds(d)
    d.update_bounds()


def scalar32_xor(d: Reg, s: Reg) -> None:
    src_known = (s.mask & U32) == 0
    dst_known = (d.mask & U32) == 0
    v32, m32 = d.value & U32, d.mask & U32
    if src_known and dst_known:
        d.mark_known32(v32)
        return
    d.u32_min = v32
    d.u32_max = v32 | m32
    _s32_from_u32_bounds(d)


def scalar64_xor(d: Reg, s: Reg) -> None:
    if s.mask == 0 and d.mask == 0:
        d.mark_known(d.value)
        return
    d.umin = d.value
    d.umax = d.value | d.mask
    _s64_from_u64_bounds(d)
    d.update_bounds()


def _lsh32_bounds(d: Reg, umin_val: int, umax_val: int) -> None:
    d.s32_min, d.s32_max = S32_MIN, S32_MAX
    if umax_val > 31 or d.u32_max > (1 << (31 - umax_val)):
        d.u32_min, d.u32_max = 0, U32
    else:
        d.u32_min = (d.u32_min << umin_val) & U32
        d.u32_max = (d.u32_max << umax_val) & U32


def scalar32_lsh(d: Reg, s: Reg) -> None:
    umin_val, umax_val = s.u32_min, s.u32_max
    sub = tsubreg(d.var_off)
    _lsh32_bounds(d, umin_val, umax_val)
    d.var_off = tsubreg(tlshift(sub, umin_val))
    d.mark_64_unbounded()
    d.update_bounds32()


def scalar64_lsh(d: Reg, s: Reg) -> None:
    umin_val, umax_val = s.umin, s.umax
    if umin_val == 32 and umax_val == 32 and d.s32_max >= 0:
        d.smax = d.s32_max << 32
    else:
        d.smax = S64_MAX
    if umin_val == 32 and umax_val == 32 and d.s32_min >= 0:
        d.smin = d.s32_min << 32
    else:
        d.smin = S64_MIN
    if d.umax > (1 << (63 - umax_val)):
        d.umin, d.umax = 0, U64
    else:
        d.umin = (d.umin << umin_val) & U64
        d.umax = (d.umax << umax_val) & U64
    _lsh32_bounds(d, umin_val, umax_val)
    d.var_off = tlshift(d.var_off, umin_val)
    d.update_bounds()


def scalar32_rsh(d: Reg, s: Reg) -> None:
    sub = tsubreg(d.var_off)
    umin_val, umax_val = s.u32_min, s.u32_max
    d.s32_min, d.s32_max = S32_MIN, S32_MAX
    d.var_off = trshift(sub, umin_val)
    d.u32_min = d.u32_min >> umax_val
    d.u32_max = d.u32_max >> umin_val
    d.mark_64_unbounded()
    d.update_bounds32()


def scalar64_rsh(d: Reg, s: Reg) -> None:
    umin_val, umax_val = s.umin, s.umax
    d.smin, d.smax = S64_MIN, S64_MAX
    d.var_off = trshift(d.var_off, umin_val)
    d.umin >>= umax_val
    d.umax >>= umin_val
    d.mark_32_unbounded()
    d.update_bounds()


def scalar32_arsh(d: Reg, s: Reg) -> None:
    sh = s.u32_min
    d.s32_min = d.s32_min >> sh
    d.s32_max = d.s32_max >> sh
    d.var_off = tarshift(tsubreg(d.var_off), sh, 32)
    d.u32_min, d.u32_max = 0, U32
    d.mark_64_unbounded()
    d.update_bounds32()


def scalar64_arsh(d: Reg, s: Reg) -> None:
    sh = s.umin
    d.smin >>= sh
    d.smax >>= sh
    d.var_off = tarshift(d.var_off, sh, 64)
    d.umin, d.umax = 0, U64
    d.mark_32_unbounded()
    d.update_bounds()


# ALU op codes (BPF_OP values)
ADD, SUB, MUL, DIV, OR, AND, LSH, RSH, NEG, MOD, XOR, MOV, ARSH, END = (
    0x00,
    0x10,
    0x20,
    0x30,
    0x40,
    0x50,
    0x60,
    0x70,
    0x80,
    0x90,
    0xA0,
    0xB0,
    0xC0,
    0xD0,
)

ALU_NAMES = {
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


def _swab(v: int, nbytes: int) -> int:
    return int.from_bytes((v & ((1 << (8 * nbytes)) - 1)).to_bytes(nbytes, "little"), "big")


def scalar_byte_swap(d: Reg, width: int, swap: bool) -> None:
    """BPF_END on a scalar: swap the tnum's bytes (bounds are re-derived from it)
    and truncate to 16/32 bits; ``le``/``be`` without a swap on this little-endian
    machine only truncate."""
    if swap:
        n = width // 8
        d.value, d.mask = _swab(d.value, n), _swab(d.mask, n)
        d.mark_unbounded()
    if width in (16, 32):
        d.coerce_to_size(width // 8)
    d.sync()


def _concrete(op: int, a: int, b: int, bits: int) -> int | None:
    full = (1 << bits) - 1
    if op == ADD:
        return (a + b) & full
    if op == SUB:
        return (a - b) & full
    if op == MUL:
        return (a * b) & full
    if op == AND:
        return a & b
    if op == OR:
        return a | b
    if op == XOR:
        return a ^ b
    if op == NEG:
        return (-a) & full
    if op == LSH:
        return (a << b) & full
    if op == RSH:
        return a >> b
    if op == ARSH:
        sa = a - (1 << bits) if a >> (bits - 1) else a
        return (sa >> b) & full
    return None


def safe_to_compute(op: int, src: Reg, alu32: bool) -> bool:
    """is_safe_to_compute_dst_reg_range: shifts need a constant in-range amount,
    div/mod are not tracked."""
    if op in (ADD, SUB, NEG, AND, XOR, OR, MUL):
        return True
    if op in (LSH, RSH, ARSH):
        if alu32:
            known = (
                (src.mask & U32) == 0 and src.s32_min == src.s32_max and src.u32_min == src.u32_max
            )
            return known and src.umax < 32
        known = src.mask == 0 and src.smin == src.smax and src.umin == src.umax
        return known and src.umax < 64
    return False


def scalar_alu(d: Reg, s: Reg, op: int, alu32: bool) -> bool:
    """adjust_scalar_min_max_vals: ``d = d OP s`` on two scalars (``s`` unchanged).
    Returns True when the result is a constant computed concretely (its bounds are
    consistent by construction: the caller may skip the sanity check)."""
    if not safe_to_compute(op, s, alu32):
        d.mark_unknown()
        return False
    # both operands known: the abstract result is the concrete one (the tnum
    # operations are exact on constants and the bounds follow the tnum)
    if alu32:
        if not (d.mask & U32) and not (s.mask & U32):
            res = _concrete(op, d.value & U32, s.value & U32, 32)
            if res is not None:
                d.mark_known(res & U32)
                return True
    elif not d.mask and not s.mask:
        res = _concrete(op, d.value, s.value, 64)
        if res is not None:
            d.mark_known(res & U64)
            return True
    if op == ADD:
        scalar32_add(d, s)
        scalar64_add(d, s)
        d.var_off = tadd(d.var_off, s.var_off)
    elif op == SUB:
        scalar32_sub(d, s)
        scalar64_sub(d, s)
        d.var_off = tsub(d.var_off, s.var_off)
    elif op == NEG:
        old = d.copy()
        d.mark_known(0)
        scalar32_sub(d, old)
        scalar64_sub(d, old)
        d.var_off = tneg(old.var_off)
    elif op == MUL:
        d.var_off = tmul(d.var_off, s.var_off)
        scalar32_mul(d, s)
        scalar64_mul(d, s)
    elif op == AND:
        d.var_off = tand(d.var_off, s.var_off)
        scalar32_and(d, s)
        scalar64_and(d, s)
    elif op == OR:
        d.var_off = tor(d.var_off, s.var_off)
        scalar32_or(d, s)
        scalar64_or(d, s)
    elif op == XOR:
        d.var_off = txor(d.var_off, s.var_off)
        scalar32_xor(d, s)
        scalar64_xor(d, s)
    elif op == LSH:
        if alu32:
            scalar32_lsh(d, s)
        else:
            scalar64_lsh(d, s)
    elif op == RSH:
        if alu32:
            scalar32_rsh(d, s)
        else:
            scalar64_rsh(d, s)
    elif op == ARSH:
        if alu32:
            scalar32_arsh(d, s)
        else:
            scalar64_arsh(d, s)
    if alu32:
        d.zext_32_to_64()
    d.sync()
    return False


# --- branches: is_branch_taken / regs_refine_cond_op ------------------------------------

JEQ, JGT, JGE, JSET, JNE, JSGT, JSGE, JLT, JLE, JSLT, JSLE = (
    0x10,
    0x20,
    0x30,
    0x40,
    0x50,
    0x60,
    0x70,
    0xA0,
    0xB0,
    0xC0,
    0xD0,
)
#: the reverse of JSET ("no bit in common"), as the kernel encodes it
JSET_REV = JSET | 0x08

FLIP = {
    JGT: JLT,
    JLT: JGT,
    JGE: JLE,
    JLE: JGE,
    JSGT: JSLT,
    JSLT: JSGT,
    JSGE: JSLE,
    JSLE: JSGE,
    JEQ: JEQ,
    JNE: JNE,
    JSET: JSET,
}
REV = {
    JEQ: JNE,
    JNE: JEQ,
    JGE: JLT,
    JLT: JGE,
    JGT: JLE,
    JLE: JGT,
    JSGE: JSLT,
    JSLT: JSGE,
    JSGT: JSLE,
    JSLE: JSGT,
    JSET: JSET_REV,
    JSET_REV: JSET,
}


def is_reg_const(r: Reg, sub32: bool) -> bool:
    if r.type != T.SCALAR:
        return False
    return (r.mask & U32) == 0 if sub32 else r.mask == 0


def reg_const_value(r: Reg, sub32: bool) -> int:
    return r.value & U32 if sub32 else r.value


def _tnum_overlap(a: Tnum, b: Tnum) -> bool:
    mu = a[1] | b[1]
    return (a[0] & ~mu) == (b[0] & ~mu)


def is_scalar_branch_taken(r1: Reg, r2: Reg, op: int, jmp32: bool) -> int:
    """1 = always taken, 0 = never, -1 = unknown, for two scalars."""
    if jmp32:
        t1, t2 = tsubreg(r1.var_off), tsubreg(r2.var_off)
        umin1, umax1, smin1, smax1 = r1.u32_min, r1.u32_max, r1.s32_min, r1.s32_max
        umin2, umax2, smin2, smax2 = r2.u32_min, r2.u32_max, r2.s32_min, r2.s32_max
    else:
        t1, t2 = r1.var_off, r2.var_off
        umin1, umax1, smin1, smax1 = r1.umin, r1.umax, r1.smin, r1.smax
        umin2, umax2, smin2, smax2 = r2.umin, r2.umax, r2.smin, r2.smax
    if op == JEQ or op == JNE:
        eq_result = 1 if op == JEQ else 0
        if t1[1] == 0 and t2[1] == 0:
            return eq_result if t1[0] == t2[0] else 1 - eq_result
        differ = (
            not _tnum_overlap(t1, t2)
            or umin1 > umax2
            or umax1 < umin2
            or smin1 > smax2
            or smax1 < smin2
        )
        if not differ and not jmp32:
            differ = (
                r1.u32_min > r2.u32_max
                or r1.u32_max < r2.u32_min
                or r1.s32_min > r2.s32_max
                or r1.s32_max < r2.s32_min
            )
        if differ:
            return 1 - eq_result
        return -1
    if op == JSET:
        if not is_reg_const(r2, jmp32):
            r1, r2 = r2, r1
            t1, t2 = t2, t1
        if not is_reg_const(r2, jmp32):
            return -1
        if (~t1[1] & t1[0]) & t2[0]:
            return 1
        if not ((t1[1] | t1[0]) & t2[0]):
            return 0
        return -1
    if op == JGT:
        if umin1 > umax2:
            return 1
        if umax1 <= umin2:
            return 0
    elif op == JSGT:
        if smin1 > smax2:
            return 1
        if smax1 <= smin2:
            return 0
    elif op == JLT:
        if umax1 < umin2:
            return 1
        if umin1 >= umax2:
            return 0
    elif op == JSLT:
        if smax1 < smin2:
            return 1
        if smin1 >= smax2:
            return 0
    elif op == JGE:
        if umin1 >= umax2:
            return 1
        if umax1 < umin2:
            return 0
    elif op == JSGE:
        if smin1 >= smax2:
            return 1
        if smax1 < smin2:
            return 0
    elif op == JLE:
        if umax1 <= umin2:
            return 1
        if umin1 > umax2:
            return 0
    elif op == JSLE:
        if smax1 <= smin2:
            return 1
        if smin1 > smax2:
            return 0
    return -1


def reg_not_null(r: Reg) -> bool:
    if r.type & T.MAYBE_NULL:
        return False
    b = r.type & T.BASE_MASK
    return b in (
        T.PTR_TO_SOCKET,
        T.PTR_TO_TCP_SOCK,
        T.PTR_TO_MAP_VALUE,
        T.PTR_TO_MAP_KEY,
        T.PTR_TO_SOCK_COMMON,
        T.PTR_TO_MEM,
    ) or (b == T.PTR_TO_BTF_ID and bool(r.type & T.PTR_TRUSTED))


def is_pkt_ptr_branch_taken(dst: Reg, src: Reg, op: int) -> int:
    if src.type == T.PTR_TO_PACKET_END:
        pkt = dst
    elif dst.type == T.PTR_TO_PACKET_END:
        pkt = src
        op = FLIP[op]
    else:
        return -1
    if pkt.range >= 0:
        return -1
    if op in (JLE, JGT):
        if pkt.range == BEYOND_PKT_END:
            return 1 if op == JGT else 0
    elif op in (JLT, JGE):
        if pkt.range in (BEYOND_PKT_END, AT_PKT_END):
            return 1 if op == JGE else 0
    return -1


def is_branch_taken(r1: Reg, r2: Reg, op: int, jmp32: bool) -> int:
    if r1.is_pkt_any() and r2.is_pkt_any() and not jmp32:
        return is_pkt_ptr_branch_taken(r1, r2, op)
    if r1.type != T.SCALAR or r2.type != T.SCALAR:
        if not is_reg_const(r2, jmp32):
            op = FLIP[op]
            r1, r2 = r2, r1
        if not is_reg_const(r2, jmp32):
            return -1
        if not reg_not_null(r1):
            return -1
        if reg_const_value(r2, jmp32) != 0:
            return -1
        if op == JEQ:
            return 0
        if op == JNE:
            return 1
        return -1
    return is_scalar_branch_taken(r1, r2, op, jmp32)


def refine_cond_op(r1: Reg, r2: Reg, op: int, jmp32: bool) -> None:
    """regs_refine_cond_op: narrow both scalars assuming ``r1 OP r2`` holds."""
    if op in (JGE, JGT, JSGE, JSGT):
        op = FLIP[op]
        r1, r2 = r2, r1
    if op == JEQ:
        if jmp32:
            r1.u32_min = max(r1.u32_min, r2.u32_min)
            r1.u32_max = min(r1.u32_max, r2.u32_max)
            r1.s32_min = max(r1.s32_min, r2.s32_min)
            r1.s32_max = min(r1.s32_max, r2.s32_max)
            r2.u32_min, r2.u32_max = r1.u32_min, r1.u32_max
            r2.s32_min, r2.s32_max = r1.s32_min, r1.s32_max
            t = tintersect(tsubreg(r1.var_off), tsubreg(r2.var_off))
            r1.var_off = twith_subreg(r1.var_off, t)
            r2.var_off = twith_subreg(r2.var_off, t)
        else:
            r1.umin = max(r1.umin, r2.umin)
            r1.umax = min(r1.umax, r2.umax)
            r1.smin = max(r1.smin, r2.smin)
            r1.smax = min(r1.smax, r2.smax)
            r2.umin, r2.umax = r1.umin, r1.umax
            r2.smin, r2.smax = r1.smin, r1.smax
            r1.var_off = tintersect(r1.var_off, r2.var_off)
            r2.var_off = r1.var_off
    elif op == JNE:
        if not is_reg_const(r2, jmp32):
            r1, r2 = r2, r1
        if not is_reg_const(r2, jmp32):
            return
        val = reg_const_value(r2, jmp32)
        if jmp32:
            if r1.u32_min == val & U32:
                r1.u32_min = (r1.u32_min + 1) & U32
            if r1.u32_max == val & U32:
                r1.u32_max = (r1.u32_max - 1) & U32
            if r1.s32_min == s32(val):
                r1.s32_min = s32(r1.s32_min + 1)
            if r1.s32_max == s32(val):
                r1.s32_max = s32(r1.s32_max - 1)
        else:
            if r1.umin == val:
                r1.umin = (r1.umin + 1) & U64
            if r1.umax == val:
                r1.umax = (r1.umax - 1) & U64
            if r1.smin == s64(val):
                r1.smin = s64(r1.smin + 1)
            if r1.smax == s64(val):
                r1.smax = s64(r1.smax - 1)
    elif op == JSET:
        if not is_reg_const(r2, jmp32):
            r1, r2 = r2, r1
        if not is_reg_const(r2, jmp32):
            return
        val = reg_const_value(r2, jmp32)
        if not val or val & (val - 1):
            return  # only a single-bit mask teaches anything
        if jmp32:
            t = tor(tsubreg(r1.var_off), tconst(val))
            r1.var_off = twith_subreg(r1.var_off, t)
        else:
            r1.var_off = tor(r1.var_off, tconst(val))
    elif op == JSET_REV:
        if not is_reg_const(r2, jmp32):
            r1, r2 = r2, r1
        if not is_reg_const(r2, jmp32):
            return
        val = reg_const_value(r2, jmp32)
        r1.mark_unbounded()
        if jmp32:
            t = tand(tsubreg(r1.var_off), tconst(~val & U64))
            r1.var_off = twith_subreg(r1.var_off, t)
        else:
            r1.var_off = tand(r1.var_off, tconst(~val & U64))
    elif op == JLE:
        if jmp32:
            r1.u32_max = min(r1.u32_max, r2.u32_max)
            r2.u32_min = max(r1.u32_min, r2.u32_min)
        else:
            r1.umax = min(r1.umax, r2.umax)
            r2.umin = max(r1.umin, r2.umin)
    elif op == JLT:
        if jmp32:
            r1.u32_max = min(r1.u32_max, (r2.u32_max - 1) & U32)
            r2.u32_min = max((r1.u32_min + 1) & U32, r2.u32_min)
        else:
            r1.umax = min(r1.umax, (r2.umax - 1) & U64)
            r2.umin = max((r1.umin + 1) & U64, r2.umin)
    elif op == JSLE:
        if jmp32:
            r1.s32_max = min(r1.s32_max, r2.s32_max)
            r2.s32_min = max(r1.s32_min, r2.s32_min)
        else:
            r1.smax = min(r1.smax, r2.smax)
            r2.smin = max(r1.smin, r2.smin)
    elif op == JSLT:
        if jmp32:
            r1.s32_max = min(r1.s32_max, s32(r2.s32_max - 1))
            r2.s32_min = max(s32(r1.s32_min + 1), r2.s32_min)
        else:
            r1.smax = min(r1.smax, s64(r2.smax - 1))
            r2.smin = max(s64(r1.smin + 1), r2.smin)


def tnum_of(r: Reg) -> Tnum:
    return (r.value, r.mask)


def is_tnum_const(r: Reg) -> bool:
    return tis_const((r.value, r.mask))
