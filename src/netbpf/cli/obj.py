"""``netbpf obj show``: what a BPF object declares, without loading anything.

The object is parsed into a :class:`~netbpf.obj.collection.CollectionSpec` (pure data;
no simulator, no kernel) and described: programs (type from the section name,
expected attach type, instruction count after linking subprograms, license), maps
(type, sizes with their BTF types, max_entries, flags by name, inner map, what the
object initialises them with), global variables (section, offset, size, C type and
initial value decoded through BTF) and a BTF summary — what ``bpftool`` shows
for a loaded object, but from the file.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import click
from rich.text import Text

from netbpf.cli import _common, _objects
from netbpf.errors import NetbpfError

__all__ = ["describe_object", "obj"]


@click.group()
def obj() -> None:
    """Inspect BPF object files (ELF, as clang -target bpf writes them)."""


def _type_name(btf: Any, type_id: int) -> str | None:
    if not type_id or btf is None:
        return None
    try:
        return str(btf.format_type(type_id))
    except NetbpfError:
        return None


def _initial(mspec: Any) -> dict[str, Any] | None:
    """What the object puts into a map at load time: global data bytes, or slots of a
    PROG_ARRAY / map-in-map filled from ``.maps`` initialisers."""
    from netbpf.collection import is_global_data
    from netbpf.obj.collection import map_contents, map_data

    if is_global_data(mspec):
        data = map_data(mspec)
        return {
            "kind": "data",
            "bytes": len(data),
            "nonzero_bytes": sum(1 for b in data if b),
        }
    slots = []
    for key, value in map_contents(mspec):
        if isinstance(value, tuple) and len(value) == 2:
            slots.append({"key": key, value[0]: value[1]})
        else:
            slots.append({"key": key, "value": _objects.to_json(value)})
    if not slots:
        return None
    return {"kind": "slots", "entries": slots}


def _map_doc(spec: Any, mspec: Any, *, inner: bool = False) -> dict[str, Any]:
    from netbpf.collection import is_global_data, map_btf_ids
    from netbpf.maps.constants import LIBBPF_PIN_BY_NAME

    key_id, value_id = map_btf_ids(spec.btf, mspec)
    doc: dict[str, Any] = {
        "name": mspec.name,
        "type": mspec.type.name.lower(),
        "key_size": mspec.key_size,
        "value_size": mspec.value_size,
        "key_type": _type_name(spec.btf, key_id),
        "value_type": _type_name(spec.btf, value_id),
        "max_entries": mspec.max_entries,
        "flags": _objects.map_flag_names(mspec.flags),
        "flags_raw": mspec.flags,
    }
    if inner:
        return doc
    doc["global_data"] = mspec.extra.get("section") if is_global_data(mspec) else None
    doc["pinning"] = "by_name" if mspec.pinning == LIBBPF_PIN_BY_NAME else None
    doc["inner_map"] = (
        _map_doc(spec, mspec.inner_map, inner=True) if mspec.inner_map is not None else None
    )
    doc["initial"] = _initial(mspec)
    return doc


def _variable_doc(spec: Any, var: Any) -> dict[str, Any]:
    codec = _objects.variable_codec(spec, var)
    try:
        value = _objects.to_json(codec.decode(var.get()))
    except NetbpfError:
        value = _objects.bytes_text(var.get())
    return {
        "name": var.name,
        "section": var.map,
        "offset": var.offset,
        "size": var.size,
        "type": _type_name(spec.btf, var.type_id),
        "readonly": var.readonly,
        "value": value,
    }


def _program_doc(prog: Any) -> dict[str, Any]:
    return {
        "name": prog.name,
        "section": prog.section,
        "prog_type": prog.prog_type.name.lower(),
        "attach_type": prog.attach_type.name.lower() if prog.attach_type is not None else None,
        "insns": len(prog.insns),
        "license": prog.license,
        "subprograms": [f.name for f in prog.func_info if f.slot != 0],
        "maps": sorted({r.map for r in prog.map_relocs}),
        "func_info": len(prog.func_info),
        "line_info": len(prog.line_info),
        "core_relos": len(prog.core_relos),
    }


def _btf_doc(btf: Any) -> dict[str, Any] | None:
    if btf is None:
        return None
    kinds = Counter(t.kind.name.lower() for t in list(btf.types)[1:])
    return {
        "types": len(btf) - 1,
        "kinds": dict(sorted(kinds.items())),
        "strings_bytes": len(btf.strings),
        "datasecs": sorted(btf.datasecs()),
    }


def describe_object(spec: Any, file: str) -> dict[str, Any]:
    """The ``obj show --json`` document."""
    variables = sorted(spec.variables.values(), key=lambda v: (v.map, v.offset, v.name))
    return {
        "file": file,
        "license": spec.license,
        "kern_version": spec.kern_version,
        "programs": [_program_doc(p) for p in spec.programs.values()],
        "maps": [_map_doc(spec, m) for m in spec.maps.values()],
        "variables": [_variable_doc(spec, v) for v in variables],
        "btf": _btf_doc(spec.btf),
    }


@obj.command("show")
@click.argument("obj_file", metavar="OBJ", type=click.Path(dir_okay=False, allow_dash=True))
@_common.json_option
def show_cmd(obj_file: str, as_json: bool) -> None:
    """Show the programs, maps, global variables and BTF of the object OBJ.

    Nothing is loaded: this reads the file only.  Programs are listed after linking
    (subprograms appended, as the kernel gets them); variables show their initial
    values, which `prog run --set NAME=VALUE` can change before a run.

    \b
    Example:
      netbpf obj show examples/xdp_udp_drop.o
    """
    spec = _objects.load_object(obj_file)
    doc = _common.clean(describe_object(spec, obj_file))
    if as_json:
        _common.emit_json(doc)
        return
    _print(doc)


def _slot_text(entry: dict[str, Any]) -> str:
    for kind in ("prog", "map"):
        if kind in entry:
            return f"{kind} {entry[kind]}"
    return str(entry.get("value"))


def _section_title(out: Any, title: str, count: int) -> None:
    line = Text()
    line.append(title, style="bold underline")
    line.append(f" ({count})", style="dim")
    out.print(line)


def _print(doc: dict[str, Any]) -> None:
    out = _common.console()
    head = Text()
    head.append(doc["file"], style="bold")
    head.append(f"  license {doc['license']!r}" if doc["license"] else "  no license", style="dim")
    out.print(head)

    _section_title(out, "programs", len(doc["programs"]))
    for p in doc["programs"]:
        line = Text("  ")
        line.append(p["name"], style="bold")
        attach = f", attach {p['attach_type']}" if p["attach_type"] else ""
        line.append(f"  {p['prog_type']}{attach}, section {p['section']!r}, {p['insns']} insns")
        out.print(line)
        extras = []
        if p["subprograms"]:
            extras.append("calls " + ", ".join(p["subprograms"]))
        if p["maps"]:
            extras.append("uses " + ", ".join(p["maps"]))
        if extras:
            out.print(Text("    " + "; ".join(extras), style="dim"))

    _section_title(out, "maps", len(doc["maps"]))
    for m in doc["maps"]:
        line = Text("  ")
        line.append(m["name"], style="bold")
        key = m["key_type"] or f"{m['key_size']} bytes"
        value = m["value_type"] or f"{m['value_size']} bytes"
        line.append(f"  {m['type']}  {key} -> {value}  max_entries {m['max_entries']}")
        if m["flags"]:
            line.append("  " + "|".join(m["flags"]), style="cyan")
        out.print(line)
        notes = []
        if m["inner_map"] is not None:
            inner = m["inner_map"]
            notes.append(
                f"inner map: {inner['type']} {inner['key_size']}/{inner['value_size']} bytes, "
                f"max_entries {inner['max_entries']}"
            )
        if m["pinning"]:
            notes.append("pinned by name")
        init = m["initial"]
        if init is not None and init["kind"] == "data":
            nz = init["nonzero_bytes"]
            notes.append(
                f"initial data: {init['bytes']} bytes, " + (f"{nz} non-zero" if nz else "all zero")
            )
        elif init is not None:
            slots = ", ".join(f"[{e['key']}] = {_slot_text(e)}" for e in init["entries"])
            notes.append(f"initial slots: {slots}")
        for note in notes:
            out.print(Text("    " + note, style="dim"))

    _section_title(out, "variables", len(doc["variables"]))
    for v in doc["variables"]:
        line = Text("  ")
        line.append(v["name"], style="bold")
        ctype = v["type"] or f"{v['size']} bytes"
        ro = ", read-only" if v["readonly"] else ""
        line.append(f"  {ctype}  {v['section']}+{v['offset']} ({v['size']} bytes{ro})", style="dim")
        line.append(f"  = {_objects.human_value(v['value'])}")
        out.print(line)

    btf = doc["btf"]
    if btf is None:
        out.print(Text("btf: none (build with -g for types, source lines and .maps)", style="dim"))
    else:
        kinds = ", ".join(f"{n} {k}" for k, n in btf["kinds"].items())
        line = Text()
        line.append("btf", style="bold underline")
        line.append(f"  {btf['types']} types ({kinds}), {btf['strings_bytes']} bytes of strings")
        out.print(line)
