"""The engine: the only sequencer. It owns the policies, the planning of each request (with
the memory around it: summary, recall) and stateless answers; stored turns run through its
``TurnService`` (``turns.py``), conversations and their items through ``ConversationOps``
(``conversations.py``). It speaks canonical types only: it never sees a wire format and never
prints.
"""

from __future__ import annotations

import asyncio
import copy
import logging
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from contextlib import aclosing
from dataclasses import replace
from typing import TypeVar

from ..backends.base import Backend, completes
from ..backends.capabilities import check_capabilities, check_params
from ..context.budget import measured_overhead, prompt_budget, reserved_output
from ..context.cache import PlanCache
from ..context.plan import Policy, plan_context, preset
from ..context.retrieval import Recalled
from ..context.rounds import last_round_items
from ..context.summary import Summary
from ..context.unstored import unstored_path
from ..errors import InvalidInput
from ..memory.base import Compaction, Recall
from ..pricing import Price, with_cost
from ..records import ConversationRecord, ItemRecord
from ..store.base import DEFAULT_TENANT, Store
from ..tokens import ImageEstimate, Tokenizer, default_tokenizer
from ..types import Accumulator, ChatRequest, Completion, ContextReport, Delta, GenerationParams, Message, Part, Reply
from .conversations import ConversationOps
from .turns import Turn, TurnOptions, TurnService, refuse_over_budget

log = logging.getLogger(__name__)
_T = TypeVar("_T")

BackendFor = Callable[[str], Backend]
PolicyChoice = str | Policy
"""A preset name, or a ``Policy`` value (benchmarks and tests build their own)."""


