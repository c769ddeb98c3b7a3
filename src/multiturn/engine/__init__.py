"""The engine: the only sequencer of a turn, and the service that owns a stored turn's life.

- ``core.py``: ``Engine`` — policies, planning (with summary and recall around it), stateless
  answers; the entry points of stored turns.
- ``turns.py``: ``TurnService`` and ``Turn`` — queue, start, generation, end, recovery.
- ``conversations.py``: conversations, items and Responses objects, tenant-scoped.
"""

from .core import BackendFor, Engine, PolicyChoice
from .turns import ResponseSpec, Turn, TurnOptions, TurnService, TurnStart, TurnStats, refuse_over_budget

__all__ = [
    "BackendFor",
    "Engine",
    "PolicyChoice",
    "ResponseSpec",
    "Turn",
    "TurnOptions",
    "TurnService",
    "TurnStart",
    "TurnStats",
    "refuse_over_budget",
]
