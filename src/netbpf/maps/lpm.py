"""BPF_MAP_TYPE_LPM_TRIE (kernel/bpf/lpm_trie.c): longest-prefix match.

The key is ``struct bpf_lpm_trie_key``: a host-endian u32 ``prefixlen`` followed by
``key_size - 4`` data bytes (network order for addresses).  The simulator runs the
kernel's algorithm on the same tree shape -- binary nodes with a prefix, real nodes and
*intermediate* nodes (created where two prefixes diverge, holding no value) -- because
the tree shape is observable: get_next_key walks it in post-order (more specific
prefixes before the prefixes that contain them, left subtree before right), and returns
the data bytes exactly as the node stored them (bits past the prefix length included).

Semantics (checked against the running kernel):

- creation needs BPF_F_NO_PREALLOC; key_size 5..260, value_size >= 1, max_entries >= 1.
- lookup (user space *and* programs) is a longest-prefix match bounded by the key's
  prefixlen (a prefixlen beyond ``8 * data size`` matches nothing); update/delete
  match the exact (prefixlen, data).
- update: flags > BPF_EXIST or prefixlen > 8 * data size -> EINVAL; BPF_NOEXIST on a
  present prefix -> EEXIST; BPF_EXIST on an absent one -> ENOENT; a new prefix in a full
  trie -> ENOSPC (not E2BIG).  Replacing a prefix allocates a new node (new value
  memory); the old value is freed.
- delete: a node with two children becomes intermediate (its value memory stays
  allocated but unreachable, as in the kernel); otherwise it is removed, and an
  intermediate parent left with one child is removed too.
- no lookup_and_delete (ENOTSUPP); generic batch lookup/update/delete.
"""

from __future__ import annotations

import errno as _errno
from typing import Any

from netbpf.maps.base import Map, ValueStore, _Errno
from netbpf.maps.constants import (
    BPF_EXIST,
    BPF_F_ACCESS_MASK,
    BPF_F_NO_PREALLOC,
    BPF_F_NUMA_NODE,
    BPF_F_RDONLY_PROG,
    BPF_NOEXIST,
    KMALLOC_MAX_SIZE,
    LPM_DATA_SIZE_MAX,
    LPM_TRIE_NODE_SIZE,
)
from netbpf.maps.spec import MapSpec
from netbpf.uapi import MapType
from netbpf.vm.memory import AddressSpace

__all__ = ["LpmTrieMap", "lpm_key"]

LPM_CREATE_FLAG_MASK = BPF_F_NO_PREALLOC | BPF_F_NUMA_NODE | BPF_F_ACCESS_MASK
LPM_VAL_SIZE_MAX = KMALLOC_MAX_SIZE - LPM_DATA_SIZE_MAX - LPM_TRIE_NODE_SIZE


def lpm_key(prefixlen: int, data: bytes) -> bytes:
    """Pack a ``struct bpf_lpm_trie_key``: u32 prefixlen (host order) + data."""
    return prefixlen.to_bytes(4, "little") + bytes(data)


class _Node:
    """A trie node; ``bits`` is ``data`` as a big-endian integer (bit 0 of the prefix is
    its most significant bit), which makes prefix comparisons one XOR and a shift."""

    __slots__ = ("bits", "child", "data", "im", "prefixlen", "slot")

    def __init__(self, prefixlen: int, data: bytes, slot: int, im: bool = False) -> None:
        self.prefixlen = prefixlen
        self.data = data
        self.bits = int.from_bytes(data, "big")
        self.slot = slot  # value slot, -1 for nodes created intermediate
        self.im = im
        self.child: list[_Node | None] = [None, None]


