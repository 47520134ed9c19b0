"""The helper registry: which function implements each helper id, and who may call it.

A helper is registered once, by kernel name, with the program types allowed to call it
(``None``: every type, like the kernel's ``bpf_base_func_proto`` helpers)::

    from netbpf.helpers.registry import DEFAULT_REGISTRY

    @DEFAULT_REGISTRY.helper("ktime_get_ns")
    def ktime_get_ns(env, r1, r2, r3, r4, r5):
        return env.ktime_ns

and a hook builds the ``helpers`` mapping of its RunEnv with
``registry.for_prog_type(ProgramType.XDP)``.  The engine looks calls up in that mapping
by id, so a helper the program type may not call is an "unknown helper" fault at run
time, as it is a load-time refusal in the kernel.

Helpers receive ``(env, r1, r2, r3, r4, r5)`` as unsigned 64-bit ints and return r0
(masked to 64 bits by the engine; return negative errnos as plain negative ints).
They touch program memory only through ``env.mem`` (MemoryFault on a bad pointer) and
call BPF callbacks through ``env.call_subprog``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from netbpf.errors import NetbpfError
from netbpf.uapi import HELPER_IDS, HELPER_NAMES, ProgramType
from netbpf.vm.env import HelperFn

__all__ = ["DEFAULT_REGISTRY", "HelperRegistry", "HelperSpec"]


@dataclass(frozen=True)
class HelperSpec:
    """One registered helper."""

    id: int
    #: kernel name without the ``bpf_`` prefix (``ktime_get_ns``)
    name: str
    fn: HelperFn
    #: program types allowed to call it; None = all
    prog_types: frozenset[ProgramType] | None = None

    def allowed(self, prog_type: ProgramType) -> bool:
        return self.prog_types is None or prog_type in self.prog_types


def _resolve(helper: str | int) -> tuple[int, str]:
    """(id, name) for a helper given by name (with or without ``bpf_``) or id."""
    if isinstance(helper, int):
        name = HELPER_NAMES.get(helper)
        if name is None:
            raise NetbpfError(f"helper id {helper} is not defined by the UAPI headers")
        return helper, name
    name = helper.removeprefix("bpf_")
    hid = HELPER_IDS.get(name)
    if hid is None:
        raise NetbpfError(f"unknown helper name {helper!r} (not in the UAPI helper list)")
    return hid, name


class HelperRegistry:
    """Helper implementations keyed by helper id."""

    def __init__(self, specs: Iterable[HelperSpec] = ()) -> None:
        self._by_id: dict[int, HelperSpec] = {s.id: s for s in specs}

    def register(
        self,
        helper: str | int,
        fn: HelperFn,
        *,
        prog_types: Iterable[ProgramType] | None = None,
        replace: bool = False,
    ) -> HelperSpec:
        """Register ``fn`` as helper ``helper`` (name or id).  Registering an id twice is
        an error unless ``replace`` (so two modules cannot silently fight over one id)."""
        hid, name = _resolve(helper)
        if hid in self._by_id and not replace:
            raise NetbpfError(f"helper bpf_{name} (#{hid}) is already registered")
        spec = HelperSpec(hid, name, fn, None if prog_types is None else frozenset(prog_types))
        self._by_id[hid] = spec
        return spec

    def helper(
        self, helper: str | int, *, prog_types: Iterable[ProgramType] | None = None
    ) -> Callable[[HelperFn], HelperFn]:
        """Decorator form of :meth:`register`."""

        def deco(fn: HelperFn) -> HelperFn:
            self.register(helper, fn, prog_types=prog_types)
            return fn

        return deco

    def for_prog_type(self, prog_type: ProgramType) -> dict[int, HelperFn]:
        """``{id: fn}`` of the helpers ``prog_type`` may call (a RunEnv's ``helpers``)."""
        return {hid: s.fn for hid, s in self._by_id.items() if s.allowed(prog_type)}

    def copy(self) -> HelperRegistry:
        """An independent registry with the same helpers (extend it without touching
        the original)."""
        return HelperRegistry(self._by_id.values())

    def get(self, helper: str | int) -> HelperSpec | None:
        try:
            hid, _ = _resolve(helper)
        except NetbpfError:
            return None
        return self._by_id.get(hid)

    def __getitem__(self, helper: str | int) -> HelperSpec:
        spec = self.get(helper)
        if spec is None:
            raise KeyError(helper)
        return spec

    def __contains__(self, helper: object) -> bool:
        return isinstance(helper, str | int) and self.get(helper) is not None

    def __iter__(self) -> Iterator[HelperSpec]:
        return iter(sorted(self._by_id.values(), key=lambda s: s.id))

    def __len__(self) -> int:
        return len(self._by_id)


#: The registry the simulator uses; helper modules register into it on import.
DEFAULT_REGISTRY = HelperRegistry()
