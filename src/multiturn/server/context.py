"""The gateway's opt-in context policy for stateless requests.

By default a stateless request's array is forwarded as it came. A client opts in per request
with the ``X-Multiturn-Policy`` header (a preset name) or a model-name suffix
(``qwen-plus@window``), or per API key (the key's stored policy); ``X-Multiturn-Budget`` caps the
prompt tokens. The engine then plans the array as it plans a stored conversation (window,
summary, recall) and the response carries ``X-Multiturn-Context``: the report as compact JSON,
with item positions in the incoming array written as ranges (``"0-3,8,10-12"``).
"""

from __future__ import annotations

import json
from dataclasses import replace

from starlette.requests import Request

from ..context.plan import PRESETS, Policy, preset
from ..errors import InvalidInput
from ..types import ChatRequest, ContextReport, spans_text
from .gateway import Gateway

POLICY_HEADER = "x-multiturn-policy"
BUDGET_HEADER = "x-multiturn-budget"
REPORT_HEADER = "x-multiturn-context"
SUFFIX = "@"


def requested_policy(request: Request, chat: ChatRequest) -> tuple[ChatRequest, Policy | None]:
    """The request without a policy suffix on its model name, and the policy it asks for."""
    name = request.headers.get(POLICY_HEADER)
    base, sep, suffix = chat.model.rpartition(SUFFIX)
    if sep and base and suffix in PRESETS:
        chat = replace(chat, model=base)
        name = name or suffix
    name = name or getattr(request.state, "key_policy", None)
    budget = request.headers.get(BUDGET_HEADER)
    if name is None and budget is None:
        return chat, None
    policy = preset(name.strip().lower() if name else "window")
    if budget is not None:
        if not budget.strip().isdigit() or int(budget) < 1:
            raise InvalidInput(f"{BUDGET_HEADER} must be a positive number of tokens, not {budget!r}")
        policy = replace(policy, budget=int(budget))
    return chat, policy


async def apply_policy(gateway: Gateway, request: Request, chat: ChatRequest) -> tuple[ChatRequest, dict[str, str]]:
    """The request as the engine will answer it, and the response headers that report it."""
    chat, policy = requested_policy(request, chat)
    if policy is None:
        return chat, {}
    tenant = getattr(request.state, "tenant_id", None)
    engine = gateway.engine.for_tenant(tenant) if tenant else gateway.engine
    planned, report, _ = await engine.plan_stateless(chat, policy)
    return planned, {REPORT_HEADER: report_header(report)}


def report_header(report: ContextReport) -> str:
    """The report as compact JSON: each fate as runs of positions in the incoming array."""
    body = {
        "policy": report.policy,
        "budget": report.budget,
        "tokens": report.tokens,
        "tokens_by_part": report.tokens_by_part,
        "kept": spans_text(report.kept),
        "dropped": spans_text(report.dropped),
        "summarized": spans_text(report.summarized),
        "recalled": spans_text(report.recalled),
    }
    return json.dumps(body, separators=(",", ":"))
