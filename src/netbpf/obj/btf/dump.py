"""Text renderings of BTF: bpftool's raw dump and C-like type names.

:func:`format_raw` reproduces ``bpftool btf dump file X`` (the default "raw" format
of bpftool 7.x) line for line, so tests can diff our parser against bpftool on the
same object.  :func:`format_type` spells a type as a C declaration.
"""

from __future__ import annotations

from netbpf.errors import BtfError
from netbpf.obj.btf.model import MAX_RESOLVE_DEPTH, Btf
from netbpf.obj.btf.parse import SECTION
from netbpf.obj.btf.types import (
    Array,
    BtfType,
    Datasec,
    DeclTag,
    Enum,
    Enum64,
    Float,
    Func,
    FuncProto,
    Fwd,
    Int,
    IntEncoding,
    Kind,
    Struct,
    TypeTag,
    Union,
    Var,
)

__all__ = ["format_raw", "format_raw_type", "format_type"]

_INT_ENC = {
    IntEncoding.NONE: "(none)",
    IntEncoding.SIGNED: "SIGNED",
    IntEncoding.CHAR: "CHAR",
    IntEncoding.BOOL: "BOOL",
}
_FUNC_LINKAGE = {0: "static", 1: "global", 2: "extern"}
_VAR_LINKAGE = {0: "static", 1: "global", 2: "extern"}


def _q(name: str) -> str:
    return f"'{name or '(anon)'}'"


def format_raw_type(btf: Btf, t: BtfType) -> str:
    """One type in bpftool's raw format (``[id] KIND 'name' attrs`` plus one
    tab-indented line per member/value/param/variable)."""
    head = f"[{t.id}] {t.kind.name} {_q(t.name)}"
    if isinstance(t, Int):
        enc = _INT_ENC.get(t.encoding, "UNKN")
        return f"{head} size={t.size} bits_offset={t.offset} nr_bits={t.bits} encoding={enc}"
    if isinstance(t, Array):
        return f"{head} type_id={t.type_id} index_type_id={t.index_type_id} nr_elems={t.nelems}"
    if isinstance(t, Struct | Union):
        lines = [f"{head} size={t.size} vlen={len(t.members)}"]
        for m in t.members:
            line = f"\t{_q(m.name)} type_id={m.type_id} bits_offset={m.bit_offset}"
            if m.bitfield_size:
                line += f" bitfield_size={m.bitfield_size}"
            lines.append(line)
        return "\n".join(lines)
    if isinstance(t, Enum | Enum64):
        enc = "SIGNED" if t.signed else "UNSIGNED"
        lines = [f"{head} encoding={enc} size={t.size} vlen={len(t.values)}"]
        suffix = ("LL" if t.signed else "ULL") if isinstance(t, Enum64) else ""
        lines.extend(f"\t{_q(v.name)} val={v.value}{suffix}" for v in t.values)
        return "\n".join(lines)
    if isinstance(t, Fwd):
        return f"{head} fwd_kind={'union' if t.is_union else 'struct'}"
    if isinstance(t, Func):
        return f"{head} type_id={t.type_id} linkage={_FUNC_LINKAGE.get(t.linkage, '(unknown)')}"
    if isinstance(t, FuncProto):
        lines = [f"{head} ret_type_id={t.return_type_id} vlen={len(t.params)}"]
        lines.extend(f"\t{_q(p.name)} type_id={p.type_id}" for p in t.params)
        return "\n".join(lines)
    if isinstance(t, Var):
        return f"{head} type_id={t.type_id}, linkage={_VAR_LINKAGE.get(t.linkage, '(unknown)')}"
    if isinstance(t, Datasec):
        lines = [f"{head} size={t.size} vlen={len(t.vars)}"]
        for vs in t.vars:
            vt = btf.type(vs.type_id)
            lines.append(
                f"\ttype_id={vs.type_id} offset={vs.offset} size={vs.size} "
                f"({vt.kind.name} {_q(vt.name)})"
            )
        return "\n".join(lines)
    if isinstance(t, Float):
        return f"{head} size={t.size}"
    if isinstance(t, DeclTag):
        return f"{head} type_id={t.type_id} component_idx={t.component_idx}"
    # PTR, TYPEDEF, VOLATILE, CONST, RESTRICT, TYPE_TAG
    return f"{head} type_id={t.type_id}"  # type: ignore[attr-defined]


def format_raw(btf: Btf) -> str:
    """The whole BTF as ``bpftool btf dump file X`` prints it (one type per line
    group, trailing newline included)."""
    return "".join(format_raw_type(btf, t) + "\n" for t in btf.types[1:])


