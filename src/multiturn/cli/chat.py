"""``multiturn chat``: a streaming REPL, or one answer with ``--once``.

Ctrl-C during a generation stops it and keeps what was generated (stored as ``incomplete``);
Ctrl-C at the prompt clears the line; Ctrl-D or ``/exit`` leaves. Nothing stored is lost.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import time
from collections.abc import AsyncGenerator
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from .. import codec
from ..client import AsyncClient, AsyncConversation
from ..errors import InvalidInput, MultiturnError
from ..settings import Settings
from ..types import Delta, Reply
from . import render
from .models import ensure_pulled
from .options import Db, Model, ModelPath, settings


def chat(
    once: Annotated[
        str | None,
        typer.Option(
            "--once", metavar="MESSAGE", help="Ask one question, print the answer, exit; - reads it from stdin"
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="With --once: print the reply as JSON")] = False,
    resume: Annotated[bool, typer.Option("--continue", "-c", help="Continue the most recent conversation")] = False,
    conversation: Annotated[
        str | None, typer.Option("--conversation", "--cid", metavar="ID", help="Continue this one")
    ] = None,
    system: Annotated[
        str | None, typer.Option("--system", "-s", metavar="TEXT", help="System prompt of a new conversation")
    ] = None,
    db: Db = None,
    model: Model = None,
    model_path: ModelPath = None,
    max_tokens: Annotated[int | None, typer.Option(min=1, metavar="N", help="Most tokens per answer")] = None,
    temperature: Annotated[
        float | None, typer.Option(min=0.0, max=2.0, metavar="T", help="Sampling temperature, 0 to 2")
    ] = None,
    seed: Annotated[int | None, typer.Option(metavar="N", help="Sampling seed")] = None,
) -> None:
    """Chat with a model; the conversation is stored and survives restarts."""
    if as_json and once is None:
        raise InvalidInput("--json needs --once")
    if once == "-":
        once = sys.stdin.read()
    if once is not None and not once.strip():
        raise InvalidInput("the message is empty")
    s = settings(db=db, model=model, model_path=model_path)
    ensure_pulled(s, Console(stderr=True))
    params = {"max_tokens": max_tokens, "temperature": temperature, "seed": seed}
    session = _Session(s, params, system)
    code = asyncio.run(
        session.once(once, resume, conversation, as_json) if once is not None else session.repl(resume, conversation)
    )
    raise typer.Exit(code)


class _Session:
    def __init__(self, s: Settings, params: dict[str, Any], system: str | None) -> None:
        self.settings = s
        self.params = params
        self.system = system if system is not None else s.system_prompt
        self.out = Console(highlight=False)
        self.err = Console(stderr=True, highlight=False)

    async def _open(
        self, client: AsyncClient, resume: bool, conversation_id: str | None
    ) -> tuple[AsyncConversation, bool]:
        await client.backend().prepare()  # a missing or corrupt model fails before anything is written
        if conversation_id is not None:
            return await client.conversation(conversation_id), True
        if resume:
            latest = await client.latest()
            if latest is not None:
                return latest, True
        return await client.create(system=self.system), False

    async def once(self, message: str, resume: bool, conversation_id: str | None, as_json: bool) -> int:
        async with AsyncClient(self.settings) as client:
            conversation, _ = await self._open(client, resume, conversation_id)
            reply = await self._turn(conversation.stream(message, **self.params), quiet=as_json)
            if reply is None:
                return 130
            if as_json:
                self.out.print_json(json.dumps(_reply_json(reply)))
            return 0 if reply.status == "completed" else 1

    async def repl(self, resume: bool, conversation_id: str | None) -> int:
        async with AsyncClient(self.settings) as client:
            conversation, resumed = await self._open(client, resume, conversation_id)
            model = (await conversation.record()).model or self.settings.model
            verb = "continuing" if resumed else "new conversation"
            self.err.print(f"[dim]multiturn chat · {model} · {verb} {conversation.id} · /help for commands[/dim]")
            if resumed:
                self.out.print(render.history((await conversation.history())[-4:]))
            reader = _Reader(self.settings.data_dir / "chat_history")
            while True:
                try:
                    line = await reader.read()
                except EOFError:
                    return 0
                if line is None or not line.strip():
                    continue
                try:
                    if line.startswith("/"):
                        result = await self._command(client, conversation, line.strip())
                        if result is None:
                            return 0
                        conversation = result
                    else:
                        await self._turn(conversation.stream(line, **self.params))
                except MultiturnError as exc:
                    self.err.print(f"[red]error:[/red] {render.one_line(exc.message)}")

    async def _command(
        self, client: AsyncClient, conversation: AsyncConversation, line: str
    ) -> AsyncConversation | None:
        name, _, arg = line.partition(" ")
        arg = arg.strip()
        if name in ("/exit", "/quit"):
            return None
        if name == "/help":
            self.out.print(render.HELP, markup=False)
        elif name == "/new":
            conversation = await client.create(system=self.system)
            self.err.print(f"[dim]new conversation {conversation.id}[/dim]")
        elif name == "/list":
            self.out.print(render.conversations_table(await client.list(), current=conversation.id))
        elif name == "/open":
            if not arg:
                raise InvalidInput("usage: /open ID")
            conversation = await client.conversation(arg)
            self.out.print(render.history((await conversation.history())[-4:]))
            self.err.print(f"[dim]opened {conversation.id}[/dim]")
        elif name == "/history":
            record = await conversation.record()
            self.out.print(render.history(await conversation.history(), record.system_prompt))
        elif name == "/undo":
            undone = await conversation.undo()
            self.err.print(f"[dim]undone: {render.one_line(undone[0].text)[:60]!r} (kept as a branch)[/dim]")
        elif name == "/retry":
            await self._turn(conversation.stream_retry(**self.params))
        elif name == "/fork":
            conversation = await conversation.fork()
            self.err.print(f"[dim]forked into {conversation.id}[/dim]")
        elif name == "/system":
            if arg:
                await conversation.set_system(arg)
                self.err.print("[dim]system prompt set[/dim]")
            else:
                self.out.print((await conversation.record()).system_prompt or "(none)", markup=False)
        elif name == "/policy":
            if arg:
                await conversation.set_policy(arg)
                self.err.print(f"[dim]context policy set to {arg}[/dim]")
            else:
                record = await conversation.record()
                model = record.model or self.settings.model
                self.out.print(client.engine.policy_name(record, model), markup=False)
        elif name == "/context":
            answers = [item for item in await conversation.history() if item.role == "assistant"]
            self.out.print(render.context_report(answers[-1].context_report if answers else None))
        elif name == "/model":
            if arg:
                await conversation.set_model(arg)
                self.err.print(f"[dim]model set to {arg}[/dim]")
            else:
                self.out.print((await conversation.record()).model or self.settings.model, markup=False)
        else:
            raise InvalidInput(f"unknown command {name}: /help lists them")
        return conversation

    async def _turn(self, events: AsyncGenerator[Delta | Reply, None], *, quiet: bool = False) -> Reply | None:
        """Stream one answer; Ctrl-C stops it (the partial answer is stored) and returns None."""
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None
        loop.add_signal_handler(signal.SIGINT, task.cancel)
        started = time.perf_counter()
        thinking = False
        try:
            async for event in events:
                if isinstance(event, Reply):
                    if not quiet:
                        self.out.print()
                        self.err.print(render.reply_footer(event, time.perf_counter() - started), soft_wrap=True)
                    return event
                if quiet:
                    continue
                if event.reasoning:
                    if not thinking:
                        self.out.print("thinking: ", style="dim italic", end="")
                        thinking = True
                    self.out.print(event.reasoning, style="dim italic", end="", markup=False)
                if event.content:
                    if thinking:
                        self.out.print()
                        thinking = False
                    self.out.print(event.content, end="", markup=False)
            return None
        except asyncio.CancelledError:
            task.uncancel()
            self.out.print()
            self.err.print("[yellow]stopped; the partial answer is kept[/yellow]")
            return None
        finally:
            loop.remove_signal_handler(signal.SIGINT)
            await events.aclose()


class _Reader:
    """Lines from the user: prompt_toolkit on a terminal (with history), plain stdin otherwise."""

    def __init__(self, history_file: Path) -> None:
        self._session: Any = None
        if sys.stdin.isatty():
            from prompt_toolkit import PromptSession
            from prompt_toolkit.history import FileHistory

            history_file.parent.mkdir(parents=True, exist_ok=True)
            self._session = PromptSession(history=FileHistory(str(history_file)))

    async def read(self) -> str | None:
        """A line; ``None`` after Ctrl-C at the prompt. Raises EOFError on Ctrl-D / end of input."""
        if self._session is None:
            line: str = await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
            if not line:
                raise EOFError
            return line.rstrip("\n")
        try:
            text = await self._session.prompt_async("> ")
            return str(text)
        except KeyboardInterrupt:
            return None


def _reply_json(reply: Reply) -> dict[str, Any]:
    return {
        "conversation_id": reply.conversation_id,
        "item_id": reply.item_id,
        "model": reply.model,
        "content": reply.content,
        "reasoning": reply.reasoning or None,
        "status": reply.status,
        "finish_reason": reply.finish_reason,
        "usage": {
            "prompt_tokens": reply.usage.prompt_tokens,
            "cached_tokens": reply.usage.cached_tokens,
            "completion_tokens": reply.usage.completion_tokens,
            "reasoning_tokens": reply.usage.reasoning_tokens,
            "total_tokens": reply.usage.total_tokens,
        },
        "cost": codec.encode_cost(reply.cost) if reply.cost is not None else None,
    }
