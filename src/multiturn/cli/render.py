"""Pure functions from values to Rich renderables and plain strings. Nothing here prints."""

from __future__ import annotations

import time
from collections.abc import Sequence

from rich.console import Console
from rich.table import Table
from rich.text import Text

from .. import catalog
from ..engine.replay import Replay, Totals, stored_totals, totals
from ..records import ConversationRecord, ItemRecord
from ..types import ContextReport, Cost, Reply, Usage

PIPED_WIDTH = 4096
"""Columns a table may take when stdout is not a terminal (a pipe, a file): its natural width,
not the 80 columns Rich assumes."""


def stdout_console() -> Console:
    """The console tables go to: the terminal's width, or unbounded when piped."""
    import sys

    return Console(width=None if sys.stdout.isatty() else PIPED_WIDTH)


HELP = """\
/new             start a new conversation
/list            list conversations
/open ID         switch to a conversation
/history         show the current conversation
/undo            take back the last turn (it stays stored as a branch)
/retry           answer the last message again
/fork            continue in a copy of this conversation
/system [TEXT]   show or set the system prompt
/model [NAME]    show or set the model
/policy [NAME]   show or set the context policy (full, window, summary, retrieval, auto)
/context         what the last answer's request contained: kept, dropped, tokens, budget
/help            this help
/exit            leave (Ctrl-D works too)
Ctrl-C stops a generation; what was generated is kept."""


def usage_line(usage: Usage, seconds: float | None = None) -> Text:
    parts = [
        f"prompt {usage.prompt_tokens}",
        f"cached {usage.cached_tokens}",
        f"completion {usage.completion_tokens}",
    ]
    if usage.reasoning_tokens:
        parts.append(f"reasoning {usage.reasoning_tokens}")
    if usage.cost is not None:
        parts.append(cost_text(usage.cost))
    if seconds is not None:
        parts.append(f"{seconds:.2f} s")
    return Text("tokens: " + " · ".join(parts), style="dim")


def money(value: float, currency: str) -> str:
    """``0.000123 USD``: up to eight decimals, trailing zeros dropped."""
    text = f"{value:.8f}".rstrip("0").rstrip(".")
    return f"{text} {currency}".strip()


def cost_text(cost: Cost) -> str:
    """``cost 0.000123 USD (conversation 0.0042 USD)``."""
    text = f"cost {money(cost.total, cost.currency)}"
    if cost.conversation is not None:
        text += f" (conversation {money(cost.conversation, cost.currency)})"
    return text


def reply_footer(reply: Reply, seconds: float) -> Text:
    line = usage_line(reply.usage, seconds)
    if reply.status != "completed":
        line.append(f" · {reply.status} ({reply.finish_reason})", style="yellow")
    return line


def when(ms: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(ms / 1000))


def conversations_table(records: Sequence[ConversationRecord], current: str | None = None) -> Table:
    table = Table(box=None, pad_edge=False)
    table.add_column("id", style="cyan", no_wrap=True)
    table.add_column("updated", no_wrap=True)
    table.add_column("model")
    table.add_column("title")
    for record in records:
        marker = " *" if record.id == current else ""
        table.add_row(record.id + marker, when(record.updated_at), record.model or "(default)", record.title or "")
    return table


def history(items: Sequence[ItemRecord], system_prompt: str | None = None) -> Text:
    out = Text()
    if system_prompt:
        out.append("system: ", style="bold magenta")
        out.append(system_prompt + "\n")
    for item in items:
        style = {"user": "bold green", "assistant": "bold blue"}.get(item.role, "bold")
        out.append(f"{item.role}: ", style=style)
        if item.reasoning:
            out.append(f"[thinking] {item.reasoning.strip()}\n", style="dim")
        out.append(item.text or "(no text)")
        if item.status != "completed":
            out.append(f"  [{item.status}]", style="yellow")
        out.append(f"  {item.id}\n", style="dim")
    return out


def models_table(models_dir_pulled: Sequence[tuple[catalog.ModelSpec, bool]], default: str) -> Table:
    table = Table(box=None, pad_edge=False)
    for column in ("name", "size", "pulled", "source", "description"):
        table.add_column(column)
    for spec, pulled in models_dir_pulled:
        name = spec.name + (" (default)" if spec.name == default else "")
        table.add_row(
            name, f"{spec.size / 1e6:.0f} MB", "yes" if pulled else "no", spec.source.describe(), spec.description
        )
    return table


def one_line(message: str) -> str:
    return " ".join(message.split())


def context_report(report: ContextReport | None) -> Text:
    """The stored ContextReport of an answer, in a few lines."""
    if report is None:
        return Text("no context report yet: send a message first", style="dim")
    out = Text()
    if report.planned:
        out.append(f"policy {report.policy} · {report.tokens} tokens of a {report.budget} budget\n")
        out.append(
            f"items kept {report.count('kept')} · dropped {report.count('dropped')} · summarized "
            f"{report.count('summarized')} · recalled {report.count('recalled')}\n"
        )
        if report.tokens_by_part:
            parts = ", ".join(f"{k} {v}" for k, v in report.tokens_by_part.items())
            out.append(f"tokens by part: {parts}\n", style="dim")
    if report.error:
        out.append(f"error: {report.error}\n", style="red")
    return out


def replay_table(result: Replay) -> Table:
    """``multiturn replay``: the turns as answered, then one row per policy x budget."""
    first = result.runs[0][2] if result.runs else ()
    answers = f"{len(first)} answer" + ("" if len(first) == 1 else "s")
    table = Table(title=f"replay of {result.conversation_id}: {answers}, no model called")
    for column in ("policy", "budget", "tokens", "mean", "cached", "cost", "evidence lost", "over budget"):
        table.add_column(column, justify="left" if column in ("policy", "evidence lost", "over budget") else "right")
    table.add_row(*_totals_row("as answered", "", stored_totals(first)), style="dim")
    for policy, budget, turns in result.runs:
        table.add_row(*_totals_row(policy, f"{budget:,}" if budget is not None else "model", totals(turns)))
    return table


def _totals_row(policy: str, budget: str, t: Totals) -> tuple[str, ...]:
    lost = f"{len(t.lost)} turns ({t.dropped} items): {_turn_list(t.lost)}" if t.lost else ("-" if budget else "")
    return (
        policy,
        budget,
        f"{t.tokens:,}",
        f"{t.tokens / t.turns:,.0f}" if t.turns else "-",
        f"{t.cached_share:.0%}" if t.cached_share is not None else "-",
        money(t.cost, t.currency or "") if t.cost is not None else "no price",
        lost,
        _turn_list(t.over_budget) if t.over_budget else ("-" if budget else ""),
    )


def _turn_list(turns: Sequence[int], most: int = 12) -> str:
    shown = ", ".join(str(n) for n in turns[:most])
    return shown + (f" and {len(turns) - most} more" if len(turns) > most else "")
