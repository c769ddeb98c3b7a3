"""The stored turn: one service owns its life, from arrival to a terminal state.

    arrives ─▶ queued ─▶ generating ─▶ completed | incomplete | failed | cancelled

``TurnService`` (one per engine, shared by its tenant-scoped copies) runs every stored turn of
the library, the CLI and the gateway; the routers only translate.

1. **Arrival.** The request is checked (input, model, capabilities, policy) and the backend is
   prepared before anything is written. ``Store.enter_turn`` records the turn: a turn at the
   head waits behind every open turn of its conversation, in arrival order, in this process and
   in others (``queued``); a turn at an explicit parent (a branch) does not wait, and neither
   does one continuing a finished response.
2. **Start**: the parent is fixed, ids are given, a Responses object is recorded. The path is
   read (cached: the previous turn's path and its new items) and the context planned. A turn
   refused by the plan (over the budget), or failing before it reaches the model, ends with
   nothing stored.
3. **Generation**, with no transaction and no lock held. The answer so far is saved with the
   open turn every ``DRAFT_EVERY_S`` seconds (long answers only), for a process that dies.
4. **End**, whatever happened, in one short transaction shielded from cancellation: the input
   items and the answer (``completed``; ``incomplete`` with what was generated when the backend
   failed midway, when ``max_tokens`` cut it, or — finish ``cancelled`` — when the caller left;
   ``failed`` when the backend failed before any text), the head moved to the answer, the
   Responses object finished. The final delta (finish reason, usage) is handed on only after
   that, so a caller that sees a turn end finds it stored, in this process or another. If the
   store cannot be written the end is retried in the background until it can.
5. **After**: indexing for recall and a background summary run as tasks, off the turn's path;
   a turn that recalls first waits for its conversation's pending indexing. A failed job is
   logged and never fails a turn.

A process killed mid-turn leaves the turn's row with a dead owner (``store/liveness.py``). The
next process to open the store (``open``), the periodic sweep, or a turn queued behind it closes
it: inputs kept, the answer ``incomplete`` with its saved draft, so a chain continues from it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from contextlib import aclosing
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from ..backends.base import Backend, completes
from ..backends.capabilities import check_capabilities, check_params
from ..context.plan import Policy
from ..errors import ContextTooLong, InvalidInput, MultiturnError, NotFound, StoreError
from ..ids import new_id
from ..pricing import with_cost
from ..records import ConversationRecord, ItemRecord, NewItem
from ..store.base import Store
from ..store.responses import ResponseRecord, ResponseStatus
from ..store.turns import Blocked, Started, TurnEntry, chain
from ..types import (
    Accumulator,
    ContextReport,
    Cost,
    Delta,
    GenerationParams,
    Message,
    Part,
    Reply,
    Status,
    TextPart,
    ToolCallDelta,
)

if TYPE_CHECKING:
    from .core import Engine, PolicyChoice

log = logging.getLogger(__name__)

DRAFT_EVERY_S = 2.0
"""A generating answer is saved with its open turn at most this often (and only once it runs
this long), so a killed process loses at most this much of it."""
SWEEP_EVERY_S = 30.0
"""How often an open service looks for turns of dead processes (beside start-up and waits)."""
LOCAL_WAIT_S = 5.0
"""A turn queued behind a turn of this process re-checks at least this often (it is woken at
once when that turn ends; this only guards against a missed wake-up)."""
ANNOUNCED_WAIT_S = 2.0
"""The same behind another process's turn when turn ends are announced (PostgreSQL)."""
POLL_FIRST_S, POLL_MAX_S = 0.01, 0.25
"""Polling another process's turn where ends are not announced (SQLite): first and longest gap."""
END_RETRY_S = 1.0
_ENDED_MEMORY = 4096


@dataclass(frozen=True, slots=True)
class TurnStart:
    """What a started turn answers, known before its first delta: the ids its inputs and its
    answer are stored under, and the context plan."""

    conversation_id: str
    input_ids: tuple[str, ...]
    answer_id: str
    report: ContextReport


