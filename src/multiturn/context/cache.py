"""What the planner remembers between turns, so that a turn costs what its window costs and not
what the whole conversation does. One ``PlanCache`` per engine (the engine owns it and hands it
to ``plan_context``); without one the planner computes everything afresh and gives the same
answer.

Items never change, and the store hands every turn of a conversation the same item records
(``SQLStore.path`` extends the previous turn's path), so what was computed from a run of records
holds for as long as those records are the ones planned. Every entry is checked by identity
(the records it was computed from must be the very objects of the path), never by id alone, so
new records with old ids (a stateless request, another process's path, a test) are computed
afresh. Every part is bounded, least recently used out first, and holds what a turn reads
again, not the conversation: a chain's turn reads the state its predecessor left and the rounds
it adds, so each part keeps one entry per chain (the longer entry replaces the one it extended)
or only recent values:

- ``counts``: tokens of a message (a history is counted again every turn; hashing a message is
  cheap next to counting it); a quarter of ``size``: a turn counts its new messages, and a
  round built again (after a drop) its recent ones;
- ``rounds``: a round as it would be sent (``blocks.Block``: messages, token counts), by its
  items; a sixteenth of ``size``: a turn builds the round its predecessor left open and its new
  input, and the histories hold the rounds they assembled, so only the recent ones are looked
  up again (an old one only when the window drops it or restarts, where it is built again);
- ``blocks``: other values computed from a run of items (the quotation a recalled round would
  add, ``retrieval.quote``), by key;
- ``shape``: where a path's rounds start, extended from the previous turn's path by the new
  items only (a chain keeps its latest shape: the one it extended goes);
- ``windows``: the window's replay state (``window.WindowState``) after a turn's complete rounds,
  by the last item of those rounds and the window's parameters; the next turn resumes from it
  (and its state replaces the one it resumed from);
- ``histories``: the window's complete rounds assembled (their messages in order, the positions
  they keep, their tokens; not their blocks), by the same key and where the window starts; the
  next turn appends its one new complete round. The message list is shared along a chain: a
  history is a prefix of it, appended in place by the turn that goes on from it (another branch
  copies its prefix), so a whole-history window costs a turn its new round, not the
  conversation.

An item's position in a path is not remembered: ids grow along a path (the store's ids are in
creation order), so it is found by bisection (checked on the path), and by one scan of the path
where the ids are not in order.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

from ..records import ItemRecord
from ..tokens import ImageEstimate, Tokenizer, message_tokens
from ..types import Message, Spans, spans_of
from .window import WindowState

_K = TypeVar("_K")
_V = TypeVar("_V")
LOOKBACK = 16
"""How far back from a path's end a cached shape or window state is looked for (the previous
turn's leaf is a few items back: its answer, the new input)."""


class Bounded(Generic[_K, _V]):
    """A dict that forgets its least recently used entries past ``size``."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._entries: OrderedDict[_K, _V] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: _K) -> _V | None:
        value = self._entries.get(key)
        if value is not None:
            self._entries.move_to_end(key)
        return value

    def put(self, key: _K, value: _V) -> None:
        self._entries[key] = value
        self._entries.move_to_end(key)
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)

    def pop(self, key: _K) -> None:
        self._entries.pop(key, None)


class Counts:
    """Token counts of messages (a message that cannot be hashed is counted every time)."""

    def __init__(self, size: int) -> None:
        self._counts: Bounded[Message, int] = Bounded(size)

    def __len__(self) -> int:
        return len(self._counts)

    def get(self, message: Message) -> int | None:
        try:
            return self._counts.get(message)
        except TypeError:
            return None

    def put(self, message: Message, n: int) -> None:
        try:
            self._counts.put(message, n)
        except TypeError:
            return


class ByItems:
    """Values computed from a run of item records, found by key while the records are the same
    objects."""

    def __init__(self, size: int) -> None:
        self._values: Bounded[tuple[object, ...], tuple[tuple[ItemRecord, ...], object]] = Bounded(size)

    def __len__(self) -> int:
        return len(self._values)

    def get(self, key: tuple[object, ...], items: Sequence[ItemRecord]) -> object | None:
        hit = self._values.get(key)
        if hit is None or len(hit[0]) != len(items) or any(a is not b for a, b in zip(hit[0], items, strict=True)):
            return None
        return hit[1]

    def put(self, key: tuple[object, ...], items: Sequence[ItemRecord], value: object) -> None:
        self._values.put(key, (tuple(items), value))


@dataclass(frozen=True, slots=True)
class _Shape:
    leaf: ItemRecord
    length: int
    starts: tuple[int, ...]
    media: tuple[int, ...] = ()
    """The rounds holding an image, audio or video part."""


@dataclass(frozen=True, slots=True)
class _Window:
    last: ItemRecord
    """The last item of the rounds replayed (checked by identity)."""
    state: WindowState


class Assembly(Protocol):
    """What a block must give its history: the messages it sends, the ids it keeps, its tokens,
    the bytes of media it sends inline."""

    @property
    def messages(self) -> tuple[Message, ...]: ...
    @property
    def kept(self) -> tuple[str, ...]: ...
    @property
    def tokens(self) -> int: ...
    @property
    def media_bytes(self) -> int: ...


@dataclass(frozen=True, slots=True)
class History:
    """A window's complete rounds ``[begin, end)`` assembled: ``size`` rounds, the first
    ``length`` messages of a list it may share with longer histories of the same chain. The
    blocks themselves are not kept: what a plan reads of them is summed here."""

    last: ItemRecord | None
    """The last item of the last round (checked by identity); None when there is no round."""
    end: int
    size: int
    messages_list: list[Message]
    length: int
    kept: Spans
    """The positions the rounds keep."""
    tokens: int
    media_bytes: int = 0
    """The bytes of media the rounds send inline."""

    @property
    def messages(self) -> list[Message]:
        return self.messages_list[: self.length]

    def extended(self, block: Assembly, last: ItemRecord, positions: Positions) -> History:
        """This history and one more round, appended in place when no longer history holds the
        list (a chain), else on a copy of this one's prefix (a branch)."""
        messages = self.messages_list
        if len(messages) != self.length:
            messages = messages[: self.length]
        messages.extend(block.messages)
        kept, added = self.kept, spans_of(positions[i] for i in block.kept)
        if kept and added and added[0][0] <= kept[-1][1] + 1:  # the rounds keep a run going on
            kept = (*kept[:-1], (kept[-1][0], max(kept[-1][1], added[0][1])), *added[1:])
        else:
            kept = (*kept, *added)
        return History(
            last,
            self.end + 1,
            self.size + 1,
            messages,
            len(messages),
            kept,
            self.tokens + block.tokens,
            self.media_bytes + block.media_bytes,
        )