class LpmTrieMap(Map):
    """BPF_MAP_TYPE_LPM_TRIE."""

    map_type = MapType.LPM_TRIE
    _batch_lookup = "generic"
    _batch_update = True
    _batch_delete = True

    @classmethod
    def validate(cls, spec: MapSpec, ncpus: int) -> None:
        if (
            spec.max_entries == 0
            or not spec.flags & BPF_F_NO_PREALLOC
            or spec.flags & ~LPM_CREATE_FLAG_MASK
            or not Map.access_ok(spec.flags)
            or not 5 <= spec.key_size <= 4 + LPM_DATA_SIZE_MAX
            or not 1 <= spec.value_size <= LPM_VAL_SIZE_MAX
        ):
            raise _Errno(
                _errno.EINVAL,
                "LPM tries need BPF_F_NO_PREALLOC, key_size 5..260, value_size >= 1 "
                "and max_entries >= 1",
            )

    def __init__(self, spec: MapSpec, *, ncpus: int) -> None:
        super().__init__(spec, ncpus=ncpus)
        self.data_size = self.key_size - 4
        self.max_prefixlen = self.data_size * 8
        self.root: _Node | None = None
        self.n_entries = 0
        # value-holding nodes: the prefixes, intermediate nodes that were prefixes once
        # (a delete keeps their memory), and one new node during a replacement
        self.store = ValueStore(
            f"map {self.name!r}",
            self.value_size,
            2 * self.max_entries + 1,
            prealloc=False,
            writable=not self.flags & BPF_F_RDONLY_PROG,
        )
        self._free: list[int] = []
        self._fresh = 0

    # -- value slots
    def _alloc_slot(self) -> int:
        if self._free:
            return self._free.pop()
        s = self._fresh
        self._fresh += 1
        return s

    def _free_node(self, node: _Node | None) -> None:
        if node is not None and node.slot >= 0:
            self._free.append(node.slot)
            node.slot = -1

    # -- key parsing
    def _split(self, key: bytes) -> tuple[int, bytes]:
        return int.from_bytes(key[:4], "little"), bytes(key[4:])

    def _match(self, node: _Node, bits: int, prefixlen: int) -> int:
        """longest_prefix_match: leading bits ``node`` and the key share, at most
        min(node prefixlen, key prefixlen)."""
        limit = node.prefixlen if node.prefixlen < prefixlen else prefixlen
        x = (node.bits ^ bits) >> (self.max_prefixlen - limit)
        return limit if x == 0 else limit - x.bit_length()

    def _bit(self, bits: int, index: int) -> int:
        """extract_bit: bit ``index`` (0 = most significant) of the data."""
        return (bits >> (self.max_prefixlen - 1 - index)) & 1

    def _lpm(self, prefixlen: int, data: bytes) -> _Node | None:
        """trie_lookup_elem: the longest real prefix matching (prefixlen, data); a key
        prefixlen beyond the trie's is no match."""
        maxp = self.max_prefixlen
        if prefixlen > maxp:
            return None
        bits = int.from_bytes(data, "big")
        found = None
        node = self.root
        while node is not None:
            plen = node.prefixlen
            limit = plen if plen < prefixlen else prefixlen
            x = (node.bits ^ bits) >> (maxp - limit)
            matchlen = limit if x == 0 else limit - x.bit_length()
            if matchlen == maxp:
                return node
            if matchlen < plen:
                break
            if not node.im:
                found = node
            node = node.child[(bits >> (maxp - 1 - plen)) & 1]
        return found

    # -- update / delete (the kernel's tree surgery)
    def _update(self, key: bytes, value: bytes, flags: int) -> None:
        if flags > BPF_EXIST:
            raise _Errno(_errno.EINVAL, f"flags {flags:#x}")
        prefixlen, data = self._split(key)
        if prefixlen > self.max_prefixlen:
            raise _Errno(_errno.EINVAL, f"prefixlen {prefixlen} > {self.max_prefixlen}")
        bits = int.from_bytes(data, "big")
        parent: _Node | None = None
        side = 0
        node = self.root
        matchlen = 0
        while node is not None:
            matchlen = self._match(node, bits, prefixlen)
            if node.prefixlen != matchlen or node.prefixlen == prefixlen:
                break
            parent, side = node, self._bit(bits, node.prefixlen)
            node = node.child[side]

        def put(n: _Node) -> None:
            if parent is None:
                self.root = n
            else:
                parent.child[side] = n

        def new_node() -> _Node:
            slot = self._alloc_slot()
            self.store.set(slot, value)
            return _Node(prefixlen, data, slot)

        if node is None:
            self._check_add(flags)
            put(new_node())
            return
        if node.prefixlen == matchlen:
            if not node.im:
                if flags == BPF_NOEXIST:
                    raise _Errno(_errno.EEXIST, "prefix exists (BPF_NOEXIST)")
            else:
                self._check_add(flags)
            n = new_node()
            n.child = list(node.child)
            put(n)
            self._free_node(node)
            return
        self._check_add(flags)
        n = new_node()
        if matchlen == prefixlen:
            n.child[self._bit(node.bits, matchlen)] = node
            put(n)
            return
        im = _Node(matchlen, node.data, -1, im=True)
        if self._bit(bits, matchlen):
            im.child = [node, n]
        else:
            im.child = [n, node]
        put(im)

    def _check_add(self, flags: int) -> None:
        """trie_check_add_elem."""
        if flags == BPF_EXIST:
            raise _Errno(_errno.ENOENT, "no such prefix (BPF_EXIST)")
        if self.n_entries == self.max_entries:
            raise _Errno(_errno.ENOSPC, f"trie full ({self.max_entries} prefixes)")
        self.n_entries += 1

    def _delete(self, key: bytes) -> None:
        prefixlen, data = self._split(key)
        if prefixlen > self.max_prefixlen:
            raise _Errno(_errno.EINVAL, f"prefixlen {prefixlen} > {self.max_prefixlen}")
        # (holder, side) pairs: where node hangs (holder None = root)
        trim: tuple[_Node | None, int] = (None, 0)
        trim2: tuple[_Node | None, int] = (None, 0)
        bits = int.from_bytes(data, "big")
        parent: _Node | None = None
        node = self.root
        matchlen = 0
        while node is not None:
            matchlen = self._match(node, bits, prefixlen)
            if node.prefixlen != matchlen or node.prefixlen == prefixlen:
                break
            parent = node
            trim2 = trim
            side = self._bit(bits, node.prefixlen)
            trim = (node, side)
            node = node.child[side]
        if node is None or node.prefixlen != prefixlen or node.prefixlen != matchlen or node.im:
            raise _Errno(_errno.ENOENT, "no such prefix")
        self.n_entries -= 1

        def assign(where: tuple[_Node | None, int], n: _Node | None) -> None:
            holder, s = where
            if holder is None:
                self.root = n
            else:
                holder.child[s] = n

        if node.child[0] is not None and node.child[1] is not None:
            node.im = True  # its value memory stays with it, unreachable
            return
        if parent is not None and parent.im and node.child[0] is None and node.child[1] is None:
            other = parent.child[1] if parent.child[0] is node else parent.child[0]
            assign(trim2, other)
            self._free_node(parent)
            self._free_node(node)
            return
        assign(trim, node.child[0] if node.child[0] is not None else node.child[1])
        self._free_node(node)

    def _next(self, key: bytes | None) -> _Node:
        """trie_get_next_key: post-order successor."""
        root = self.root
        if root is None:
            raise _Errno(_errno.ENOENT, "empty trie")

        def leftmost(start: _Node | None) -> _Node:
            nxt: _Node | None = None
            n = start
            while n is not None:
                if n.im:
                    n = n.child[0]
                else:
                    nxt = n
                    n = n.child[0]
                    if n is None:
                        n = nxt.child[1]
            assert nxt is not None
            return nxt

        if key is None:
            return leftmost(root)
        prefixlen, data = self._split(key)
        if prefixlen > self.max_prefixlen:
            return leftmost(root)
        bits = int.from_bytes(data, "big")
        stack: list[_Node] = []
        node: _Node | None = root
        matchlen = 0
        while node is not None:
            stack.append(node)
            matchlen = self._match(node, bits, prefixlen)
            if node.prefixlen != matchlen or node.prefixlen == prefixlen:
                break
            node = node.child[self._bit(bits, node.prefixlen)]
        if node is None or node.prefixlen != matchlen or node.im:
            return leftmost(root)
        node = stack[-1]
        while len(stack) > 1:
            parent = stack[-2]
            if parent.child[0] is node and parent.child[1] is not None:
                return leftmost(parent.child[1])
            if not parent.im:
                return parent
            node = parent
            stack.pop()
        raise _Errno(_errno.ENOENT, "no more keys")

    # -- user space
    def _sys_lookup(self, key: bytes | None, flags: int) -> Any:
        assert key is not None
        prefixlen, data = self._split(key)
        node = self._lpm(prefixlen, data)
        if node is None:
            raise _Errno(_errno.ENOENT, "no matching prefix")
        return self.store.get(node.slot)

    def _sys_update(self, key: bytes | None, value: Any, flags: int) -> None:
        assert key is not None
        self._update(key, value, flags)

    def _sys_delete(self, key: bytes) -> None:
        self._delete(key)

    def _next_key(self, key: bytes | None) -> bytes:
        n = self._next(key)
        return lpm_key(n.prefixlen, n.data)

    def _count(self) -> int:
        return self.n_entries

    def lookup_prefix(self, prefixlen: int, data: bytes) -> bytes:
        """Longest-prefix match lookup of ``data`` (bounded by ``prefixlen``)."""
        return self.lookup(lpm_key(prefixlen, data))  # type: ignore[return-value]

    # -- memory
    def _attach(self, mem: AddressSpace) -> None:
        self.store.attach(mem)

    def _detach(self) -> None:
        self.store.detach()

    def memory_usage(self) -> int:
        return self.store.nbytes() + self.n_entries * (LPM_TRIE_NODE_SIZE + self.data_size)

    # -- programs
    def prog_lookup(self, key: bytes, cpu: int) -> int:
        prefixlen, data = self._split(key)
        node = self._lpm(prefixlen, data)
        return 0 if node is None else self.store.address(node.slot)

    def prog_update(self, key: bytes, value: bytes, flags: int, cpu: int) -> int:
        self._check_prog_write("bpf_map_update_elem")
        try:
            self._update(key, value, flags)
        except _Errno as e:
            return -e.err
        return 0

    def prog_delete(self, key: bytes, cpu: int) -> int:
        self._check_prog_write("bpf_map_delete_elem")
        try:
            self._delete(key)
        except _Errno as e:
            return -e.err
        return 0
