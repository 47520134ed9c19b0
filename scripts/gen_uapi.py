#!/usr/bin/env python3
"""Generate ``src/netbpf/uapi/_generated.py`` from the installed UAPI headers.

Why a script: the kernel's vocabulary (opcode bits, helper ids, program/attach/map
type numbers, context struct layouts) must match the running kernel exactly, and
hand-typed tables drift.  This reads ``linux/bpf_common.h`` and ``linux/bpf.h`` and
asks clang for the context structs' field offsets (``-fdump-record-layouts``), so the
layouts are the compiler's, not ours.

Run:  python3 scripts/gen_uapi.py   (needs clang-19 and linux-libc-dev)

Values newer than the installed header (RFC 9669 v4 additions, helpers added after
the header's kernel) come from ``SUPPLEMENT`` below, written from RFC 9669 and the
kernel documentation, and are marked as such in the output.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
from pathlib import Path

INCLUDE = Path("/usr/include")
ARCH_INCLUDE = Path("/usr/include/x86_64-linux-gnu")
OUT = Path(__file__).resolve().parent.parent / "src" / "netbpf" / "uapi" / "_generated.py"
CLANG = "clang-19"

# Defines from RFC 9669 / newer kernels that an older linux-libc-dev may lack.
SUPPLEMENT_DEFINES = {
    "BPF_MEMSX": 0x80,  # sign-extending load mode (RFC 9669 section 5.2)
    "BPF_JCOND": 0xE0,  # may_goto (kernel 6.9)
    "BPF_LOAD_ACQ": 0x100,  # atomic load-acquire (kernel 6.15)
    "BPF_STORE_REL": 0x110,  # atomic store-release (kernel 6.15)
}

# Helpers added after the oldest header we support (ids from the kernel's FN() mapper).
SUPPLEMENT_HELPERS = {
    "cgrp_storage_get": 210,
    "cgrp_storage_delete": 211,
}

# Enum members added by kernels newer than the oldest header we support
# (values from the kernel's linux/bpf.h of 6.18).
SUPPLEMENT_ENUMS = {
    "bpf_prog_type": {"BPF_PROG_TYPE_NETFILTER": 32},
    "bpf_map_type": {"BPF_MAP_TYPE_CGRP_STORAGE": 32, "BPF_MAP_TYPE_ARENA": 33},
    "bpf_attach_type": {
        "BPF_STRUCT_OPS": 44,
        "BPF_NETFILTER": 45,
        "BPF_TCX_INGRESS": 46,
        "BPF_TCX_EGRESS": 47,
        "BPF_TRACE_UPROBE_MULTI": 48,
        "BPF_CGROUP_UNIX_CONNECT": 49,
        "BPF_CGROUP_UNIX_SENDMSG": 50,
        "BPF_CGROUP_UNIX_RECVMSG": 51,
        "BPF_CGROUP_UNIX_GETPEERNAME": 52,
        "BPF_CGROUP_UNIX_GETSOCKNAME": 53,
        "BPF_NETKIT_PRIMARY": 54,
        "BPF_NETKIT_PEER": 55,
    },
}

# Context structs whose layout we need (program type -> struct).
CTX_STRUCTS = [
    "xdp_md",
    "__sk_buff",
    "bpf_sock",
    "bpf_sock_addr",
    "bpf_sock_ops",
    "sk_msg_md",
    "sk_reuseport_md",
    "bpf_flow_keys",
    "bpf_sk_lookup",
    "bpf_sysctl",
    "bpf_sockopt",
    "bpf_tcp_sock",
    "bpf_xdp_sock",
    "bpf_fib_lookup",
    "bpf_sock_tuple",
]

ENUMS = {
    "bpf_cmd": "BPF_CMD",
    "bpf_map_type": "MAP_TYPES",
    "bpf_prog_type": "PROG_TYPES",
    "bpf_attach_type": "ATTACH_TYPES",
    "bpf_link_type": "LINK_TYPES",
    "xdp_action": "XDP_ACTIONS",
    "bpf_ret_code": "BPF_RET_CODES",
    "bpf_adj_room_mode": "ADJ_ROOM_MODES",
    "bpf_func_id": None,  # built from the FN() mapper instead
}


def read(name: str) -> str:
    return (INCLUDE / name).read_text()


def parse_defines(text: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for m in re.finditer(
        r"^#define\s+(BPF_[A-Z0-9_]+)\s+(\(?[^/\n]+?\)?)\s*(?:/\*.*)?$", text, re.M
    ):
        name, expr = m.group(1), m.group(2).strip()
        if "(" in name or not expr:
            continue
        # Allow expressions over already-known names: (0xe0 | BPF_FETCH), (1U << 3)
        py = re.sub(r"(\d+)U?L{0,2}\b", r"\1", expr)
        try:
            value = eval(py, {"__builtins__": {}}, dict(out))
        except Exception:
            continue
        if isinstance(value, int):
            out[name] = value
    return out


def parse_enum(text: str, enum_name: str) -> dict[str, int]:
    m = re.search(r"enum\s+" + re.escape(enum_name) + r"\s*\{(.*?)\n\};", text, re.S)
    if not m:
        raise SystemExit(f"enum {enum_name} not found")
    body = re.sub(r"/\*.*?\*/", "", m.group(1), flags=re.S)
    body = re.sub(r"//[^\n]*", "", body)
    values: dict[str, int] = {}
    nxt = 0
    for item in body.split(","):
        item = item.strip()
        if not item or item.startswith("#"):
            continue
        if "=" in item:
            name, expr = (s.strip() for s in item.split("=", 1))
            try:
                nxt = eval(
                    re.sub(r"(\d+)U?L{0,2}\b", r"\1", expr), {"__builtins__": {}}, dict(values)
                )
            except Exception:
                continue
        else:
            name = item
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            continue
        values[name] = nxt
        nxt += 1
    return values


def parse_helpers(text: str) -> dict[str, int]:
    """Helper ids from the FN() mapper: newer headers spell the id (FN(name, 1, ...)),
    older ones number the entries in order."""
    m = re.search(
        r"#define _{2,3}BPF_FUNC_MAPPER\(FN(?:, ctx\.\.\.)?\)(.*?)\n\s*/\* \*/", text, re.S
    )
    if not m:
        raise SystemExit("BPF_FUNC_MAPPER not found")
    ids: dict[str, int] = {}
    for i, fm in enumerate(re.finditer(r"FN\((\w+)(?:,\s*(\d+))?", m.group(1))):
        ids[fm.group(1)] = int(fm.group(2)) if fm.group(2) else i
    for name, num in SUPPLEMENT_HELPERS.items():
        ids.setdefault(name, num)
    return ids


def ctx_layouts() -> dict[str, dict]:
    """Ask clang for each context struct's fields: name -> (offset, size, type)."""
    src = "#include <linux/bpf.h>\n" + "".join(
        f"int sz_{i} = sizeof(struct {s});\n" for i, s in enumerate(CTX_STRUCTS)
    )
    with tempfile.TemporaryDirectory() as tmp:
        c = Path(tmp) / "layouts.c"
        c.write_text(src)
        out = subprocess.run(
            [
                CLANG,
                "-target",
                "bpf",
                f"-I{ARCH_INCLUDE}",
                "-Xclang",
                "-fdump-record-layouts",
                "-fsyntax-only",
                str(c),
            ],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    layouts: dict[str, dict] = {}
    for block in out.split("*** Dumping AST Record Layout"):
        lines = [ln for ln in block.splitlines() if "|" in ln]
        if not lines:
            continue
        head = lines[0].split("|", 1)[1].strip()
        m = re.fullmatch(r"(struct|union) (\w+)", head)
        if not m or m.group(2) not in CTX_STRUCTS:
            continue
        fields = []
        size = None
        for ln in lines[1:]:
            left, right = ln.split("|", 1)
            if right.strip().startswith("[sizeof="):
                size = int(re.search(r"sizeof=(\d+)", right).group(1))
                continue
            depth = (len(right) - len(right.lstrip(" "))) // 2
            decl = right.strip()
            offset = int(left.split(":")[0].strip()) if left.strip() else None
            if offset is None:
                continue
            if "(anonymous at" in decl:
                ctype, fname = decl, ""
            else:
                dm = re.fullmatch(r"(.+?)\s+(\w+)$", decl)
                if dm is None:
                    continue
                ctype, fname = dm.group(1), dm.group(2)
            fields.append((depth, offset, ctype, fname))
        layouts[m.group(2)] = {"size": size, "fields": fields}
    return layouts


CTYPE_SIZES = {
    "__u8": 1,
    "__u16": 2,
    "__be16": 2,
    "__u32": 4,
    "__be32": 4,
    "__s32": 4,
    "int": 4,
    "__u64": 8,
    "__s64": 8,
    "__be64": 8,
}


def field_size(ctype: str) -> int | None:
    ctype = ctype.strip()
    am = re.fullmatch(r"(.+?)\[(\d+)\]", ctype)
    if am:
        inner = field_size(am.group(1))
        return inner * int(am.group(2)) if inner else None
    if ctype.endswith("*"):
        return 8
    return CTYPE_SIZES.get(ctype)


def flatten(layout: dict) -> list[tuple[str, int, int, str]]:
    """Leaf fields as (dotted name, offset, size, ctype); pointer unions (__bpf_md_ptr)
    collapse to one 8-byte field named after the pointer."""
    out: list[tuple[str, int, int, str]] = []
    stack: list[str] = []
    fields = layout["fields"]
    for i, (depth, offset, ctype, fname) in enumerate(fields):
        del stack[depth - 1 :]
        nxt_depth = fields[i + 1][0] if i + 1 < len(fields) else 0
        if nxt_depth > depth:  # aggregate
            stack.append(fname)
            continue
        sz = field_size(ctype)
        if sz is None:
            continue
        if fname == "__reserved" or ctype.startswith("__bpf_md_ptr"):
            continue
        parent = [s for s in stack if s and not s.startswith("__")]
        dotted = ".".join([*parent, fname]) if parent else fname
        # __bpf_md_ptr(type, name) is union { type name; __u64 :64; } aligned 8:
        # clang shows the pointer member inside an anonymous union.
        if ctype.endswith("*"):
            sz = 8
        out.append((dotted, offset, sz, ctype))
    # de-duplicate union aliases at the same offset keeping the first
    seen: set[tuple[str, int]] = set()
    uniq = []
    for f in out:
        if (f[0], f[1]) in seen:
            continue
        seen.add((f[0], f[1]))
        uniq.append(f)
    return uniq


def main() -> int:
    common = read("linux/bpf_common.h")
    bpf = read("linux/bpf.h")
    defines = parse_defines(common)
    defines.update(parse_defines(bpf))
    supplemented = {k: v for k, v in SUPPLEMENT_DEFINES.items() if k not in defines}
    defines.update(supplemented)
    enums = {}
    for cname, py in ENUMS.items():
        if not py:
            continue
        values = {k: v for k, v in parse_enum(bpf, cname).items() if not k.startswith("__MAX")}
        for k, v in SUPPLEMENT_ENUMS.get(cname, {}).items():
            values.setdefault(k, v)
        enums[py] = values
    helpers = parse_helpers(bpf)
    layouts = ctx_layouts()

    lines = [
        "# Generated by scripts/gen_uapi.py from the installed UAPI headers",
        "# (linux/bpf_common.h, linux/bpf.h; context layouts from clang -fdump-record-layouts).",
        "# DO NOT EDIT: rerun the script instead.",
        "# fmt: off",
        "from __future__ import annotations",
        "",
        f"HEADER_SOURCE = {str(INCLUDE / 'linux/bpf.h')!r}",
        "",
        "# '#define BPF_*' integer constants",
        "DEFINES: dict[str, int] = {",
    ]
    lines += [f"    {k!r}: {v:#x}," for k, v in sorted(defines.items())]
    lines += [
        "}",
        "",
        "# Added from RFC 9669 / newer kernels: absent from the installed header",
        f"SUPPLEMENTED: frozenset[str] = frozenset({sorted(supplemented)!r})",
        "",
    ]
    for py, values in enums.items():
        lines.append(f"{py}: dict[str, int] = {{")
        lines += [f"    {k!r}: {v}," for k, v in values.items()]
        lines += ["}", ""]
    lines.append("# helper name (without the bpf_ prefix) -> id, from ___BPF_FUNC_MAPPER")
    lines.append("HELPER_IDS: dict[str, int] = {")
    lines += [f"    {k!r}: {v}," for k, v in helpers.items()]
    lines += ["}", ""]
    lines.append("# context struct -> (sizeof, [(field, offset, size, ctype)])")
    lines.append("CTX_LAYOUTS: dict[str, tuple[int, list[tuple[str, int, int, str]]]] = {")
    for name in CTX_STRUCTS:
        if name not in layouts:
            print(f"warning: no layout for struct {name}", file=sys.stderr)
            continue
        lay = layouts[name]
        lines.append(f"    {name!r}: ({lay['size']}, [")
        lines += [f"        {f!r}," for f in flatten(lay)]
        lines.append("    ]),")
    lines += ["}", ""]
    OUT.write_text("\n".join(lines))
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
