"""Shared pieces of the object commands (``obj show``, ``prog dump``, ``prog run OBJ``,
``map dump``, ``verify``): reading an object, choosing a program, ``--set`` and
``--map`` from the shell, and typed values as JSON.

Typed values as JSON (what ``--json`` prints, and what ``--set``/``--map`` read):

* integers are numbers (enums too; the human output shows enumerator names), and a
  string such as ``"0x1f"`` is accepted where an integer goes (JSON has no hex);
* structs and unions are objects, arrays and per-CPU values are lists;
* bytes (``char[]``/``__u8[]`` arrays, and whole keys or values without BTF) are a
  string: the text itself when the bytes are printable ASCII followed only by NULs
  (``"netbpf"`` for ``char banner[8] = "netbpf"``), else ``"0x"`` and hex
  (``"0x0a000001"``).  Reading back, a ``"0x..."`` string is hex and any other
  string is text, zero-padded to the field's size, so what a dump prints is exactly
  what ``--map NAME=@dump.json`` writes back.

Why a template-guided conversion rather than tagging values in the JSON: the shape
of a value is known from BTF (decoding a zero value gives it), so users write the
natural ``{"packets": 3, "tag": "web"}`` and the conversion knows ``tag`` is bytes.
"""

from __future__ import annotations

import enum
import json
import math
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from netbpf.cli import _common
from netbpf.errors import BtfError, MapError, NetbpfError

if TYPE_CHECKING:  # pragma: no cover
    from netbpf.collection import Collection
    from netbpf.obj.btf_values import TypedMap, ValueCodec
    from netbpf.obj.collection import CollectionSpec, VariableSpec
    from netbpf.obj.spec import ProgramSpec

__all__ = [
    "ENGINE_NAMES",
    "Assignment",
    "apply_map_inits",
    "apply_sets",
    "dump_live_map",
    "human_value",
    "load_collection",
    "load_object",
    "load_object_bytes",
    "make_backend",
    "map_flag_names",
    "only_program",
    "parse_assignment",
    "pick_program",
    "to_json",
    "variable_codec",
]

ELF_MAGIC = b"\x7fELF"


# ------------------------------------------------------------------ reading objects


def load_object(path: str) -> CollectionSpec:
    """Parse the BPF object at ``path`` (``-`` for stdin).  Errors name the file."""
    return load_object_bytes(_common.read_input(path), path)


def load_object_bytes(raw: bytes, path: str) -> CollectionSpec:
    """Parse an object already read from ``path``."""
    from netbpf.obj.collection import load_collection_spec

    if raw[:4] != ELF_MAGIC:
        err = NetbpfError(
            "not an ELF object (no \\x7fELF magic); this command takes a BPF object "
            "compiled with 'clang -target bpf -g -c'"
        )
        _common.attach_source(err, path)
        raise err
    try:
        return load_collection_spec(raw, name=path)
    except NetbpfError as exc:
        _common.attach_source(exc, path)
        raise


def _names(names: Iterable[str]) -> str:
    listed = ", ".join(sorted(names))
    return listed or "none"


def pick_program(spec: CollectionSpec, name: str | None, file: str) -> ProgramSpec:
    """The program ``--prog NAME`` names; without ``--prog`` the object's only
    program.  Mistakes list the programs the object has."""
    if name is None:
        if len(spec.programs) == 1:
            return next(iter(spec.programs.values()))
        if not spec.programs:
            raise NetbpfError(f"{file}: the object has no programs")
        raise NetbpfError(
            f"{file} has {len(spec.programs)} programs; choose one with --prog: "
            f"{_names(spec.programs)}"
        )
    prog = spec.programs.get(name)
    if prog is None:
        raise NetbpfError(f"{file}: no program {name!r}; programs: {_names(spec.programs)}")
    return prog


def only_program(spec: CollectionSpec, name: str) -> CollectionSpec:
    """A copy of ``spec`` that loads program ``name`` and the programs PROG_ARRAY
    initialisers in ``.maps`` name (its tail-call targets), not the others: libbpf's
    ``bpf_program__set_autoload(prog, false)``.  Every map is still created.  So one
    program of an object that the verifier refuses does not stop running another."""
    from netbpf.obj.collection import map_contents

    keep = {name}
    for mspec in spec.maps.values():
        for _, value in map_contents(mspec):
            if isinstance(value, tuple) and len(value) == 2 and value[0] == "prog":
                keep.add(value[1])
    if keep >= set(spec.programs):
        return spec
    new = spec.copy()
    new.programs = {k: v for k, v in spec.programs.items() if k in keep}
    return new


# ------------------------------------------------------------------------ backends

#: ``--engine`` names -> the simulator's engine names (netbpf.vm.engine.ENGINES)
ENGINE_NAMES = {"fast": "fast", "interp": "interpreter"}


