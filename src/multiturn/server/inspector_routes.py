"""The inspector's JSON endpoints (``/v1/inspector/...``), which the web app
(``multiturn/web/``) calls beside the Responses and Conversations APIs. Each route only
translates: authenticate (the same keys and tenants as the API: a key sees only its tenant's
conversations), parse (``inspector_wire``), call the engine's ``Inspector`` or the replay
service, encode.

- ``GET  conversations?q=&limit=``: the tenant's conversations, newest activity first; ``q``
  keeps those whose title or item text matches every word.
- ``GET  conversations/{id}``: the conversation and its whole tree.
- ``POST conversations/{id}/head`` ``{"item_id"}``: switch branches (the next turn continues there).
- ``POST conversations/{id}/undo``: the head back to before the last user message.
- ``POST conversations/{id}/retry`` ``{"item_id", ...}``: answer a user message again (a sibling
  answer), streamed as Responses events.
- ``GET  conversations/{id}/items/{item_id}/context``: an answer's context: fates, summary,
  recall, token split, cached prefix, the prompt's departure from the previous turn's.
- ``POST conversations/{id}/items/{item_id}/whatif`` ``{"policy", "budget"}``: that turn
  re-planned (no model call): fates, tokens, cached tokens and cost.
"""

from __future__ import annotations

from typing import NoReturn

from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Match, Mount, NoMatchFound, Route
from starlette.staticfiles import StaticFiles
from starlette.types import Receive, Scope, Send

from ..context.plan import preset
from ..engine import Engine
from ..engine.inspect import Inspector, TurnContext, report_of
from ..engine.replay import TurnReplay, replan_turn
from ..errors import InvalidParameter
from ..ids import new_id, now_ms
from ..protocols.responses import translate as responses_wire
from ..protocols.responses.stream import ResponseEventEncoder
from ..records import ItemRecord
from ..types import ContextReport, Cost, Fate, GenerationParams, Usage
from . import inspector_wire as wire
from .gateway import gateway_of
from .stateful import REPORT_HEADER, deltas_of, report_header, tenant_route
from .streaming import EventStream, encode, prime

PREFIX = "/v1/inspector"
MAX_LIST = 100
FATES: tuple[Fate, ...] = ("kept", "recalled", "summarized", "dropped")


def _json(model: BaseModel) -> Response:
    return Response(model.model_dump_json(), media_type="application/json")


def _cost(cost: Cost | None) -> wire.CostObject | None:
    if cost is None:
        return None
    return wire.CostObject(
        currency=cost.currency,
        input=cost.input,
        cached_input=cost.cached_input,
        output=cost.output,
        total=cost.total,
        conversation=cost.conversation,
    )


def _usage(usage: Usage | None) -> wire.UsageObject | None:
    if usage is None:
        return None
    return wire.UsageObject(
        prompt_tokens=usage.prompt_tokens,
        completion_tokens=usage.completion_tokens,
        cached_tokens=usage.cached_tokens,
        reasoning_tokens=usage.reasoning_tokens,
        cost=_cost(usage.cost),
    )


def _counts(report: ContextReport) -> dict[str, int]:
    return {fate: report.count(fate) for fate in FATES}


def _tree_item(item: ItemRecord) -> wire.TreeItem:
    report = report_of(item) if item.role == "assistant" else None
    return wire.TreeItem(
        id=item.id,
        parent_id=item.parent_id,
        role=item.role,
        text=item.text,
        reasoning=item.reasoning,
        status=item.status,
        created_at=item.created_at,
        model=item.model,
        finish_reason=item.finish_reason,
        tool_calls=[wire.ToolCallObject(id=c.id, name=c.name, arguments=c.arguments) for c in item.tool_calls],
        usage=_usage(item.usage),
        policy=report.policy if report else None,
        context_tokens=report.tokens if report else None,
    )


