"""The BM25-over-turns baseline of ``bench memory``: the best turns for the question, best first,
while they fit the budget; recall counted as for the policies (turns, or sessions)."""

from __future__ import annotations

from multiturn.bench.memory import BASELINE, Cell, _baseline
from multiturn.bench.memory_data import Conversation, Question, Turn
from multiturn.memory.lexical import BM25


def _conversation() -> Conversation:
    turns = tuple(
        Turn(key=f"D1:{n}", role="user" if n % 2 == 0 else "assistant", text=text, group=str(1 + n // 3))
        for n, text in enumerate(
            [
                "we talked about the weather",
                "my cat is called Zanzibar",
                "lunch was pasta",
                "the weather turned cold",
                "Zanzibar sleeps all day",
                "nothing else happened",
            ]
        )
    )
    return Conversation("c", turns, ())


def test_the_best_turns_that_fit_the_budget() -> None:
    conversation = _conversation()
    index = BM25([t.text for t in conversation.turns])
    costs = [10] * len(conversation.turns)
    question = Question("What is my cat called? Zanzibar?", "Zanzibar", ("D1:1", "D1:4"), "1")
    cell = Cell(BASELINE, 10)
    _baseline(index, costs, conversation, question, 10, cell)  # room for one turn
    assert cell.recall == [0.5] and cell.tokens == [10]
    _baseline(index, costs, conversation, question, 25, cell)  # two
    assert cell.recall[-1] == 1.0 and cell.tokens[-1] == 20
    by_session = Question("Zanzibar?", "", ("1", "2"), "x", level="session")
    _baseline(index, costs, conversation, by_session, 100, cell)
    assert cell.recall[-1] == 1.0
    assert [c.category for _, c in cell.asked] == ["1", "1", "x"]