@dataclass(frozen=True, slots=True)
class ResponseSpec:
    """A Responses object recorded with the turn (``POST /v1/responses``). ``describe_error``
    turns a failure into the object's ``error`` (the gateway supplies its wire mapping)."""

    id: str
    model: str
    created_at: int
    previous_response_id: str | None = None
    instructions: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    describe_error: Callable[[BaseException], dict[str, Any]] = lambda exc: {
        "code": "server_error",
        "message": str(exc),
    }


@dataclass(frozen=True, slots=True)
class TurnOptions:
    """How one turn departs from its conversation's defaults.

    - ``parent_id``: append the input under this item (a branch; the turn does not queue);
    - ``after_response``: append it under that response's answer (``previous_response_id``);
      the turn queues only when that response is still open (``waits=True``);
    - ``before``: messages stored ahead of the user's content, in order (a multi-item input);
    - ``instructions``: this turn's system prompt instead of the conversation's (not stored);
    - ``model``: this turn's model instead of the conversation's;
    - ``response``: record the turn as a Responses object;
    - ``waits``: queue behind the conversation's open turns (default: only at the head);
    - ``conversation``: the conversation as the caller has just read it (saves reading it again:
      the turn's start reads it anyway, under its lock);
    - ``parent_known``: ``parent_id`` was just read where it cannot be missing (a finished
      response's answer), so it is not checked again.
    """

    parent_id: str | None = None
    parent_known: bool = False
    conversation: ConversationRecord | None = None
    after_response: str | None = None
    before: tuple[Message, ...] = ()
    instructions: str | None = None
    model: str | None = None
    response: ResponseSpec | None = None
    waits: bool | None = None


@dataclass
class TurnStats:
    """Counters of this process's turns (the gateway shows them on ``/healthz``)."""

    started: int = 0
    queued: int = 0
    """Turns that had to wait behind another open turn of their conversation."""
    waited_s: float = 0.0
    abandoned_closed: int = 0
    """Turns of dead processes this process closed."""
    end_retries: int = 0
    """Ends that failed to write and were retried."""


