"""The engine: the only sequencer of a turn. append -> plan -> generate -> append.

Write order is the durability contract:
1. the backend is prepared (model loaded and verified) before anything is written;
2. the user's item is committed before the model is called;
3. the assistant's item is committed when the generation ends: ``completed``, or
   ``incomplete`` with what was generated when it is interrupted (cancellation, Ctrl-C, a
   closed stream), or ``failed`` when the backend fails before producing anything. That last
   write is shielded from cancellation, so an interrupted turn never leaves nothing behind.

The engine speaks canonical types only; it never sees a wire format and never prints.
"""

from __future__ import annotations

import asyncio
import copy
import logging
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from contextlib import aclosing
from dataclasses import asdict, dataclass, replace
from typing import Any, TypeVar

from .backends.base import Backend, completes
from .backends.capabilities import check_capabilities
from .context.budget import measured_overhead, prompt_budget, reserved_output
from .context.plan import Policy, plan_context, preset
from .context.retrieval import Recalled
from .context.rounds import split_rounds
from .context.summary import Summary
from .context.unstored import unstored_path
from .errors import ContextTooLong, InvalidInput, MultiturnError
from .ids import new_id
from .memory.base import Compaction, Recall
from .records import ConversationRecord, ItemRecord, NewItem
from .store.base import DEFAULT_TENANT, HEAD, Parent, Store
from .tokens import Tokenizer, default_tokenizer
from .types import (
    Accumulator,
    ChatRequest,
    Completion,
    ContextReport,
    Delta,
    GenerationParams,
    Message,
    Part,
    Reply,
    Status,
    TextPart,
)

log = logging.getLogger(__name__)
_T = TypeVar("_T")

BackendFor = Callable[[str], Backend]
PolicyChoice = str | Policy
"""A preset name, or a ``Policy`` value (benchmarks and tests build their own)."""


@dataclass(frozen=True, slots=True)
class TurnStart:
    """What a turn is about to answer, told before the first delta: the ids of its path (root
    to the newest input item), the id its answer will be stored under, and the context plan."""

    conversation_id: str
    path: tuple[str, ...]
    answer_id: str
    report: ContextReport


@dataclass(frozen=True, slots=True)
class TurnOptions:
    """How one turn departs from its conversation's defaults (the gateway's stateful requests).

    - ``parent_id``: append the input under this item instead of the head (a branch);
    - ``before``: messages stored ahead of the user's content, in order (a multi-item input);
    - ``instructions``: this turn's system prompt instead of the conversation's (not stored);
    - ``model``: this turn's model instead of the conversation's;
    - ``on_start``: awaited once the context is planned, before the model is called; the answer
      is then stored under ``TurnStart.answer_id`` whatever happens next.
    """

    parent_id: str | None = None
    before: tuple[Message, ...] = ()
    instructions: str | None = None
    model: str | None = None
    on_start: Callable[[TurnStart], Awaitable[None]] | None = None