@tenant_route
async def conversations(request: Request, engine: Engine) -> Response:
    query = request.query_params.get("q") or None
    raw = request.query_params.get("limit", "50")
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_LIST:
        raise InvalidParameter(f"limit must be an integer in [1, {MAX_LIST}], not {raw!r}", param="limit")
    found = await Inspector(engine).conversations(query, limit=int(raw))
    data = [
        wire.ListedConversation(
            id=c.conversation.id,
            title=c.conversation.title,
            preview=c.preview,
            model=c.conversation.model,
            policy=c.conversation.metadata.get("policy"),
            created_at=c.conversation.created_at,
            updated_at=c.conversation.updated_at,
            head_item_id=c.conversation.head_item_id,
            matched=c.matched,
        )
        for c in found
    ]
    return _json(wire.ConversationList(data=data))


@tenant_route
async def tree(request: Request, engine: Engine) -> Response:
    conversation, items = await Inspector(engine).tree(request.path_params["id"])
    return _json(
        wire.TreeObject(
            id=conversation.id,
            title=conversation.title,
            model=conversation.model,
            policy=conversation.metadata.get("policy"),
            system_prompt=conversation.system_prompt,
            head_item_id=conversation.head_item_id,
            items=[_tree_item(item) for item in items],
        )
    )


@tenant_route
async def head(request: Request, engine: Engine) -> Response:
    ask = wire.parse(wire.HeadRequest, await gateway_of(request).read_body(request))
    moved = await Inspector(engine).move_head(request.path_params["id"], ask.item_id)
    return _json(wire.HeadObject(id=moved.id, head_item_id=moved.head_item_id))


@tenant_route
async def undo(request: Request, engine: Engine) -> Response:
    wire.parse(wire.UndoRequest, await gateway_of(request).read_body(request))
    conversation_id = request.path_params["id"]
    await engine.undo(conversation_id)
    moved = await engine.get(conversation_id)
    return _json(wire.HeadObject(id=moved.id, head_item_id=moved.head_item_id))


@tenant_route
async def retry(request: Request, engine: Engine) -> Response:
    ask = wire.parse(wire.RetryRequest, await gateway_of(request).read_body(request))
    if ask.context_policy is not None:
        preset(ask.context_policy)
    conversation_id = request.path_params["id"]
    params = GenerationParams(max_tokens=ask.max_output_tokens)
    turn = await Inspector(engine).retry(
        conversation_id, ask.item_id, params, policy=ask.context_policy, model=ask.model
    )
    deltas = await prime(deltas_of(turn))
    assert turn.start is not None
    conversation = await engine.get(conversation_id)
    state = responses_wire.ResponseState(
        id=new_id("resp"),
        created_at=now_ms() // 1000,
        model=ask.model or conversation.model or engine.default_model,
        status="in_progress",
        conversation_id=conversation_id,
        echo={"store": True},
        context_report=turn.start.report,
    )
    encoder = ResponseEventEncoder(state, turn.start.answer_id)
    headers = {REPORT_HEADER: report_header(turn.start.report)}
    return EventStream(encode(encoder, deltas, head=encoder.start()), headers=headers)


def _context(found: TurnContext) -> wire.TurnContextObject:
    report, diff = found.report, found.diff
    summary = found.summary
    return wire.TurnContextObject(
        conversation_id=found.conversation.id,
        answer_id=found.answer.id,
        model=found.answer.model,
        policy=report.policy,
        budget=report.budget,
        tokens=report.tokens,
        over_budget=report.over_budget,
        tokens_by_part=dict(report.tokens_by_part),
        counts=_counts(report),
        items=[
            wire.FatedItem(
                id=f.item.id,
                position=f.position,
                role=f.item.role,
                text=f.item.text,
                status=f.item.status,
                fate=f.fate,
                score=f.score,
                why=f.why,
            )
            for f in found.items
        ],
        summary=wire.SummaryObject(
            id=summary.id, text=summary.text, through_item_id=summary.through_item_id, token_count=summary.token_count
        )
        if summary
        else None,
        query_words=list(found.query_words),
        usage=_usage(found.answer.usage),
        diff=wire.PromptDiffObject(
            previous_item_id=found.previous_id or "",
            cause=diff.cause,
            explanation=diff.explanation,
            common_chars=diff.common_chars,
            common_tokens=diff.common_tokens,
            previous_tokens=diff.previous_tokens,
            current_tokens=diff.current_tokens,
            previous_segment=diff.previous_segment,
            current_segment=diff.current_segment,
            previous_excerpt=diff.previous_excerpt,
            current_excerpt=diff.current_excerpt,
            dropped_ids=list(diff.dropped_ids),
            policy_change=list(diff.policy_change) if diff.policy_change else None,
            cached_tokens=diff.cached_tokens,
            segments=[wire.SegmentTokens(kind=kind, tokens=n) for kind, n in diff.segments],
        )
        if diff
        else None,
    )