class Engine(ConversationOps):
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
        price_for: Callable[[str], Price | None] = lambda model: None,
        tokenizer: Tokenizer | None = None,
        plan_cache: PlanCache | None = None,
        recall: Recall | None = None,
        compaction: Compaction | None = None,
        background_compaction: bool = False,
    ) -> None:
        self.store = store
        self.recall = recall
        self.compaction = compaction
        self._background_compaction = background_compaction
        self.turns = TurnService(store)
        self._backend_for = backend_for
        self.default_model = default_model
        self.tenant_id = tenant_id
        self.default_policy = default_policy
        self._policy_for_model = policy_for_model
        self._tune_policy = tune_policy
        self._price_for = price_for
        self.tokenizer = tokenizer or default_tokenizer()
        self.plan_cache = plan_cache or PlanCache()
        """What planning remembers between turns (bounded; shared by tenant-scoped copies)."""
        self._other_plan_caches: dict[ImageEstimate, PlanCache] = {}

    def for_tenant(self, tenant_id: str) -> Engine:
        """This engine scoped to another tenant: same store, backends, memory and settings."""
        if tenant_id == self.tenant_id:
            return self
        scoped = copy.copy(self)
        scoped.tenant_id = tenant_id
        return scoped

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
        """Answer ``content`` as the conversation's next turn: deltas, then one ``Reply``.

        At the head the turn waits for the conversation's open turns (``turns.py``).
        ``policy`` (a preset name) overrides the conversation's, the model's and the default;
        ``turn`` departs from the conversation's defaults for this turn only (``TurnOptions``).
        """
        events = self.turn(conversation_id, content, params, policy=policy, options=turn).events()
        async with aclosing(events) as stream:
            async for event in stream:
                yield event

    def turn(
        self,
        conversation_id: str,
        content: Sequence[Part] | None,
        params: GenerationParams,
        *,
        policy: PolicyChoice | None = None,
        options: TurnOptions | None = None,
    ) -> Turn:
        """A stored turn to run (``Turn.events()``); ``content`` ``None`` answers the parent
        (``options.parent_id``) again."""
        return Turn(self, conversation_id, content, params, policy, options or TurnOptions())

    async def retry(
        self, conversation_id: str, params: GenerationParams, *, policy: PolicyChoice | None = None
    ) -> AsyncGenerator[Delta | Reply, None]:
        """Answer the last user item again; the new answer becomes a sibling of the old one."""
        path = await self.history(conversation_id)
        user = next((item for item in reversed(path) if item.role == "user"), None)
        if user is None:
            raise InvalidInput("nothing to retry: the conversation has no user message")
        events = self.turn(conversation_id, None, params, policy=policy, options=TurnOptions(parent_id=user.id))
        async with aclosing(events.events()) as stream:
            async for event in stream:
                yield event

    def backend_for(self, conversation: ConversationRecord, override: str | None = None) -> tuple[str, Backend]:
        """The model a turn of ``conversation`` uses (``override``, the conversation's, the
        default) and its backend."""
        model = override or conversation.model or self.default_model
        return model, self._backend_for(model)

    def price(self, model: str) -> Price | None:
        """What a turn on ``model`` costs per token (``multiturn.pricing``); ``None``: not known."""
        return self._price_for(model)

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
        model, backend = self.backend_for(conversation)
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
        return await self.plan_turn(conversation, [*path, pending], backend, params, chosen, compact=False)

    async def plan_turn(
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
        budget = prompt_budget(info.context_window, reserved, policy)
        summary = None
        if policy.uses_summary and self.compaction is not None:
            summary = (
                self.compaction.compact(
                    conversation.id, conversation.system_prompt, path, window_tokens=budget, tenant_id=self.tenant_id
                )
                if compact and not self._background_compaction
                else self.compaction.latest(conversation.id, path, tenant_id=self.tenant_id)
            )
        recall = None
        if policy.uses_recall and self.recall is not None:
            await self.turns.indexed(conversation.id)  # the rounds answered last are indexed in the background
            recall = self.recall.recall(
                conversation.id, path, tenant_id=self.tenant_id, budget=recall_budget(policy, budget)
            )
        return await self._compose(
            conversation.system_prompt,
            path,
            info.context_window,
            reserved,
            policy,
            summary,
            recall,
            measured_overhead(path),
            images=info.image_tokens,
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
        *,
        images: ImageEstimate = "qwen-vl",
    ) -> tuple[list[Message], ContextReport]:
        """Await the memory jobs (best effort: a failure plans without that memory) and plan,
        counting images as the model does (``images``), with the planner cache of that count."""
        found = await self.best_effort("summarize", summary) if summary is not None else None
        recalled = (await self.best_effort("recall", recall) or []) if recall is not None else []
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
            cache=self._plan_cache(images),
            images=images,
        )

    def _plan_cache(self, images: ImageEstimate) -> PlanCache:
        """The planner cache of models that count images as ``images``: ``plan_cache`` for
        the default count (Qwen-VL's), one more for each other count in use (token counts and
        windows are not keyed by it)."""
        if images == self.plan_cache.images:
            return self.plan_cache
        cache = self._other_plan_caches.get(images)
        if cache is None:
            cache = self._other_plan_caches[images] = PlanCache(self.plan_cache.size, images=images)
        return cache

    def memory_jobs(
        self,
        conversation: ConversationRecord,
        path: Sequence[ItemRecord],
        backend: Backend,
        params: GenerationParams,
        policy: Policy,
    ) -> list[tuple[str, Awaitable[object]]]:
        """What a completed answer sets going (in the background: ``TurnService.after``):
        indexing its round, when the turn recalls (other conversations are indexed when they
        first recall: ``IndexRecall.recall`` catches up); the rolling summary when it runs in
        the background."""
        jobs: list[tuple[str, Awaitable[object]]] = []
        if self.recall is not None and policy.uses_recall:
            last = last_round_items(path)
            if last:
                jobs.append(("index", self.recall.index_round(conversation.id, last, tenant_id=self.tenant_id)))
        if self.compaction is not None and policy.uses_summary and self._background_compaction:
            info = backend.info()
            budget = prompt_budget(
                info.context_window, reserved_output(info.context_window, info.max_output_tokens, params), policy
            )
            job = self.compaction.compact(
                conversation.id, conversation.system_prompt, path, window_tokens=budget, tenant_id=self.tenant_id
            )
            jobs.append(("summarize", job))
        return jobs

    async def drain(self) -> None:
        """Wait for background work (indexing, summaries, turn ends being written)."""
        await self.turns.drain()

    async def aclose(self) -> None:
        """Finish background work, stop the turn service, release memory's connections (an
        upstream embedder's)."""
        await self.turns.close()
        close = getattr(self.recall, "aclose", None)
        if close is not None:
            await close()

    async def best_effort(self, what: str, job: Awaitable[_T]) -> _T | None:
        """Await a memory job; a failure is logged and the turn goes on without it."""
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
        price = self.price(request.model)
        async with aclosing(backend.generate(request.messages, request.params)) as deltas:
            async for delta in deltas:
                yield delta if delta.usage is None else replace(delta, usage=with_cost(delta.usage, price))

    async def complete_once(self, request: ChatRequest) -> Completion:
        """The whole answer to a stateless request (non-streaming endpoints); stores nothing."""
        backend = await self._stateless_backend(request)
        if completes(backend):
            done = await backend.complete(request.messages, request.params)
        else:
            answer = Accumulator()
            async with aclosing(backend.generate(request.messages, request.params)) as deltas:
                async for delta in deltas:
                    answer.add(delta)
            done = answer.completion()
        return replace(done, usage=with_cost(done.usage, self.price(request.model)))

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
        budget = prompt_budget(info.context_window, reserved, chosen)
        summary = None
        if chosen.uses_summary and self.compaction is not None:
            summary = self.compaction.compact_prefix(path, window_tokens=budget, tenant_id=self.tenant_id)
        recall = None
        if chosen.uses_recall and self.recall is not None:
            recall = self.recall.recall_unstored(path, budget=recall_budget(chosen, budget))
        messages, report = await self._compose(
            None, path, info.context_window, reserved, chosen, summary, recall, images=info.image_tokens
        )
        refuse_over_budget(report)
        return replace(request, messages=tuple(messages)), report, ids

    async def _stateless_backend(self, request: ChatRequest) -> Backend:
        """The request's backend, checked against its parts and prepared."""
        backend = self._backend_for(request.model)
        info = backend.info()
        check_capabilities(request.messages, info, request.model)
        check_params(request.params, info, request.model)
        await backend.prepare()
        return backend


def recall_budget(policy: Policy, budget: int) -> int | None:
    """The budget recall sizes its candidates by: the prompt's, when the policy sets one. With
    none, recall hands over its floors (~12,000 tokens of candidates, ``memory.ranking.Tuning``):
    a policy with no budget on a large model's window does not quote the conversation back
    whole at every turn; a budget lets recall fill more."""
    return budget if policy.budget is not None else None


__all__ = ["BackendFor", "Engine", "PolicyChoice"]
