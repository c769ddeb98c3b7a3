"""The store's path cache: bounded by paths and by the item references they hold, and a path
extended by the next turn's items shares the records of the path it extends."""

from __future__ import annotations

from multiturn.records import ItemRecord
from multiturn.store.core import PathCache
from multiturn.types import TextPart


def _item(n: int, parent: ItemRecord | None) -> ItemRecord:
    return ItemRecord(
        id=f"item_{n}",
        conversation_id="c",
        parent_id=parent.id if parent else None,
        role="user" if n % 2 == 0 else "assistant",
        content=(TextPart(f"text {n}"),),
        status="completed",
        created_at=n,
    )


def test_extending_a_path_shares_its_records() -> None:
    cache = PathCache()
    first = _item(0, None)
    cache.put(first.id, (first,))
    second = _item(1, first)
    cache.extend(first.id, [second])
    path = cache.get(second.id)
    assert path is not None and path[0] is first and path[1] is second
    cache.extend("unknown", [_item(2, second)])  # the parent's path is not cached: nothing is
    assert cache.get("item_2") is None


def test_the_cache_is_bounded_by_paths_and_by_references() -> None:
    cache = PathCache(size=8, references=100)
    parent: ItemRecord | None = None
    for n in range(1000):  # one conversation of 1,000 items, each turn's path cached
        item = _item(n, parent)
        cache.extend(parent.id if parent else None, [item])
        parent = item
        assert len(cache) <= 8 and cache.references <= max(100, n + 1)  # a path alone may pass the bound
    assert len(cache) == 1 and cache.get(parent.id) is not None  # the newest path stays
    for n in range(50):  # many short conversations: the bound on paths holds
        cache.put(f"leaf_{n}", (_item(n, None),))
    assert len(cache) == 8
    assert cache.references <= 100


def test_an_extended_path_replaces_its_parents_and_serves_it_as_a_prefix() -> None:
    cache = PathCache()
    chain = [_item(0, None)]
    cache.put(chain[0].id, (chain[0],))
    for n in range(1, 6):  # a chain of turns holds one path, not one per turn
        chain.append(_item(n, chain[-1]))
        cache.extend(chain[-2].id, [chain[-1]])
    assert len(cache) == 1 and cache.references == 6
    middle = cache.get(chain[2].id)  # an earlier leaf reads as the prefix of the newest path
    assert middle is not None and [r.id for r in middle] == [r.id for r in chain[:3]]
    branch = _item(9, chain[2])  # a branch from an earlier leaf extends that prefix
    cache.extend(chain[2].id, [branch])
    path = cache.get(branch.id)
    assert path is not None and [r.id for r in path] == [*(r.id for r in chain[:3]), branch.id]
    assert path[0] is chain[0]  # the records are shared, not copied
    assert len(cache) == 2 and cache.references == 6 + 4
    for n in range(300):  # the longer path is evicted: its prefixes are no longer served
        cache.put(f"leaf_{n}", (_item(100 + n, None),))
    assert cache.get(chain[5].id) is None and cache.get(chain[2].id) is None


def test_records_not_under_the_parent_given_are_not_cached_and_the_latest_leaf_is_remembered() -> None:
    """``extend`` trusts only records whose first is under the parent it is given: a caller
    that gave none (the root) for records that have a parent must not cache them as a whole path."""
    cache = PathCache()
    first = _item(0, None)
    cache.put(first.id, (first,))
    second = _item(1, first)
    cache.extend(None, [second])
    assert cache.get(second.id) is None
    assert cache.latest("c") == first.id
    cache.extend(first.id, [second])
    assert cache.get(second.id) == (first, second) and cache.latest("c") == second.id
    assert cache.latest("another") is None
