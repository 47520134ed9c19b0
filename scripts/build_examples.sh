#!/usr/bin/env bash
# Rebuild the shipped example objects from our own C (examples/src/*.c).
#
# The pinned recipe (see README and docs/architecture.md):
#   clang-19 -O2 -g -target bpf -I/usr/include/x86_64-linux-gnu -c SRC -o OBJ
# plus -fdebug-compilation-dir=. so the DWARF carries no absolute build directory and
# the object is byte-for-byte the same wherever the repo is checked out.  Until the
# ELF loader lands, each object's program section is also extracted to raw
# instruction bytes (NAME.bin) with llvm-objcopy-19, which `netbpf prog run` takes
# directly.  The sample packets in examples/packets/ are written by
# scripts/make_packets.py.
#
# Usage: scripts/build_examples.sh [OUTDIR]   (default: examples/)
# tests/test_examples.py runs this into a temporary OUTDIR and compares the bytes
# with the shipped files.
set -euo pipefail

cd "$(dirname "$0")/.."
out="${1:-examples}"
mkdir -p "$out" "$out/packets"

CLANG="${CLANG:-clang-19}"
OBJCOPY="${OBJCOPY:-llvm-objcopy-19}"

# name:section -- one self-contained program per source file.
EXAMPLES=(
    "xdp_udp_drop:xdp"
    "tc_mark:tc"
    "socket_ssh_filter:socket"
)

for entry in "${EXAMPLES[@]}"; do
    name="${entry%%:*}"
    section="${entry#*:}"
    "$CLANG" -O2 -g -target bpf -I/usr/include/x86_64-linux-gnu \
        -fdebug-compilation-dir=. \
        -c "examples/src/$name.c" -o "$out/$name.o"
    "$OBJCOPY" -O binary --only-section="$section" "$out/$name.o" "$out/$name.bin"
done

python3 scripts/make_packets.py "$out/packets"
