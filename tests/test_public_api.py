"""The public surface of ``netbpf`` is pinned: adding or removing an exported name is a
deliberate change to this list, not an accident of an import."""

from __future__ import annotations

import inspect

import netbpf

#: Everything ``from netbpf import *`` gives, sorted.
EXPORTED = [
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


def test_all_is_pinned() -> None:
    assert sorted(netbpf.__all__) == EXPORTED
    assert len(set(netbpf.__all__)) == len(netbpf.__all__), "duplicate names in __all__"


def test_every_exported_name_resolves() -> None:
    for name in netbpf.__all__:
        assert hasattr(netbpf, name), f"netbpf.{name} is in __all__ but does not exist"
    namespace: dict[str, object] = {}
    exec("from netbpf import *", namespace)
    assert set(netbpf.__all__) <= set(namespace)


def test_errors_form_one_tree() -> None:
    for name in netbpf.__all__:
        obj = getattr(netbpf, name)
        if inspect.isclass(obj) and issubclass(obj, Exception):
            assert issubclass(obj, netbpf.NetbpfError), name


def test_the_documented_contract_exists() -> None:
    """The names the README and the issues promise, with the documented call shapes."""
    assert callable(netbpf.ProgramSpec.from_asm)
    assert callable(netbpf.ProgramSpec.from_bytes)
    for backend in (netbpf.SimBackend, netbpf.KernelBackend):
        assert callable(backend.load_program)
    params = inspect.signature(netbpf.Program.test_run).parameters
    assert list(params)[1:] == ["data_in", "ctx_in", "repeat"]
    assert [f for f in netbpf.TestRunResult.__dataclass_fields__] == [
        "retval",
        "data_out",
        "ctx_out",
        "duration_ns",
    ]
    assert netbpf.__version__
    params = inspect.signature(netbpf.load_collection_spec).parameters
    assert next(iter(params)) == "source"
    for backend in (netbpf.SimBackend, netbpf.KernelBackend):
        assert callable(backend.load)
    assert callable(netbpf.Collection.typed_map)
    assert hasattr(netbpf.Collection, "__enter__")
