"""Dense embeddings for the retrieval index.

An ``Embedder`` turns texts into unit vectors; ``name`` identifies the model, stored with each
vector so vectors of different embedders are never compared.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np
import numpy.typing as npt

Vectors = npt.NDArray[np.float32]


class Embedder(Protocol):
    name: str

    def embed(self, texts: Sequence[str]) -> Vectors:
        """One L2-normalized row per text."""
        ...