class Engine:
    def __init__(
        self,
        store: Store,
        backend_for: BackendFor,
        *,
        default_model: str,
        tenant_id: str = DEFAULT_TENANT,
        default_policy: str = "window",
        policy_for_model: Callable[[str], str | None] = lambda model: None,
        tune_policy: Callable[[str, Policy], Policy] = lambda model, policy: policy,
        tokenizer: Tokenizer | None = None,
        recall: Recall | None = None,
        compaction: Compaction | None = None,
        background_compaction: bool = False,
    ) -> None:
        self.store = store
        self.recall = recall
        self.compaction = compaction
        self._background_compaction = background_compaction
        self._tasks: set[asyncio.Task[object]] = set()
        self._backend_for = backend_for
        self.default_model = default_model
        self.tenant_id = tenant_id
        self.default_policy = default_policy
        self._policy_for_model = policy_for_model
        self._tune_policy = tune_policy
        self.tokenizer = tokenizer or default_tokenizer()

    def for_tenant(self, tenant_id: str) -> Engine:
        """This engine scoped to another tenant: same store, backends, memory and settings."""
        if tenant_id == self.tenant_id:
            return self
        scoped = copy.copy(self)
        scoped.tenant_id = tenant_id
        return scoped

    # -- conversations -----------------------------------------------------------------------

    async def create(
        self,
        *,
        system_prompt: str | None = None,
        model: str | None = None,
        title: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> ConversationRecord:
        return await self.store.create_conversation(
            tenant_id=self.tenant_id,
            title=title,
            model=model,
            system_prompt=system_prompt,
            metadata=metadata,
        )

    async def get(self, conversation_id: str) -> ConversationRecord:
        return await self.store.get_conversation(conversation_id, tenant_id=self.tenant_id)

    async def history(self, conversation_id: str) -> list[ItemRecord]:
        conversation = await self.get(conversation_id)
        return await self.store.path(conversation_id, conversation.head_item_id, tenant_id=self.tenant_id)

    async def update(self, conversation_id: str, **fields: Any) -> ConversationRecord:
        return await self.store.update_conversation(conversation_id, tenant_id=self.tenant_id, **fields)

    async def undo(self, conversation_id: str) -> list[ItemRecord]:
        """Move the head back to before the last user turn; returns the items left behind.

        Nothing is deleted: the undone turn stays in the tree as a branch.
        """
        path = await self.history(conversation_id)
        last_user = next((i for i in range(len(path) - 1, -1, -1) if path[i].role == "user"), None)
        if last_user is None:
            raise InvalidInput("nothing to undo")
        new_head = path[last_user - 1].id if last_user > 0 else None
        await self.update(conversation_id, head_item_id=new_head)
        return path[last_user:]

    async def fork(self, conversation_id: str, at_item_id: str | None = None) -> ConversationRecord:
        """A new conversation holding a copy of the path up to ``at_item_id`` (default: head)."""
        source = await self.get(conversation_id)
        leaf = at_item_id or source.head_item_id
        path = await self.store.path(conversation_id, leaf, tenant_id=self.tenant_id)
        fork = await self.create(
            system_prompt=source.system_prompt,
            model=source.model,
            title=source.title,
            metadata={**source.metadata, "forked_from": conversation_id, "forked_at": leaf},
        )
        parent: str | None = None
        copies: list[ItemRecord] = []
        for item in path:
            copies.append(await self.store.append(fork.id, parent, _copy(item), tenant_id=self.tenant_id))
            parent = copies[-1].id
        if self.recall is not None:  # the fork recalls its copied rounds as the source does
            for done in split_rounds(copies):
                await self._best_effort("index", self.recall.index_round(fork.id, done.items, tenant_id=self.tenant_id))
        return await self.get(fork.id)

    # -- turns -------------------------------------------------------------------------------

    async def send(
        self,
        conversation_id: str,
        content: Sequence[Part],
        params: GenerationParams,
        *,
        policy: PolicyChoice | None = None,
        turn: TurnOptions | None = None,
    ) -> AsyncGenerator[Delta | Reply, None]:
        """Append the user's ``content`` and stream the reply: deltas, then one ``Reply``.

        ``policy`` (a preset name) overrides the conversation's, the model's and the default.
        ``turn`` departs from the conversation's defaults for this turn only (``TurnOptions``).
        """
        if not _has_input(content):
            raise InvalidInput("the message is empty")
        turn = turn or TurnOptions()
        conversation = await self.get(conversation_id)
        model, backend = self._backend(conversation, turn.model)
        chosen = self.policy(conversation, model, policy)
        check_capabilities([*turn.before, Message("user", tuple(content))], backend.info().capabilities, model)
        await backend.prepare()
        parent: Parent = HEAD if turn.parent_id is None else turn.parent_id
        for message in turn.before:
            count = await backend.count_tokens(message.text)
            parent = (
                await self.store.append(conversation_id, parent, _new_item(message, count), tenant_id=self.tenant_id)
            ).id
        token_count = await backend.count_tokens(_text(content))
        user = await self.store.append(
            conversation_id,
            parent,
            NewItem(role="user", content=tuple(content), token_count=token_count),
            tenant_id=self.tenant_id,
        )
        if conversation.title is None:
            conversation = await self.update(conversation_id, title=_title(content))
        if turn.instructions is not None:
            conversation = replace(conversation, system_prompt=turn.instructions)
        generate = self._generate(conversation, user, model, backend, params, chosen, turn.on_start)
        async with aclosing(generate) as events:
            async for event in events:
                yield event

    async def retry(
        self, conversation_id: str, params: GenerationParams, *, policy: PolicyChoice | None = None
    ) -> AsyncGenerator[Delta | Reply, None]:
        """Answer the last user item again; the new answer becomes a sibling of the old one."""
        path = await self.history(conversation_id)
        user = next((item for item in reversed(path) if item.role == "user"), None)
        if user is None:
            raise InvalidInput("nothing to retry: the conversation has no user message")
        conversation = await self.get(conversation_id)
        model, backend = self._backend(conversation)
        chosen = self.policy(conversation, model, policy)
        await backend.prepare()
        async with aclosing(self._generate(conversation, user, model, backend, params, chosen)) as events:
            async for event in events:
                yield event

    def _backend(self, conversation: ConversationRecord, override: str | None = None) -> tuple[str, Backend]:
        model = override or conversation.model or self.default_model
        return model, self._backend_for(model)

    async def _generate(
        self,
        conversation: ConversationRecord,
        user: ItemRecord,
        model: str,
        backend: Backend,
        params: GenerationParams,
        policy: Policy,
        on_start: Callable[[TurnStart], Awaitable[None]] | None = None,
    ) -> AsyncGenerator[Delta | Reply, None]:
        path = await self.store.path(conversation.id, user.id, tenant_id=self.tenant_id)
        messages, report = await self._plan(conversation, path, backend, params, policy)
        answer_id: str | None = None
        answer = Accumulator()
        status: Status = "incomplete"
        completed = False
        error: BaseException | None = None
        try:
            refuse_over_budget(report)
            if on_start is not None:
                answer_id = new_id("item")  # named now, after its parent: ids stay in creation order
                await on_start(TurnStart(conversation.id, tuple(i.id for i in path), answer_id, report))
            async with aclosing(backend.generate(messages, params)) as deltas:
                async for delta in deltas:
                    answer.add(delta)
                    yield delta
            completed = True
        except MultiturnError as exc:
            error = exc
            raise
        finally:
            result = answer.completion()
            finish = result.finish_reason
            if completed:
                status = "completed"
            elif error is not None:
                status, finish = ("incomplete" if result.content else "failed"), "error"
            else:
                finish = "cancelled"
            item = NewItem(
                role="assistant",
                content=(TextPart(result.content),) if result.content else (),
                status=status,
                reasoning=result.reasoning or None,
                tool_calls=result.tool_calls,
                model=model,
                usage=answer.usage,
                finish_reason=finish,
                token_count=answer.usage.completion_tokens if answer.usage else None,
                context_report={**asdict(report), "error": str(error)} if error else asdict(report),
                id=answer_id,
            )
            stored = await asyncio.shield(self.store.append(conversation.id, user.id, item, tenant_id=self.tenant_id))
            if status != "completed":
                log.info("stored %s answer %s in %s", status, stored.id, conversation.id)
            else:
                await asyncio.shield(self._remember(conversation, [*path, stored], backend, params, policy))
        yield Reply(
            conversation_id=conversation.id,
            item_id=stored.id,
            user_item_id=user.id,
            content=result.content,
            reasoning=result.reasoning,
            status=status,
            finish_reason=finish,
            usage=result.usage,
            model=model,
            tool_calls=result.tool_calls,
        )

    def policy_name(self, conversation: ConversationRecord, model: str, requested: str | None = None) -> str:
        """The preset a turn uses: the request's, else the conversation's, the model's, the default."""
        chosen = requested or conversation.metadata.get("policy") or self._policy_for_model(model)
        name = chosen or self.default_policy
        preset(name)  # unknown names fail here, as InvalidInput
        return name

    def policy(self, conversation: ConversationRecord, model: str, requested: PolicyChoice | None = None) -> Policy:
        """The policy a turn uses (see ``policy_name``); a ``Policy`` value is used as given."""
        if isinstance(requested, Policy):
            return requested
        return self._tune_policy(model, preset(self.policy_name(conversation, model, requested)))

    async def preview(
        self,
        conversation_id: str,
        content: Sequence[Part],
        *,
        policy: PolicyChoice | None = None,
        max_tokens: int | None = None,
    ) -> tuple[list[Message], ContextReport]:
        """The messages and report a turn with ``content`` would send now; nothing is written
        and no model is called (``/context``-style inspection, the memory benchmark)."""
        conversation = await self.get(conversation_id)
        model, backend = self._backend(conversation)
        chosen = self.policy(conversation, model, policy)
        path = await self.store.path(conversation_id, conversation.head_item_id, tenant_id=self.tenant_id)
        pending = ItemRecord(
            id="item_pending",
            conversation_id=conversation_id,
            parent_id=conversation.head_item_id,
            role="user",
            content=tuple(content),
            status="completed",
            created_at=0,
        )
        params = GenerationParams(max_tokens=max_tokens)
        return await self._plan(conversation, [*path, pending], backend, params, chosen, compact=False)

    async def _plan(
        self,
        conversation: ConversationRecord,
        path: Sequence[ItemRecord],
        backend: Backend,
        params: GenerationParams,
        policy: Policy,
        *,
        compact: bool = True,
    ) -> tuple[list[Message], ContextReport]:
        """Gather the memory the policy uses (best effort) and plan the request."""
        info = backend.info()
        reserved = reserved_output(info.context_window, info.max_output_tokens, params)
        summary = None
        if policy.uses_summary and self.compaction is not None:
            summary = (
                self.compaction.compact(
                    conversation.id,
                    conversation.system_prompt,
                    path,
                    window_tokens=prompt_budget(info.context_window, reserved, policy),
                    tenant_id=self.tenant_id,
                )
                if compact and not self._background_compaction
                else self.compaction.latest(conversation.id, path, tenant_id=self.tenant_id)
            )
        recall = None
        if policy.uses_recall and self.recall is not None:
            recall = self.recall.recall(conversation.id, path, tenant_id=self.tenant_id)
        return await self._compose(
            conversation.system_prompt,
            path,
            info.context_window,
            reserved,
            policy,
            summary,
            recall,
            measured_overhead(path),
        )

    async def _compose(
        self,
        system_prompt: str | None,
        path: Sequence[ItemRecord],
        window_tokens: int,
        reserved: int,
        policy: Policy,
        summary: Awaitable[Summary | None] | None,
        recall: Awaitable[list[Recalled]] | None,
        overhead: int = 0,
    ) -> tuple[list[Message], ContextReport]:
        """Await the memory jobs (best effort: a failure plans without that memory) and plan."""
        found = await self._best_effort("summarize", summary) if summary is not None else None
        recalled = (await self._best_effort("recall", recall) or []) if recall is not None else []
        return plan_context(
            system_prompt,
            path,
            policy=policy,
            window_tokens=window_tokens,
            reserved_output=reserved,
            tokenizer=self.tokenizer,
            summary=found,
            recalled=recalled,
            overhead=overhead,
        )

    async def _remember(
        self,
        conversation: ConversationRecord,
        path: Sequence[ItemRecord],
        backend: Backend,
        params: GenerationParams,
        policy: Policy,
    ) -> None:
        """After a completed answer: index its round; compact in the background if so set."""
        if self.recall is not None:
            rounds = split_rounds(path)
            if rounds:
                await self._best_effort(
                    "index", self.recall.index_round(conversation.id, rounds[-1].items, tenant_id=self.tenant_id)
                )
        if self.compaction is not None and policy.uses_summary and self._background_compaction:
            info = backend.info()
            budget = prompt_budget(
                info.context_window, reserved_output(info.context_window, info.max_output_tokens, params), policy
            )
            job = self.compaction.compact(
                conversation.id, conversation.system_prompt, path, window_tokens=budget, tenant_id=self.tenant_id
            )
            task = asyncio.get_running_loop().create_task(self._best_effort("summarize", job))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def drain(self) -> None:
        """Wait for background work (summaries) started by earlier turns."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def _best_effort(self, what: str, job: Awaitable[_T]) -> _T | None:
        try:
            return await job
        except asyncio.CancelledError:
            raise
        except Exception:
            log.warning("%s failed; the turn goes on without it", what, exc_info=True)
            return None

    # -- stateless ---------------------------------------------------------------------------

    async def complete(self, request: ChatRequest) -> AsyncGenerator[Delta, None]:
        """Answer a stateless request (the gateway's pass-through endpoints): nothing is stored.

        Raises, before the first delta: ``ModelNotFound``, ``UnsupportedContent`` (a part the
        model cannot read), ``ContextTooLong``, ``ModelError``; later: ``BackendError``.
        """
        backend = await self._stateless_backend(request)
        async with aclosing(backend.generate(request.messages, request.params)) as deltas:
            async for delta in deltas:
                yield delta

    async def complete_once(self, request: ChatRequest) -> Completion:
        """The whole answer to a stateless request (non-streaming endpoints); stores nothing."""
        backend = await self._stateless_backend(request)
        if completes(backend):
            return await backend.complete(request.messages, request.params)
        answer = Accumulator()
        async with aclosing(backend.generate(request.messages, request.params)) as deltas:
            async for delta in deltas:
                answer.add(delta)
        return answer.completion()

    async def plan_stateless(
        self, request: ChatRequest, policy: PolicyChoice
    ) -> tuple[ChatRequest, ContextReport, list[str]]:
        """Apply a context policy to a stateless request's own array (the gateway's opt-in).

        The messages become an unstored path whose item ids chain a hash of each message and
        its predecessor (``message_ids``), so the same prefix always has the same ids and a
        summary stored for it (by ``prefix_hash``) is found again when the array is resent.
        Returns the request with the planned messages, the report, and the ids in array order
        (the report's ids map back to positions in the incoming array).
        """
        chosen = policy if isinstance(policy, Policy) else self._tune_policy(request.model, preset(policy))
        backend = self._backend_for(request.model)
        ids, path = unstored_path(request.messages)
        info = backend.info()
        reserved = reserved_output(info.context_window, info.max_output_tokens, request.params)
        summary = None
        if chosen.uses_summary and self.compaction is not None:
            budget = prompt_budget(info.context_window, reserved, chosen)
            summary = self.compaction.compact_prefix(path, window_tokens=budget, tenant_id=self.tenant_id)
        recall = self.recall.recall_unstored(path) if chosen.uses_recall and self.recall is not None else None
        messages, report = await self._compose(None, path, info.context_window, reserved, chosen, summary, recall)
        refuse_over_budget(report)
        return replace(request, messages=tuple(messages)), report, ids

    async def _stateless_backend(self, request: ChatRequest) -> Backend:
        """The request's backend, checked against its parts and prepared."""
        backend = self._backend_for(request.model)
        check_capabilities(request.messages, backend.info().capabilities, request.model)
        await backend.prepare()
        return backend


def refuse_over_budget(report: ContextReport) -> None:
    """Raise ``ContextTooLong`` (Model Studio's message) when even the newest round alone did
    not fit the plan's budget."""
    if report.over_budget:
        raise ContextTooLong(
            f"Range of input length should be [1, {report.budget}]: the newest message alone "
            f"needs {report.tokens} tokens",
            prompt_tokens=report.tokens,
            limit=report.budget or 0,
        )


def _has_input(content: Sequence[Part]) -> bool:
    return any(not isinstance(p, TextPart) or p.text.strip() for p in content)


def _text(content: Sequence[Part]) -> str:
    return "".join(p.text for p in content if isinstance(p, TextPart))


def _title(content: Sequence[Part]) -> str:
    first = _text(content).strip().splitlines()
    title = first[0] if first else "(no text)"
    return title if len(title) <= 60 else title[:59] + "…"


def _new_item(message: Message, token_count: int) -> NewItem:
    return NewItem(
        role=message.role,
        content=message.content,
        tool_calls=message.tool_calls,
        tool_call_id=message.tool_call_id,
        token_count=token_count,
    )


def _copy(item: ItemRecord) -> NewItem:
    return NewItem(
        role=item.role,
        content=item.content,
        status=item.status,
        reasoning=item.reasoning,
        tool_calls=item.tool_calls,
        tool_call_id=item.tool_call_id,
        model=item.model,
        usage=item.usage,
        finish_reason=item.finish_reason,
        token_count=item.token_count,
        context_report=item.context_report,
    )


__all__ = ["BackendFor", "Engine", "TurnOptions", "TurnStart"]
