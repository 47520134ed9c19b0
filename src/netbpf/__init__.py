"""netbpf: eBPF networking in Python.

A simulator of the Linux eBPF networking system (VM, verifier, maps, helpers, hooks)
and a kernel backend that loads the same objects into the running kernel.
"""

from __future__ import annotations

from netbpf.backend import Backend, Program, TestRunResult
from netbpf.collection import Collection
from netbpf.errors import (
    AssemblerError,
    InstructionError,
    KernelError,
    KernelUnavailable,
    NetbpfError,
    NotSupportedError,
    ProgramFault,
    TestRunError,
)
from netbpf.kernel import KernelBackend
from netbpf.obj.collection import CollectionSpec, load_collection_spec
from netbpf.obj.spec import ProgramSpec
from netbpf.sim import SimBackend
from netbpf.uapi import AttachType, MapType, ProgramType, XdpAction

__version__ = "0.1.0"

__all__ = [
    "AssemblerError",
    "AttachType",
    "Backend",
    "Collection",
    "CollectionSpec",
    "InstructionError",
    "KernelBackend",
    "KernelError",
    "KernelUnavailable",
    "MapType",
    "NetbpfError",
    "NotSupportedError",
    "Program",
    "ProgramFault",
    "ProgramSpec",
    "ProgramType",
    "SimBackend",
    "TestRunError",
    "TestRunResult",
    "XdpAction",
    "__version__",
    "load_collection_spec",
]
