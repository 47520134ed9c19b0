"""A bpffs-like namespace for pinned objects, and libbpf's pin-by-name reuse.

The SimBackend owns one :class:`PinNamespace`; like a bpffs mount it maps absolute
paths under its root (default ``/sys/fs/bpf``) to objects (maps, programs, links) and
has directories.  Errors are the kernel's: pinning over an existing path -> EEXIST, into
a missing directory -> ENOENT, outside the root -> EPERM (not a bpffs); getting or
unpinning a missing path -> ENOENT.

:func:`pin_by_name` is ``LIBBPF_PIN_BY_NAME``: a map spec with ``pinning = 1`` is
looked up at ``<pin_root>/<name>``; a pinned map is reused when compatible (same type,
key size, value size, max_entries and flags as the kernel would report for the spec,
same map_extra -- libbpf's ``map_is_reuse_compat``), else the load fails (EINVAL); an
absent one is created and pinned (parent directories made as libbpf does).
"""

from __future__ import annotations

import errno as _errno
import posixpath
from collections.abc import Callable, Iterator
from typing import Any

from netbpf.errors import PinError
from netbpf.maps.base import Map
from netbpf.maps.constants import LIBBPF_PIN_BY_NAME
from netbpf.maps.spec import MapSpec

__all__ = ["DEFAULT_PIN_ROOT", "PinNamespace", "map_reuse_compatible", "pin_by_name"]

DEFAULT_PIN_ROOT = "/sys/fs/bpf"


class PinNamespace:
    """Pinned objects by path."""

    def __init__(self, root: str = DEFAULT_PIN_ROOT) -> None:
        self.root = posixpath.normpath(root)
        self._objs: dict[str, Any] = {}
        self._dirs: set[str] = {self.root}

    def _norm(self, path: str) -> str:
        p = posixpath.normpath(str(path))
        if not p.startswith("/"):
            raise PinError(str(path), "pin paths are absolute", errno=_errno.EINVAL)
        if p != self.root and not p.startswith(self.root + "/"):
            raise PinError(p, f"not inside the bpf filesystem at {self.root}", errno=_errno.EPERM)
        return p

    def mkdir(self, path: str, *, parents: bool = False) -> None:
        """Create a directory (``parents``: like ``mkdir -p``)."""
        p = self._norm(path)
        if p in self._dirs:
            if parents:
                return
            raise PinError(p, "directory exists", errno=_errno.EEXIST)
        if p in self._objs:
            raise PinError(p, "an object is pinned there", errno=_errno.EEXIST)
        parent = posixpath.dirname(p)
        if parent not in self._dirs:
            if not parents:
                raise PinError(p, "parent directory does not exist", errno=_errno.ENOENT)
            self.mkdir(parent, parents=True)
        self._dirs.add(p)

    def pin(self, path: str, obj: Any, *, make_parents: bool = False) -> None:
        """BPF_OBJ_PIN."""
        p = self._norm(path)
        if p in self._objs or p in self._dirs:
            raise PinError(p, "path exists", errno=_errno.EEXIST)
        parent = posixpath.dirname(p)
        if parent not in self._dirs:
            if not make_parents:
                raise PinError(p, "parent directory does not exist", errno=_errno.ENOENT)
            self.mkdir(parent, parents=True)
        self._objs[p] = obj

    def get(self, path: str) -> Any:
        """BPF_OBJ_GET."""
        p = self._norm(path)
        try:
            return self._objs[p]
        except KeyError:
            raise PinError(p, "nothing pinned there", errno=_errno.ENOENT) from None

    def unpin(self, path: str) -> None:
        """unlink() of a pinned object (or of an empty directory)."""
        p = self._norm(path)
        if p in self._objs:
            del self._objs[p]
            return
        if p in self._dirs and p != self.root:
            if any(q.startswith(p + "/") for q in (*self._objs, *self._dirs)):
                raise PinError(p, "directory not empty", errno=_errno.ENOTEMPTY)
            self._dirs.discard(p)
            return
        raise PinError(p, "nothing pinned there", errno=_errno.ENOENT)

    def __contains__(self, path: object) -> bool:
        try:
            return isinstance(path, str) and self._norm(path) in self._objs
        except PinError:
            return False

    def listdir(self, path: str | None = None) -> list[str]:
        """Names directly inside a directory."""
        p = self.root if path is None else self._norm(path)
        if p not in self._dirs:
            raise PinError(p, "no such directory", errno=_errno.ENOENT)
        names = {
            q[len(p) + 1 :].split("/", 1)[0]
            for q in (*self._objs, *self._dirs)
            if q.startswith(p + "/")
        }
        return sorted(names)

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._objs))


def map_reuse_compatible(m: Map, spec: MapSpec) -> bool:
    """libbpf's map_is_reuse_compat: the pinned map looks like what ``spec`` creates."""
    from netbpf.maps.factory import map_class

    try:
        max_entries, flags = map_class(spec).created_params(spec, m.ncpus)
    except Exception:
        return False
    return (
        int(m.type) == int(spec.type)
        and m.key_size == spec.key_size
        and m.value_size == spec.value_size
        and m.max_entries == max_entries
        and m.flags == flags
        and m.spec.map_extra == spec.map_extra
    )


def pin_by_name(
    ns: PinNamespace,
    spec: MapSpec,
    create: Callable[[MapSpec], Map],
    *,
    pin_root: str | None = None,
) -> Map:
    """The map for a ``LIBBPF_PIN_BY_NAME`` spec: the compatible map pinned at
    ``<pin_root>/<spec.name>``, or a new one from ``create(spec)`` pinned there.  A spec
    without pinning is just created."""
    if spec.pinning != LIBBPF_PIN_BY_NAME:
        return create(spec)
    path = posixpath.join(pin_root or ns.root, spec.name)
    if path in ns:
        m = ns.get(path)
        if not isinstance(m, Map) or not map_reuse_compatible(m, spec):
            raise PinError(
                path,
                f"couldn't reuse pinned map for {spec.name!r}: parameter mismatch",
                errno=_errno.EINVAL,
            )
        return m
    m = create(spec)
    ns.pin(path, m, make_parents=True)
    return m
