"""BTF-defined maps: decoding a ``.maps`` variable's struct into a MapSpec.

libbpf's convention (bpf_helpers.h): every field of the anonymous struct is encoded in
its *type*, not its value —

* ``__uint(name, N)`` is ``int (*name)[N]``: a pointer to an array whose element count
  is the number (type, max_entries, map_flags, key_size, value_size, numa_node,
  pinning, map_extra);
* ``__type(key, T)`` is ``T *key``: a pointer whose target gives the key's size and BTF
  type (same for ``value``);
* ``__array(values, struct inner)`` is ``struct inner *values[]``: the inner map template
  of a map-in-map, or ``__array(values, int (void *))`` for a PROG_ARRAY; the array's
  initial contents come from ``R_BPF_64_ABS64`` relocations in ``.maps`` pointing at
  other maps or programs.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from netbpf.errors import BtfError, ElfError
from netbpf.obj import elf as E
from netbpf.uapi import MapType

__all__ = ["parse_btf_map", "spin_lock_offset"]

_UINT_FIELDS = (
    "type",
    "max_entries",
    "map_flags",
    "numa_node",
    "key_size",
    "value_size",
    "pinning",
    "map_extra",
)
_PIN_BY_NAME = 1


def _err(reason: str, file: str | None, sec: E.Section, off: int) -> ElfError:
    return ElfError(reason, file=file, section=".maps", offset=sec.offset + off)


def _uint_value(btf: Any, type_id: int) -> int | None:
    """N from ``int (*)[N]``, or None when the member is not shaped that way."""
    from netbpf.obj.btf import Array, Ptr

    t = btf.resolve(type_id)
    if not isinstance(t, Ptr):
        return None
    arr = btf.resolve(t.type_id)
    if not isinstance(arr, Array):
        return None
    return arr.nelems


def spin_lock_offset(btf: Any, value_type_id: int) -> int | None:
    """Byte offset of the ``struct bpf_spin_lock`` in a map value described by BTF: the
    value itself, or one of its top-level members, as the kernel's BTF field search
    finds it (None when there is none or the BTF cannot tell)."""
    from netbpf.obj.btf import Struct, Union

    if btf is None or not value_type_id:
        return None
    try:
        t = btf.resolve(value_type_id)
        if isinstance(t, Struct) and t.name == "bpf_spin_lock":
            return 0
        if not isinstance(t, Struct | Union):
            return None
        for m in t.members:
            mt = btf.resolve(m.type_id)
            if isinstance(mt, Struct) and mt.name == "bpf_spin_lock" and not m.bitfield_size:
                return m.bit_offset // 8
    except BtfError:
        return None
    return None


def parse_btf_map(
    btf: Any,
    name: str,
    var_type_id: int,
    var_off: int,
    var_size: int,
    relocs: Mapping[int, E.Reloc],
    elf: E.ElfObject,
    sec: E.Section,
    *,
    file: str | None = None,
    inner: bool = False,
) -> Any:
    from netbpf.maps.spec import MapSpec
    from netbpf.obj.btf import Array, FuncProto, Ptr, Struct

    st = btf.resolve(var_type_id)
    if not isinstance(st, Struct):
        raise _err(
            f"map {name!r}: BTF type is {btf.format_type(var_type_id)!r}, not a struct definition",
            file,
            sec,
            var_off,
        )
    fields: dict[str, int] = {}
    key_type = value_type = 0
    key_size = value_size = None
    inner_spec = None
    init: list[tuple[int, str, str]] = []  # (index, "map"|"prog", target name)
    for m in st.members:
        moff = m.bit_offset // 8
        if m.name in _UINT_FIELDS:
            v = _uint_value(btf, m.type_id)
            if v is None:
                raise _err(
                    f"map {name!r}: field {m.name!r} is not declared with __uint()",
                    file,
                    sec,
                    var_off + moff,
                )
            fields[m.name] = v
        elif m.name in ("key", "value"):
            t = btf.resolve(m.type_id)
            if not isinstance(t, Ptr):
                raise _err(
                    f"map {name!r}: field {m.name!r} is not declared with __type()",
                    file,
                    sec,
                    var_off + moff,
                )
            size = btf.size_of(t.type_id)
            if m.name == "key":
                key_type, key_size = t.type_id, size
            else:
                value_type, value_size = t.type_id, size
        elif m.name == "values":
            arr = btf.resolve(m.type_id)
            if not isinstance(arr, Array):
                raise _err(
                    f"map {name!r}: 'values' is not declared with __array()",
                    file,
                    sec,
                    var_off + moff,
                )
            elem = btf.resolve(arr.type_id)
            target = btf.resolve(elem.type_id) if isinstance(elem, Ptr) else None
            if isinstance(target, Struct):
                if inner:
                    raise _err(
                        f"map {name!r}: nested map-in-map templates are not supported",
                        file,
                        sec,
                        var_off + moff,
                    )
                inner_spec = parse_btf_map(
                    btf,
                    f"{name}.inner",
                    elem.type_id,
                    var_off,
                    0,
                    {},
                    elf,
                    sec,
                    file=file,
                    inner=True,
                )
                kind = "map"
            elif isinstance(target, FuncProto):
                kind = "prog"
            else:
                raise _err(
                    f"map {name!r}: 'values' must be an array of map or program pointers",
                    file,
                    sec,
                    var_off + moff,
                )
            # Initial slots: relocations inside [values, end of the variable).
            end = var_off + (var_size or 0)
            for roff, rel in relocs.items():
                if var_off + moff <= roff < end:
                    idx = (roff - var_off - moff) // 8
                    init.append((idx, kind, rel.symbol.name))
        else:
            raise _err(
                f"map {name!r}: unknown map definition field {m.name!r}", file, sec, var_off + moff
            )
    if "type" not in fields:
        raise _err(f"map {name!r}: missing __uint(type, ...)", file, sec, var_off)
    try:
        mtype = MapType(fields["type"])
    except ValueError:
        raise _err(f"map {name!r}: unknown map type {fields['type']}", file, sec, var_off) from None
    for label, declared, typed in (
        ("key", fields.get("key_size"), key_size),
        ("value", fields.get("value_size"), value_size),
    ):
        if declared is not None and typed is not None and declared != typed:
            raise _err(
                f"map {name!r}: {label}_size {declared} conflicts with the {label} type's "
                f"size {typed}",
                file,
                sec,
                var_off,
            )
    ksz = key_size if key_size is not None else fields.get("key_size", 0)
    vsz = value_size if value_size is not None else fields.get("value_size", 0)
    if (
        inner_spec is not None
        or (init and init[0][1] == "prog")
        or mtype in (MapType.ARRAY_OF_MAPS, MapType.HASH_OF_MAPS, MapType.PROG_ARRAY)
    ):
        vsz = vsz or 4  # fd-valued maps: 4-byte values
    extra: dict[str, Any] = {}
    if init:
        extra["contents"] = tuple((idx, (kind, target)) for idx, kind, target in sorted(init))
    lock_off = spin_lock_offset(btf, value_type)
    if lock_off is not None:
        extra["spin_lock_off"] = lock_off
    pinning = fields.get("pinning", 0)
    if pinning not in (0, _PIN_BY_NAME):
        raise _err(
            f"map {name!r}: unsupported pinning {pinning} (0 = none, 1 = by name)",
            file,
            sec,
            var_off,
        )
    return MapSpec(
        name=name,
        type=mtype,
        key_size=ksz,
        value_size=vsz,
        max_entries=fields.get("max_entries", 0),
        flags=fields.get("map_flags", 0),
        inner_map=inner_spec,
        pinning=pinning,
        numa_node=fields.get("numa_node", 0),
        map_extra=fields.get("map_extra", 0),
        btf_key_type_id=key_type,
        btf_value_type_id=value_type,
        extra=extra,
    )