def make_backend(backend: str, engine: str | None, *, unsafe_skip_verifier: bool = False) -> Any:
    """``--backend sim|kernel`` (and ``--engine``, ``--unsafe-skip-verifier``) -> a
    backend object."""
    if backend == "kernel":
        from netbpf.kernel import KernelBackend

        return KernelBackend()
    from netbpf.sim import SimBackend

    kw: dict[str, Any] = {"unsafe_skip_verifier": unsafe_skip_verifier}
    if engine:
        kw["engine"] = ENGINE_NAMES[engine]
    return SimBackend(**kw)


def load_collection(be: Any, spec: CollectionSpec, *, pin_path: str | None = None) -> Collection:
    """``backend.load(spec)`` -> a Collection; maps pinned by name go under
    ``pin_path`` (the backend's default, /sys/fs/bpf, when None)."""
    return be.load(spec, pin_path=pin_path)  # type: ignore[no-any-return]


# ------------------------------------------------------------- NAME=VALUE options

Assignment = tuple[str, str]


def parse_assignment(ctx: click.Context, param: click.Parameter, values: Any) -> list[Assignment]:
    """click callback for repeatable ``NAME=VALUE`` options (``--set``, ``--map``)."""
    out: list[Assignment] = []
    for raw in values or ():
        name, sep, value = str(raw).partition("=")
        if not sep or not name:
            raise click.BadParameter(f"{raw!r} is not NAME=VALUE", ctx=ctx, param=param)
        out.append((name, value))
    return out


def _parse_scalar_or_json(text: str) -> Any:
    """A ``--set`` value: JSON (numbers, strings, lists, objects), an integer in any
    base Python reads (``0x10``, ``0o7``, ``0b101``), or else the text itself."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        pass
    try:
        return int(text, 0)
    except ValueError:
        return text


# ----------------------------------------------------------- JSON <-> typed values

_HEX_STRING = re.compile(r"0x(?:[0-9a-fA-F]{2})*")


def bytes_text(raw: bytes) -> str:
    """Bytes as the JSON string described in the module docstring."""
    text = raw.rstrip(b"\0")
    if text and all(0x20 <= c < 0x7F for c in text) and not text.startswith(b"0x"):
        return text.decode("ascii")
    return "0x" + raw.hex()


def to_json(value: Any, *, enum_names: bool = False) -> Any:
    """A decoded typed value as plain JSON data (see the module docstring)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, enum.Enum):
        return value.name if enum_names else int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes_text(bytes(value))
    if isinstance(value, Mapping):
        return {str(k): to_json(v, enum_names=enum_names) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_json(v, enum_names=enum_names) for v in value]
    return str(value)


def human_value(value: Any) -> str:
    """A typed value on one line for people (JSON, with enumerator names)."""
    return json.dumps(to_json(value, enum_names=True), ensure_ascii=False)


def from_json(value: Any, template: Any) -> Any:
    """Undo :func:`to_json` for one value, guided by ``template`` (the decoded zero
    value of the same type, which has the type's shape)."""
    if isinstance(template, bytes):
        if isinstance(value, str):
            if _HEX_STRING.fullmatch(value):
                return bytes.fromhex(value[2:])
            raw = value.encode()
            return raw + bytes(max(0, len(template) - len(raw)))
        return value
    if isinstance(template, bool):
        return value
    if isinstance(template, int) and isinstance(value, str):
        try:
            return int(value, 0)
        except ValueError:
            return value  # an enumerator name, or an error the codec will explain
    if isinstance(template, dict) and isinstance(value, dict):
        return {k: from_json(v, template[k]) if k in template else v for k, v in value.items()}
    if isinstance(template, list) and isinstance(value, list) and template:
        last = len(template) - 1
        return [from_json(v, template[min(i, last)]) for i, v in enumerate(value)]
    return value


def _key_from_text(text: str, template: Any) -> Any:
    """A map key written as a JSON object's key (always a string)."""
    if isinstance(template, bool) or not isinstance(template, int | bytes):
        try:
            return from_json(json.loads(text), template)
        except json.JSONDecodeError:
            raise NetbpfError(f"key {text!r} is not JSON (a struct key is a JSON object)") from None
    if isinstance(template, int):
        try:
            return int(text, 0)
        except ValueError:
            return text  # an enumerator name
    return from_json(text, template)


# ---------------------------------------------------------------------------- --set


def variable_codec(spec: CollectionSpec, var: VariableSpec) -> ValueCodec:
    """How a variable's bytes become a value: its BTF type when the object has one
    that agrees with the symbol's size, else raw bytes (as the Collection does)."""
    from netbpf.obj.btf_values import bytes_codec, value_codec

    if var.type_id and spec.btf is not None:
        try:
            codec = value_codec(spec.btf, var.type_id)
        except (BtfError, NetbpfError):
            codec = None
        if codec is not None and codec.size == var.size:
            return codec
    return bytes_codec(var.size)