class Turn:
    """One stored turn. ``events()`` runs it: deltas, then one ``Reply``; ``start`` is set once
    the context is planned (before the first delta), ``status`` once it has ended."""

    def __init__(
        self,
        engine: Engine,
        conversation_id: str,
        content: Sequence[Part] | None,
        params: GenerationParams,
        policy: PolicyChoice | None,
        options: TurnOptions,
    ) -> None:
        self._engine = engine
        self.conversation_id = conversation_id
        self._content = tuple(content) if content is not None else None
        self._params = params
        self._policy = policy
        self._options = options
        self.start: TurnStart | None = None
        self.reply: Reply | None = None
        self.status: ResponseStatus | None = None
        self.answer: ItemRecord | None = None
        """The answer as stored, once the turn has ended."""
        self._whole = False

    async def events(self) -> AsyncGenerator[Delta | Reply, None]:
        engine, options = self._engine, self._options
        if self._content is not None and not _has_input(self._content):
            raise InvalidInput("the message is empty")
        conversation = options.conversation
        if conversation is None or conversation.id != self.conversation_id:
            conversation = await engine.get(self.conversation_id)
        model, backend = engine.backend_for(conversation, options.model)
        policy = engine.policy(conversation, model, self._policy)
        messages = [*options.before, *([Message("user", self._content)] if self._content is not None else [])]
        info = backend.info()
        check_capabilities(messages, info, model)
        check_params(self._params, info, model)
        await backend.prepare()
        inputs = tuple([_new_item(m, await backend.count_tokens(m.text)) for m in messages])
        at_head = options.parent_id is None and options.after_response is None
        entry = TurnEntry(
            id=new_id("turn"),
            tenant_id=engine.tenant_id,
            conversation_id=self.conversation_id,
            owner=engine.store.owner,
            inputs=inputs,
            parent_id=options.parent_id,
            parent_known=options.parent_known,
            after_response=options.after_response,
            waits=options.waits if options.waits is not None else at_head,
            response=_response_record(options.response, engine.tenant_id, self.conversation_id),
            title=_title(self._content) if self._content is not None and conversation.title is None else None,
            model=model,
        )
        started = await engine.turns.enter(entry)
        async with aclosing(self._run(entry, started, model, backend, policy)) as run:
            async for event in run:
                yield event

    async def collect(self) -> Reply:
        """Run the turn to its end; its ``Reply``. Nobody reads the answer as it is made, so a
        backend that can answer in one piece (an upstream: one response, not a stream of
        chunks to parse) is asked that way."""
        self._whole = True
        async with aclosing(self.events()) as events:
            async for event in events:
                if isinstance(event, Reply):
                    return event
        raise StoreError("the turn ended without a reply")  # pragma: no cover - events() always ends with one

    async def _run(
        self, entry: TurnEntry, started: Started, model: str, backend: Backend, policy: Policy
    ) -> AsyncGenerator[Delta | Reply, None]:
        engine, service = self._engine, self._engine.turns
        records = chain(entry.inputs, started.input_ids, entry.conversation_id, started.parent_id, started.started_at)
        conversation = started.conversation
        if self._options.instructions is not None:
            conversation = replace(conversation, system_prompt=self._options.instructions)
        answer = Accumulator()
        drafts = _Drafts(engine.store, entry.id)
        held: Delta | None = None
        report: ContextReport | None = None
        path: list[ItemRecord] = []
        generated = completed = False
        error: BaseException | None = None
        try:
            path = [*await engine.store.known_path(started.parent_id, started.conversation), *records]
            messages, report = await engine.plan_turn(conversation, path, backend, self._params, policy)
            refuse_over_budget(report)
            self.start = TurnStart(entry.conversation_id, started.input_ids, started.answer_id, report)
            generated = True
            async with aclosing(_deltas(backend, messages, self._params, whole=self._whole)) as deltas:
                async for delta in deltas:
                    answer.add(delta)
                    drafts.tick(answer)
                    if delta.finish_reason is None:
                        yield delta
                        continue
                    if delta.content or delta.reasoning or delta.tool_calls:
                        yield Delta(content=delta.content, reasoning=delta.reasoning, tool_calls=delta.tool_calls)
                    held = Delta(finish_reason=delta.finish_reason, usage=delta.usage)
            completed = True
        except BaseException as exc:
            error = exc
            raise
        finally:
            await drafts.stop()
            if not generated:  # refused, or failed before the model: nothing is stored
                self.status = "failed" if isinstance(error, Exception) else "cancelled"
                await service.end(entry, [], None, started.parent_id, discard=True)
            else:
                stored = await self._end(entry, started, path, answer, report, model, completed, error)
                if not stored and error is None:
                    raise NotFound(
                        f"conversation {entry.conversation_id!r} (or the item this turn answered) was deleted "
                        "while the turn ran: its answer was not stored"
                    )
        assert self.reply is not None
        if held is not None:
            yield held if held.usage is None else replace(held, usage=self.reply.usage)  # the priced usage
        assert self.answer is not None
        service.after(engine, conversation, [*path, self.answer], backend, self._params, policy)
        yield self.reply

    async def _end(
        self,
        entry: TurnEntry,
        started: Started,
        path: Sequence[ItemRecord],
        answer: Accumulator,
        report: ContextReport | None,
        model: str,
        completed: bool,
        error: BaseException | None,
    ) -> bool:
        records = path[len(path) - len(entry.inputs) :]
        result = answer.completion()
        finish = result.finish_reason
        status: Status
        if completed:
            status = "completed"
        elif isinstance(error, Exception):
            status, finish = ("incomplete" if result.content else "failed"), "error"
        else:  # the caller left (cancelled, or the stream closed)
            status, finish = "incomplete", "cancelled"
        failure = str(error) if isinstance(error, Exception) else None
        spec = self._options.response
        if isinstance(error, Exception) and spec is not None:  # the report is shown in the Responses object:
            failure = str(spec.describe_error(error)["message"])  # what its error says, never more
        context_report = (
            replace(report, error=failure) if report is not None else ContextReport.unplanned(failure or "not planned")
        )
        usage = answer.usage
        if usage is not None:  # priced, with the conversation's total through this answer
            usage = with_cost(usage, self._engine.price(model), running=True, before=_cost_before(path))
        self.answer = ItemRecord(
            id=started.answer_id,
            conversation_id=entry.conversation_id,
            parent_id=records[-1].id if records else started.parent_id,
            role="assistant",
            content=(TextPart(result.content),) if result.content else (),
            status=status,
            created_at=_now_ms(),
            reasoning=result.reasoning or None,
            tool_calls=result.tool_calls,
            model=model,
            usage=usage,
            finish_reason=finish,
            token_count=usage.completion_tokens if usage else None,
            context_report=context_report,
        )
        if not completed:
            self.status = "failed" if isinstance(error, Exception) else "cancelled"
        elif finish == "length":
            self.status = "incomplete"
        else:
            self.status = "completed"
        response = None
        if spec is not None:
            response = {
                "status": self.status,
                "output_item_id": started.answer_id,
                "usage": usage,
                "error": spec.describe_error(error) if isinstance(error, Exception) else None,
            }
        stored = await self._engine.turns.end(entry, [*records, self.answer], response, started.parent_id)
        if status != "completed":
            log.info("stored %s answer %s in %s", status, started.answer_id, entry.conversation_id)
        self.reply = Reply(
            conversation_id=entry.conversation_id,
            item_id=started.answer_id,
            user_item_id=records[-1].id if records else started.parent_id,
            content=result.content,
            reasoning=result.reasoning,
            status=status,
            finish_reason=finish,
            usage=usage or result.usage,
            model=model,
            tool_calls=result.tool_calls,
            context_report=context_report,
        )
        return stored


