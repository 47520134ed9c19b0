"""The simulator's BPF_PROG_LOAD step: run netbpf's verifier before a program may run.

The kernel refuses to load a program its verifier cannot prove safe; so does
:class:`~netbpf.sim.SimBackend`.  This module is the glue between the loader and
:func:`netbpf.verifier.verify`:

* :func:`map_view` -- what the verifier learns about a *live* simulated map, the way
  the kernel's verifier looks at the real ``struct bpf_map`` behind an fd: its type,
  sizes, ``max_entries`` and flags as created, the spin lock's offset (from the BTF the
  map was created with), whether it is frozen and, for a frozen program-read-only
  array (``.rodata``), its current bytes (the kernel constant-folds loads from them).
* :func:`verify_for_load` -- :func:`~netbpf.verifier.verify` behind a cache of
  outcomes.  Tests load the same program many times (once per backend, per
  parametrisation); verifying costs milliseconds to seconds, so a verdict is reused
  when *everything* verify() depends on is equal: every field of the ProgramSpec
  (name, type, expected attach type, license, instructions after CO-RE relocation,
  map references, func/line info...; the BTF object by identity), every referenced
  map's verifier view by value (type, sizes, max_entries, flags, inner map, spin lock
  offset, frozen, constant contents), the log level and the instruction limit.  A
  cached refusal is raised again as a fresh copy.

The cache is process-wide and bounded (:data:`CACHE_SIZE` entries, least recently
used dropped first); :func:`clear_cache` empties it, :func:`cache_info` reports hits
and misses.

* :func:`sanitize_dead_code` -- the program the engines run.  Linux checks some
  properties of an instruction (reserved fields, registers above r10, writes to r10)
  only where a path reaches it, so it accepts a program whose dead code (no path
  reaches it: a branch decided by a constant) is malformed, and patches that code out
  (sanitize_dead_code / opt_remove_dead_code).  The simulator does the same: every slot
  the verifier never reached becomes :data:`DEAD_CODE_TRAP`, a call of helper
  #-1, which no program type has, so that both engines fault (ProgramFault naming the
  slot: "unknown helper #-1") if a run ever got there -- it cannot if the verifier is
  right; a function's last slot becomes ``goto -1`` instead (a function must end with
  a jump; a run reaching it stops at the instruction budget), Linux's own trap.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, fields, is_dataclass
from typing import Any

from netbpf.isa.instruction import Instruction
from netbpf.maps import BPF_F_RDONLY_PROG, ArrayMap, MapSpec
from netbpf.maps import Map as SimMap
from netbpf.obj.spec import ProgramSpec
from netbpf.verifier import INSN_LIMIT, VerifierRejection, VerifierResult, verify
from netbpf.verifier.maps import map_info
from netbpf.vm.runtime import DEAD_CODE_HELPER_ID

__all__ = [
    "CACHE_SIZE",
    "DEAD_CODE_TRAP",
    "CacheInfo",
    "cache_info",
    "clear_cache",
    "map_view",
    "sanitize_dead_code",
    "verify_for_load",
]

#: how many verification outcomes the process keeps
CACHE_SIZE = 512


@dataclass(frozen=True)
class CacheInfo:
    hits: int
    misses: int
    size: int


# key -> (outcome, spec.btf kept alive so that id(btf) in the key stays unique)
_cache: OrderedDict[tuple[Any, ...], tuple[VerifierResult | VerifierRejection, Any]] = OrderedDict()
_stats = {"hits": 0, "misses": 0}
_lock = threading.Lock()  # loads from several threads (verification runs unlocked)


def map_view(m: SimMap) -> MapSpec:
    """The map as the verifier sees the kernel object behind an fd (see the module
    docstring): the spec it was created from, with its live frozen state and, for a
    frozen BPF_F_RDONLY_PROG array, element 0's current bytes as constant contents."""
    spec = m.spec
    extra: dict[str, Any] = {k: v for k, v in spec.extra.items() if k not in ("freeze", "contents")}
    extra["freeze"] = bool(m.frozen)
    if m.frozen and m.flags & BPF_F_RDONLY_PROG and isinstance(m, ArrayMap) and not m.percpu:
        extra["contents"] = ((0, bytes(m.values_store.get(0))),)
    return spec.with_(max_entries=m.max_entries, flags=m.flags, extra=extra)