def apply_sets(spec: CollectionSpec, sets: list[Assignment], file: str) -> CollectionSpec:
    """A copy of ``spec`` with ``--set NAME=VALUE`` written into the initial values of
    global variables (``const volatile`` knobs in ``.rodata`` included: this happens
    before load, like libbpf's skeleton ``rodata->knob = 1``)."""
    if not sets:
        return spec
    spec = spec.copy()
    for name, text in sets:
        var = spec.variables.get(name)
        if var is None:
            raise NetbpfError(
                f"--set {name}: {file} has no global variable {name!r}; "
                f"variables: {_names(spec.variables)}"
            )
        codec = variable_codec(spec, var)
        template = codec.decode(bytes(codec.size))
        value = from_json(_parse_scalar_or_json(text), template)
        try:
            raw = codec.encode(value)
        except NetbpfError as exc:
            raise NetbpfError(f"--set {name}: {exc}") from None
        var.set(raw)
    return spec


# ---------------------------------------------------------------------------- --map


def _read_json_arg(option: str, name: str, text: str) -> Any:
    """``--map NAME=JSON`` or ``--map NAME=@FILE``."""
    source = "the value"
    if text.startswith("@"):
        source = text[1:]
        text = Path(source).read_text()  # OSError: one line naming the file
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise NetbpfError(
            f"{option} {name}: {source} is not JSON ({exc.msg} at line {exc.lineno} "
            f"column {exc.colno})"
        ) from None


def _entries(doc: Any) -> list[tuple[Any, Any, bool]]:
    """(key, value, key_is_text) pairs from the accepted JSON shapes: an object
    ``{"KEY": VALUE}``, or a list of ``[KEY, VALUE]`` pairs or of
    ``{"key": KEY, "value": VALUE}`` objects (what a dump prints)."""
    if isinstance(doc, dict):
        return [(k, v, True) for k, v in doc.items()]
    if isinstance(doc, list):
        out = []
        for i, item in enumerate(doc):
            if isinstance(item, dict) and set(item) == {"key", "value"}:
                out.append((item["key"], item["value"], False))
            elif isinstance(item, list) and len(item) == 2:
                out.append((item[0], item[1], False))
            else:
                raise NetbpfError(
                    f'entry {i} is neither [KEY, VALUE] nor {{"key": KEY, "value": VALUE}}'
                )
        return out
    raise NetbpfError(
        f"expected a JSON object {{KEY: VALUE}} or a list of entries, got {type(doc).__name__}"
    )


def _templates(tm: TypedMap) -> tuple[Any, Any]:
    key_t = tm.key_codec.decode(bytes(tm.key_codec.size))
    value_t = tm.value_codec.decode(bytes(tm.value_codec.size))
    return key_t, value_t


def _fill_map(tm: TypedMap, doc: Any) -> None:
    """Write the entries of one ``--map`` document (errors name the key)."""
    from netbpf.uapi import MapType

    key_t, value_t = _templates(tm)
    mtype = getattr(tm.raw, "map_type", None)
    if mtype in (MapType.QUEUE, MapType.STACK):
        if not isinstance(doc, list):
            raise NetbpfError(f"a {mtype.name.lower()} map takes a JSON list of values")
        for i, value in enumerate(doc):
            try:
                tm.push(from_json(value, value_t))
            except NetbpfError as exc:
                raise NetbpfError(f"value {i}: {exc}") from None
        return
    for key, value, key_is_text in _entries(doc):
        try:
            k = _key_from_text(key, key_t) if key_is_text else from_json(key, key_t)
            if tm.percpu:
                if not isinstance(value, list):
                    value = [value] * tm.ncpus  # one value for every CPU
                v: Any = [from_json(x, value_t) for x in value]
            else:
                v = from_json(value, value_t)
            tm.update(k, v)
        except NetbpfError as exc:
            raise NetbpfError(f"key {key!r}: {exc}") from None


def apply_map_inits(coll: Collection, inits: list[Assignment], file: str) -> None:
    """``--map NAME=JSON`` / ``NAME=@FILE``: write entries into a loaded map through
    its BTF types before the run.  Queue and stack maps take a JSON list of values
    (pushed in order).  A per-CPU map takes a list per value, or one value for every
    CPU."""
    for name, text in inits:
        if name not in coll.maps:
            raise NetbpfError(
                f"--map {name}: {file} has no map {name!r}; maps: {_names(coll.maps)}"
            )
        doc = _read_json_arg("--map", name, text)
        try:
            _fill_map(coll.typed_map(name), doc)
        except NetbpfError as exc:
            raise NetbpfError(f"--map {name}: {exc}") from None


# -------------------------------------------------------------------------- dumps

