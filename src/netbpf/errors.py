"""The netbpf error tree.

Every failure a user can cause (bad bytes, bad assembly, a program that faults, a
kernel that refuses) is raised as a subclass of :class:`NetbpfError` with a message
that names *where* the problem is: file, section, instruction index, byte offset.
The CLI prints ``str(error)`` as one line and exits non-zero, so messages must be
complete sentences on their own and never need a traceback to be understood.
"""

from __future__ import annotations

import errno as _errno

__all__ = [
    "AssemblerError",
    "BtfError",
    "BtfValueError",
    "ElfError",
    "InstructionError",
    "InstructionLimitExceeded",
    "KernelError",
    "KernelUnavailable",
    "MapError",
    "MapFullError",
    "MapKeyExistsError",
    "MapKeyNotFoundError",
    "NetbpfError",
    "NotSupportedError",
    "ObjectError",
    "PinError",
    "ProgramFault",
    "TestRunError",
    "VerifierError",
]


class NetbpfError(Exception):
    """Base of every error netbpf raises on purpose."""


class InstructionError(NetbpfError):
    """A malformed instruction: bad opcode, reserved field set, register out of range,
    jump out of the program, half an LD_IMM64.  Carries the slot index."""

    def __init__(self, index: int, reason: str, *, program: str | None = None) -> None:
        self.index = index
        self.reason = reason
        self.program = program
        where = f"prog '{program}': " if program else ""
        super().__init__(f"{where}insn {index}: {reason}")


class AssemblerError(NetbpfError):
    """Assembly text that cannot be assembled; names the line (1-based) and the text."""

    def __init__(self, line: int, reason: str, text: str = "") -> None:
        self.line = line
        self.reason = reason
        self.text = text
        shown = f": {text.strip()!r}" if text.strip() else ""
        super().__init__(f"line {line}: {reason}{shown}")


class ProgramFault(NetbpfError):
    """A program did something at run time that the sandbox forbids (an access
    outside every memory region, a write to read-only memory, an unknown helper...).

    Raised by the VM engines; it never escapes as a plain Python exception."""

    def __init__(self, index: int, reason: str, *, program: str | None = None) -> None:
        self.index = index
        self.reason = reason
        self.program = program
        where = f"prog '{program}': " if program else ""
        super().__init__(f"{where}insn {index}: {reason}")


class InstructionLimitExceeded(ProgramFault):
    """The run executed more instructions than its budget allows."""


class TestRunError(NetbpfError):
    """A test run the kernel would refuse (``BPF_PROG_TEST_RUN`` returning an errno):
    bad ``ctx_in``, packet too short or too long, unsupported program type..."""

    __test__ = False  # not a pytest test class

    def __init__(self, reason: str, *, errno: int = _errno.EINVAL) -> None:
        self.reason = reason
        self.errno = errno
        name = _errno.errorcode.get(errno, str(errno))
        super().__init__(f"test run refused ({name}): {reason}")


class ObjectError(NetbpfError):
    """A problem in an object file.  Names the file, section and byte offset."""

    def __init__(
        self,
        reason: str,
        *,
        file: str | None = None,
        section: str | None = None,
        offset: int | None = None,
    ) -> None:
        self.reason = reason
        self.file = file
        self.section = section
        self.offset = offset
        parts = []
        if file:
            parts.append(str(file))
        if section:
            parts.append(f"section '{section}'")
        if offset is not None:
            parts.append(f"offset {offset:#x}")
        where = ": ".join(parts)
        super().__init__(f"{where}: {reason}" if where else reason)


class ElfError(ObjectError):
    """Malformed or unsupported ELF content."""


class BtfError(ObjectError):
    """Malformed or unsupported BTF content.  Besides file, section ('.BTF' or
    '.BTF.ext') and byte offset it may name the BTF type id the problem is in."""

    def __init__(
        self,
        reason: str,
        *,
        file: str | None = None,
        section: str | None = None,
        offset: int | None = None,
        type_id: int | None = None,
    ) -> None:
        shown = f"type [{type_id}]: {reason}" if type_id is not None else reason
        super().__init__(shown, file=file, section=section, offset=offset)
        self.reason = reason
        self.type_id = type_id


