"""``multiturn replay CONV_ID``: re-plan every answer of a stored conversation under one or more
context policies and budgets, without calling a model (``engine/replay.py`` does the work).

The table has one row per policy x budget, and one for the turns as they were answered: tokens
sent, the cached share (prefix simulation for the plans, the backend's count for the stored
turns), the cost under the model's price, and the turns whose evidence the plan drops.
``--plot FILE`` writes the same per turn as a PNG (matplotlib, the ``bench`` extra).
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from .. import codec
from ..bench.plots import pyplot
from ..client import AsyncClient
from ..engine.replay import Replay, TurnReplay, replay, stored_totals, totals
from ..errors import InvalidInput, MissingDependency
from ..store.base import DEFAULT_TENANT
from .options import Db, settings
from .progress import counting
from .render import replay_table, stdout_console

NO_BUDGET = ("none", "model", "window")
"""Words for "no budget of its own": the policy's, under the model's window."""


def parse_policies(value: str) -> list[str]:
    names = [part.strip().lower() for part in value.split(",") if part.strip()]
    if not names:
        raise InvalidInput("--policy needs at least one policy (full, window, summary, retrieval, auto)")
    return names


def parse_budgets(value: str) -> list[int | None]:
    """``2k,4k,none`` to ``[2000, 4000, None]``.

    Raises:
        InvalidInput: anything else, or a budget below one token.
    """
    budgets: list[int | None] = []
    for part in (p.strip().lower() for p in value.split(",")):
        if not part:
            continue
        if part in NO_BUDGET:
            budgets.append(None)
            continue
        try:
            tokens = round(float(part[:-1]) * 1000) if part.endswith("k") else int(part)
        except ValueError:
            raise InvalidInput(f"bad budget {part!r}: use token counts such as 2000 or 2k, or none") from None
        if tokens < 1:
            raise InvalidInput(f"bad budget {part!r}: a budget is at least one token")
        budgets.append(tokens)
    if not budgets:
        raise InvalidInput("--budget needs at least one budget (2000, 2k, or none)")
    return budgets


def replay_command(
    conversation_id: Annotated[str, typer.Argument(help="Conversation id (see `multiturn conversations list`)")],
    policy: Annotated[
        str, typer.Option("--policy", "-p", help="Comma-separated: full, window, summary, retrieval, auto")
    ] = "window",
    budget: Annotated[
        str, typer.Option("--budget", "-b", help="Comma-separated token budgets (2000 or 2k); none: the model's window")
    ] = "none",
    max_tokens: Annotated[
        int | None, typer.Option(min=1, metavar="N", help="Answer length each turn reserves [default: the settings']")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print every turn of every run as JSON")] = False,
    plot: Annotated[
        Path | None, typer.Option(metavar="FILE", help="Write a PNG: tokens, cached share and cost per turn")
    ] = None,
    db: Db = None,
    tenant: Annotated[str, typer.Option("--tenant", help="The tenant whose conversation this is")] = DEFAULT_TENANT,
) -> None:
    """Re-plan every answer of a stored conversation under other policies and budgets (no model call).

    For each policy x budget, each answer's request is planned as the turn would plan it, over the
    same path: tokens sent, the share a prefix cache would serve (the longest common prefix with the
    previous answer's request, planned the same way), the cost at the model's price (the stored
    answer's output tokens), and the turns that lose evidence: items the answered turn sent
    (verbatim or recalled) that the new plan leaves out or only summarizes.
    """
    policies, budgets = parse_policies(policy), parse_budgets(budget)
    s = settings(db=db)
    reserve = max_tokens or s.max_tokens
    err = Console(stderr=True)

    async def main() -> Replay:
        async with AsyncClient(s) as client:
            engine = client.engine.for_tenant(tenant)
            with counting("planned", err, lines_above=100) as advance:
                return await replay(engine, conversation_id, policies, budgets, max_tokens=reserve, on_turn=advance)

    result = asyncio.run(main())
    if not result.runs or not result.runs[0][2]:
        raise InvalidInput(f"conversation {conversation_id!r} has no answers to replay")
    if plot is not None:
        try:
            write_plot(result, plot)
        except MissingDependency as exc:
            err.print(f"no plot: {exc.message}")
    if as_json:
        typer.echo(json.dumps(to_json(result), indent=2, ensure_ascii=False))
        return
    stdout_console().print(replay_table(result))


def _turn_json(turn: TurnReplay) -> dict[str, Any]:
    plan = turn.plan
    return {
        "turn": turn.index,
        "item_id": turn.item_id,
        "model": turn.model,
        "tokens": plan.tokens,
        "cached_tokens": plan.cached_tokens,
        "cost": codec.encode_cost(plan.cost) if plan.cost is not None else None,
        "report": codec.encode_report(plan.report),
        "evidence": {
            "sent": list(turn.evidence.sent),
            "dropped": list(turn.evidence.dropped),
            "gained": list(turn.evidence.gained),
        }
        if turn.evidence is not None
        else None,
        "stored": {
            "report": codec.encode_report(turn.stored) if turn.stored is not None else None,
            "usage": codec.encode_usage(turn.stored_usage) if turn.stored_usage is not None else None,
        },
    }


def to_json(result: Replay) -> dict[str, Any]:
    """The replay as plain JSON: per run its totals and every turn; the stored turns' totals."""
    first = result.runs[0][2] if result.runs else ()
    return {
        "conversation_id": result.conversation_id,
        "stored": _totals_json(stored_totals(first)),
        "runs": [
            {"policy": policy, "budget": budget, **_totals_json(totals(turns)), "turns": [_turn_json(t) for t in turns]}
            for policy, budget, turns in result.runs
        ],
    }


def _totals_json(t: Any) -> dict[str, Any]:
    return {
        "turns": t.turns,
        "tokens": t.tokens,
        "cached_share": t.cached_share,
        "cost": t.cost,
        "currency": t.currency,
        "evidence_lost_turns": list(t.lost),
        "evidence_dropped": t.dropped,
        "over_budget_turns": list(t.over_budget),
    }


def write_plot(result: Replay, path: Path) -> None:
    """Three panels side by side, one line per policy x budget: tokens sent, cached share and
    cumulative cost per turn; turns that lose evidence are marked with an x.

    Raises:
        MissingDependency: matplotlib (the ``bench`` extra) is not installed.
    """
    plt = pyplot()
    figure, (tokens_ax, cached_ax, cost_ax) = plt.subplots(1, 3, figsize=(15, 4.5), dpi=110)
    currency = None
    for policy, budget, turns in result.runs:
        label = f"{policy} @ {budget:,}" if budget is not None else f"{policy} @ model"
        x = [turn.index for turn in turns]
        line = tokens_ax.plot(x, [turn.plan.tokens for turn in turns], marker=".", label=label)[0]
        lost = [turn for turn in turns if turn.evidence is not None and turn.evidence.dropped]
        tokens_ax.scatter([t.index for t in lost], [t.plan.tokens for t in lost], marker="x", color=line.get_color())
        cached_ax.plot(x, [turn.plan.cached_share for turn in turns], marker=".", label=label)
        spent, running = 0.0, []
        for turn in turns:
            spent += turn.plan.cost.total if turn.plan.cost is not None else 0.0
            currency = currency or (turn.plan.cost.currency if turn.plan.cost is not None else None)
            running.append(spent)
        cost_ax.plot(x, running, marker=".", label=label)
    tokens_ax.set_title("tokens sent (x: evidence dropped)")
    cached_ax.set_title("cached share (prefix simulation)")
    cached_ax.set_ylim(0, 1)
    cost_ax.set_title(f"cumulative cost ({currency or 'no price'})")
    for axes in (tokens_ax, cached_ax, cost_ax):
        axes.set_xlabel("turn")
        axes.grid(True, alpha=0.3)
    tokens_ax.legend(fontsize=7)
    figure.suptitle(f"multiturn replay {result.conversation_id}")
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