@tenant_route
async def context(request: Request, engine: Engine) -> Response:
    found = await Inspector(engine).turn(request.path_params["id"], request.path_params["item_id"])
    return _json(_context(found))


def _what_if(replayed: TurnReplay) -> wire.WhatIfObject:
    plan, report = replayed.plan, replayed.plan.report
    stored = replayed.stored
    return wire.WhatIfObject(
        answer_id=replayed.item_id,
        policy=plan.policy,
        budget=plan.budget,
        tokens=report.tokens,
        over_budget=report.over_budget,
        tokens_by_part=dict(report.tokens_by_part),
        cached_tokens=plan.cached_tokens,
        counts=_counts(report),
        cost=_cost(plan.cost),
        stored_tokens=stored.tokens if stored else None,
        stored_cost=_cost(replayed.stored_usage.cost) if replayed.stored_usage else None,
        items=[
            wire.WhatIfItem(
                id=item_id,
                position=n,
                fate=report.fate(n),
                stored_fate=stored.fate(n) if stored else None,
                score=report.recalled_scores.get(n),
            )
            for n, item_id in enumerate(replayed.path)
        ],
        evidence_dropped=list(replayed.evidence.dropped) if replayed.evidence else [],
        evidence_gained=list(replayed.evidence.gained) if replayed.evidence else [],
    )


@tenant_route
async def what_if(request: Request, engine: Engine) -> Response:
    ask = wire.parse(wire.WhatIfRequest, await gateway_of(request).read_body(request))
    replayed = await replan_turn(
        engine,
        request.path_params["id"],
        request.path_params["item_id"],
        policy=ask.policy,
        budget=ask.budget,
        max_tokens=ask.max_output_tokens,
    )
    return _json(_what_if(replayed))


class _Home(BaseRoute):
    """``GET /``: a redirect to the web app. A route of its own kind, not a ``Route``: it is no
    API operation, so the OpenAPI document does not list it (nor the static files under ``/ui``)."""

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if scope["type"] == "http" and scope["path"] == "/" and scope["method"] in ("GET", "HEAD"):
            return Match.FULL, {}
        return Match.NONE, {}

    def url_path_for(self, name: str, /, **path_params: object) -> NoReturn:
        raise NoMatchFound(name, path_params)

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        await RedirectResponse(f"{WEB}/")(scope, receive, send)


WEB = "/ui"
web_routes: list[BaseRoute] = [
    Mount(WEB, app=StaticFiles(packages=[("multiturn", "web")], html=True), name="web"),
    _Home(),
]
"""The web app: its files (``multiturn/web/``, shipped in the package) and ``/`` leading there."""

routes = [
    Route(f"{PREFIX}/conversations", conversations, methods=["GET"]),
    Route(f"{PREFIX}/conversations/{{id}}", tree, methods=["GET"]),
    Route(f"{PREFIX}/conversations/{{id}}/head", head, methods=["POST"]),
    Route(f"{PREFIX}/conversations/{{id}}/undo", undo, methods=["POST"]),
    Route(f"{PREFIX}/conversations/{{id}}/retry", retry, methods=["POST"]),
    Route(f"{PREFIX}/conversations/{{id}}/items/{{item_id}}/context", context, methods=["GET"]),
    Route(f"{PREFIX}/conversations/{{id}}/items/{{item_id}}/whatif", what_if, methods=["POST"]),
]