class BtfValueError(NetbpfError, ValueError):
    """A Python value that does not fit the BTF type it is encoded as (wrong shape,
    out of range, unknown struct member), or bytes that cannot be decoded as it.
    Names the C type and the path inside it: ``struct flow.ports[1]: 70000 does not
    fit unsigned short (0..65535)``."""

    def __init__(self, reason: str, *, type_name: str = "", path: str = "") -> None:
        self.reason = reason
        self.type_name = type_name
        self.path = path
        where = f"{type_name}{path}" if type_name or path else ""
        super().__init__(f"{where}: {reason}" if where else reason)


class MapError(NetbpfError):
    """A map operation failed the way the kernel's would (carries the errno)."""

    errno: int = _errno.EINVAL

    def __init__(self, reason: str, *, errno: int | None = None) -> None:
        if errno is not None:
            self.errno = errno
        self.reason = reason
        super().__init__(reason)


class MapKeyNotFoundError(MapError, KeyError):
    """ENOENT: the key is not in the map."""

    errno = _errno.ENOENT

    def __str__(self) -> str:  # KeyError would repr() the message
        return self.reason


class MapKeyExistsError(MapError):
    """EEXIST: BPF_NOEXIST update of a key that is present."""

    errno = _errno.EEXIST


class MapFullError(MapError):
    """E2BIG: the map holds max_entries already (or the index is out of range)."""

    errno = _errno.E2BIG


class PinError(NetbpfError):
    """A bpffs-style pin operation failed (carries the errno): EEXIST when the path is
    taken, ENOENT when it (or its directory) does not exist, EPERM outside the pin
    root, EINVAL when a pinned map cannot be reused for a spec."""

    def __init__(self, path: str, reason: str, *, errno: int) -> None:
        self.path = path
        self.reason = reason
        self.errno = errno
        name = _errno.errorcode.get(errno, str(errno))
        super().__init__(f"pin '{path}': {reason} ({name})")


class VerifierError(NetbpfError):
    """The verifier refused a program.  Keeps the full log, the instruction index and a
    one-line summary in the kernel's wording."""

    def __init__(
        self,
        summary: str,
        *,
        index: int | None = None,
        log: str = "",
        program: str | None = None,
    ) -> None:
        self.summary = summary
        self.index = index
        self.log = log
        self.program = program
        where = f"prog '{program}': " if program else ""
        at = f"insn {index}: " if index is not None else ""
        super().__init__(f"{where}{at}{summary}")


class NotSupportedError(NetbpfError):
    """A feature netbpf (or this backend) does not implement; names the feature."""

    def __init__(self, feature: str, detail: str = "") -> None:
        self.feature = feature
        super().__init__(f"not supported: {feature}" + (f" ({detail})" if detail else ""))


class KernelError(NetbpfError):
    """A ``bpf()`` (or other) syscall failed.  Keeps the errno and, for program loads,
    the kernel verifier log."""

    def __init__(self, op: str, errno: int, *, log: str = "", detail: str = "") -> None:
        self.op = op
        self.errno = errno
        self.log = log
        name = _errno.errorcode.get(errno, str(errno))
        msg = f"{op} failed: {name} ({errno})"
        if detail:
            msg += f": {detail}"
        summary = _log_summary(log)
        if summary:
            msg += f": {summary}"
        super().__init__(msg)


# Statistics the verifier prints after its verdict; the verdict is the line before.
_LOG_STAT_PREFIXES = ("processed ", "verification time ", "stack depth ")


def _log_summary(log: str) -> str:
    """The verifier's verdict: the last log line that is not a statistics line."""
    lines = [ln.strip() for ln in log.strip().splitlines() if ln.strip()]
    while lines and lines[-1].startswith(_LOG_STAT_PREFIXES):
        lines.pop()
    return lines[-1] if lines else ""


class KernelUnavailable(NetbpfError):
    """The running kernel cannot be used (not Linux, not root, no bpf())."""
