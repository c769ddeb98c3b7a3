"""``multiturn chat --once`` on the real model: JSON output, --continue, and interruptions.

A killed process (SIGKILL: no handler runs) must still leave the user's message stored and the
conversation usable; Ctrl-C (SIGINT) must keep the partial answer as ``incomplete`` and exit 130.
"""

from __future__ import annotations

import json
import signal

import pytest

from .conftest import TIMEOUT, Cli, conversations, items, path, read_until, rows, text

pytestmark = [pytest.mark.model, pytest.mark.usefixtures("model_pulled")]

LONG = "Write a numbered list of 200 animals, one per line."


def test_once_json_then_continue_the_same_conversation(cli: Cli) -> None:
    first = cli.run("chat", "--once", "Say hello.", "--json", "--max-tokens", "16", "--temperature", "0")
    assert first.returncode == 0, first.stderr
    reply = json.loads(first.stdout)
    assert isinstance(reply["content"], str) and reply["content"].strip()
    assert reply["status"] == "completed"
    assert reply["usage"]["prompt_tokens"] > 0
    assert 0 < reply["usage"]["completion_tokens"] <= 16
    assert reply["usage"]["total_tokens"] == reply["usage"]["prompt_tokens"] + reply["usage"]["completion_tokens"]
    conversation_id = reply["conversation_id"]

    second = cli.run(
        "chat", "--continue", "--once", "Now say goodbye.", "--json", "--max-tokens", "16", "--temperature", "0"
    )
    assert second.returncode == 0, second.stderr
    again = json.loads(second.stdout)
    assert again["conversation_id"] == conversation_id
    assert again["content"].strip()

    assert [c["id"] for c in conversations(cli.db)] == [conversation_id]
    stored = path(cli.db, conversation_id)
    assert [(i["role"], i["status"]) for i in stored] == [
        ("user", "completed"),
        ("assistant", "completed"),
        ("user", "completed"),
        ("assistant", "completed"),
    ]
    assert [text(i) for i in stored] == ["Say hello.", reply["content"], "Now say goodbye.", again["content"]]
    assert stored[1]["id"] == reply["item_id"] and stored[3]["id"] == again["item_id"]
    # the second turn was sent with the first one as context
    assert again["usage"]["prompt_tokens"] > reply["usage"]["prompt_tokens"]


def test_sigkill_mid_answer_keeps_the_message_and_the_conversation_usable(cli: Cli) -> None:
    proc = cli.popen("chat", "--once", LONG, "--max-tokens", "600", "--temperature", "0")
    try:
        read_until(proc, r"\S{3}")  # the first characters of the answer
        proc.kill()
        proc.wait(timeout=TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()
    assert proc.returncode == -signal.SIGKILL

    [conversation] = conversations(cli.db)
    # The turn was open when the process died: its input is kept with it, not yet on the tree.
    assert items(cli.db, conversation["id"]) == []
    [open_turn] = rows(cli.db, "SELECT * FROM turns")
    assert (open_turn["status"], open_turn["conversation_id"]) == ("generating", conversation["id"])
    assert LONG in open_turn["inputs"]

    # The next process to open the store closes it: the message and an incomplete answer.
    after = cli.run("chat", "--continue", "--once", "Say hi.", "--max-tokens", "16", "--temperature", "0")
    assert after.returncode == 0, after.stderr
    assert after.stdout.strip()
    assert "tokens:" in after.stderr
    assert rows(cli.db, "SELECT * FROM turns") == []
    user, closed, again, answer = path(cli.db, conversation["id"])
    assert (user["role"], user["status"], text(user)) == ("user", "completed", LONG)
    assert (closed["role"], closed["status"], closed["finish_reason"]) == ("assistant", "incomplete", "error")
    assert (again["role"], text(again)) == ("user", "Say hi.")
    assert (answer["role"], answer["status"]) == ("assistant", "completed")
    assert text(answer).strip() and text(answer).strip() in after.stdout


def test_ctrl_c_keeps_the_partial_answer_and_exits_130(cli: Cli) -> None:
    proc = cli.popen("chat", "--once", LONG, "--max-tokens", "600", "--temperature", "0")
    try:
        shown = read_until(proc, r"\d\.\s*\S")  # some of the list has arrived
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    shown += out.decode()
    stderr = err.decode()
    assert "Traceback" not in stderr
    assert "stopped; the partial answer is kept" in stderr

    [conversation] = conversations(cli.db)
    user, answer = path(cli.db, conversation["id"])
    assert (user["role"], text(user)) == ("user", LONG)
    assert (answer["role"], answer["status"], answer["finish_reason"]) == ("assistant", "incomplete", "cancelled")
    partial = text(answer)
    assert partial.strip()
    assert partial.strip() in shown  # what was printed is what was kept
    assert len(items(cli.db)) == 2

    assert proc.returncode == 130, stderr
