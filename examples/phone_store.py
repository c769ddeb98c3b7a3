"""The Model Studio multi-turn guide's phone-store salesperson, written on multiturn.

The guide keeps a ``messages`` array by hand and resends it every round. Here the
conversation is stored by multiturn: each round appends the user's message and the reply,
and the next request carries them (reasoning, if any, is never replayed).

    python examples/phone_store.py                    # type your answers
    python examples/phone_store.py 6.5-inch 4K        # scripted answers, for a quick run

Runs on the embedded default model with no key. The loop ends when the model says
"I have understood your purchase intention" (or when scripted answers run out).
"""

from __future__ import annotations

import sys

from multiturn import Conversation

SYSTEM = """You are a salesperson at the Bailian phone store. You are responsible for recommending \
phones to users. The phones have two parameters: screen size (including 6.1-inch, 6.5-inch, and \
6.7-inch) and resolution (including 2K and 4K).
You can only ask the user for one parameter at a time. If the user does not provide complete \
information, you need to ask a follow-up question to get the missing parameter. When all \
parameters are collected, you must say: I have understood your purchase intention. Please wait."""

DONE = "I have understood your purchase intention"


def main(scripted: list[str]) -> int:
    conversation = Conversation.create(system=SYSTEM)
    assistant_output = "Welcome to the Bailian phone store. What screen size are you looking for?"
    print(f"Model output: {assistant_output}\n")
    while DONE not in assistant_output:
        if scripted:
            user_input = scripted.pop(0)
            print(f"Please enter: {user_input}")
        elif len(sys.argv) > 1:
            break
        else:
            try:
                user_input = input("Please enter: ")
            except EOFError:
                break
        reply = conversation.send(user_input, max_tokens=96)
        assistant_output = reply.content
        print(f"Model output: {assistant_output}")
        print(
            f"[tokens: prompt {reply.usage.prompt_tokens}, cached {reply.usage.cached_tokens}, "
            f"completion {reply.usage.completion_tokens}]\n"
        )
    print(f"conversation {conversation.id}: {len(conversation.history())} items stored")
    conversation.client.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
