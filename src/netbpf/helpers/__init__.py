"""BPF helper functions: the registry and the implementations.

:data:`DEFAULT_REGISTRY` holds every helper the simulator implements; importing this
package registers the base helpers (time, randomness, CPU id, trace_printk).  Later
helper modules (maps, packet helpers...) register into the same registry on import.
"""

from __future__ import annotations

from netbpf.helpers import base as _base  # noqa: F401  (registers the base helpers)
from netbpf.helpers import csum as _csum  # noqa: F401  (checksum helpers)
from netbpf.helpers import loop as _loop  # noqa: F401  (registers bpf_loop)
from netbpf.helpers import maps as _maps  # noqa: F401  (registers the map helpers)
from netbpf.helpers import misc as _misc  # noqa: F401  (time, ids, snprintf, strncmp)
from netbpf.helpers import packet as _packet  # noqa: F401  (redirects)
from netbpf.helpers import skb as _skb  # noqa: F401  (skb helpers)
from netbpf.helpers import xdp as _xdp  # noqa: F401  (XDP helpers)
from netbpf.helpers.registry import DEFAULT_REGISTRY, HelperRegistry, HelperSpec

__all__ = ["DEFAULT_REGISTRY", "HelperRegistry", "HelperSpec"]