class TurnService:
    """Runs the lifecycle above for every turn of an engine; holds what the process shares:
    the wake-ups of queued turns, the background jobs, the counters."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.stats = TurnStats()
        self._wakers: OrderedDict[str, asyncio.Event] = OrderedDict()
        """Per open turn some local turn waits for: set when it ends (bounded; a waiter whose
        event was dropped re-checks at its next time-out)."""
        self._ended: OrderedDict[str, None] = OrderedDict()
        self._jobs: set[asyncio.Task[object]] = set()
        self._indexing: dict[str, set[asyncio.Task[object]]] = {}
        self._ending: set[asyncio.Task[bool]] = set()
        self._sweeper: asyncio.Task[None] | None = None
        self._owning = False

    # -- life of the service -----------------------------------------------------------------

    async def open(self, *, sweep: bool = True) -> None:
        """Own turns as this process, close the turns dead processes left open, and (``sweep``)
        keep looking for such turns every ``SWEEP_EVERY_S``. Idempotent."""
        await self._own()
        if sweep and self._sweeper is None:
            self._sweeper = asyncio.get_running_loop().create_task(self._sweep(), name="multiturn-turn-sweep")

    async def close(self) -> None:
        """Stop sweeping; wait for turn ends still being written and for background jobs."""
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
            self._sweeper = None
        await self.drain()

    async def recover(self) -> int:
        """Close every open turn whose owner process is dead; how many were closed."""
        closed = 0
        for turn in await self.store.abandoned_turns():
            if await self.store.close_abandoned(turn.id, turn.conversation_id, turn.owner):
                closed += 1
                self._mark_ended(turn.id)
        if closed:
            self.stats.abandoned_closed += closed
            log.info("closed %d turn(s) left open by processes that stopped", closed)
        return closed

    async def _own(self) -> None:
        if not self._owning:
            self._owning = True
            try:
                await self.store.own_turns(self._mark_ended)
                await self.recover()
            except BaseException:
                self._owning = False
                raise

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_EVERY_S)
            try:
                await self.recover()
            except MultiturnError:
                log.warning("could not look for abandoned turns", exc_info=True)

    # -- the queue ---------------------------------------------------------------------------

    async def enter(self, entry: TurnEntry) -> Started:
        """Queue ``entry`` until its turn comes, then start it. A caller that leaves while it
        waits takes it out of the queue; one that leaves as it starts ends it as cancelled."""
        await self._own()
        queued_at: float | None = None
        try:
            while True:
                result = await _finish_even_if_cancelled(
                    self.store.enter_turn(entry), lambda outcome: self._abandon_entry(entry, outcome)
                )
                if isinstance(result, Started):
                    break
                if queued_at is None:
                    queued_at = time.perf_counter()
                    self.stats.queued += 1
                await self._wait(entry, result)
        except BaseException:
            if queued_at is not None:
                await _shielded(self.store.leave_turn(entry.id, entry.conversation_id))
                self._mark_ended(entry.id)
            raise
        if queued_at is not None:
            self.stats.waited_s += time.perf_counter() - queued_at
        self.stats.started += 1
        if not entry.answers:
            self._mark_ended(entry.id)
        return result

    async def _abandon_entry(self, entry: TurnEntry, outcome: Started | Blocked) -> None:
        """The caller left while ``enter_turn`` ran: undo what it did."""
        if isinstance(outcome, Blocked):
            await self.store.leave_turn(entry.id, entry.conversation_id)
        elif entry.answers:
            await self.store.end_turn(entry.id, entry.conversation_id, [], discard=True)
        self._mark_ended(entry.id)

    async def _wait(self, entry: TurnEntry, ahead: Blocked) -> None:
        """Until the turn ahead of ``entry`` has ended (then ``enter_turn`` is tried again)."""
        poll = POLL_FIRST_S
        while True:
            if ahead.turn_id in self._ended:
                return
            waker = self._wakers.get(ahead.turn_id)
            if waker is None:
                waker = self._wakers[ahead.turn_id] = asyncio.Event()
                if len(self._wakers) > _ENDED_MEMORY:
                    self._wakers.popitem(last=False)
            if ahead.owner == self.store.owner:
                timeout = LOCAL_WAIT_S
            elif self.store.announces_turn_ends:
                timeout = ANNOUNCED_WAIT_S
            else:
                timeout, poll = poll, min(poll * 2, POLL_MAX_S)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(waker.wait(), timeout)
                return
            if ahead.owner != self.store.owner and not await self.store.is_alive(ahead.owner):
                if await self.store.close_abandoned(ahead.turn_id, entry.conversation_id, ahead.owner):
                    self.stats.abandoned_closed += 1
                    log.info("closed turn %s: its process had stopped", ahead.turn_id)
                self._mark_ended(ahead.turn_id)
                return
            now = await self.store.turn_ahead(entry.id, entry.conversation_id)
            if now is None or now.turn_id != ahead.turn_id:
                self._mark_ended(ahead.turn_id)  # it ended elsewhere: wake this process's others
                return
            ahead = now

    def _mark_ended(self, turn_id: str) -> None:
        """A turn ended or left its queue (here, or announced by another process)."""
        self._ended[turn_id] = None
        if len(self._ended) > _ENDED_MEMORY:
            self._ended.popitem(last=False)
        waker = self._wakers.pop(turn_id, None)
        if waker is not None:
            waker.set()

    # -- the end -----------------------------------------------------------------------------

    async def end(
        self,
        entry: TurnEntry,
        records: Sequence[ItemRecord],
        response: dict[str, Any] | None,
        parent_id: str | None,
        *,
        discard: bool = False,
    ) -> bool:
        """Write a turn's end (shielded: it completes even if the caller is cancelled). A store
        failure is retried in the background until it succeeds; the caller gets the error."""

        async def write() -> bool:
            try:
                return await self.store.end_turn(
                    entry.id, entry.conversation_id, records, response=response, parent_id=parent_id, discard=discard
                )
            finally:
                self._mark_ended(entry.id)

        task = asyncio.get_running_loop().create_task(write())
        self._ending.add(task)
        task.add_done_callback(self._ending.discard)
        try:
            return await asyncio.shield(task)
        except StoreError:
            self._retry_end(write)
            raise

    def _retry_end(self, write: Callable[[], Awaitable[bool]]) -> None:
        async def retry() -> None:
            delay = END_RETRY_S
            while True:
                await asyncio.sleep(delay)
                self.stats.end_retries += 1
                try:
                    await write()
                    return
                except StoreError:
                    log.warning("could not store the end of a turn; retrying in %.0f s", delay)
                    delay = min(delay * 2, 60.0)

        self._spawn(retry(), None)

    # -- after the turn ----------------------------------------------------------------------

    def after(
        self,
        engine: Engine,
        conversation: ConversationRecord,
        path: Sequence[ItemRecord],
        backend: Backend,
        params: GenerationParams,
        policy: Policy,
    ) -> None:
        """Start the background jobs of a completed turn (indexing its round, a summary)."""
        for name, job in engine.memory_jobs(conversation, path, backend, params, policy):
            self._spawn(engine.best_effort(name, job), conversation.id if name == "index" else None)

    async def indexed(self, conversation_id: str) -> None:
        """Wait for the conversation's pending indexing (a turn that recalls needs it)."""
        pending = self._indexing.get(conversation_id)
        if pending:
            await asyncio.gather(*list(pending), return_exceptions=True)

    async def drain(self) -> None:
        """Wait for every background job and turn end started so far."""
        while self._jobs or self._ending:
            await asyncio.gather(*list(self._jobs), *list(self._ending), return_exceptions=True)

    def _spawn(self, job: Awaitable[object], conversation_id: str | None) -> None:
        task: asyncio.Task[object] = asyncio.ensure_future(job)
        self._jobs.add(task)
        task.add_done_callback(self._jobs.discard)
        if conversation_id is not None:
            pending = self._indexing.setdefault(conversation_id, set())
            pending.add(task)

            def done(finished: asyncio.Task[object]) -> None:
                pending.discard(finished)
                if not pending and self._indexing.get(conversation_id) is pending:
                    del self._indexing[conversation_id]

            task.add_done_callback(done)


