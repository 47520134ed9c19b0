"""CO-RE relocations: tests/progs/btf_core_local.c (types with ___v1 flavors)
relocated against tests/progs/btf_core_target.c (same names, other layouts), checked
against the target's layout, against libbpf itself (a small C harness linked with the
system libbpf, when available) and against the running kernel's vmlinux BTF."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

import pytest
from elftools.elf.elffile import ELFFile

from netbpf.errors import BtfError
from netbpf.isa.instruction import Instruction, decode_program
from netbpf.obj.btf import (
    POISON_IMM,
    Array,
    Btf,
    BtfExt,
    CoreRelo,
    CoreReloKind,
    CoreReloResult,
    Enum,
    EnumValue,
    Int,
    IntEncoding,
    Member,
    Ptr,
    Struct,
    Typedef,
    apply_core_relocation,
    compute_core_relocation,
    essential_name,
    load_vmlinux_btf,
)

K = CoreReloKind
MASK64 = (1 << 64) - 1
REPO = Path(__file__).resolve().parent.parent


def elf_sections(path: Path) -> dict[str, bytes]:
    with open(path, "rb") as f:
        return {s.name: s.data() for s in ELFFile(f).iter_sections() if s.name}


class Obj:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.secs = elf_sections(path)
        self.btf = Btf.parse(self.secs[".BTF"], file=str(path))
        self.ext = BtfExt.parse(self.secs[".BTF.ext"], self.btf, file=str(path))

    def insns(self, section: str) -> tuple[Instruction, ...]:
        return tuple(decode_program(self.secs[section]))


@pytest.fixture(scope="module")
def local(compile_bpf) -> Obj:
    return Obj(compile_bpf("btf_core_local.c"))


@pytest.fixture(scope="module")
def target(compile_bpf) -> Obj:
    return Obj(compile_bpf("btf_core_target.c"))


def relocate(local: Obj, target_btf: Btf, section: str = "xdp"):
    """All relocations of ``section``: [(relo, result)] and the patched insns."""
    insns = local.insns(section)
    cache: dict = {}
    out = []
    for r in local.ext.core_relos[section]:
        res = compute_core_relocation(local.btf, r, target_btf, cache=cache)
        insns = apply_core_relocation(insns, r, res)
        out.append((r, res))
    return out, insns


# -- names --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "essential"),
    [
        ("task_struct", "task_struct"),
        ("task_struct___v1", "task_struct"),
        ("a___b___c", "a___b"),
        ("foo____x", "foo____x"),
        ("foo___", "foo___"),
        ("___x", "___x"),
        ("x___y", "x"),
        ("x__y", "x__y"),
        ("", ""),
    ],
)
def test_essential_name(name: str, essential: str) -> None:
    assert essential_name(name) == essential


# -- the local/target pair -----------------------------------------------------------------


def test_values_follow_the_target_layout(local: Obj, target: Obj) -> None:
    tb = target.btf
    foo = tb.find("foo", "struct")
    assert foo is not None
    results, _ = relocate(local, tb)

    def fld(path: str) -> int:
        return tb.field(foo.id, path).byte_offset

    expect = {
        (K.FIELD_BYTE_OFFSET, "0:0"): fld("a"),
        (K.FIELD_BYTE_OFFSET, "0:1:1"): fld("in.y"),
        (K.FIELD_BYTE_OFFSET, "0:5:2"): fld("arr[2]"),
        (K.FIELD_BYTE_OFFSET, "0:7:1"): fld("u2"),
        (K.FIELD_BYTE_OFFSET, "0:8"): fld("narrowed"),
        (K.FIELD_BYTE_OFFSET, "0:10"): fld("ptr"),
        (K.FIELD_BYTE_OFFSET, "0:11:1"): fld("flex") + 4,
        (K.FIELD_BYTE_OFFSET, "0:1:0"): fld("in.x"),
        (K.FIELD_BYTE_OFFSET, "0:5:3"): fld("arr[3]"),
        (K.FIELD_EXISTS, "0:6"): 0,
        (K.FIELD_EXISTS, "0:0"): 1,
        (K.FIELD_BYTE_SIZE, "0:5"): 32,
        (K.FIELD_BYTE_SIZE, "0:1"): 16,
        (K.FIELD_SIGNED, "0:9"): 1,
        (K.FIELD_SIGNED, "0:8"): 0,
        (K.FIELD_SIGNED, "0:4"): 1,
        (K.FIELD_RSHIFT_U64, "0:2"): 64 - tb.field(foo.id, "bf1").bitfield_size,
        (K.FIELD_RSHIFT_U64, "0:3"): 64 - tb.field(foo.id, "bf2").bitfield_size,
        (K.TYPE_SIZE, "0"): None,  # checked per type below
        (K.TYPE_ID_TARGET, "0"): foo.id,
    }
    seen = set()
    for r, res in results:
        key = (r.kind, r.access)
        if local.btf.type(r.type_id).name != "foo___v1":
            continue
        if key in expect and expect[key] is not None:
            assert not res.poison, (r, res)
            assert res.new_val == expect[key], (r, res)
            seen.add(key)
    assert seen == {k for k, v in expect.items() if v is not None}

    by_type = {
        (r.kind, local.btf.format_type(r.type_id)): res for r, res in results if r.kind.is_type
    }
    assert by_type[K.TYPE_EXISTS, "struct foo___v1"].new_val == 1
    assert by_type[K.TYPE_EXISTS, "struct missing_type"].new_val == 0
    assert by_type[K.TYPE_SIZE, "struct foo___v1"].new_val == tb.size_of(foo.id) == 112
    assert by_type[K.TYPE_SIZE, "foo_t"].new_val == 0  # no typedef foo_t in the target
    loc_id = local.btf.find("foo___v1", "struct").id  # type: ignore[union-attr]
    assert by_type[K.TYPE_ID_LOCAL, "struct foo___v1"].new_val == loc_id
    assert by_type[K.TYPE_MATCHES, "struct matches___a"].new_val == 1
    assert by_type[K.TYPE_MATCHES, "struct nomatch___a"].new_val == 0

    enums = [(r.access, res) for r, res in results if r.kind.is_enumval]
    assert [(a, res.poison, res.new_val) for a, res in enums] == [
        ("0", False, 1),  # RED exists
        ("2", False, 0),  # BLUE_ONLY_LOCAL does not
        ("1", False, 20),  # GREEN
        ("0", False, 0x200000000),  # HUGE
        ("1", False, -7 & MASK64),  # NEG
        ("2", True, 0),  # value of a missing enumerator: poison
    ]

    poisoned = [
        (r.kind, r.access, local.btf.format_type(r.type_id)) for r, res in results if res.poison
    ]
    assert poisoned == [
        (K.FIELD_BYTE_OFFSET, "0:6", "struct foo___v1"),  # f->removed
        (K.FIELD_BYTE_OFFSET, "0:0", "struct missing_type"),
        (K.ENUMVAL_VALUE, "2", "enum color___v1"),
    ]


def test_patched_instructions(local: Obj, target: Obj) -> None:
    results, insns = relocate(local, target.btf)
    orig = local.insns("xdp")
    for r, res in results:
        new, old = insns[r.insn], orig[r.insn]
        if res.poison or (r.access == "0:9" and r.kind == K.FIELD_BYTE_OFFSET):
            # f->sgn: a signed 2-byte field became 4 bytes: the load is poisoned
            assert new == Instruction(0x85, 0, 0, 0, POISON_IMM), r
            if old.opcode == 0x18:
                assert insns[r.insn + 1] == Instruction(0x85, 0, 0, 0, POISON_IMM)
            continue
        if old.opcode == 0x18:  # LD_IMM64
            v = (new.imm & 0xFFFFFFFF) | ((insns[r.insn + 1].imm & 0xFFFFFFFF) << 32)
            assert v == res.new_val & MASK64
        elif old.opcode & 0x07 in (0x01, 0x02, 0x03):  # LDX/ST/STX
            assert new.off == res.new_val
        else:
            assert new.imm == res.new_val
    narrowed = next(r for r, _ in results if (r.kind, r.access) == (K.FIELD_BYTE_OFFSET, "0:8"))
    assert orig[narrowed.insn].opcode == 0x69  # ldxh: unsigned short locally
    assert insns[narrowed.insn].opcode == 0x61  # ldxw: unsigned int in the target
    untouched = {r.insn for r, _ in results} | {r.insn + 1 for r, _ in results}
    assert all(insns[i] == orig[i] for i in range(len(orig)) if i not in untouched)


# -- libbpf differential --------------------------------------------------------------------

HARNESS = r"""
#include <stdio.h>
#include <stdarg.h>
#include <bpf/libbpf.h>
static int quiet(enum libbpf_print_level l, const char *f, va_list a) { return 0; }
int main(int argc, char **argv)
{
	LIBBPF_OPTS(bpf_object_open_opts, opts, .btf_custom_path = argv[2]);
	struct bpf_program *prog;
	struct bpf_object *obj;
	libbpf_set_print(quiet);
	obj = bpf_object__open_file(argv[1], &opts);
	if (!obj)
		return 2;
	printf("load %d\n", bpf_object__load(obj));
	bpf_object__for_each_program(prog, obj) {
		const struct bpf_insn *in = bpf_program__insns(prog);
		size_t i, n = bpf_program__insn_cnt(prog);
		printf("prog %s %zu\n", bpf_program__name(prog), n);
		for (i = 0; i < n; i++)
			printf("%u %u %u %d %d\n", in[i].code, in[i].dst_reg,
				in[i].src_reg, in[i].off, in[i].imm);
	}
	return 0;
}
"""


@pytest.fixture(scope="module")
def libbpf_harness(kernel) -> Path:
    """A C program that opens an object with libbpf, relocates it against a custom
    target BTF (bpf_object__load) and prints the relocated instructions."""
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None or not Path("/usr/include/bpf/libbpf.h").exists():
        pytest.skip("no C compiler or libbpf-dev headers for the libbpf harness")
    out = (
        REPO
        / ".cache"
        / "progs"
        / f"core-harness-{hashlib.sha256(HARNESS.encode()).hexdigest()[:12]}"
    )
    if not out.exists():
        out.parent.mkdir(parents=True, exist_ok=True)
        src = out.with_suffix(".c")
        src.write_text(HARNESS)
        res = subprocess.run(
            [cc, "-O1", str(src), "-o", str(out), "-lbpf"], capture_output=True, text=True
        )
        if res.returncode:
            pytest.skip(f"cannot build the libbpf harness: {res.stderr.strip()[:200]}")
    return out


def libbpf_relocated(harness: Path, obj: Path, target: str) -> list[Instruction]:
    res = subprocess.run(
        [str(harness), str(obj), target], capture_output=True, text=True, timeout=120
    )
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert lines[1].startswith("prog ")
    return [Instruction(*map(int, ln.split())) for ln in lines[2:]]


def test_matches_libbpf(libbpf_harness: Path, local: Obj, target: Obj) -> None:
    theirs = libbpf_relocated(libbpf_harness, local.path, str(target.path))
    results, ours = relocate(local, target.btf)
    for r, _ in results:
        assert ours[r.insn] == theirs[r.insn], r
        if local.insns("xdp")[r.insn].opcode == 0x18:
            assert ours[r.insn + 1] == theirs[r.insn + 1], r


VMLINUX_PROG = r"""
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

