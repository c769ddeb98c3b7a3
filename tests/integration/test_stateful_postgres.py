"""Two ``multiturn serve`` processes on one PostgreSQL database continue the same conversations
alternately, through ``previous_response_id`` and through stateful chat completions: each
turn is answered from what the other process stored, and nothing is lost."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from compat.calls import close_clients, openai_client
from support.pg import pg_schema
from support.serve import Server, start_serve

pytestmark = [pytest.mark.model, pytest.mark.postgres]
MODEL = "qwen-plus"


@pytest.fixture(scope="module")
def pg_url() -> Iterator[str]:
    with pg_schema() as url:
        yield url


@pytest.fixture(scope="module")
def pair(pg_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Server]]:
    servers: list[Server] = []
    try:
        for name in ("first", "second"):
            home: Path = tmp_path_factory.mktemp(name)
            servers.append(start_serve(name, home, env={"MULTITURN_DB": pg_url}))
        yield servers[0], servers[1]
    finally:
        for server in servers:
            server.stop()
        close_clients()


def test_two_processes_continue_one_chain_of_responses(pair: tuple[Server, Server]) -> None:
    one, two = (openai_client(s.compat, s.api_key, max_retries=0) for s in pair)
    turns = [
        (one, "My name is Alice and my favourite number is 42. Reply with just OK."),
        (two, "What is my name? Answer with one word."),
        (one, "Reply with just OK."),
        (two, "What is my favourite number? Answer with the number."),
    ]
    answers = []
    previous: str | None = None
    for client, text in turns:
        options = {"previous_response_id": previous} if previous else {}
        answer = client.responses.create(model=MODEL, input=text, temperature=0, max_output_tokens=12, **options)
        assert answer.status == "completed"
        answers.append(answer)
        previous = answer.id
    assert "Alice" in answers[1].output_text
    assert "42" in answers[3].output_text
    conversation = answers[0].conversation
    assert conversation is not None and {a.conversation.id for a in answers if a.conversation} == {conversation.id}
    for client in (one, two):  # each process sees every turn, in order, and every response
        items = client.conversations.items.list(conversation.id, order="asc").data
        assert [i.content[0].text for i in items[::2]] == [text for _, text in turns]
        assert [i.id for i in items[1::2]] == [a.output[0].id for a in answers]
        assert [client.responses.retrieve(a.id).output_text for a in answers] == [a.output_text for a in answers]


def test_two_processes_continue_one_conversation_with_chat_completions(pair: tuple[Server, Server]) -> None:
    one, two = (openai_client(s.compat, s.api_key, max_retries=0) for s in pair)
    conversation = one.conversations.create()
    turns = [
        (one, "My dog is called Rex. Reply with just OK."),
        (two, "What is my dog called? Answer with one word."),
        (one, "Reply with just OK."),
        (two, "Repeat my dog's name."),
    ]
    texts = []
    for client, text in turns:
        completion = client.chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": text}],
            max_tokens=8,
            temperature=0,
            extra_body={"conversation": conversation.id},
        )
        texts.append(completion.choices[0].message.content)
    assert "Rex" in (texts[1] or "") and "Rex" in (texts[3] or "")
    for client in (one, two):
        items = client.conversations.items.list(conversation.id, order="asc").data
        assert [i.role for i in items] == ["user", "assistant"] * len(turns)
        assert [i.content[0].text for i in items[::2]] == [text for _, text in turns]
        assert [i.content[0].text for i in items[1::2]] == texts
