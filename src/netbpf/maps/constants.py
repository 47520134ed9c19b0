"""Map vocabulary of ``linux/bpf.h`` and the kernel limits the map code enforces.

Why a module of our own: the generated UAPI tables (:mod:`netbpf.uapi`) carry the
``#define``\\ d opcode bits, but the map flags are members of anonymous enums that the
generator does not export.  The values below are written from ``linux/bpf.h`` (kernel
6.18); the limits are the running kernel's (measured by ``tests/test_maps_kernel.py``).
"""

from __future__ import annotations

import errno as _errno

__all__ = [
    "BPF_ANY",
    "BPF_EXIST",
    "BPF_F_ACCESS_MASK",
    "BPF_F_BROADCAST",
    "BPF_F_CLONE",
    "BPF_F_CTXLEN_MASK",
    "BPF_F_CURRENT_CPU",
    "BPF_F_EXCLUDE_INGRESS",
    "BPF_F_INDEX_MASK",
    "BPF_F_INGRESS",
    "BPF_F_INNER_MAP",
    "BPF_F_LOCK",
    "BPF_F_MMAPABLE",
    "BPF_F_NO_COMMON_LRU",
    "BPF_F_NO_PREALLOC",
    "BPF_F_NUMA_NODE",
    "BPF_F_PRESERVE_ELEMS",
    "BPF_F_RDONLY",
    "BPF_F_RDONLY_PROG",
    "BPF_F_WRONLY",
    "BPF_F_WRONLY_PROG",
    "BPF_F_ZERO_SEED",
    "BPF_NOEXIST",
    "BPF_RB_AVAIL_DATA",
    "BPF_RB_CONS_POS",
    "BPF_RB_FORCE_WAKEUP",
    "BPF_RB_NO_WAKEUP",
    "BPF_RB_PROD_POS",
    "BPF_RB_RING_SIZE",
    "BPF_RINGBUF_BUSY_BIT",
    "BPF_RINGBUF_DISCARD_BIT",
    "BPF_RINGBUF_HDR_SZ",
    "ENOTSUPP",
    "KMALLOC_MAX_SIZE",
    "LIBBPF_PIN_BY_NAME",
    "LIBBPF_PIN_NONE",
    "NR_CPUS",
    "PAGE_SIZE",
    "PCPU_MIN_UNIT_SIZE",
]

# -- update flags (enum in linux/bpf.h) ---------------------------------------------------
BPF_ANY = 0  #: create a new element or update an existing one
BPF_NOEXIST = 1  #: create only
BPF_EXIST = 2  #: update only
BPF_F_LOCK = 4  #: take the value's bpf_spin_lock while copying

# -- map_create flags ---------------------------------------------------------------------
BPF_F_NO_PREALLOC = 1 << 0
BPF_F_NO_COMMON_LRU = 1 << 1
BPF_F_NUMA_NODE = 1 << 2
BPF_F_RDONLY = 1 << 3  #: user space (the map's file descriptor) may only read
BPF_F_WRONLY = 1 << 4  #: user space may only write
BPF_F_STACK_BUILD_ID = 1 << 5
BPF_F_ZERO_SEED = 1 << 6
BPF_F_RDONLY_PROG = 1 << 7  #: programs may only read
BPF_F_WRONLY_PROG = 1 << 8  #: programs may only write
BPF_F_CLONE = 1 << 9
BPF_F_MMAPABLE = 1 << 10
BPF_F_PRESERVE_ELEMS = 1 << 11
BPF_F_INNER_MAP = 1 << 12
BPF_F_LINK = 1 << 13
BPF_F_PATH_FD = 1 << 14
BPF_F_VTYPE_BTF_OBJ_FD = 1 << 15
BPF_F_TOKEN_FD = 1 << 16
BPF_F_SEGV_ON_FAULT = 1 << 17
BPF_F_NO_USER_CONV = 1 << 18

BPF_F_ACCESS_MASK = BPF_F_RDONLY | BPF_F_RDONLY_PROG | BPF_F_WRONLY | BPF_F_WRONLY_PROG

# -- helper flags ---------------------------------------------------------------------------
BPF_F_INDEX_MASK = 0xFFFFFFFF
BPF_F_CURRENT_CPU = BPF_F_INDEX_MASK
BPF_F_CTXLEN_MASK = 0xFFFFF << 32
BPF_F_INGRESS = 1 << 0  #: sk/msg_redirect_map
BPF_F_BROADCAST = 1 << 3  #: redirect_map on a devmap
BPF_F_EXCLUDE_INGRESS = 1 << 4

# -- ring buffer -----------------------------------------------------------------------------
BPF_RB_NO_WAKEUP = 1 << 0
BPF_RB_FORCE_WAKEUP = 1 << 1
BPF_RB_AVAIL_DATA = 0
BPF_RB_RING_SIZE = 1
BPF_RB_CONS_POS = 2
BPF_RB_PROD_POS = 3
BPF_RB_OVERWRITE_POS = 4
BPF_RINGBUF_BUSY_BIT = 1 << 31
BPF_RINGBUF_DISCARD_BIT = 1 << 30
BPF_RINGBUF_HDR_SZ = 8

# -- libbpf pinning ----------------------------------------------------------------------------
LIBBPF_PIN_NONE = 0
LIBBPF_PIN_BY_NAME = 1

# -- kernel limits -----------------------------------------------------------------------------
#: errno the kernel lets escape from bpf() for "this map type has no such operation"
#: (include/linux/errno.h ENOTSUPP; Python's errno module does not know it)
ENOTSUPP = 524
EOPNOTSUPP = _errno.EOPNOTSUPP
PAGE_SIZE = 4096
#: x86-64: 1 << (MAX_PAGE_ORDER + PAGE_SHIFT)
KMALLOC_MAX_SIZE = 1 << 22
#: per-CPU allocations are bounded by the smallest per-CPU unit (32 KiB)
PCPU_MIN_UNIT_SIZE = 32 * 1024
#: the kernel's CONFIG_NR_CPUS on the development machine: CPUMAP refuses more entries
#: (E2BIG).  Distribution kernels often use 8192; this is the measured value.
NR_CPUS = 256
#: sizeof(struct htab_elem) on x86-64: the hash map refuses key_size + value_size >=
#: KMALLOC_MAX_SIZE - this (E2BIG)
HTAB_ELEM_SIZE = 48
#: sizeof(struct lpm_trie_node) on x86-64
LPM_TRIE_NODE_SIZE = 24
LPM_DATA_SIZE_MAX = 256
#: CPUMAP qsize sanity limit (EOVERFLOW above)
CPUMAP_QSIZE_MAX = 16384
S32_MAX = (1 << 31) - 1
U32_MAX = (1 << 32) - 1
