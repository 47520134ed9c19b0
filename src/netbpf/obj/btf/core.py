"""BPF CO-RE ("compile once, run everywhere") relocations.

A CO-RE record says: the instruction at ``insn_off`` encodes some property (a field's
byte offset or size, whether a type exists, an enumerator's value...) of a *local*
type as the compiler saw it; rewrite it for the *target* type system (vmlinux BTF on
the kernel backend, the simulator's own types in the sim).

The rules follow libbpf's documented algorithm (``relo_core.c``; facts only):

1. **Candidates**: target types whose name equals the local name once a
   ``___flavor`` suffix is ignored (``foo___v1`` ~ ``foo``) and whose kind is
   compatible (same kind; ENUM and ENUM64 mix).
2. **Spec matching**: the local access string ("0:1:2": root index, then member or
   array indices, low-level, so anonymous members appear too) is reduced to the
   named fields and array indices; each named field is looked up *by name* in the
   candidate, recursing through anonymous struct/union members, checking field
   type compatibility and array bounds (flexible arrays excepted).
3. **Decision**: every matching candidate must give the same bit offset and the
   same value, else the relocation is ambiguous (an error).  No match at all is
   not an error: FIELD_EXISTS/TYPE_EXISTS/... become 0 and relocations that need a
   value *poison* the instruction (it becomes ``call 0xbad2310``, which the verifier
   only rejects if it is reachable).

:func:`compute_core_relocation` computes a :class:`CoreReloResult` (pure data) and
:func:`apply_core_relocation` patches an instruction list with it.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from netbpf.errors import BtfError
from netbpf.isa.instruction import Instruction
from netbpf.obj.btf.ext import SECTION as EXT_SECTION
from netbpf.obj.btf.ext import CoreRelo, CoreReloKind
from netbpf.obj.btf.model import Btf
from netbpf.obj.btf.types import (
    MODIFIER_KINDS,
    Array,
    BtfType,
    Enum,
    Enum64,
    FuncProto,
    Fwd,
    Int,
    IntEncoding,
    Kind,
    Struct,
    Union,
)

__all__ = [
    "POISON_IMM",
    "CoreCandidateCache",
    "CoreReloResult",
    "apply_core_relocation",
    "compute_core_relocation",
    "essential_name",
]

#: The immediate of a poisoned instruction (``call 195896080``, "bad relo").
POISON_IMM = 0xBAD2310
SPEC_MAX_LEN = 64  # BPF_CORE_SPEC_MAX_LEN
_RECURSION_LEVEL = 32
_MASK64 = (1 << 64) - 1

#: Per-local-type candidate lists, pruned as relocations rule candidates out (libbpf
#: keeps one such cache per object load).  Key: (id(target_btf), local type id).
CoreCandidateCache = dict[tuple[int, int], list[int]]


def essential_name(name: str) -> str:
    """``name`` without its last ``___flavor`` suffix (``X___Y`` with X and Y not
    starting/ending in an underscore), e.g. ``task_struct___v1`` -> ``task_struct``."""
    if "___" not in name:
        return name
    n = len(name)
    for i in range(n - 5, -1, -1):
        if name[i] != "_" and name[i + 1 : i + 4] == "___" and name[i + 4] != "_":
            return name[: i + 1]
    return name


# -- result -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CoreReloResult:
    """What a CO-RE relocation resolves to (libbpf's ``bpf_core_relo_res``).

    ``orig_val`` is the value the compiler encoded (checked against the instruction
    when ``validate``), ``new_val`` the value for the target.  ``poison`` means the
    instruction must become ``call 0xbad2310``.  ``orig_size``/``new_size`` are the
    field's memory sizes when a load/store width has to change; if that change is
    unsafe (signed or non-pointer types) ``fail_memsz_adjust`` poisons loads/stores.
    ``target_type_id`` is the matched target root type (None when nothing matched);
    ``target_spec`` a readable description for logs."""

    kind: CoreReloKind
    orig_val: int
    new_val: int
    poison: bool = False
    validate: bool = True
    fail_memsz_adjust: bool = False
    orig_size: int = 0
    new_size: int = 0
    orig_type_id: int = 0
    new_type_id: int = 0
    target_type_id: int | None = None
    target_spec: str = ""

    @property
    def value(self) -> int:
        """The relocated value (meaningless when ``poison``)."""
        return self.new_val


# -- specs ------------------------------------------------------------------------------


@dataclass(slots=True)
class _Acc:
    type_id: int
    idx: int
    name: str | None


@dataclass(slots=True)
class _Spec:
    btf: Btf
    root_type_id: int
    kind: CoreReloKind
    acc: list[_Acc] = field(default_factory=list)
    raw: list[int] = field(default_factory=list)
    bit_offset: int = 0

    def copy(self) -> _Spec:
        return _Spec(
            self.btf,
            self.root_type_id,
            self.kind,
            [replace(a) for a in self.acc],
            list(self.raw),
            self.bit_offset,
        )

    def describe(self) -> str:
        """libbpf-like ``[id] KIND name.a[3].b (0:1:3 @ offset 8)``."""
        t = self.btf.type(self.root_type_id)
        s = f"[{self.root_type_id}] {t.kind.name} {t.name or '<anon>'}"
        if self.kind.is_type:
            return s
        if self.kind.is_enumval:
            if self.acc:
                return f"{s}::{self.acc[0].name}"
            return s
        for i, a in enumerate(self.acc):
            if a.name:
                s += f".{a.name}"
            elif i > 0 or a.idx > 0:
                s += f"[{a.idx}]"
        raw = ":".join(str(r) for r in self.raw)
        off = self.bit_offset
        at = f"{off // 8}.{off % 8}" if off % 8 else f"{off // 8}"
        return f"{s} ({raw} @ offset {at})"


class _Invalid(Exception):
    """The relocation record itself is malformed (libbpf fails the load)."""


def _skip_mods(btf: Btf, type_id: int) -> tuple[BtfType, int]:
    t = btf.type(type_id)
    for _ in range(_RECURSION_LEVEL * 2):
        if t.kind not in MODIFIER_KINDS:
            return t, t.id
        t = btf.type(t.type_id)  # type: ignore[attr-defined]
    raise _Invalid(f"modifier chain too long at type [{type_id}]")


def _size(btf: Btf, type_id: int) -> int:
    try:
        return btf.size_of(type_id)
    except BtfError as e:
        raise _Invalid(f"cannot size type [{type_id}]: {e.reason}") from None


def _is_composite(t: BtfType) -> bool:
    return isinstance(t, Struct | Union)


def _is_any_enum(t: BtfType) -> bool:
    return isinstance(t, Enum | Enum64)


def _kind_compat(a: BtfType, b: BtfType) -> bool:
    return a.kind == b.kind or (_is_any_enum(a) and _is_any_enum(b))


def _is_flex_arr(btf: Btf, acc: _Acc, arr: Array) -> bool:
    if not acc.name or arr.nelems > 0:
        return False
    t = btf.type(acc.type_id)
    assert isinstance(t, Struct | Union)
    return acc.idx == len(t.members) - 1


def _parse_spec(btf: Btf, relo: CoreRelo) -> _Spec:
    s = relo.access
    if not s or s.startswith(":"):
        raise _Invalid(f"empty or malformed access string {s!r}")
    spec = _Spec(btf, relo.type_id, relo.kind)
    if relo.kind.is_type:
        if s != "0":
            raise _Invalid(f"type-based relocation with access string {s!r} (expected '0')")
        return spec
    parts = s.split(":")
    for p in parts:
        if not p.isdigit():
            raise _Invalid(f"malformed access string {s!r}")
        if len(spec.raw) == SPEC_MAX_LEN:
            raise _Invalid(f"access string {s!r} is longer than {SPEC_MAX_LEN}")
        spec.raw.append(int(p))
    t, tid = _skip_mods(btf, relo.type_id)
    idx = spec.raw[0]
    spec.acc.append(_Acc(tid, idx, None))
    if relo.kind.is_enumval:
        if not isinstance(t, Enum | Enum64) or len(spec.raw) > 1 or idx >= len(t.values):
            raise _Invalid(f"enum value access {s!r} does not name an enumerator of [{tid}]")
        spec.acc[0].name = t.values[idx].name
        return spec
    if not relo.kind.is_field:
        raise _Invalid(f"unknown relocation kind {relo.kind}")
    spec.bit_offset = idx * _size(btf, tid) * 8
    for i, idx in enumerate(spec.raw[1:], 1):
        t, tid = _skip_mods(btf, tid)
        if isinstance(t, Struct | Union):
            if idx >= len(t.members):
                raise _Invalid(f"member index {idx} out of range in [{tid}] (access {s!r})")
            m = t.members[idx]
            spec.bit_offset += m.bit_offset
            if m.name:
                spec.acc.append(_Acc(tid, idx, m.name))
            tid = m.type_id
        elif isinstance(t, Array):
            _, tid = _skip_mods(btf, t.type_id)
            flex = _is_flex_arr(btf, spec.acc[-1], t)
            if not flex and idx >= t.nelems:
                raise _Invalid(f"array index {idx} out of range in [{t.id}] (access {s!r})")
            spec.acc.append(_Acc(tid, idx, None))
            spec.bit_offset += idx * _size(btf, tid) * 8
        else:
            raise _Invalid(
                f"access {s!r} at position {i} reaches type [{tid}] of unexpected kind "
                f"{t.kind.name}"
            )
    return spec


# -- compatibility --------------------------------------------------------------------


def _fields_compat(lbtf: Btf, lid: int, tbtf: Btf, tid: int) -> bool:
    for _ in range(_RECURSION_LEVEL):
        lt, lid = _skip_mods(lbtf, lid)
        tt, tid = _skip_mods(tbtf, tid)
        if _is_composite(lt) and _is_composite(tt):
            return True
        if not _kind_compat(lt, tt):
            return False
        k = lt.kind
        if k in (Kind.PTR, Kind.FLOAT):
            return True
        if k in (Kind.FWD, Kind.ENUM, Kind.ENUM64):
            ln, tn = essential_name(lt.name), essential_name(tt.name)
            return not ln or not tn or ln == tn
        if isinstance(lt, Int) and isinstance(tt, Int):
            return lt.offset == 0 and tt.offset == 0
        if isinstance(lt, Array) and isinstance(tt, Array):
            lid, tid = lt.type_id, tt.type_id
            continue
        return False
    raise _Invalid("type nesting too deep while checking field compatibility")


def _types_compat(lbtf: Btf, lid: int, tbtf: Btf, tid: int, level: int = _RECURSION_LEVEL) -> int:
    """libbpf's type-based compatibility (TYPE_EXISTS/TYPE_SIZE/TYPE_ID_TARGET): 1, 0
    or -1 (too deep)."""
    if not _kind_compat(lbtf.type(lid), tbtf.type(tid)):
        return 0
    depth = 32
    while True:
        depth -= 1
        if depth < 0:
            return -1
        lt, lid = _skip_mods(lbtf, lid)
        tt, tid = _skip_mods(tbtf, tid)
        if not _kind_compat(lt, tt):
            return 0
        k = lt.kind
        if k in (Kind.UNKN, Kind.STRUCT, Kind.UNION, Kind.ENUM, Kind.FWD, Kind.ENUM64):
            return 1
        if isinstance(lt, Int) and isinstance(tt, Int):
            return int(lt.offset == 0 and tt.offset == 0)
        if k == Kind.PTR:
            lid, tid = lt.type_id, tt.type_id  # type: ignore[attr-defined]
            continue
        if isinstance(lt, Array) and isinstance(tt, Array):
            lid, tid = lt.type_id, tt.type_id
            continue
        if isinstance(lt, FuncProto) and isinstance(tt, FuncProto):
            if len(lt.params) != len(tt.params):
                return 0
            for lp, tp in zip(lt.params, tt.params):
                if level <= 0:
                    return -1
                _, la = _skip_mods(lbtf, lp.type_id)
                _, ta = _skip_mods(tbtf, tp.type_id)
                r = _types_compat(lbtf, la, tbtf, ta, level - 1)
                if r <= 0:
                    return r
            _, lid = _skip_mods(lbtf, lt.return_type_id)
            _, tid = _skip_mods(tbtf, tt.return_type_id)
            continue
        return 0


def _names_match(lname: str, tname: str) -> bool:
    if not tname:
        return not lname
    return essential_name(lname) == essential_name(tname)


def _enums_match(lt: BtfType, tt: BtfType) -> int:
    assert isinstance(lt, Enum | Enum64) and isinstance(tt, Enum | Enum64)
    if lt.size != tt.size or len(lt.values) > len(tt.values):
        return 0
    for lv in lt.values:
        if not any(_names_match(lv.name, tv.name) for tv in tt.values):
            return 0
    return 1


def _types_match(
    lbtf: Btf,
    lid: int,
    tbtf: Btf,
    tid: int,
    behind_ptr: bool = False,
    level: int = _RECURSION_LEVEL,
) -> int:
    """libbpf's TYPE_MATCHES relation (stricter than compatibility)."""
    if level <= 0:
        return -1
    depth = 32
    while True:
        depth -= 1
        if depth < 0:
            return -1
        lt, lid = _skip_mods(lbtf, lid)
        tt, tid = _skip_mods(tbtf, tid)
        if not _names_match(lt.name, tt.name):
            return 0
        lk, tk = lt.kind, tt.kind
        if lk == Kind.UNKN:
            return int(lk == tk)
        if isinstance(lt, Fwd):
            if behind_ptr:
                if isinstance(tt, Fwd):
                    return int(lt.is_union == tt.is_union)
                return int(
                    (tk == Kind.STRUCT and not lt.is_union) or (tk == Kind.UNION and lt.is_union)
                )
            return int(isinstance(tt, Fwd) and lt.is_union == tt.is_union)
        if lk in (Kind.ENUM, Kind.ENUM64):
            if not _is_any_enum(tt):
                return 0
            return _enums_match(lt, tt)
        if isinstance(lt, Struct | Union):
            if behind_ptr:
                if lk == tk:
                    return 1
                if not isinstance(tt, Fwd):
                    return 0
                return int((lk == Kind.UNION) == tt.is_union)
            if lk != tk:
                return 0
            assert isinstance(tt, Struct | Union)
            if len(lt.members) > len(tt.members):
                return 0
            for lm in lt.members:
                matched = False
                for tm in tt.members:
                    if not _names_match(lm.name, tm.name):
                        continue
                    r = _types_match(lbtf, lm.type_id, tbtf, tm.type_id, behind_ptr, level - 1)
                    if r < 0:
                        return r
                    if r > 0:
                        matched = True
                        break
                if not matched:
                    return 0
            return 1
        if isinstance(lt, Int):
            if not isinstance(tt, Int):
                return 0
            return int(lt.size == tt.size and lt.signed == tt.signed)
        if lk == Kind.PTR:
            if lk != tk:
                return 0
            behind_ptr = True
            lid, tid = lt.type_id, tt.type_id  # type: ignore[attr-defined]
            continue
        if isinstance(lt, Array):
            if not isinstance(tt, Array) or lt.nelems != tt.nelems:
                return 0
            lid, tid = lt.type_id, tt.type_id
            continue
        if isinstance(lt, FuncProto):
            if not isinstance(tt, FuncProto) or len(lt.params) != len(tt.params):
                return 0
            for lp, tp in zip(lt.params, tt.params):
                r = _types_match(lbtf, lp.type_id, tbtf, tp.type_id, behind_ptr, level - 1)
                if r <= 0:
                    return r
            lid, tid = lt.return_type_id, tt.return_type_id
            continue
        return 0


# -- matching a local spec against one candidate ---------------------------------------


def _match_member(lspec: _Spec, lacc: _Acc, tbtf: Btf, tid: int, tspec: _Spec) -> tuple[int, int]:
    """Find the target member matching named local accessor ``lacc`` inside ``tid``
    (recursing into anonymous members); extends ``tspec``.  Returns (found, next id)."""
    tt, tid = _skip_mods(tbtf, tid)
    if not isinstance(tt, Struct | Union):
        return 0, tid
    lt = lspec.btf.type(lacc.type_id)
    assert isinstance(lt, Struct | Union)
    lmember = lt.members[lacc.idx]
    for i, m in enumerate(tt.members):
        if len(tspec.raw) == SPEC_MAX_LEN:
            raise _Invalid("struct/union/array nesting too deep in the target")
        tspec.bit_offset += m.bit_offset
        tspec.raw.append(i)
        if not m.name:
            found, nxt = _match_member(lspec, lacc, tbtf, m.type_id, tspec)
            if found:
                return found, nxt
        elif m.name == lmember.name:
            tspec.acc.append(_Acc(tid, i, m.name))
            ok = _fields_compat(lspec.btf, lmember.type_id, tbtf, m.type_id)
            if not ok:
                tspec.acc.pop()
            return int(ok), m.type_id
        tspec.bit_offset -= m.bit_offset
        tspec.raw.pop()
    return 0, tid


def _spec_match(lspec: _Spec, tbtf: Btf, tid: int) -> tuple[int, _Spec]:
    tspec = _Spec(tbtf, tid, lspec.kind)
    kind = lspec.kind
    if kind.is_type:
        if kind == CoreReloKind.TYPE_MATCHES:
            r = _types_match(lspec.btf, lspec.root_type_id, tbtf, tid)
        else:
            r = _types_compat(lspec.btf, lspec.root_type_id, tbtf, tid)
        if r < 0:
            raise _Invalid("type nesting too deep while matching")
        return r, tspec
    lacc = lspec.acc[0]
    if kind.is_enumval:
        tt, tid = _skip_mods(tbtf, tid)
        if not isinstance(tt, Enum | Enum64):
            return 0, tspec
        want = essential_name(lacc.name or "")
        for i, v in enumerate(tt.values):
            if essential_name(v.name) == want:
                tspec.acc.append(_Acc(tid, i, v.name))
                tspec.raw.append(i)
                return 1, tspec
        return 0, tspec
    for i, lacc in enumerate(lspec.acc):
        tt, tid = _skip_mods(tbtf, tid)
        if lacc.name:
            found, tid = _match_member(lspec, lacc, tbtf, tid, tspec)
            if found <= 0:
                return found, tspec
        else:
            if i > 0:
                if not isinstance(tt, Array):
                    return 0, tspec
                flex = _is_flex_arr(tbtf, tspec.acc[-1], tt)
                if not flex and lacc.idx >= tt.nelems:
                    return 0, tspec
                _, tid = _skip_mods(tbtf, tt.type_id)
            if len(tspec.raw) == SPEC_MAX_LEN:
                raise _Invalid("struct/union/array nesting too deep in the target")
            tspec.acc.append(_Acc(tid, lacc.idx, None))
            tspec.raw.append(lacc.idx)
            tspec.bit_offset += lacc.idx * _size(tbtf, tid) * 8
    return 1, tspec


# -- values ----------------------------------------------------------------------------------


class _Poison(Exception):
    pass


def _elem_size(btf: Btf, type_id: int) -> tuple[int, int]:
    t, eid = _skip_mods(btf, type_id)
    while isinstance(t, Array):
        t, eid = _skip_mods(btf, t.type_id)
    return _size(btf, eid), eid


def _field_value(relo: CoreRelo, spec: _Spec | None) -> tuple[int, int, int, bool]:
    """(value, field memory size, field type id, validate) of a field relocation."""
    kind = relo.kind
    if kind == CoreReloKind.FIELD_EXISTS:
        return (1 if spec else 0), 0, 0, True
    if spec is None:
        raise _Poison
    acc = spec.acc[-1]
    btf = spec.btf
    if not acc.name:  # a[n]: array element access
        if kind == CoreReloKind.FIELD_BYTE_OFFSET:
            sz, _ = _elem_size(btf, acc.type_id)
            return spec.bit_offset // 8, sz, acc.type_id, True
        if kind == CoreReloKind.FIELD_BYTE_SIZE:
            return _size(btf, acc.type_id), 0, 0, True
        raise _Invalid(f"{kind.name} cannot be applied to an array element access")
    t = btf.type(acc.type_id)
    assert isinstance(t, Struct | Union)
    m = t.members[acc.idx]
    mt, field_tid = _skip_mods(btf, m.type_id)
    bit_off = spec.bit_offset
    bit_sz = m.bitfield_size
    bitfield = bit_sz > 0
    if bitfield:
        byte_sz = getattr(mt, "size", 0)
        if byte_sz <= 0:
            raise _Invalid(f"bitfield member {m.name!r} has a type without size")
        byte_off = bit_off // 8 // byte_sz * byte_sz
        while bit_off + bit_sz - byte_off * 8 > byte_sz * 8:
            if byte_sz >= 8:
                raise _Invalid(f"bitfield {m.name!r} cannot be read with a 64-bit load")
            byte_sz *= 2
            byte_off = bit_off // 8 // byte_sz * byte_sz
    else:
        byte_sz = _size(btf, field_tid)
        byte_off = bit_off // 8
        bit_sz = byte_sz * 8
    validate = not bitfield
    field_sz = 0
    type_id = 0
    if kind == CoreReloKind.FIELD_BYTE_OFFSET:
        val = byte_off
        if not bitfield:
            field_sz, _ = _elem_size(btf, field_tid)
            type_id = field_tid
    elif kind == CoreReloKind.FIELD_BYTE_SIZE:
        val = byte_sz
    elif kind == CoreReloKind.FIELD_SIGNED:
        val = int(
            (isinstance(mt, Enum | Enum64) and mt.signed)
            or (isinstance(mt, Int) and bool(mt.encoding & IntEncoding.SIGNED))
        )
        validate = True
    elif kind == CoreReloKind.FIELD_LSHIFT_U64:
        val = 64 - (bit_off + bit_sz - byte_off * 8)  # little-endian target
    elif kind == CoreReloKind.FIELD_RSHIFT_U64:
        val = 64 - bit_sz
        validate = True
    else:  # pragma: no cover - kinds are checked by the caller
        raise _Invalid(f"unsupported field relocation {kind.name}")
    return val, field_sz, type_id, validate


def _type_value(relo: CoreRelo, spec: _Spec | None) -> tuple[int, bool]:
    if spec is None:
        return 0, True
    kind = relo.kind
    if kind == CoreReloKind.TYPE_ID_TARGET:
        return spec.root_type_id, False
    if kind in (CoreReloKind.TYPE_EXISTS, CoreReloKind.TYPE_MATCHES):
        return 1, True
    if kind == CoreReloKind.TYPE_SIZE:
        return _size(spec.btf, spec.root_type_id), True
    raise _Invalid(f"unsupported type relocation {kind.name}")  # pragma: no cover


def _enum_value(relo: CoreRelo, spec: _Spec | None) -> int:
    if relo.kind == CoreReloKind.ENUMVAL_EXISTS:
        return 1 if spec else 0
    if spec is None:
        raise _Poison
    t = spec.btf.type(spec.acc[0].type_id)
    assert isinstance(t, Enum | Enum64)
    v = t.values[spec.acc[0].idx].value
    if isinstance(t, Enum):
        # A 32-bit enumerator is a __s32 in BTF: libbpf sign-extends it to 64 bits
        # whatever the enum's signedness.
        v = ((v & 0xFFFFFFFF) ^ 0x80000000) - 0x80000000
    return v & _MASK64


def _calc(relo: CoreRelo, lspec: _Spec, tspec: _Spec | None) -> CoreReloResult:
    kind = relo.kind
    try:
        if kind.is_field:
            ov, osz, otid, validate = _field_value(relo, lspec)
            nv, nsz, ntid, _ = _field_value(relo, tspec)
            fail = False
            if osz != nsz:
                assert tspec is not None
                ot = lspec.btf.type(otid)
                nt = tspec.btf.type(ntid)
                if ot.kind == Kind.PTR and nt.kind == Kind.PTR:
                    fail = False
                elif (
                    isinstance(ot, Int)
                    and isinstance(nt, Int)
                    and ot.encoding != IntEncoding.SIGNED
                    and nt.encoding != IntEncoding.SIGNED
                ):
                    fail = False
                else:
                    fail = True
            return CoreReloResult(
                kind,
                ov,
                nv,
                validate=validate,
                fail_memsz_adjust=fail,
                orig_size=osz,
                new_size=nsz,
                orig_type_id=otid,
                new_type_id=ntid,
                target_type_id=tspec.root_type_id if tspec else None,
                target_spec=tspec.describe() if tspec else "",
            )
        if kind.is_type:
            ov, validate = _type_value(relo, lspec)
            nv, _ = _type_value(relo, tspec)
        else:
            ov = _enum_value(relo, lspec)
            nv = _enum_value(relo, tspec)
            validate = True
        return CoreReloResult(
            kind,
            ov,
            nv,
            validate=validate,
            target_type_id=tspec.root_type_id if tspec else None,
            target_spec=tspec.describe() if tspec else "",
        )
    except _Poison:
        return CoreReloResult(kind, 0, 0, poison=True)


def _candidates(local_btf: Btf, local: BtfType, target_btf: Btf) -> list[int]:
    ess = essential_name(local.name)
    out = []
    for tid in target_btf.essential_candidates(ess):
        t = target_btf.type(tid)
        if _kind_compat(t, local):
            out.append(tid)
    return out


def _error(relo: CoreRelo, reason: str, local_btf: Btf) -> BtfError:
    return BtfError(
        f"CO-RE relocation at {relo.section}+{relo.insn_off} (insn {relo.insn}, "
        f"{relo.kind.name}, access {relo.access!r}): {reason}",
        file=local_btf.file,
        section=EXT_SECTION,
        offset=relo.offset,
        type_id=relo.type_id,
    )


def compute_core_relocation(
    local_btf: Btf,
    relo: CoreRelo,
    target_btf: Btf,
    *,
    cache: CoreCandidateCache | None = None,
) -> CoreReloResult:
    """Resolve one CO-RE relocation of ``local_btf`` against ``target_btf``.

    Returns the values to patch (or a poison decision) as data.  A malformed record,
    a relocation on an anonymous type, or an ambiguous match (candidates disagreeing)
    raise ``BtfError`` naming '.BTF.ext', the record offset and the local type id —
    libbpf refuses to load the object in those cases.  Pass the same ``cache`` for
    all relocations of one object load to prune candidates exactly as libbpf does.
    """
    try:
        local = local_btf.type(relo.type_id)
        lspec = _parse_spec(local_btf, relo)
    except _Invalid as e:
        raise _error(relo, f"invalid relocation: {e}", local_btf) from None
    except BtfError as e:
        raise _error(relo, f"invalid relocation: {e.reason}", local_btf) from None

    if relo.kind == CoreReloKind.TYPE_ID_LOCAL:
        return CoreReloResult(relo.kind, lspec.root_type_id, lspec.root_type_id, validate=False)
    if not local.name:
        raise _error(relo, "relocations of anonymous types are not supported", local_btf)

    key = (id(target_btf), relo.type_id)
    if cache is not None and key in cache:
        cands = cache[key]
    else:
        cands = _candidates(local_btf, local, target_btf)
        if cache is not None:
            cache[key] = cands

    try:
        result: CoreReloResult | None = None
        first: _Spec | None = None
        kept: list[int] = []
        for tid in cands:
            found, tspec = _spec_match(lspec, target_btf, tid)
            if not found:
                continue
            res = _calc(relo, lspec, tspec)
            if result is None or first is None:
                result, first = res, tspec
            elif tspec.bit_offset != first.bit_offset:
                raise _error(
                    relo,
                    f"field offset ambiguity: {tspec.describe()} vs {first.describe()}",
                    local_btf,
                )
            elif res.poison != result.poison or res.new_val != result.new_val:
                raise _error(
                    relo,
                    f"relocation decision ambiguity: candidate [{tid}] gives "
                    f"{'failure' if res.poison else res.new_val}, candidate "
                    f"[{first.root_type_id}] gives "
                    f"{'failure' if result.poison else result.new_val}",
                    local_btf,
                )
            kept.append(tid)
        if kept and cache is not None:
            cache[key] = kept
        if result is None:
            result = _calc(relo, lspec, None)
        return result
    except _Invalid as e:
        raise _error(relo, str(e), local_btf) from None


# -- patching ----------------------------------------------------------------------------

_LD, _LDX, _ST, _STX, _ALU, _JMP, _ALU64 = 0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x07
_LD_IMM64 = 0x18
_CALL = 0x85
_SIZE_BYTES = {0x18: 8, 0x00: 4, 0x08: 2, 0x10: 1}
_BYTES_SIZE = {v: k for k, v in _SIZE_BYTES.items()}


def _s32(v: int) -> int:
    v &= 0xFFFFFFFF
    return v - (1 << 32) if v >= 1 << 31 else v


def _poison() -> Instruction:
    return Instruction(_CALL, 0, 0, 0, POISON_IMM)


def apply_core_relocation(
    insns: list[Instruction] | tuple[Instruction, ...],
    relo: CoreRelo,
    result: CoreReloResult,
    *,
    insn_base: int = 0,
) -> tuple[Instruction, ...]:
    """Patch the instruction ``relo`` points at (slot ``relo.insn - insn_base`` of
    ``insns``) with ``result``, like libbpf's ``bpf_core_patch_insn``:

    * ALU/ALU64 with an immediate: ``imm`` := new value;
    * LDX/ST/STX: ``off`` := new value, and the access width follows the field size
      when that changed (only for pointers and unsigned integers; otherwise, or if
      the width is not 1/2/4/8, the instruction is poisoned or refused);
    * LD_IMM64: the 64-bit immediate := new value;
    * poison: ``call 0xbad2310`` (both slots of an LD_IMM64).

    With ``result.validate`` the instruction must currently hold ``orig_val``.
    Refusals raise ``BtfError`` naming the instruction.  Returns a new tuple.
    """
    out = list(insns)
    idx = relo.insn - insn_base
    if not 0 <= idx < len(out):
        raise _relo_insn_error(relo, idx, f"is outside the {len(out)}-instruction program")
    insn = out[idx]
    cls = insn.opcode & 0x07
    is_ldimm64 = insn.opcode == _LD_IMM64

    def poison() -> tuple[Instruction, ...]:
        if is_ldimm64 and idx + 1 < len(out):
            out[idx + 1] = _poison()
        out[idx] = _poison()
        return tuple(out)

    if result.poison:
        return poison()
    orig, new = result.orig_val, result.new_val
    if cls in (_ALU, _ALU64):
        if insn.opcode & 0x08:
            raise _relo_insn_error(relo, idx, "is an ALU instruction with a register source")
        if result.validate and (insn.imm & _MASK64) != (orig & _MASK64):
            raise _relo_insn_error(
                relo, idx, f"(ALU) holds imm {insn.imm}, expected {orig} (-> {new})"
            )
        out[idx] = replace(insn, imm=_s32(new))
    elif cls in (_LDX, _ST, _STX):
        if result.validate and insn.off != orig:
            raise _relo_insn_error(
                relo, idx, f"(LDX/ST/STX) holds off {insn.off}, expected {orig} (-> {new})"
            )
        if new > 0x7FFF:
            raise _relo_insn_error(relo, idx, f"(LDX/ST/STX) offset {new} is too big")
        if result.fail_memsz_adjust:
            return poison()
        opcode = insn.opcode
        if result.new_size != result.orig_size:
            have = _SIZE_BYTES[opcode & 0x18]
            if have != result.orig_size:
                raise _relo_insn_error(
                    relo,
                    idx,
                    f"(LDX/ST/STX) accesses {have} bytes, expected {result.orig_size}",
                )
            if result.new_size not in _BYTES_SIZE:
                raise _relo_insn_error(
                    relo, idx, f"(LDX/ST/STX) cannot access {result.new_size} bytes"
                )
            opcode = (opcode & ~0x18) | _BYTES_SIZE[result.new_size]
        out[idx] = replace(insn, opcode=opcode, off=new)
    elif cls == _LD:
        if (
            not is_ldimm64
            or idx + 1 >= len(out)
            or insn.src != 0
            or insn.off != 0
            or out[idx + 1] != Instruction(0, 0, 0, 0, out[idx + 1].imm)
        ):
            raise _relo_insn_error(relo, idx, "(LD_IMM64) has an unexpected form")
        imm = (insn.imm & 0xFFFFFFFF) | ((out[idx + 1].imm & 0xFFFFFFFF) << 32)
        if result.validate and imm != (orig & _MASK64):
            raise _relo_insn_error(relo, idx, f"(LD_IMM64) holds {imm}, expected {orig} (-> {new})")
        n = new & _MASK64
        out[idx] = replace(insn, imm=_s32(n))
        out[idx + 1] = replace(out[idx + 1], imm=_s32(n >> 32))
    else:
        raise _relo_insn_error(
            relo, idx, f"has opcode {insn.opcode:#04x}, which cannot be relocated"
        )
    return tuple(out)


def _relo_insn_error(relo: CoreRelo, idx: int, reason: str) -> BtfError:
    return BtfError(
        f"CO-RE relocation ({relo.kind.name}, access {relo.access!r}) of insn {idx} "
        f"({relo.section}+{relo.insn_off}) {reason}",
        section=EXT_SECTION,
        offset=relo.offset,
        type_id=relo.type_id,
    )