struct sk_buff___mine {
	unsigned int len;
	__u32 mark;
	unsigned char *head;
	__u16 protocol;
	void *no_such_field;
} __attribute__((preserve_access_index));

struct iphdr___mine {
	__u8 ttl;
	__u32 saddr;
} __attribute__((preserve_access_index));

enum xdp_action___mine { XDP_PASS___mine = 2, XDP_TX___mine = 3, XDP_NOPE___mine = 99 };

__u64 out[16];

SEC("tc")
int vm_prog(struct __sk_buff *ctx)
{
	struct sk_buff___mine *skb = (void *)(long)ctx->data;
	struct iphdr___mine *ip = (void *)(long)ctx->data;
	int i = 0;

	out[i++] = bpf_core_field_offset(skb->len);
	out[i++] = bpf_core_field_offset(skb->mark);
	out[i++] = bpf_core_field_offset(skb->head);
	out[i++] = bpf_core_field_size(skb->protocol);
	out[i++] = bpf_core_field_exists(skb->no_such_field);
	out[i++] = bpf_core_field_offset(ip->saddr);
	out[i++] = bpf_core_type_size(struct iphdr___mine);
	out[i++] = bpf_core_type_id_kernel(struct sk_buff___mine);
	out[i++] = bpf_core_enum_value(enum xdp_action___mine, XDP_TX___mine);
	out[i++] = bpf_core_enum_value_exists(enum xdp_action___mine, XDP_NOPE___mine);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
"""


@pytest.fixture(scope="module")
def vmlinux() -> Btf:
    if not Path("/sys/kernel/btf/vmlinux").exists():
        pytest.skip("the running kernel exposes no /sys/kernel/btf/vmlinux")
    return load_vmlinux_btf()


def test_relocation_against_vmlinux(compile_bpf, vmlinux: Btf) -> None:
    obj = Obj(compile_bpf(VMLINUX_PROG))
    results, _ = relocate(obj, vmlinux, "tc")
    skb = vmlinux.find("sk_buff", "struct")
    iph = vmlinux.find("iphdr", "struct")
    assert skb is not None and iph is not None
    values = [res.new_val for _, res in results]
    assert values == [
        vmlinux.field(skb.id, "len").byte_offset,
        vmlinux.field(skb.id, "mark").byte_offset,
        vmlinux.field(skb.id, "head").byte_offset,
        2,
        0,
        vmlinux.field(iph.id, "saddr").byte_offset,
        vmlinux.size_of(iph.id),
        skb.id,
        3,
        0,
    ]


def test_vmlinux_matches_libbpf(libbpf_harness: Path, compile_bpf, vmlinux: Btf) -> None:
    obj = Obj(compile_bpf(VMLINUX_PROG))
    theirs = libbpf_relocated(libbpf_harness, obj.path, "/sys/kernel/btf/vmlinux")
    results, ours = relocate(obj, vmlinux, "tc")
    for r, _ in results:
        assert ours[r.insn] == theirs[r.insn], r


# -- synthetic BTFs: the corner cases -----------------------------------------------------------

INT = Int(1, "int", 4, IntEncoding.SIGNED, 0, 32)
UINT = Int(2, "unsigned int", 4, IntEncoding.NONE, 0, 32)
LONG = Int(3, "long", 8, IntEncoding.SIGNED, 0, 64)


def _local(*types) -> Btf:
    return Btf.from_types([INT, UINT, LONG, *types])


def _relo(btf: Btf, type_id: int, access: str, kind: CoreReloKind, insn: int = 0) -> CoreRelo:
    return CoreRelo("prog", insn * 8, type_id, 0, access, kind, offset=123)


def test_ambiguous_candidates_are_an_error() -> None:
    local = _local(Struct(4, "s___mine", 4, (Member("f", 1, 0),)))
    target = _local(
        Struct(4, "s", 8, (Member("f", 1, 0),)),
        Struct(5, "s___other", 8, (Member("pad", 1, 0), Member("f", 1, 32))),
    )
    with pytest.raises(BtfError, match="ambiguity") as ei:
        compute_core_relocation(local, _relo(local, 4, "0:0", K.FIELD_BYTE_OFFSET), target)
    assert ei.value.section == ".BTF.ext" and ei.value.offset == 123 and ei.value.type_id == 4
    # identical layouts under two flavors are not ambiguous
    same = _local(
        Struct(4, "s", 8, (Member("f", 1, 32),)),
        Struct(5, "s___other", 8, (Member("f", 1, 32),)),
    )
    res = compute_core_relocation(local, _relo(local, 4, "0:0", K.FIELD_BYTE_OFFSET), same)
    assert res.new_val == 4 and res.target_type_id == 4


def test_candidate_cache_prunes_like_libbpf() -> None:
    local = _local(Struct(4, "s___mine", 8, (Member("f", 1, 0), Member("g", 1, 32))))
    target = _local(
        Struct(4, "s", 8, (Member("f", 1, 0),)),  # no g
        Struct(5, "s___other", 8, (Member("f", 1, 0), Member("g", 1, 32))),
    )
    cache: dict = {}
    g = compute_core_relocation(
        local, _relo(local, 4, "0:1", K.FIELD_BYTE_OFFSET), target, cache=cache
    )
    assert g.target_type_id == 5
    assert cache[(id(target), 4)] == [5]  # s was pruned
    # without pruning `f` would match both (same offset, fine); with it, only s___other
    f = compute_core_relocation(local, _relo(local, 4, "0:0", K.FIELD_EXISTS), target, cache=cache)
    assert f.new_val == 1 and f.target_type_id == 5


def test_anonymous_and_malformed_relocations_are_errors() -> None:
    local = _local(
        Struct(4, "", 4, (Member("f", 1, 0),)), Struct(5, "named", 4, (Member("f", 1, 0),))
    )
    with pytest.raises(BtfError, match="anonymous"):
        compute_core_relocation(local, _relo(local, 4, "0:0", K.FIELD_BYTE_OFFSET), local)
    for access, kind, msg in [
        ("", K.FIELD_BYTE_OFFSET, "empty"),
        (":0", K.FIELD_BYTE_OFFSET, "empty or malformed"),
        ("0:x", K.FIELD_BYTE_OFFSET, "malformed"),
        ("0:5", K.FIELD_BYTE_OFFSET, "out of range"),
        ("0:0:1", K.FIELD_BYTE_OFFSET, "unexpected kind INT"),
        ("1", K.TYPE_SIZE, "expected '0'"),
        ("0", K.ENUMVAL_VALUE, "enumerator"),
        ("0:" * 70 + "0", K.FIELD_BYTE_OFFSET, "longer than 64"),
    ]:
        with pytest.raises(BtfError, match=msg):
            compute_core_relocation(local, _relo(local, 5, access, kind), local)
    # TYPE_ID_LOCAL needs no candidate, even for anonymous types
    res = compute_core_relocation(local, _relo(local, 4, "0", K.TYPE_ID_LOCAL), local)
    assert (res.orig_val, res.new_val, res.validate) == (4, 4, False)


def test_flexible_array_and_array_bounds() -> None:
    local = _local(
        Array(4, "", 1, 1, 0), Struct(5, "f___l", 4, (Member("n", 1, 0), Member("data", 4, 32)))
    )
    target = _local(
        Array(4, "", 1, 1, 0),
        Struct(5, "f", 16, (Member("pad", 3, 0), Member("n", 1, 64), Member("data", 4, 96))),
    )
    res = compute_core_relocation(local, _relo(local, 5, "0:1:7", K.FIELD_BYTE_OFFSET), target)
    assert res.new_val == 12 + 7 * 4
    # a fixed-size target array must contain the index
    fixed = _local(
        Array(4, "", 1, 1, 4), Struct(5, "f", 20, (Member("n", 1, 0), Member("data", 4, 32)))
    )
    res = compute_core_relocation(local, _relo(local, 5, "0:1:7", K.FIELD_BYTE_OFFSET), fixed)
    assert res.poison
    exists = compute_core_relocation(local, _relo(local, 5, "0:1:7", K.FIELD_EXISTS), fixed)
    assert exists.new_val == 0 and not exists.poison


def test_field_compatibility_rules() -> None:
    local = _local(
        Ptr(4, "", 1),
        Struct(5, "s___l", 16, (Member("p", 4, 0), Member("i", 1, 64), Member("e", 6, 96))),
        Enum(6, "col___l", 4, (EnumValue("A", 1),)),
    )
    target = _local(
        Ptr(4, "", 3),
        Struct(5, "s", 24, (Member("e", 7, 0), Member("p", 4, 64), Member("i", 3, 128))),
        Enum(6, "other", 4, (EnumValue("A", 1),)),
        Enum(7, "col", 4, (EnumValue("A", 1),)),
    )

    def off(acc: str) -> CoreReloResult:
        return compute_core_relocation(local, _relo(local, 5, acc, K.FIELD_BYTE_OFFSET), target)

    assert off("0:0").new_val == 8  # any two pointers are compatible
    assert off("0:1").new_val == 16  # int vs long: size and sign ignored
    assert off("0:2").new_val == 0  # enums with matching essential names
    wrong = _local(Ptr(4, "", 1), Struct(5, "s", 8, (Member("i", 4, 0),)))
    assert (
        compute_core_relocation(local, _relo(local, 5, "0:1", K.FIELD_EXISTS), wrong).new_val == 0
    )


def test_enum32_values_are_sign_extended_like_libbpf() -> None:
    local = _local(Enum(4, "e___l", 4, (EnumValue("MAX", 0xFFFFFFFF),)))
    res = compute_core_relocation(local, _relo(local, 4, "0", K.ENUMVAL_VALUE), local)
    assert res.orig_val == res.new_val == MASK64  # __s32 -1, widened
    res = compute_core_relocation(
        local,
        _relo(local, 4, "0", K.ENUMVAL_VALUE),
        _local(Enum(4, "e", 4, (EnumValue("MAX", 7),))),
    )
    assert res.new_val == 7


def test_typedef_roots_need_typedef_candidates() -> None:
    local = _local(Typedef(4, "t___l", 1))
    target = _local(Typedef(4, "t", 3), Struct(5, "t", 4, ()))
    res = compute_core_relocation(local, _relo(local, 4, "0", K.TYPE_SIZE), target)
    assert (res.new_val, res.target_type_id) == (8, 4)


# -- patching ---------------------------------------------------------------------------------


def _res(kind: CoreReloKind, orig: int, new: int, **kw) -> CoreReloResult:
    return CoreReloResult(kind, orig, new, **kw)


def test_apply_patches_each_instruction_class() -> None:
    insns = (
        Instruction(0xB7, 1, 0, 0, 4),  # r1 = 4           (ALU64 K)
        Instruction(0x61, 2, 1, 4, 0),  # r2 = *(u32 *)(r1 + 4)
        Instruction(0x18, 3, 0, 0, 5),  # r3 = 5 ll
        Instruction(0, 0, 0, 0, 0),
        Instruction(0x62, 1, 0, 8, 7),  # *(u32 *)(r1 + 8) = 7 (ST)
    )
    r = lambda i, k=K.FIELD_BYTE_OFFSET: _relo(Btf.from_types([]), 1, "0", k, insn=i)  # noqa: E731
    out = apply_core_relocation(insns, r(0), _res(K.FIELD_BYTE_OFFSET, 4, 12))
    assert out[0].imm == 12 and out[1:] == insns[1:]
    out = apply_core_relocation(
        insns, r(1), _res(K.FIELD_BYTE_OFFSET, 4, 16, orig_size=4, new_size=8)
    )
    assert (out[1].opcode, out[1].off) == (0x79, 16)  # widened to a u64 load
    big = (1 << 40) | 3
    out = apply_core_relocation(insns, r(2, K.ENUMVAL_VALUE), _res(K.ENUMVAL_VALUE, 5, big))
    assert (out[2].imm, out[3].imm) == (3, 1 << 8)
    out = apply_core_relocation(insns, r(4), _res(K.FIELD_BYTE_OFFSET, 8, 24))
    assert out[4].off == 24
    out = apply_core_relocation(insns, r(2), _res(K.FIELD_BYTE_OFFSET, 0, 0, poison=True))
    assert out[2] == out[3] == Instruction(0x85, 0, 0, 0, POISON_IMM)
    out = apply_core_relocation(
        insns,
        r(1),
        _res(K.FIELD_BYTE_OFFSET, 4, 8, fail_memsz_adjust=True, orig_size=2, new_size=4),
    )
    assert out[1] == Instruction(0x85, 0, 0, 0, POISON_IMM)
    # insn_base: relocation offsets are per section, the program may start later
    out = apply_core_relocation(insns[1:], r(1), _res(K.FIELD_BYTE_OFFSET, 4, 20), insn_base=1)
    assert out[0].off == 20


@pytest.mark.parametrize(
    ("insn", "result", "message"),
    [
        (Instruction(0xB7, 1, 0, 0, 5), _res(K.FIELD_BYTE_OFFSET, 4, 8), "expected 4"),
        (Instruction(0xBF, 1, 2, 0, 0), _res(K.FIELD_BYTE_OFFSET, 0, 8), "register source"),
        (Instruction(0x61, 1, 2, 4, 0), _res(K.FIELD_BYTE_OFFSET, 4, 1 << 15), "too big"),
        (
            Instruction(0x61, 1, 2, 4, 0),
            _res(K.FIELD_BYTE_OFFSET, 4, 8, orig_size=2, new_size=4),
            "accesses 4 bytes",
        ),
        (
            Instruction(0x61, 1, 2, 4, 0),
            _res(K.FIELD_BYTE_OFFSET, 4, 8, orig_size=4, new_size=3),
            "cannot access 3",
        ),
        (Instruction(0x95, 0, 0, 0, 0), _res(K.FIELD_BYTE_OFFSET, 0, 8), "cannot be relocated"),
        (
            Instruction(0x18, 1, 1, 0, 0),
            _res(K.TYPE_ID_TARGET, 0, 8, validate=False),
            "unexpected form",
        ),
    ],
)
def test_apply_refusals(insn: Instruction, result: CoreReloResult, message: str) -> None:
    relo = CoreRelo("prog", 0, 1, 0, "0", result.kind, offset=40)
    with pytest.raises(BtfError, match=message) as ei:
        apply_core_relocation((insn, Instruction(0)), relo, result)
    assert ei.value.section == ".BTF.ext" and ei.value.offset == 40
    with pytest.raises(BtfError, match="outside"):
        apply_core_relocation((insn,), CoreRelo("prog", 80, 1, 0, "0", result.kind), result)
