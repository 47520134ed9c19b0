"""Typed values through BTF (netbpf.obj.btf_values): clang's bytes for C initialisers,
decoded through clang's BTF, must equal the Python values the initialisers spell; and
encoding those values must give clang's bytes back.  No kernel needed."""

from __future__ import annotations

import enum
import struct
from collections.abc import Iterable, Iterator

import pytest

from netbpf.errors import BtfError, BtfValueError, MapKeyNotFoundError
from netbpf.obj.btf_values import TypedMap, bytes_codec, int_codec, percpu_stride, value_codec
from netbpf.obj.collection import load_collection_spec
from netbpf.uapi import MapType

EVERY = {
    "u8": 250,
    "s8": -100,
    "u16": 65000,
    "s16": -30000,
    "u32": 4000000000,
    "s32": -2000000000,
    "u64": 18000000000000000000,
    "s64": -9000000000000000000,
    "yes": True,
    "name": b"abc\0\0\0\0\0",
    "mac": bytes([0x02, 0x00, 0x5E, 0x10, 0x20, 0xFF]),
    "arr": [1, -2, 3],
    "pts": [{"x": 1, "y": -1}, {"x": 65535, "y": -32768}],
    "grid": [[1, 2, 3], [4, 5, 6]],
    "color": 40,
    "temp": -5,
    "wide": 0x100000000,
    "bits": {"a": 5, "b": -7, "c": 1000000, "col": 2, "flag": True, "neg": -8},
    "word": {"all": 0x11223344, "bytes": b"\x44\x33\x22\x11", "lo": 0x3344, "hi": 0x1122},
    "ptr": 0,
    "f": 1.5,
    "d": -2.25,
    "u128": (1 << 100) + 7,
    "anon_a": -1,
    "anon_b": 300,
    "cv": 42,
}


@pytest.fixture(scope="module")
def types_spec(compile_bpf):  # -> CollectionSpec
    return load_collection_spec(compile_bpf("coll_types.c"))


@pytest.fixture(scope="module")
def every(types_spec):  # -> (codec, clang's bytes)
    var = types_spec.variables["every"]
    return value_codec(types_spec.btf, var.type_id), var.get()


def test_decode_matches_the_c_initialisers(every) -> None:
    codec, raw = every
    assert codec.type_name == "struct every"
    assert codec.size == len(raw) == 192
    assert codec.decode(raw) == EVERY


def test_encode_gives_clangs_bytes(every) -> None:
    codec, raw = every
    assert codec.encode(EVERY) == raw
    assert codec.encode(codec.decode(raw)) == raw


def test_enums_decode_to_generated_intenums(every, types_spec) -> None:
    codec, raw = every
    v = codec.decode(raw)
    assert isinstance(v["color"], enum.IntEnum)
    assert v["color"].name == "BLUE" and type(v["color"]).__name__ == "color"
    assert v["temp"].name == "COLD" and v["temp"] == -5
    assert v["bits"]["col"].name == "GREEN"
    # a value that is no enumerator stays a plain int (lossless)
    odd = types_spec.variables["odd_color"]
    c = value_codec(types_spec.btf, odd.type_id)
    got = c.decode(odd.get())
    assert got == 7 and not isinstance(got, enum.Enum)
    # enumerator names encode like their values
    assert c.encode("BLUE") == struct.pack("<I", 40)
    with pytest.raises(BtfValueError, match="not an enumerator of enum color"):
        c.encode("PURPLE")


def test_partial_dicts_zero_the_rest(every) -> None:
    codec, _ = every
    raw = codec.encode({"u16": 7, "pts": [{"y": -2}], "anon_b": 1})
    v = codec.decode(raw)
    assert v["u16"] == 7 and v["pts"] == [{"x": 0, "y": -2}, {"x": 0, "y": 0}]
    assert v["anon_b"] == 1 and v["u8"] == 0 and v["name"] == bytes(8)
    assert codec.encode({}) == bytes(192)


def test_byte_arrays_take_bytes_str_and_int_lists(every) -> None:
    codec, _ = every
    assert codec.decode(codec.encode({"name": "hi"}))["name"] == b"hi" + bytes(6)
    assert codec.decode(codec.encode({"mac": [1, 2, 3, 4, 5, 6]}))["mac"] == bytes(range(1, 7))
    with pytest.raises(BtfValueError, match=r"struct every\.name: 9 bytes do not fit char\[8\]"):
        codec.encode({"name": "123456789"})