def _key(
    spec: ProgramSpec, maps: Mapping[str, Any], log_level: int, insn_limit: int
) -> tuple[Any, ...]:
    """Every field of the spec (so a field verify() starts to read is covered without
    a change here; the BTF by identity, kept alive by the cache entry), each
    referenced map's verifier view by value, the log level and the limit."""
    names = sorted({r.map for r in spec.map_relocs})
    views = tuple((n, _info_key(map_info(maps[n])) if n in maps else None) for n in names)
    own = tuple(getattr(spec, f.name) for f in fields(spec) if f.name != "btf")
    return (own, id(spec.btf), views, log_level, insn_limit)


def _info_key(info: Any) -> tuple[Any, ...]:
    """Every field of a verifier MapInfo, by value (MapInfo compares by identity), an
    inner map's too: a field added to MapInfo is part of the key without a change
    here."""
    return tuple(
        _info_key(v) if is_dataclass(v) else v
        for v in (getattr(info, f.name) for f in fields(info))
    )


def verify_for_load(
    spec: ProgramSpec,
    maps: Mapping[str, Any] | None = None,
    *,
    log_level: int = 0,
    insn_limit: int = INSN_LIMIT,
) -> VerifierResult:
    """:func:`netbpf.verifier.verify` with the outcome cache (see the module
    docstring).  Raises :class:`~netbpf.verifier.VerifierRejection` when refused."""
    maps = maps or {}
    try:
        key = _key(spec, maps, log_level, insn_limit)
        hash(key)
    except TypeError:  # something unhashable in a user-built spec: no caching
        return verify(spec, maps=maps, log_level=log_level, insn_limit=insn_limit)
    with _lock:
        hit = _cache.get(key)
        if hit is not None:
            _stats["hits"] += 1
            _cache.move_to_end(key)
    if hit is not None:
        outcome = hit[0]
    else:
        try:
            outcome = verify(spec, maps=maps, log_level=log_level, insn_limit=insn_limit)
        except VerifierRejection as rej:
            outcome = rej
        with _lock:
            _stats["misses"] += 1
            _cache[key] = (outcome, spec.btf)
            while len(_cache) > CACHE_SIZE:
                _cache.popitem(last=False)
    if isinstance(outcome, VerifierRejection):
        raise _fresh(outcome)
    return outcome


def _fresh(rej: VerifierRejection) -> VerifierRejection:
    """A new exception object with the cached refusal's contents (raising the cached
    object itself would chain every raise's traceback onto it)."""
    new = rej.__class__.__new__(rej.__class__, *rej.args)
    new.__dict__.update(rej.__dict__)
    return new


def clear_cache() -> None:
    """Forget every cached verification outcome (and the hit/miss counts)."""
    with _lock:
        _cache.clear()
        _stats["hits"] = _stats["misses"] = 0


def cache_info() -> CacheInfo:
    """Hits, misses and entries of the outcome cache since the last clear."""
    return CacheInfo(_stats["hits"], _stats["misses"], len(_cache))


#: What a slot no verified path reaches becomes: ``call -1``, a helper no program type
#: has, so both engines raise ProgramFault at that slot if a run ever reaches it.
DEAD_CODE_TRAP = Instruction(0x85, 0, 0, 0, DEAD_CODE_HELPER_ID)
#: the trap in a function's last slot (which must stay a jump): ``goto -1``, a run
#: reaching it stops at the instruction budget (InstructionLimitExceeded); Linux's trap
_LAST_SLOT_TRAP = Instruction(0x05, 0, 0, -1, 0)
_LD_IMM64 = 0x18
_EXIT = 0x95


def sanitize_dead_code(
    insns: list[Instruction] | tuple[Instruction, ...], result: VerifierResult
) -> list[Instruction]:
    """The instructions the engines run after ``result`` accepted ``insns``: every slot
    no path reached (``result.insn_aux[i].seen`` false, and not the second half of a
    reached LD_IMM64) replaced by :data:`DEAD_CODE_TRAP` (see the module docstring);
    a reached ``exit`` whose ``off`` is set (Linux ignores that field) with it cleared.
    ``insns`` and ``result`` (a cached, shared object) are not modified."""
    aux = result.insn_aux
    if len(aux) != len(insns):
        raise ValueError(f"verifier result covers {len(aux)} slots, the program has {len(insns)}")
    out = list(insns)
    # a function's last slot stays a jump (the engines lay functions out by slot)
    ends = {start - 1 for start in result.subprog_starts if start} | {len(out) - 1}
    for i, insn in enumerate(insns):
        if aux[i].seen:
            if insn.opcode == _EXIT and insn.off:
                out[i] = Instruction(_EXIT)
            continue
        if i and aux[i - 1].seen and insns[i - 1].opcode == _LD_IMM64:
            continue  # the upper half of a reached LD_IMM64
        out[i] = _LAST_SLOT_TRAP if i in ends else DEAD_CODE_TRAP
    return out
