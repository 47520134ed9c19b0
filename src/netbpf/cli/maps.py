"""``netbpf map dump``: a map's contents, decoded through BTF.

A command runs in its own process, and the simulator's maps live in that process
only, so "the map after my last ``prog run``" cannot be read by a later command.
``map dump`` therefore reads maps that exist when it runs:

* ``map dump OBJ [--map NAME]``: the maps of the object as a fresh load makes them
  (global data, ``--set`` knobs, prog-array and map-in-map slots from ``.maps``
  initialisers, empty hashes, zeroed arrays): what a program sees on its first run;
* ``map dump --pinned PATH [OBJ]``: a live kernel map pinned in a bpffs (for example
  by ``prog run OBJ --backend kernel --pin-path DIR`` for maps declared with
  ``LIBBPF_PIN_BY_NAME``, which outlive the command), typed with the BTF of OBJ when
  given (the map of the same name, or ``--map NAME``);
* the maps after a run: ``prog run OBJ --dump-maps``, in the same process as the run.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import click
from rich.text import Text

from netbpf.cli import _common, _objects
from netbpf.errors import NetbpfError

__all__ = ["map_group", "open_pinned_map"]


@click.group("map")
def map_group() -> None:
    """Read maps (of an object, or pinned in the kernel)."""


def _fdinfo(fd: int) -> dict[str, str]:
    """``/proc/self/fdinfo/FD`` as a dict: says whether a bpf fd is a map or a program
    (BPF_OBJ_GET opens either)."""
    try:
        text = Path(f"/proc/self/fdinfo/{fd}").read_text()
    except OSError:
        return {}
    out = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            out[key.strip()] = value.strip()
    return out


def open_pinned_map(path: str) -> Any:
    """A :class:`~netbpf.kernel.KernelMap` for the map pinned at ``path``."""
    from netbpf.kernel import KernelBackend, KernelMap
    from netbpf.kernel import syscall as _sys  # the kernel package's bpf() layer
    from netbpf.uapi import MapType

    KernelBackend()  # KernelUnavailable, with the probe's reason, where bpf() is unusable
    fd = _sys.obj_get(path)
    try:
        if "map_type" not in _fdinfo(fd.fileno()):
            raise NetbpfError(f"{path}: pinned object is not a map (a program or link?)")
        info = _sys.map_info(fd.fileno())
        try:
            mtype = MapType(info.type)
        except ValueError:
            raise NetbpfError(f"{path}: unknown map type {info.type}") from None
    except BaseException:
        fd.close()
        raise
    return KernelMap(
        fd,
        mtype,
        info.key_size,
        info.value_size,
        info.max_entries,
        flags=info.map_flags,
        name=info.name,
    )


def _typed_pinned(kmap: Any, spec: Any, name: str, obj_file: str | None) -> Any:
    from netbpf.collection import map_btf_ids
    from netbpf.obj.btf_values import TypedMap

    if spec is None:
        return TypedMap(kmap, None)
    mspec = spec.maps.get(name)
    if mspec is None:
        raise NetbpfError(
            f"{obj_file}: no map {name!r} to type the pinned map with (use --map NAME); "
            f"maps: {', '.join(sorted(spec.maps)) or 'none'}"
        )
    theirs = (kmap.map_type, kmap.key_size, kmap.value_size)
    ours = (mspec.type, mspec.key_size, mspec.value_size)
    if theirs != ours:
        raise NetbpfError(
            f"the pinned map is {kmap.map_type.name.lower()} with {kmap.key_size}-byte keys "
            f"and {kmap.value_size}-byte values, but {obj_file}'s map {name!r} is "
            f"{mspec.type.name.lower()} with {mspec.key_size}/{mspec.value_size}"
        )
    key_id, value_id = map_btf_ids(spec.btf, mspec)
    return TypedMap(kmap, spec.btf, key_id, value_id)


@map_group.command("dump")
@click.argument(
    "obj_file",
    metavar="[OBJ]",
    required=False,
    type=click.Path(dir_okay=False, allow_dash=True),
)
@click.option("--map", "map_name", metavar="NAME", help="Only this map (default: every map).")
@click.option(
    "--pinned",
    metavar="PATH",
    help="Read the live kernel map pinned at PATH (a bpffs file) instead of loading OBJ; "
    "OBJ, when given, types it through its BTF.",
)
@click.option(
    "--backend",
    type=click.Choice(["sim", "kernel"]),
    default="sim",
    show_default=True,
    help="Where OBJ is loaded to read its maps.",
)
@click.option(
    "--set",
    "sets",
    metavar="VAR=VALUE",
    multiple=True,
    callback=_objects.parse_assignment,
    help="Give a global variable this initial value first (as in 'prog run --set').",
)
@_common.json_option
@click.pass_context
def dump_cmd(
    ctx: click.Context,
    obj_file: str | None,
    map_name: str | None,
    pinned: str | None,
    backend: str,
    sets: list[_objects.Assignment],
    as_json: bool,
) -> None:
    """Show maps' contents, keys and values decoded through BTF.

    Each netbpf command is its own process, and simulator maps do not outlive it.
    So this shows either the maps of OBJ as a fresh load makes them (global data and
    --set knobs, prog-array and map-in-map slots, empty hashes, zeroed arrays), or,
    with --pinned PATH, a live kernel map pinned in a bpffs.  To see maps after a
    run, use 'netbpf prog run OBJ --dump-maps'; to keep kernel maps between
    commands, pin them ('prog run OBJ --backend kernel --pin-path DIR' pins maps
    declared with LIBBPF_PIN_BY_NAME) and read them here with --pinned.

    \b
    Examples:
      netbpf map dump counter.o --map counts
      netbpf map dump --pinned /sys/fs/bpf/counts counter.o
    """
    if pinned is not None:
        if sets:
            raise click.UsageError("--set prepares a fresh load; a pinned map already exists", ctx)
        spec = _objects.load_object(obj_file) if obj_file is not None else None
        name = map_name or os.path.basename(pinned.rstrip("/"))
        kmap = open_pinned_map(pinned)
        try:
            tm = _typed_pinned(kmap, spec, name, obj_file)
            doc = _objects.dump_live_map(tm, name, pop_ok=False)
            doc["kernel_name"] = kmap.name
        finally:
            kmap.close()
        maps = [doc]
        where = "kernel"
    else:
        if obj_file is None:
            raise click.UsageError("give an object OBJ, or --pinned PATH", ctx)
        spec = _objects.load_object(obj_file)
        if map_name is not None and map_name not in spec.maps:
            raise NetbpfError(
                f"{obj_file}: no map {map_name!r}; maps: {', '.join(sorted(spec.maps)) or 'none'}"
            )
        spec = _objects.apply_sets(spec, sets, obj_file)
        be = _objects.make_backend(backend, None)
        names = [map_name] if map_name is not None else list(spec.maps)
        with _objects.load_collection(be, spec) as coll:
            maps = [_objects.dump_live_map(coll, n, pop_ok=False) for n in names]
        where = backend

    if as_json:
        _common.emit_json(
            {
                "file": obj_file,
                "pinned": pinned,
                "backend": where,
                "maps": maps,
            }
        )
        return
    out = _common.console()
    head = Text()
    if pinned is not None:
        head.append(pinned, style="bold")
        head.append(f"  pinned kernel map {maps[0].get('kernel_name')!r}", style="dim")
    else:
        head.append(str(obj_file), style="bold")
        head.append(f"  maps after a fresh load on {where} (no program has run)", style="dim")
    out.print(head)
    for doc in maps:
        _objects.print_map_dump(out, doc, indent="  ")
