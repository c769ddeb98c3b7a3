"""What the store sends PostgreSQL, checked without a server: statements psycopg parses once."""

from __future__ import annotations

import pytest
from psycopg import _queries
from sqlalchemy.dialects import postgresql

from multiturn.store import sql as store_sql
from multiturn.store.turn_trips import END, END_FINISHING, START
from support.pg import PARSED_ONCE


def test_psycopg_keeps_its_parsing_of_statements_within_those_limits() -> None:
    """``PARSED_ONCE`` holds psycopg's limits (if psycopg changes them, this says so)."""
    assert (_queries.MAX_CACHED_STATEMENT_LENGTH, _queries.MAX_CACHED_STATEMENT_PARAMS) == PARSED_ONCE


@pytest.mark.parametrize(
    "name",
    [*(f"start{key}" for key in START), "end", "end finishing", "read back", "whole path"],
)
def test_a_turn_s_statements_are_short_enough_for_psycopg_to_parse_them_once(name: str) -> None:
    """Every form of a turn's start and end, and the read backs, are at most 4,096 bytes long
    with at most 50 parameters. A start that also fetched the items another process wrote was
    4,103-5,690 bytes: psycopg parsed it again at every such turn, ~0.9 M instructions more a turn
    (~14 %) with two gateways serving each chain's turns in turn (``bench/results/stored_turns.md``
    5.7)."""
    statements = {
        **{f"start{key}": statement for key, statement in START.items()},
        "end": END,
        "end finishing": END_FINISHING,
        "read back": store_sql._ITEMS_BACK["postgresql"],
        "whole path": store_sql._WALK["postgresql"],
    }
    compiled = statements[name].compile(dialect=postgresql.psycopg.dialect())
    assert len(str(compiled).encode()) <= PARSED_ONCE[0] and len(compiled.params) <= PARSED_ONCE[1]