#: Map types whose contents cannot be listed by key (records are consumed, or the
#: slots hold kernel objects a lookup does not return).
_UNLISTABLE = {
    "RINGBUF": "a ring buffer's records are consumed by a reader, not listed",
    "USER_RINGBUF": "a user ring buffer is written by user space, not listed",
    "PERF_EVENT_ARRAY": "perf event array slots hold perf events, not values",
}


def dump_live_map(
    coll_or_map: Any, name: str, *, btf: Any = None, pop_ok: bool = False
) -> dict[str, Any]:
    """A JSON document of a live map's contents, decoded through BTF.

    ``coll_or_map`` is a Collection (``name`` is a map of it) or an already typed
    map.  Queue and stack maps are listed by popping their values (``pop_ok``) only
    where the state is about to go away anyway; otherwise they get a note."""
    from netbpf.collection import Collection

    tm = coll_or_map.typed_map(name) if isinstance(coll_or_map, Collection) else coll_or_map
    raw = tm.raw
    mtype = getattr(raw, "map_type", None)
    type_name = mtype.name.lower() if mtype is not None else None
    doc: dict[str, Any] = {
        "name": name,
        "type": type_name,
        "key_type": tm.key_codec.type_name,
        "value_type": tm.value_codec.type_name,
        "max_entries": getattr(raw, "max_entries", None),
        "percpu": tm.percpu,
        "entries": None,
        "note": None,
    }
    if mtype is not None and mtype.name in _UNLISTABLE:
        doc["note"] = _UNLISTABLE[mtype.name]
        return doc
    try:
        if mtype is not None and mtype.name in ("QUEUE", "STACK"):
            doc["key_type"] = None
            if not pop_ok:
                doc["note"] = f"a {type_name} can only be read by popping its values"
                return doc
            values = []
            while True:
                try:
                    values.append(tm.pop())
                except MapError:
                    break
            doc["entries"] = [{"value": to_json(v)} for v in values]
            return doc
        doc["entries"] = [{"key": to_json(k), "value": to_json(v)} for k, v in tm.items()]
    except NetbpfError as exc:
        doc["entries"] = None
        doc["note"] = f"cannot be listed: {exc}"
    return doc


def print_map_dump(out: Any, doc: dict[str, Any], *, indent: str = "  ") -> None:
    """Human rendering of :func:`dump_live_map`'s document."""
    from rich.text import Text

    doc = _common.clean(doc)

    head = Text(indent)
    head.append(doc["name"], style="bold")
    shape = (
        doc["value_type"]
        if doc["key_type"] is None
        else (f"{doc['key_type']} -> {doc['value_type']}")
    )
    head.append(f"  {doc['type']}  {shape}", style="dim")
    entries = doc["entries"]
    if entries is not None:
        n = len(entries)
        head.append(f"  {n} entr{'y' if n == 1 else 'ies'}", style="dim")
    out.print(head)
    if doc["note"]:
        out.print(Text(f"{indent}  ({doc['note']})", style="dim"))
    for entry in entries or ():
        value = json.dumps(entry["value"], ensure_ascii=False)
        if "key" in entry:
            out.print(Text(f"{indent}  {json.dumps(entry['key'])}: {value}"))
        else:
            out.print(Text(f"{indent}  {value}"))


# --------------------------------------------------------------------- map flags

#: BPF_MAP_CREATE flag names, bit by bit, from linux/bpf.h (values in
#: netbpf.maps.constants).
_MAP_FLAG_NAMES = (
    "BPF_F_NO_PREALLOC",
    "BPF_F_NO_COMMON_LRU",
    "BPF_F_NUMA_NODE",
    "BPF_F_RDONLY",
    "BPF_F_WRONLY",
    "BPF_F_STACK_BUILD_ID",
    "BPF_F_ZERO_SEED",
    "BPF_F_RDONLY_PROG",
    "BPF_F_WRONLY_PROG",
    "BPF_F_CLONE",
    "BPF_F_MMAPABLE",
    "BPF_F_PRESERVE_ELEMS",
    "BPF_F_INNER_MAP",
    "BPF_F_LINK",
    "BPF_F_PATH_FD",
    "BPF_F_VTYPE_BTF_OBJ_FD",
    "BPF_F_TOKEN_FD",
    "BPF_F_SEGV_ON_FAULT",
    "BPF_F_NO_USER_CONV",
)


def map_flag_names(flags: int) -> list[str]:
    """``BPF_F_*`` names of the set bits; unknown bits as one hex number."""
    from netbpf.maps import constants

    names = []
    rest = flags
    for name in _MAP_FLAG_NAMES:
        bit = getattr(constants, name)
        if flags & bit:
            names.append(name)
            rest &= ~bit
    if rest:
        names.append(f"{rest:#x}")
    return names
