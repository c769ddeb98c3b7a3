"""The ``multiturn chat`` REPL on the real model, driven through a pseudo-terminal.

prompt_toolkit draws the prompt with escape sequences, so the tests wait for the sequence it
writes each time it starts reading a line (bracketed paste on), and match output that Rich
prints in one styled span. What the REPL claims is then checked in the SQLite file itself.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from typing import Any

import pexpect
import pytest

from .conftest import ANSI, EXE, TIMEOUT, Cli, conversation, conversations, items, path, text

pytestmark = [pytest.mark.model, pytest.mark.usefixtures("model_pulled")]

PROMPT = r"\x1b\[\?2004h"  # prompt_toolkit is ready to read a line
CONV_ID = r"conv_[0-9a-z]+"


class Repl:
    def __init__(self, cli: Cli, *args: str) -> None:
        env = cli.env(PROMPT_TOOLKIT_NO_CPR="1", TERM="xterm", COLUMNS="120", LINES="40")
        self.child: Any = pexpect.spawn(
            str(EXE), ["chat", *args], env=env, encoding="utf-8", timeout=TIMEOUT, dimensions=(40, 120)
        )

    def expect(self, pattern: str) -> re.Match[str]:
        self.child.expect(pattern)
        match: re.Match[str] = self.child.match
        return match

    def prompt(self) -> None:
        self.expect(PROMPT)

    def send(self, line: str, *, answer: bool = False) -> str:
        """Type ``line`` at the prompt; returns everything printed until the next prompt."""
        self.child.sendline(line)
        if answer:
            self.expect(r"tokens: prompt \d+")
        self.prompt()
        return str(self.child.before)

    def close(self) -> None:
        if self.child.isalive():
            self.child.terminate(force=True)
        self.child.close()


@pytest.fixture
def repl_factory(cli: Cli) -> Iterator[Callable[..., Repl]]:
    opened: list[Repl] = []

    def start(*args: str) -> Repl:
        repl = Repl(cli, *args)
        opened.append(repl)
        return repl

    yield start
    for repl in opened:
        repl.close()


def test_repl_commands_and_turns(cli: Cli, repl_factory: Callable[..., Repl]) -> None:
    repl = repl_factory("--max-tokens", "48", "--temperature", "0")
    first = repl.expect(rf"new conversation ({CONV_ID})").group(1)
    repl.prompt()

    shown = repl.send("/help")
    assert "/retry" in shown and "answer the last message again" in shown
    assert "Ctrl-C stops a generation" in shown

    repl.send("Say hello.", answer=True)
    assert [(i["role"], i["status"]) for i in path(cli.db, first)] == [
        ("user", "completed"),
        ("assistant", "completed"),
    ]

    shown = repl.send("/undo")
    assert "undone: 'Say hello.' (kept as a branch)" in shown
    assert path(cli.db, first) == []
    assert len(items(cli.db, first)) == 2  # undone, not deleted

    repl.send("Name one primary color.", answer=True)
    repl.send("/retry", answer=True)
    user, retried = path(cli.db, first)
    assert text(user) == "Name one primary color."
    answers = [i for i in items(cli.db, first) if i["parent_id"] == user["id"]]
    assert len(answers) == 2, "the retried answer is a sibling of the first one"
    assert all(a["role"] == "assistant" and a["status"] == "completed" and text(a) for a in answers)
    assert answers[1]["id"] == retried["id"]  # the head moved to the new answer

    shown = repl.send("/system You are terse.")
    assert "system prompt set" in shown
    assert conversation(cli.db, first)["system_prompt"] == "You are terse."

    shown = repl.send("/list")
    assert re.search(rf"{first} \*", shown), shown  # the current conversation is marked

    repl.child.sendline("/fork")
    fork = repl.expect(rf"forked into ({CONV_ID})").group(1)
    repl.prompt()
    assert fork != first
    assert [text(i) for i in path(cli.db, fork)] == [text(user), text(retried)]
    assert conversation(cli.db, fork)["system_prompt"] == "You are terse."

    repl.child.sendline("/new")
    new = repl.expect(rf"new conversation ({CONV_ID})").group(1)
    repl.prompt()
    assert new not in (first, fork)
    assert {c["id"] for c in conversations(cli.db)} == {first, fork, new}

    shown = repl.send(f"/open {first}")
    assert f"opened {first}" in shown
    assert "Name one primary color." in shown

    shown = repl.send("/frobnicate now")
    assert "error:" in shown and "unknown command /frobnicate" in shown
    shown = repl.send("/system")  # still alive, and still in the first conversation
    assert "You are terse." in shown

    before = (conversations(cli.db), items(cli.db))
    repl.child.sendline("/exit")
    repl.child.expect(pexpect.EOF)
    repl.child.close()
    assert (repl.child.exitstatus, repl.child.signalstatus) == (0, None)
    assert (conversations(cli.db), items(cli.db)) == before


def test_repl_ctrl_c_stops_a_generation_and_keeps_it(cli: Cli, repl_factory: Callable[..., Repl]) -> None:
    repl = repl_factory("--max-tokens", "400", "--temperature", "0")
    conversation_id = repl.expect(rf"new conversation ({CONV_ID})").group(1)
    repl.prompt()

    repl.send("Say hello.", answer=True)
    repl.child.sendline("Write a numbered list of 100 animals.")
    repl.expect(r"\d\.\s*\S")  # some of the list has arrived
    printed = repl.child.before + repl.child.after
    repl.child.sendintr()
    repl.expect("stopped; the partial answer is kept")
    printed += repl.child.before
    repl.prompt()
    for shown_now in (printed, repl.child.before):  # no log line among the REPL's own output
        assert "INFO" not in shown_now and "stored incomplete" not in shown_now, shown_now

    shown = repl.send("/history")  # the REPL is alive and shows the kept answer
    assert "Write a numbered list of 100 animals." in shown
    assert "[incomplete]" in shown

    repl.child.sendeof()
    repl.child.expect(pexpect.EOF)
    repl.child.close()

    stored = path(cli.db, conversation_id)
    assert [(i["role"], i["status"]) for i in stored] == [
        ("user", "completed"),
        ("assistant", "completed"),
        ("user", "completed"),
        ("assistant", "incomplete"),
    ]
    assert [text(i) for i in stored[::2]] == ["Say hello.", "Write a numbered list of 100 animals."]
    partial = stored[3]
    assert partial["finish_reason"] == "cancelled"
    assert re.search(r"\d\.\s*\S", text(partial)), text(partial)
    on_screen = ANSI.sub("", printed.replace("^C", ""))
    assert text(partial).strip() in on_screen  # what was shown is what was kept
    assert len(items(cli.db, conversation_id)) == 4  # nothing lost, nothing extra

    assert (repl.child.exitstatus, repl.child.signalstatus) == (0, None)


def test_repl_context_and_policy(cli: Cli, repl_factory: Callable[..., Repl]) -> None:
    repl = repl_factory("--max-tokens", "8", "--temperature", "0")
    conversation_id = repl.expect(rf"new conversation ({CONV_ID})").group(1)
    repl.prompt()

    shown = repl.send("/context")
    assert "no context report yet" in shown
    shown = repl.send("/policy")
    assert "window" in shown  # the default preset

    repl.send("My name is Ada.", answer=True)
    repl.send("Say OK.", answer=True)
    shown = ANSI.sub("", repl.send("/context"))
    stored = json.loads([i for i in path(cli.db, conversation_id) if i["role"] == "assistant"][-1]["context_report"])
    assert f"policy window · {stored['tokens']} tokens of a {stored['budget']} budget" in shown, shown
    assert "items kept 3 · dropped 0 · summarized 0 · recalled 0" in shown, shown
    assert "tokens by part: system" in shown

    shown = repl.send("/policy retrieval")
    assert "context policy set to retrieval" in shown
    assert json.loads(conversation(cli.db, conversation_id)["metadata"])["policy"] == "retrieval"
    repl.send("And now?", answer=True)
    shown = ANSI.sub("", repl.send("/context"))
    assert "policy retrieval ·" in shown, shown

    shown = repl.send("/policy everything")
    assert "error:" in shown and "unknown context policy 'everything'" in shown
    assert json.loads(conversation(cli.db, conversation_id)["metadata"])["policy"] == "retrieval"  # unchanged
