"""matplotlib for the PNGs the benchmarks and ``multiturn replay`` write (the ``bench`` extra)."""

from __future__ import annotations

from typing import Any

from ..errors import MissingDependency


def pyplot() -> Any:
    """``matplotlib.pyplot`` on the file-only Agg backend (no display is needed).

    Raises:
        MissingDependency: matplotlib (the ``bench`` extra) is not installed.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise MissingDependency("matplotlib", "bench") from exc
    return plt
