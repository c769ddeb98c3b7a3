"""The cache benchmark: how much of each prompt the backend reuses under each context policy.

One scripted conversation (``planning_script``) is replayed, turn by turn, through the real
engine (``AsyncClient``: the store, the planner, the backend and whatever memory the client
wires) once per policy, each in a fresh conversation of one temporary database. Every turn
records the backend's ``Usage``: ``prompt_tokens`` and ``cached_tokens`` (for the embedded model,
the KV prefix llama.cpp keeps from the previous call, exact), so ``prompt - cached`` is what
was actually evaluated. The stored ``ContextReport`` says which earlier rounds the request
left out; the window is *full* from the first turn that leaves one out, and the ratio once
full is the one that matters (before that, every policy sends the whole history).

Policies run one after another, never interleaved: llama.cpp keeps one KV prefix per loaded
model, so interleaving would measure the interleaving. ``sliding`` is the naive baseline, a
window that drops one round per turn (``low_water=1.0``).
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Sequence
from contextlib import aclosing
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..client import AsyncClient
from ..context.plan import Policy, preset
from ..errors import InvalidInput, MultiturnError
from ..settings import Settings
from ..types import ContextReport, Delta, Reply, text_parts
from .planning_script import SYSTEM_PROMPT, user_turns

SLIDING = Policy("window", low_water=1.0)
"""The naive baseline: the newest rounds that fit, one round dropped per turn once full."""

POLICY_CHOICES = ("window", "sliding", "summary", "retrieval", "auto", "full")
DEFAULT_POLICIES = ("window", "sliding", "summary", "auto")


def resolve_policies(names: Sequence[str]) -> list[tuple[str, Policy]]:
    """Benchmark labels to policies: ``sliding`` is ``SLIDING``, the others are presets.

    Raises:
        InvalidInput: an unknown or repeated name, or none at all.
    """
    cleaned = [name.strip() for name in names if name.strip()]
    if not cleaned:
        raise InvalidInput(f"no policy to run (choose from {', '.join(POLICY_CHOICES)})")
    unknown = [name for name in cleaned if name not in POLICY_CHOICES]
    if unknown:
        raise InvalidInput(f"unknown policy {unknown[0]!r} (one of {', '.join(POLICY_CHOICES)})")
    if len(set(cleaned)) != len(cleaned):
        raise InvalidInput("a policy is listed twice")
    return [(name, SLIDING if name == "sliding" else preset(name)) for name in cleaned]


@dataclass(frozen=True, slots=True)
class BenchConfig:
    """What one benchmark run replays, and how."""

    turns: int = 150
    policies: tuple[str, ...] = DEFAULT_POLICIES
    n_ctx: int = 2048
    max_tokens: int = 24
    seed: int = 0
    system_prompt: str = SYSTEM_PROMPT

    def __post_init__(self) -> None:
        if self.turns < 1:
            raise InvalidInput("turns must be >= 1")
        if self.max_tokens < 1:
            raise InvalidInput("max_tokens must be >= 1")
        if self.max_tokens >= self.n_ctx // 2:
            raise InvalidInput(f"max_tokens must be below half the window ({self.n_ctx // 2})")
        resolve_policies(self.policies)


@dataclass(frozen=True, slots=True)
class Turn:
    """One turn as the backend and the planner saw it."""

    index: int
    """1-based."""
    prompt_tokens: int
    cached_tokens: int
    completion_tokens: int
    rounds_sent: int
    """Rounds the window sent, the new one included."""
    rounds_left_out: int
    """Earlier rounds not in the window (dropped, summarized or only recalled)."""
    summarized: int
    recalled: int
    context_tokens: int
    """The planner's count of the prompt (Qwen tokenizer), beside the backend's exact one."""
    seconds: float
    ttft: float | None
    status: str

    @property
    def computed_tokens(self) -> int:
        return self.prompt_tokens - self.cached_tokens


@dataclass(frozen=True, slots=True)
class PolicyRun:
    """Every turn of one policy, and the totals the report shows."""

    name: str
    policy: Policy
    turns: tuple[Turn, ...]
    error: str | None = None
    """Why the run stopped early (a turn failed), else ``None``."""

    @property
    def full_from(self) -> int | None:
        """The first turn whose request left an earlier round out (``None``: never)."""
        return next((t.index for t in self.turns if t.rounds_left_out), None)

    @property
    def full_turns(self) -> tuple[Turn, ...]:
        start = self.full_from
        return () if start is None else tuple(t for t in self.turns if t.index >= start)

    def totals(self, turns: Sequence[Turn] | None = None) -> dict[str, Any]:
        chosen = self.turns if turns is None else turns
        prompt = sum(t.prompt_tokens for t in chosen)
        cached = sum(t.cached_tokens for t in chosen)
        ttfts = [t.ttft for t in chosen if t.ttft is not None]
        return {
            "turns": len(chosen),
            "prompt_tokens": prompt,
            "cached_tokens": cached,
            "computed_tokens": prompt - cached,
            "cached_ratio": cached / prompt if prompt else None,
            "seconds": sum(t.seconds for t in chosen),
            "mean_ttft": sum(ttfts) / len(ttfts) if ttfts else None,
        }


@dataclass(frozen=True, slots=True)
class CacheBench:
    """A whole run: its configuration, the model, what memory was wired, one run per policy."""

    config: BenchConfig
    model: str
    memory: dict[str, bool]
    """Whether the engine had a compaction (summaries) and a recall (retrieval) to use."""
    load_seconds: float
    runs: tuple[PolicyRun, ...] = field(default=())


Progress = Callable[[str, Turn], None]


async def run(settings: Settings, config: BenchConfig, *, on_turn: Progress | None = None) -> CacheBench:
    """Replay the script under each policy of ``config`` and measure every turn.

    ``settings`` give the model and its options; the run overrides the window (``n_ctx``), the
    answer length, greedy decoding, and the database (a temporary SQLite file, removed after).
    ``on_turn(policy, turn)`` is called after each turn.

    Raises:
        MultiturnError: the model cannot be loaded (a failing turn ends only its policy's run).
    """
    policies = resolve_policies(config.policies)
    messages = user_turns(config.turns, seed=config.seed)
    with tempfile.TemporaryDirectory(prefix="multiturn-bench-cache-") as tmp:
        overrides = {
            "n_ctx": config.n_ctx,
            "max_tokens": config.max_tokens,
            "temperature": 0.0,
            "db": str(Path(tmp) / "bench.db"),
            "data_dir": Path(tmp),
        }
        bench_settings = settings.model_copy(update=overrides)
        async with AsyncClient(bench_settings) as client:
            started = time.perf_counter()
            await client.backend().prepare()
            load_seconds = time.perf_counter() - started
            engine = client.engine
            runs = []
            for name, policy in policies:
                runs.append(await _replay(client, name, policy, messages, config, on_turn))
                await engine.drain()
            memory = {"compaction": engine.compaction is not None, "recall": engine.recall is not None}
            return CacheBench(config, bench_settings.model, memory, load_seconds, tuple(runs))


async def _replay(
    client: AsyncClient,
    name: str,
    policy: Policy,
    messages: Sequence[str],
    config: BenchConfig,
    on_turn: Progress | None,
) -> PolicyRun:
    engine = client.engine
    conversation = await client.create(system=config.system_prompt, title=f"bench cache: {name}")
    params = client.params(max_tokens=config.max_tokens, temperature=0.0)
    earlier_users: list[str] = []
    turns: list[Turn] = []
    for index, text in enumerate(messages, start=1):
        started = time.perf_counter()
        first: float | None = None
        reply: Reply | None = None
        try:
            events = engine.send(conversation.id, text_parts(text), params, policy=policy)
            async with aclosing(events) as stream:
                async for event in stream:
                    if isinstance(event, Delta) and first is None and (event.content or event.reasoning):
                        first = time.perf_counter() - started
                    elif isinstance(event, Reply):
                        reply = event
        except MultiturnError as exc:
            return PolicyRun(name, policy, tuple(turns), error=f"turn {index}: {exc.message}")
        seconds = time.perf_counter() - started
        if reply is None or reply.user_item_id is None:
            return PolicyRun(name, policy, tuple(turns), error=f"turn {index}: the turn ended without a reply")
        stored = await client.store.get_item(reply.item_id, tenant_id=engine.tenant_id)
        report = stored.context_report or ContextReport(policy=name)
        path = [item.id for item in await engine.path(conversation.id, reply.user_item_id)]
        fates = report.fates(path)
        left_out = sum(1 for user in earlier_users if fates.get(user) != "kept")
        turn = Turn(
            index=index,
            prompt_tokens=reply.usage.prompt_tokens,
            cached_tokens=reply.usage.cached_tokens,
            completion_tokens=reply.usage.completion_tokens,
            rounds_sent=len(earlier_users) - left_out + 1,
            rounds_left_out=left_out,
            summarized=report.count("summarized"),
            recalled=report.count("recalled"),
            context_tokens=report.tokens,
            seconds=seconds,
            ttft=first,
            status=reply.status,
        )
        turns.append(turn)
        earlier_users.append(reply.user_item_id)
        if on_turn is not None:
            on_turn(name, turn)
    return PolicyRun(name, policy, tuple(turns))


def to_json(result: CacheBench) -> dict[str, Any]:
    """The run as plain JSON values: configuration, per-policy totals (overall and once the
    window is full), and every turn."""
    return {
        "config": asdict(result.config),
        "model": result.model,
        "memory": result.memory,
        "load_seconds": result.load_seconds,
        "policies": [
            {
                "name": run.name,
                "policy": asdict(run.policy),
                "error": run.error,
                "full_from": run.full_from,
                "overall": run.totals(),
                "once_full": run.totals(run.full_turns),
                "turns": [{**asdict(turn), "computed_tokens": turn.computed_tokens} for turn in run.turns],
            }
            for run in result.runs
        ],
    }
