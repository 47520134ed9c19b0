"""``MapSpec``: what a map *is*, before any backend creates it.

The ELF loader produces these from BTF-defined ``.maps`` and the legacy ``maps``
section; backends turn them into live maps (:func:`netbpf.maps.create_map` in the
simulator, BPF_MAP_CREATE on the kernel backend).  Data only: a spec never touches a
backend and is equal for equal input (cilium/ebpf's MapSpec, libbpf's
``bpf_map_def`` plus its BTF extras).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from netbpf.maps.constants import LIBBPF_PIN_NONE
from netbpf.uapi import MapType

__all__ = ["MapSpec"]


@dataclass(frozen=True)
class MapSpec:
    """A map definition.

    ``type`` is a :class:`~netbpf.uapi.MapType`; sizes and ``max_entries`` as the kernel
    takes them (``max_entries`` of a RINGBUF is its byte size); ``flags`` the BPF_F_*
    map flags.  ``inner_map`` is the template of an ARRAY_OF_MAPS / HASH_OF_MAPS.
    ``pinning`` is libbpf's ``LIBBPF_PIN_NONE`` (0) or ``LIBBPF_PIN_BY_NAME`` (1).

    ``extra`` carries BTF-derived details backends may use; the simulator reads
    ``extra["spin_lock_off"]`` (byte offset of the value's ``struct bpf_spin_lock``,
    which makes BPF_F_LOCK legal and keeps user space from overwriting the lock word).
    It takes part in equality but not in hashing (it is a mapping)."""

    name: str
    type: MapType
    key_size: int
    value_size: int
    max_entries: int
    flags: int = 0
    inner_map: MapSpec | None = None
    pinning: int = LIBBPF_PIN_NONE
    numa_node: int = 0
    map_extra: int = 0
    btf_key_type_id: int = 0
    btf_value_type_id: int = 0
    extra: Mapping[str, Any] = field(default_factory=dict, hash=False)

    def with_(self, **changes: Any) -> MapSpec:
        """A copy with some fields changed (specs are immutable)."""
        return replace(self, **changes)

    @property
    def spin_lock_off(self) -> int | None:
        off = self.extra.get("spin_lock_off")
        return None if off is None else int(off)