class _Histories:
    """Histories, least recently used out past ``entries`` of them or past ``rounds`` rounds held
    together (a chain's history replaces the one it extended, so a chain counts once)."""

    def __init__(self, entries: int, *, rounds: int) -> None:
        self._entries: OrderedDict[tuple[object, ...], History] = OrderedDict()
        self._size = max(1, entries)
        self._limit = rounds
        self.rounds = 0

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: tuple[object, ...]) -> History | None:
        found = self._entries.get(key)
        if found is not None:
            self._entries.move_to_end(key)
        return found

    def pop(self, key: tuple[object, ...]) -> None:
        found = self._entries.pop(key, None)
        if found is not None:
            self.rounds -= found.size

    def put(self, key: tuple[object, ...], history: History) -> None:
        self.pop(key)
        self._entries[key] = history
        self.rounds += history.size
        while len(self._entries) > 1 and (len(self._entries) > self._size or self.rounds > self._limit):
            _, evicted = self._entries.popitem(last=False)
            self.rounds -= evicted.size


class PlanCache:
    """The planner's memory (see the module docstring). ``size`` bounds each part."""

    def __init__(self, size: int = 16_384, *, images: ImageEstimate = "qwen-vl") -> None:
        self.size = size
        self.images: ImageEstimate = images
        """How its counts count an image (``tokens.image_tokens``): one cache per count, as per
        tokenizer (nothing in it is keyed by either)."""
        self.counts = Counts(max(4, size // 4))
        self.rounds = ByItems(max(4, size // 16))
        self.blocks = ByItems(size)
        self._shapes: Bounded[str, _Shape] = Bounded(size // 16)
        self._windows: Bounded[tuple[object, ...], _Window] = Bounded(size // 16)
        self._histories = _Histories(size // 16, rounds=size)

    def sizes(self) -> dict[str, int]:
        """How many entries each part holds (each is bounded by ``size`` or a share of it)."""
        return {
            "counts": len(self.counts),
            "rounds": len(self.rounds),
            "blocks": len(self.blocks),
            "shapes": len(self._shapes),
            "windows": len(self._windows),
            "histories": len(self._histories),
            "history_rounds": self._histories.rounds,
        }

    def counter(self, tokenizer: Tokenizer) -> Callable[[Message], int]:
        """A message's tokens (``message_tokens``) by ``tokenizer``, remembered in ``counts``
        with images counted as ``images`` (one cache per tokenizer and per image count: the
        counts are keyed by neither)."""
        counts, images = self.counts, self.images

        def count(message: Message) -> int:
            n = counts.get(message)
            if n is None:
                n = message_tokens(message, tokenizer, images)
                counts.put(message, n)
            return n

        return count

    def round_starts(self, path: Sequence[ItemRecord]) -> tuple[int, ...]:
        """Where ``path``'s rounds start (``rounds.split_rounds``: before every user item, and
        at 0), extending the shape of a cached prefix of it by the items after that prefix."""
        return self.shape(path)[0]

    def shape(self, path: Sequence[ItemRecord]) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """``round_starts(path)``, and the rounds of ``path`` that hold media (image, audio or
        video parts), both extended from a cached prefix by the items after it."""
        n = len(path)
        starts: list[int] = []
        media: list[int] = []
        begin = 0
        for k in range(n - 1, max(-1, n - 1 - LOOKBACK), -1):
            hit = self._shapes.get(path[k].id)
            if hit is not None and hit.leaf is path[k] and hit.length == k + 1:
                if hit.length == n:
                    return hit.starts, hit.media
                starts, media, begin = list(hit.starts), list(hit.media), k + 1
                self._shapes.pop(path[k].id)  # the longer shape replaces it
                break
        for position in range(begin, n):
            item = path[position]
            if item.role == "user" or not starts:
                starts.append(position)
            if (not media or media[-1] != len(starts) - 1) and any(p.type != "text" for p in item.content):
                media.append(len(starts) - 1)
        shape, with_media = tuple(starts), tuple(media)
        if n:
            self._shapes.put(path[-1].id, _Shape(path[-1], n, shape, with_media))
        return shape, with_media

    def positions(self, path: Sequence[ItemRecord]) -> Positions:
        """Where the items of ``path`` are in it (``Positions``)."""
        return Positions(path)

    def window(
        self,
        key: tuple[object, ...],
        rounds: int,
        last_item: Callable[[int], ItemRecord],
        step: Callable[[WindowState, int], WindowState],
        restart: Callable[[int], WindowState | None] = lambda index: None,
    ) -> WindowState:
        """The window's replay state after ``rounds - 1`` complete rounds then the new input:
        resumed from the state a recent turn left (``key`` names the window's parameters; a
        state is found by the last item of the rounds it replayed), else from the latest
        complete round ``restart`` gives a state for (``window.restart``: a step whose outcome
        does not depend on the rounds before it), else from the first round; then stepped
        (``step(state, i)`` replays round ``i``). The state after the complete rounds is kept for
        the next turn."""
        state: WindowState | None = None
        for done in range(rounds - 1, max(0, rounds - 1 - LOOKBACK), -1):
            last = last_item(done - 1)
            hit = self._windows.get((*key, last.id, done))
            if hit is not None and hit.last is last:
                state = hit.state
                if done < rounds - 1:
                    self._windows.pop((*key, last.id, done))  # the state after more rounds replaces it
                break
        for index in range(rounds - 2, 0, -1) if state is None else ():
            state = restart(index)
            if state is not None:
                break
        state = state or WindowState()
        while state.rounds < rounds - 1:
            state = step(state, state.rounds)
        if rounds > 1:
            last = last_item(rounds - 2)
            self._windows.put((*key, last.id, rounds - 1), _Window(last, state))
        return step(state, rounds - 1) if rounds else state

    def history(
        self,
        key: tuple[object, ...],
        begin: int,
        end: int,
        last_item: Callable[[int], ItemRecord],
        block_at: Callable[[int], Assembly],
        positions: Positions,
    ) -> History:
        """Rounds ``[begin, end)`` assembled (``block_at(i)`` is round ``i``, ``last_item(i)``
        its last item): extended from a recent turn's history by the rounds after it; kept for
        the next turn. ``key`` names what a block depends on besides its items."""
        history = History(None, begin, 0, [], 0, (), 0)
        for done in range(end, max(begin, end - LOOKBACK), -1):
            last = last_item(done - 1)
            hit = self._histories.get((*key, begin, last.id, done))
            if hit is not None and hit.last is last:
                if done == end:
                    return hit
                history = hit
                self._histories.pop((*key, begin, last.id, done))  # the longer history replaces it
                break
        if history.end == end:  # no round
            return history
        while history.end < end:
            history = history.extended(block_at(history.end), last_item(history.end), positions)
        assert history.last is not None
        self._histories.put((*key, begin, history.last.id, end), history)
        return history


class Positions:
    """Positions of items in one path: found by bisection on the ids (in creation order along a
    path), checked on the path, with one full scan of it as the fallback (ids out of order, an
    item not on the path)."""

    def __init__(self, path: Sequence[ItemRecord]) -> None:
        self._path = path
        self._scanned: dict[str, int] | None = None

    def get(self, item_id: str | None, default: int = -1) -> int:
        """The position of ``item_id`` in the path, or ``default`` when it is not on it."""
        if item_id is None:
            return default
        path = self._path
        if self._scanned is None:
            low, high = 0, len(path)
            while low < high:
                middle = (low + high) // 2
                if path[middle].id < item_id:
                    low = middle + 1
                else:
                    high = middle
            if low < len(path) and path[low].id == item_id:
                return low
            self._scanned = {item.id: n for n, item in enumerate(path)}
        return self._scanned.get(item_id, default)

    def __getitem__(self, item_id: str) -> int:
        found = self.get(item_id)
        if found < 0:
            raise KeyError(item_id)
        return found

    def __contains__(self, item_id: object) -> bool:
        return isinstance(item_id, str) and self.get(item_id) >= 0
