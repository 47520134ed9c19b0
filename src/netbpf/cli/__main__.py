"""``python -m netbpf.cli``: the ``netbpf`` command without the console script."""

from __future__ import annotations

import sys

from netbpf.cli import main

sys.exit(main())
