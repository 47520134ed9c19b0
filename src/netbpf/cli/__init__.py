"""The ``netbpf`` command line.

Commands are grouped by the object they act on, the way ``bpftool`` does:
``netbpf obj show``, ``netbpf prog run|dump``, ``netbpf map dump``, plus
``netbpf verify``, ``netbpf asm`` and ``netbpf disasm``.  Every command takes ``--json``
and then prints one JSON document with stable keys on stdout; without it, output is
for humans (rendered with rich).

Errors: anything netbpf raises on purpose (:class:`~netbpf.errors.NetbpfError`) and
file errors print exactly one line, ``netbpf: error: ...``, on stderr and exit 1;
usage errors exit 2.  No traceback is ever shown for bad input (set ``NETBPF_DEBUG=1``
to see one for an internal error).

Only :func:`main` (the console-script entry point) and the root click group
:data:`cli` are public; the modules below are private.
"""

from __future__ import annotations

from netbpf.cli._app import cli, main

__all__ = ["cli", "main"]