# -- C declarations ---------------------------------------------------------------------

_QUALIFIER = {Kind.CONST: "const", Kind.VOLATILE: "volatile", Kind.RESTRICT: "restrict"}


def format_type(btf: Btf, type_id: int, name: str = "") -> str:
    """A C spelling of ``type_id`` declaring ``name`` (or an abstract declarator):
    ``unsigned int``, ``struct foo``, ``char[16]``, ``int (*)(void *)``,
    ``const volatile u32``, ``int *const p``.  FUNC renders as its prototype with the
    function's name, VAR as its declaration, DATASEC as ``SEC("name")``."""
    return _decl(btf, type_id, name, 0)


def _join(base: str, inner: str) -> str:
    if not inner:
        return base
    if inner.startswith("["):
        return base + inner
    return f"{base} {inner}"


def _decl(btf: Btf, type_id: int, inner: str, depth: int) -> str:
    if depth > MAX_RESOLVE_DEPTH * 4:
        raise BtfError(
            "type nesting too deep to format", file=btf.file, section=SECTION, type_id=type_id
        )
    t = btf.type(type_id)
    k = t.kind
    if k == Kind.UNKN:
        return _join("void", inner)
    if k in _QUALIFIER or k == Kind.TYPE_TAG:
        quals: list[str] = []
        tags: list[str] = []
        cur = t
        while cur.kind in _QUALIFIER or cur.kind == Kind.TYPE_TAG:
            if isinstance(cur, TypeTag):
                tags.append(f'__attribute__((btf_type_tag("{cur.name}")))')
            else:
                quals.append(_QUALIFIER[cur.kind])
            cur = btf.type(cur.type_id)  # type: ignore[attr-defined]
            depth += 1
            if depth > MAX_RESOLVE_DEPTH * 4:
                raise BtfError(
                    "modifier chain too deep to format",
                    file=btf.file,
                    section=SECTION,
                    type_id=type_id,
                )
        if cur.kind == Kind.PTR:
            # `int *const p`: qualifiers of the pointer go right of the star.
            q = " ".join(quals + tags)
            return _decl(btf, cur.type_id, "*" + _join(q, inner), depth + 1)  # type: ignore[attr-defined]
        if cur.kind in (Kind.ARRAY, Kind.FUNC_PROTO):
            return _decl(btf, cur.id, inner, depth + 1)
        # `const volatile int`, `int __attribute__((btf_type_tag("user")))` (as bpftool)
        base = " ".join([*quals, _decl(btf, cur.id, "", depth + 1), *tags])
        return _join(base, inner)
    if k == Kind.PTR:
        target = btf.type(t.type_id)  # type: ignore[attr-defined]
        star = "*" + inner
        if target.kind in (Kind.ARRAY, Kind.FUNC_PROTO):
            star = f"({star})"
        return _decl(btf, target.id, star, depth + 1)
    if isinstance(t, Array):
        return _decl(btf, t.type_id, f"{inner}[{t.nelems}]", depth + 1)
    if isinstance(t, FuncProto):
        params = _params(btf, t, depth)
        return _decl(btf, t.return_type_id, f"{inner}({params})", depth + 1)
    if isinstance(t, Func):
        proto = btf.type(t.type_id)
        if not isinstance(proto, FuncProto):
            return _join(f"func {t.name}", inner)
        return _decl(
            btf, proto.return_type_id, f"{t.name}({_params(btf, proto, depth)})", depth + 1
        )
    if isinstance(t, Var):
        return _decl(btf, t.type_id, t.name, depth + 1)
    if isinstance(t, Datasec):
        return f'SEC("{t.name}")'
    if isinstance(t, DeclTag):
        return f'__attribute__((btf_decl_tag("{t.name}")))'
    if isinstance(t, Struct):
        return _join(f"struct {t.name}" if t.name else "struct {...}", inner)
    if isinstance(t, Union):
        return _join(f"union {t.name}" if t.name else "union {...}", inner)
    if isinstance(t, Enum | Enum64):
        return _join(f"enum {t.name}" if t.name else "enum {...}", inner)
    if isinstance(t, Fwd):
        return _join(f"{'union' if t.is_union else 'struct'} {t.name}", inner)
    # INT, FLOAT, TYPEDEF: their name is the C spelling
    return _join(t.name, inner)


def _params(btf: Btf, proto: FuncProto, depth: int) -> str:
    if not proto.params:
        return "void"
    parts = []
    for p in proto.params:
        if p.type_id == 0 and not p.name:
            parts.append("...")
        else:
            parts.append(_decl(btf, p.type_id, p.name, depth + 1))
    return ", ".join(parts)