def test_values_out_of_range_are_refused_with_their_path(every) -> None:
    codec, _ = every
    with pytest.raises(BtfValueError) as ei:
        codec.encode({"pts": [{}, {"x": 70000}]})
    assert str(ei.value) == "struct every.pts[1].x: 70000 does not fit __u16 (0..65535)"
    assert ei.value.path == ".pts[1].x"
    with pytest.raises(BtfValueError, match=r"\.s8: -129 does not fit"):
        codec.encode({"s8": -129})
    with pytest.raises(BtfValueError, match="4-bit bitfield"):
        codec.encode({"bits": {"neg": 8}})
    with pytest.raises(BtfValueError, match="3-bit bitfield"):
        codec.encode({"bits": {"a": -1}})
    with pytest.raises(BtfValueError, match="no member 'nope' in struct every"):
        codec.encode({"nope": 1})
    with pytest.raises(BtfValueError, match="is not an integer"):
        codec.encode({"u32": "1"})
    with pytest.raises(BtfValueError, match="4 elements do not fit"):
        codec.encode({"arr": [1, 2, 3, 4]})
    with pytest.raises(BtfValueError, match="use a dict"):
        codec.encode([1, 2])
    assert isinstance(BtfValueError("x"), ValueError)


def test_bitfields_keep_their_neighbours(every) -> None:
    codec, raw = every
    v = codec.decode(raw)
    v["bits"]["b"] = 15
    out = codec.decode(codec.encode(v))["bits"]
    assert out == {**EVERY["bits"], "b": 15}


def test_unions_take_one_member_or_agreeing_members(every) -> None:
    codec, raw = every
    v = codec.decode(raw)
    # a decoded union re-encodes (every view agrees)
    assert codec.encode(v) == raw
    assert codec.decode(codec.encode({"word": {"hi": 0xBEEF}}))["word"]["all"] == 0xBEEF0000
    # changing one view and keeping the others is ambiguous
    v["word"]["all"] = 1
    with pytest.raises(BtfValueError, match="union holds one member at a time"):
        codec.encode(v)


def test_raw_bytes_escape_hatch(every) -> None:
    codec, raw = every
    assert codec.encode(raw) == raw
    with pytest.raises(BtfValueError, match="191 raw bytes given"):
        codec.encode(raw[:-1])
    with pytest.raises(BtfValueError, match="191 bytes to decode"):
        codec.decode(raw[:-1])


def test_datasec_decodes_to_variables(types_spec) -> None:
    data = types_spec.btf.find(".data", "datasec")
    codec = value_codec(types_spec.btf, data.id)
    value = codec.decode(types_spec.maps[".data"].extra["contents"][0][1])
    assert value["every"] == EVERY and value["odd_color"] == 7


def test_types_without_values_are_refused(types_spec) -> None:
    func = types_spec.btf.find("keep", "func")
    with pytest.raises(BtfError, match="has no value"):
        value_codec(types_spec.btf, func.id)


# -- TypedMap over any raw-bytes map ---------------------------------------------------


class DictMap:
    """An in-memory raw-bytes hash map with the Map protocol's element operations
    (enough for TypedMap), kernel-style errors on absent keys."""

    def __init__(self, map_type: MapType, key_size: int, value_size: int, ncpus: int = 1):
        self.name = "dict"
        self.map_type = map_type
        self.key_size = key_size
        self.value_size = value_size
        self.value_size_raw = value_size if ncpus == 1 else percpu_stride(value_size) * ncpus
        self.data: dict[bytes, bytes] = {}

    def lookup(self, key: bytes, *, flags: int = 0) -> bytes:
        assert len(key) == self.key_size
        if key not in self.data:
            raise MapKeyNotFoundError(f"no key {key.hex()}")
        return self.data[key]

    def update(self, key: bytes, value: bytes, *, flags: int = 0) -> None:
        assert len(key) == self.key_size and len(value) == self.value_size_raw
        self.data[key] = value

    def delete(self, key: bytes) -> None:
        del self.data[key]

    def keys(self) -> Iterator[bytes]:
        return iter(list(self.data))

    def items(self) -> Iterator[tuple[bytes, bytes]]:
        return iter(list(self.data.items()))

    def __contains__(self, key: object) -> bool:
        return key in self.data

    def update_batch(self, items: Iterable[tuple[bytes, bytes]], *, flags: int = 0) -> None:
        for k, v in items:
            self.update(k, v)

    def delete_batch(self, keys: Iterable[bytes]) -> None:
        for k in keys:
            self.delete(k)


