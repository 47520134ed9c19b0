"""The verifier log buffer, with the kernel's truncate-and-append behaviour.

The kernel writes its log into one buffer and sometimes rewinds it: at log level 1 a
path that ends is cut back to where its branch was pushed (so the final log is the
path to the error), and a register-state line is appended to the previous
instruction line by removing that line's newline first.  Both are byte positions in
the buffer, and the rewinds can cut through text written later, exactly as in the
kernel; this class reproduces that.
"""

from __future__ import annotations

import io

__all__ = ["VLog"]

#: BPF_LOG_MIN_ALIGNMENT / BPF_LOG_ALIGNMENT of kernel/bpf/log.c
_MIN_ALIGN = 8
_ALIGN = 40


class VLog:
    def __init__(self, level: int) -> None:
        self.level = level
        self._buf = io.StringIO()
        self.end_pos = 0

    def write(self, text: str) -> None:
        if not self.level:
            return
        self._buf.write(text)
        self.end_pos += len(text)

    def reset(self, pos: int) -> None:
        """bpf_vlog_reset: forget everything after ``pos``."""
        if not self.level or pos >= self.end_pos:
            return
        self._buf.seek(pos)
        self._buf.truncate(pos)
        self.end_pos = pos

    def text(self) -> str:
        return self._buf.getvalue()

    @staticmethod
    def alignment(pos: int) -> int:
        """vlog_alignment: spaces so the ``;`` of a state line lines up."""
        return (
            (max(pos + _MIN_ALIGN // 2, _ALIGN) + _MIN_ALIGN - 1) // _MIN_ALIGN * _MIN_ALIGN
            - pos
            - 1
        )