class _Drafts:
    """Saves a long answer's text with its open turn now and then (one write at a time)."""

    def __init__(self, store: Store, turn_id: str) -> None:
        self._store = store
        self._turn = turn_id
        self._since = time.monotonic()
        self._saved = 0
        self._task: asyncio.Task[None] | None = None

    def tick(self, answer: Accumulator) -> None:
        if time.monotonic() - self._since < DRAFT_EVERY_S or (self._task is not None and not self._task.done()):
            return
        text = "".join(answer.content)
        if len(text) == self._saved:
            return
        self._since, self._saved = time.monotonic(), len(text)
        self._task = asyncio.get_running_loop().create_task(self._save(text))

    async def _save(self, text: str) -> None:
        try:
            await self._store.save_draft(self._turn, text)
        except MultiturnError:
            log.warning("could not save the draft of turn %s", self._turn, exc_info=True)

    async def stop(self) -> None:
        if self._task is not None:
            await _shielded(self._task)


async def _deltas(
    backend: Backend, messages: Sequence[Message], params: GenerationParams, *, whole: bool
) -> AsyncGenerator[Delta, None]:
    """The backend's answer as deltas: streamed, or (``whole``, when it can) in one piece."""
    if whole and completes(backend):
        done = await backend.complete(messages, params)
        yield Delta(
            content=done.content,
            reasoning=done.reasoning,
            tool_calls=tuple(
                ToolCallDelta(index=n, id=call.id, name=call.name, arguments=call.arguments)
                for n, call in enumerate(done.tool_calls)
            ),
            finish_reason=done.finish_reason or "stop",
            usage=done.usage,
        )
        return
    async with aclosing(backend.generate(messages, params)) as stream:
        async for delta in stream:
            yield delta