def test_typed_map_struct_keys_and_values(types_spec) -> None:
    btf = types_spec.btf
    point = btf.find("point", "struct").id
    every_id = types_spec.variables["every"].type_id
    raw = DictMap(MapType.HASH, 4, 192)
    tm = TypedMap(raw, btf, point, every_id)
    tm[{"x": 1, "y": -1}] = {"u8": 9}
    assert tm[{"x": 1, "y": -1}]["u8"] == 9
    assert raw.data == {struct.pack("<Hh", 1, -1): b"\x09" + bytes(191)}
    assert list(tm.keys()) == [{"x": 1, "y": -1}]
    assert {"x": 1, "y": -1} in tm and {"x": 2} not in tm and {"zz": 1} not in tm
    assert tm.get({"x": 5}) is None
    with pytest.raises(MapKeyNotFoundError):
        tm[{"x": 5}]
    tm.update_batch({}.items())
    tm.update_batch([({"x": 2}, EVERY)])
    assert dict((k["x"], v["u64"]) for k, v in tm.items()) == {1: 0, 2: EVERY["u64"]}
    assert len(tm) == 2
    del tm[{"x": 1, "y": -1}]
    tm.delete_batch([{"x": 2}])
    assert len(tm) == 0


def test_typed_map_without_btf_uses_u32_indices_and_bytes() -> None:
    arr = TypedMap(DictMap(MapType.ARRAY, 4, 3), None)
    arr[7] = b"abc"
    assert list(arr.items()) == [(7, b"abc")]
    with pytest.raises(BtfValueError, match="expected exactly 3"):
        arr[1] = b"ab"
    h = TypedMap(DictMap(MapType.HASH, 2, 1), None)
    h[b"\x01\x02"] = b"z"
    assert list(h.items()) == [(b"\x01\x02", b"z")]
    progs = TypedMap(DictMap(MapType.PROG_ARRAY, 4, 4), None)
    progs.raw.data[struct.pack("<I", 1)] = struct.pack("<I", 1234)
    assert list(progs.items()) == [(1, 1234)]  # prog ids read back as u32


def test_typed_map_per_cpu_values_are_lists(types_spec) -> None:
    btf = types_spec.btf
    point = btf.find("point", "struct").id
    u32 = btf.find("__u32", "typedef").id
    raw = DictMap(MapType.PERCPU_ARRAY, 4, 4, ncpus=3)
    tm = TypedMap(raw, btf, u32, point)
    assert tm.percpu and tm.ncpus == 3
    tm[0] = [{"x": 1}, {"x": 2}, {"y": -3}]
    assert raw.data[bytes(4)] == (
        struct.pack("<Hh", 1, 0) + bytes(4) + struct.pack("<Hh", 2, 0) + bytes(4)
    ) + struct.pack("<Hh", 0, -3) + bytes(4)
    assert tm[0] == [{"x": 1, "y": 0}, {"x": 2, "y": 0}, {"x": 0, "y": -3}]
    with pytest.raises(BtfValueError, match="list of 3 values"):
        tm[0] = {"x": 1}


def test_typed_map_refuses_btf_of_the_wrong_size(types_spec) -> None:
    btf = types_spec.btf
    with pytest.raises(BtfError, match="value_size is 8"):
        TypedMap(DictMap(MapType.HASH, 4, 8), btf, 0, btf.find("point", "struct").id)


def test_plain_codecs() -> None:
    assert int_codec(4).decode(b"\xff\xff\xff\xff") == 0xFFFFFFFF
    assert int_codec(2, signed=True).decode(b"\xff\xff") == -1
    with pytest.raises(BtfValueError, match=r"u32: -1 does not fit u32 \(0\.\.4294967295\)"):
        int_codec(4).encode(-1)
    assert bytes_codec(2).encode(b"ab") == b"ab"
