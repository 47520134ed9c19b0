"""The running kernel's own BTF, the CO-RE target of the kernel backend."""

from __future__ import annotations

import os

from netbpf.errors import BtfError
from netbpf.obj.btf.model import Btf

__all__ = ["VMLINUX_BTF_PATH", "load_vmlinux_btf"]

VMLINUX_BTF_PATH = "/sys/kernel/btf/vmlinux"


def load_vmlinux_btf(path: str | os.PathLike[str] = VMLINUX_BTF_PATH, *, lazy: bool = True) -> Btf:
    """Parse the kernel's BTF (``/sys/kernel/btf/vmlinux`` by default).

    The file is a raw ``.BTF`` blob of ~150k types.  By default it is parsed lazily:
    the header and every record boundary are validated now, each type is decoded
    (and validated) the first time it is used; name look-ups build an index once.
    ``lazy=False`` decodes everything up front.  An unreadable file is a
    ``BtfError`` naming the path.
    """
    p = os.fspath(path)
    try:
        with open(p, "rb") as f:
            raw = f.read()
    except OSError as e:
        raise BtfError(f"cannot read kernel BTF: {e.strerror}", file=p, section=".BTF") from None
    return Btf.parse(raw, file=p, lazy=lazy)