def _cost_before(path: Sequence[ItemRecord]) -> Cost | None:
    """The cost of the last answer on ``path`` that counted tokens (``None``: none did, the
    conversation's total starts here); an answer with tokens but no price makes the total
    unknown from there on."""
    for item in reversed(path):
        if item.role == "assistant" and item.usage is not None:
            return item.usage.cost or Cost(currency="", conversation=None)
    return None


def refuse_over_budget(report: ContextReport) -> None:
    """Raise ``ContextTooLong`` when the plan is over its budget: even the newest round alone
    did not fit, or (``full``, which drops nothing) the whole history did not. The message
    opens as Model Studio's does and then says what does not fit."""
    if report.over_budget:
        raise ContextTooLong(
            f"Range of input length should be [1, {report.budget}]: {over_budget(report)}",
            prompt_tokens=report.tokens,
            limit=report.budget or 0,
        )


def over_budget(report: ContextReport) -> str:
    """What does not fit a plan's budget, in words (one line; the budget is said before it)."""
    parts = report.tokens_by_part
    fixed = parts.get("system", 0) + parts.get("template", 0)
    newest = parts.get("input", 0)
    if newest + fixed > (report.budget or 0):
        return (
            f"the newest message alone needs {newest + fixed:,} tokens with the system prompt and template "
            "(the budget is the model's window less the tokens kept for the answer); nothing was stored"
        )
    earlier = report.tokens - newest - fixed
    return (
        f"the '{report.policy}' policy sends the whole history, {earlier:,} tokens, beside the newest "
        f"message's {newest + fixed:,}; a policy that drops or summarizes (window, summary, retrieval, "
        "auto) fits it; nothing was stored"
    )


