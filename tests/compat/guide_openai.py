"""The guide's Python examples for the OpenAI SDK (model-studio-multi-turn-guide.md), as functions.

Each body is the guide's code, copied. What changed is marked ``# changed:``: the base URL and
the API key (parameters here), ``input()`` replaced by scripted answers (and loops bounded by
them), results returned to the test, and, where the guide sets no ``max_tokens`` and the
example runs on the embedded model, a small one passed through ``extra_body`` to keep the run
short on 2 CPU cores. ``print`` stays: pytest captures it, and it is what the guide shows.
"""

# ruff: noqa: E711 -- the guide's own comparisons, kept as written

from __future__ import annotations

from typing import Any

from openai import OpenAI

EMBEDDED_MAX_TOKENS = 32
IMAGE_URL = "https://help-static-aliyun-doc.aliyuncs.com/file-manage-files/zh-CN/20251031/ownrof/f26d201b1e3f4e62ab4a1fc82dd5c9bb.png"
PHONE_STORE_SYSTEM = """You are a salesperson at the Bailian phone store. You are responsible for recommending phones to users. The phones have two parameters: screen size (including 6.1-inch, 6.5-inch, and 6.7-inch) and resolution (including 2K and 4K).
        You can only ask the user for one parameter at a time. If the user does not provide complete information, you need to ask a follow-up question to get the missing parameter. When all parameters are collected, you must say: I have understood your purchase intention. Please wait."""  # noqa: E501


def phone_store(base_url: str, api_key: str, answers: list[str]) -> list[dict[str, Any]]:
    """Getting started / OpenAI compatible / Python: the phone store loop. Returns ``messages``."""
    answers = list(answers)

    def get_response(messages):
        client = OpenAI(
            # changed: was api_key=os.getenv("DASHSCOPE_API_KEY")
            api_key=api_key,
            # changed: was base_url="https://dashscope-intl.aliyuncs.com/compatible-mode/v1"
            base_url=base_url,
        )
        # For a list of models, see https://www.alibabacloud.com/help/en/model-studio/getting-started/models
        # changed: extra_body max_tokens (the guide sets none) keeps the embedded model's answers short
        completion = client.chat.completions.create(
            model="qwen-plus", messages=messages, extra_body={"max_tokens": EMBEDDED_MAX_TOKENS}
        )
        return completion

    # Initialize a messages array
    messages = [
        {
            "role": "system",
            "content": PHONE_STORE_SYSTEM,
        }
    ]
    assistant_output = "Welcome to the Bailian phone store. What screen size are you looking for?"
    print(f"Model output: {assistant_output}\n")
    # changed: the loop also ends when the scripted answers run out
    while "I have understood your purchase intention" not in assistant_output and answers:
        user_input = answers.pop(0)  # changed: was input("Please enter: ")
        # Add the user's question to the messages list
        messages.append({"role": "user", "content": user_input})
        assistant_output = get_response(messages).choices[0].message.content
        # Add the model's response to the messages list
        messages.append({"role": "assistant", "content": assistant_output})
        print(f"Model output: {assistant_output}")
        print("\n")
    return messages  # changed: returned to the test


def plain_multi_turn(base_url: str, api_key: str) -> Any:
    """The guide's plain multi-turn request (the curl example's ``messages``: Hello / Hello, I
    am Qwen. / What can you do?) through the guide's Python ``get_response``."""

    def get_response(messages):
        client = OpenAI(
            api_key=api_key,  # changed: was os.getenv("DASHSCOPE_API_KEY")
            base_url=base_url,  # changed: was "https://dashscope-intl.aliyuncs.com/compatible-mode/v1"
        )
        # changed: extra_body max_tokens (the guide sets none) keeps the embedded model's answer short
        completion = client.chat.completions.create(
            model="qwen-plus", messages=messages, extra_body={"max_tokens": EMBEDDED_MAX_TOKENS}
        )
        return completion

    messages = [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "Hello"},
        {"role": "assistant", "content": "Hello, I am Qwen."},
        {"role": "user", "content": "What can you do?"},
    ]
    return get_response(messages)


