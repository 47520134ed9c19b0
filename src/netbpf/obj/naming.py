"""Kernel names derived from an object: program and map names, libbpf's object name
and the names of global-data maps.

These belong to the object, not to a backend: the kernel backend passes them to
``bpf()`` (which refuses other names with EINVAL), and the simulator reports the same
ones from ``info().name`` so that a collection looks alike on both backends.  Both
loaders import them from here.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from netbpf.obj.collection import is_global_data

if TYPE_CHECKING:  # pragma: no cover
    from netbpf.obj.collection import CollectionSpec

__all__ = [
    "OBJ_NAME_LEN",
    "internal_map_name",
    "kernel_map_name",
    "object_name",
    "sanitize_name",
]

#: BPF_OBJ_NAME_LEN, the terminating NUL included
OBJ_NAME_LEN = 16

_NAME_BAD = re.compile(r"[^A-Za-z0-9_.]")


def sanitize_name(name: str) -> str:
    """A program/map name the kernel accepts: only ``[A-Za-z0-9_.]`` (others become
    ``_``) and at most 15 characters (BPF_OBJ_NAME_LEN - 1).  The kernel refuses
    anything else with EINVAL, so libbpf-style names like ``xdp/prog`` must be fixed."""
    return _NAME_BAD.sub("_", name)[: OBJ_NAME_LEN - 1]


def object_name(spec: CollectionSpec) -> str:
    """libbpf's object name: the file's base name up to its first dot
    (``/x/counter.bpf.o`` -> ``counter``); ``netbpf`` for an object from bytes."""
    if not spec.file:
        return "netbpf"
    return Path(spec.file).name.split(".", 1)[0] or "netbpf"


def internal_map_name(obj_name: str, section: str) -> str:
    """The kernel name of a global-data map, libbpf's rule: the section name
    (counted as at least 7 characters, at most 15) after as much of the object
    name as still fits in 15 characters — ``counter.rodata``, ``my_objec.bss``;
    custom sections with a second dot (``.data.stats``) get no object prefix.  Then
    characters the kernel refuses become ``_``."""
    sfx_len = min(max(7, len(section)), OBJ_NAME_LEN - 1)
    if "." in section[1:]:
        pfx_len = 0
    else:
        pfx_len = min(OBJ_NAME_LEN - sfx_len - 1, len(obj_name))
    return sanitize_name(obj_name[:pfx_len] + section[:sfx_len])


def kernel_map_name(name: str, mspec: Any, *, obj_name: str) -> str:
    """The name a map of object ``obj_name`` gets in the kernel (what ``info().name``
    reports on both backends): :func:`internal_map_name` for global data, else the
    spec's name made acceptable by :func:`sanitize_name`."""
    if is_global_data(mspec):
        return internal_map_name(obj_name, mspec.extra.get("section", name))
    return sanitize_name(name)
