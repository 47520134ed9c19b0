"""What the verifier needs to know about a map a program references.

Built from the :class:`~netbpf.maps.spec.MapSpec` of each ``map_relocs`` entry: type,
key/value sizes, flags (``BPF_F_RDONLY_PROG`` makes values read-only for programs),
whether user space froze it (then the verifier reads constants out of it, as the
kernel does for ``.rodata``), the inner map of a map-in-map, the ``bpf_spin_lock``
offset from BTF.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from netbpf.uapi import MapType

__all__ = ["MapInfo", "map_info"]

BPF_F_RDONLY_PROG = 1 << 7
BPF_F_WRONLY_PROG = 1 << 8


@dataclass(frozen=True, eq=False)
class MapInfo:
    name: str
    type: int
    key_size: int
    value_size: int
    max_entries: int
    flags: int = 0
    inner: MapInfo | None = None
    spin_lock_off: int | None = None
    frozen: bool = False
    #: initial value of element 0 (arrays with known contents, e.g. .rodata)
    data: bytes | None = None

    @property
    def can_read(self) -> bool:
        return not self.flags & BPF_F_WRONLY_PROG

    @property
    def can_write(self) -> bool:
        return not self.flags & BPF_F_RDONLY_PROG

    @property
    def rdonly_const(self) -> bool:
        """bpf_map_is_rdonly: program-read-only and frozen, so its bytes are constants."""
        return bool(self.flags & BPF_F_RDONLY_PROG) and self.frozen and self.data is not None

    @property
    def type_name(self) -> str:
        try:
            return MapType(self.type).name
        except ValueError:
            return str(self.type)


def map_info(spec: Any) -> MapInfo:
    """A MapInfo from a MapSpec (or anything with the same attributes)."""
    extra = getattr(spec, "extra", {}) or {}
    data = None
    for key, value in extra.get("contents", ()):
        if key == 0 and isinstance(value, bytes | bytearray):
            data = bytes(value).ljust(spec.value_size, b"\0")[: spec.value_size]
    inner = getattr(spec, "inner_map", None)
    lock = extra.get("spin_lock_off")
    mtype = int(spec.type)
    flags = int(spec.flags)
    if mtype in (MapType.DEVMAP, MapType.DEVMAP_HASH):
        flags |= BPF_F_RDONLY_PROG  # the kernel makes devmap values read-only for programs
    return MapInfo(
        name=spec.name,
        type=mtype,
        key_size=spec.key_size,
        value_size=spec.value_size,
        max_entries=spec.max_entries,
        flags=flags,
        inner=map_info(inner) if inner is not None else None,
        spin_lock_off=None if lock is None else int(lock),
        frozen=bool(extra.get("freeze", False)),
        data=data,
    )