async def _finish_even_if_cancelled(
    job: Awaitable[Started | Blocked], undo: Callable[[Started | Blocked], Awaitable[None]]
) -> Started | Blocked:
    """Await ``job`` shielded; if the caller is cancelled meanwhile, let it finish, ``undo`` its
    outcome, and re-raise the cancellation."""
    task = asyncio.ensure_future(job)
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        with contextlib.suppress(Exception):
            await _shielded(_undo_when_done(task, undo))
        raise


async def _undo_when_done(
    task: asyncio.Future[Started | Blocked], undo: Callable[[Started | Blocked], Awaitable[None]]
) -> None:
    await undo(await task)


async def _shielded(job: Awaitable[object]) -> None:
    """Await ``job`` to its end even if the caller is cancelled meanwhile (then re-raise)."""
    task = asyncio.ensure_future(job)
    try:
        await asyncio.shield(task)
    except asyncio.CancelledError:
        await task
        raise


def _response_record(spec: ResponseSpec | None, tenant_id: str, conversation_id: str) -> ResponseRecord | None:
    if spec is None:
        return None
    return ResponseRecord(
        id=spec.id,
        tenant_id=tenant_id,
        conversation_id=conversation_id,
        previous_response_id=spec.previous_response_id,
        input_item_ids=(),
        model=spec.model,
        status="in_progress",
        created_at=spec.created_at,
        instructions=spec.instructions,
        metadata=dict(spec.metadata),
        params=dict(spec.params),
    )


def _new_item(message: Message, token_count: int) -> NewItem:
    return NewItem(
        role=message.role,
        content=message.content,
        tool_calls=message.tool_calls,
        tool_call_id=message.tool_call_id,
        token_count=token_count,
    )


def _has_input(content: Sequence[Part]) -> bool:
    return any(not isinstance(p, TextPart) or p.text.strip() for p in content)


def _title(content: Sequence[Part]) -> str:
    text = "".join(p.text for p in content if isinstance(p, TextPart))
    first = text.strip().splitlines()
    title = first[0] if first else "(no text)"
    return title if len(title) <= 60 else title[:59] + "…"


def _now_ms() -> int:
    return time.time_ns() // 1_000_000