def multimodal(base_url: str, api_key: str) -> tuple[str, str, list[Any]]:
    """For multimodal models / OpenAI compatible / Python: two rounds, the first answer appended
    back with ``model_dump()``. Returns both outputs and ``messages``."""
    client = OpenAI(
        # API keys vary by region. To obtain an API key, see https://www.alibabacloud.com/help/en/model-studio/get-api-key
        api_key=api_key,  # changed: was os.getenv("DASHSCOPE_API_KEY")
        base_url=base_url,  # changed: was "https://dashscope-intl.aliyuncs.com/compatible-mode/v1"
    )
    messages = [
        {
            "role": "user",
            "content": [
                {
                    "type": "image_url",
                    "image_url": {"url": IMAGE_URL},
                },
                {"type": "text", "text": "What products are shown in the image?"},
            ],
        }
    ]
    completion = client.chat.completions.create(
        model="qwen3-vl-plus",  # You can replace this with other multimodal models and modify the messages as needed
        messages=messages,
    )
    print(f"First round output: {completion.choices[0].message.content}")
    first = completion.choices[0].message.content  # changed: kept for the test

    assistant_message = completion.choices[0].message
    messages.append(assistant_message.model_dump())
    messages.append({"role": "user", "content": [{"type": "text", "text": "What style are they?"}]})
    completion = client.chat.completions.create(
        model="qwen3-vl-plus",
        messages=messages,
    )

    print(f"Second round output: {completion.choices[0].message.content}")
    return first, completion.choices[0].message.content, messages  # changed: returned to the test


def thinking_loop(base_url: str, api_key: str, inputs: list[str]) -> list[tuple[str, str]]:
    """For thinking models / OpenAI compatible / Python: the streaming loop over
    ``delta.reasoning_content`` and ``delta.content``. Returns (reasoning, answer) per round."""
    inputs = list(inputs)
    rounds: list[tuple[str, str]] = []  # changed: collected for the test

    # Initialize the OpenAI client
    client = OpenAI(
        api_key=api_key,  # changed: was os.getenv("DASHSCOPE_API_KEY")
        base_url=base_url,  # changed: was "https://dashscope-intl.aliyuncs.com/compatible-mode/v1"
    )

    messages = []
    conversation_idx = 1
    while inputs:  # changed: was `while True`, bounded by the scripted inputs
        reasoning_content = ""  # Define the complete thinking process
        answer_content = ""  # Define the complete response
        is_answering = False  # Determine whether to end the thinking process and start responding
        print("=" * 20 + f"Conversation Round {conversation_idx}" + "=" * 20)
        conversation_idx += 1
        user_msg = {"role": "user", "content": inputs.pop(0)}  # changed: was input("Enter your message: ")
        messages.append(user_msg)
        # Create a chat completion request
        completion = client.chat.completions.create(
            # You can replace this with other deep thinking models as needed
            model="qwen-plus",
            messages=messages,
            extra_body={"enable_thinking": True},
            stream=True,
            # stream_options={
            #     "include_usage": True
            # }
        )
        print("\n" + "=" * 20 + "Thinking Process" + "=" * 20 + "\n")
        for chunk in completion:
            # If chunk.choices is empty, print usage
            if not chunk.choices:
                print("\nUsage:")
                print(chunk.usage)
            else:
                delta = chunk.choices[0].delta
                # Print the thinking process
                if hasattr(delta, "reasoning_content") and delta.reasoning_content != None:
                    print(delta.reasoning_content, end="", flush=True)
                    reasoning_content += delta.reasoning_content
                else:
                    # Start responding
                    if delta.content != "" and is_answering is False:
                        print("\n" + "=" * 20 + "Complete Response" + "=" * 20 + "\n")
                        is_answering = True
                    # Print the response process
                    print(delta.content, end="", flush=True)
                    answer_content += delta.content
        # Add the content of the model's response to the context
        messages.append({"role": "assistant", "content": answer_content})
        print("\n")
        rounds.append((reasoning_content, answer_content))  # changed: kept for the test
    return rounds
