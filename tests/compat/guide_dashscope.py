"""The guide's Python examples for the DashScope SDK (model-studio-multi-turn-guide.md), as functions.

Each body is the guide's code, copied. What changed is marked ``# changed:``: the base URL
(``dashscope.base_http_api_url``, read by the SDK at call time) and the API key (parameters
here), ``input()`` replaced by scripted answers (loops bounded by them), results returned to
the test, and, where the guide sets no ``max_tokens`` and the example runs on the embedded
model, a small one (a ``Generation.call`` keyword, so it lands in ``parameters``) to keep the
run short on 2 CPU cores.
"""

from __future__ import annotations

from typing import Any

import dashscope
from dashscope import Generation, MultiModalConversation

from .guide_openai import EMBEDDED_MAX_TOKENS, IMAGE_URL, PHONE_STORE_SYSTEM


def phone_store(base_http_api_url: str, api_key: str, answers: list[str]) -> list[dict[str, Any]]:
    """Getting started / DashScope / Python: the phone store loop. Returns ``messages``."""
    answers = list(answers)
    # changed: was 'https://dashscope-intl.aliyuncs.com/api/v1'
    dashscope.base_http_api_url = base_http_api_url

    def get_response(messages):
        response = Generation.call(
            # changed: was api_key=os.getenv("DASHSCOPE_API_KEY")
            api_key=api_key,
            # For a list of models, see https://www.alibabacloud.com/help/en/model-studio/getting-started/models
            model="qwen-plus",
            messages=messages,
            result_format="message",
            max_tokens=EMBEDDED_MAX_TOKENS,  # changed: the guide sets none; keeps the embedded model's answers short
        )
        return response

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
        assistant_output = get_response(messages).output.choices[0].message.content
        # Add the model's response to the messages list
        messages.append({"role": "assistant", "content": assistant_output})
        print(f"Model output: {assistant_output}")
        print("\n")
    return messages  # changed: returned to the test


def plain_multi_turn(base_http_api_url: str, api_key: str) -> Any:
    """The guide's plain multi-turn request (the curl/Java example's ``messages``) through the
    guide's Python ``get_response``. Returns the SDK response."""
    dashscope.base_http_api_url = base_http_api_url  # changed: was 'https://dashscope-intl.aliyuncs.com/api/v1'

    def get_response(messages):
        response = Generation.call(
            api_key=api_key,  # changed: was os.getenv("DASHSCOPE_API_KEY")
            model="qwen-plus",
            messages=messages,
            result_format="message",
            max_tokens=EMBEDDED_MAX_TOKENS,  # changed: the guide sets none; keeps the embedded model's answer short
        )
        return response

    messages = [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "Hello"},
        {"role": "assistant", "content": "Hello, I am Qwen."},
        {"role": "user", "content": "What can you do?"},
    ]
    return get_response(messages)


def multimodal(base_http_api_url: str, api_key: str) -> tuple[str, str, list[Any]]:
    """For multimodal models / DashScope / Python: two rounds on ``MultiModalConversation``, the
    first answer's ``message`` appended back as it came. Returns both outputs and ``messages``."""
    # changed: was 'https://dashscope-intl.aliyuncs.com/api/v1'
    dashscope.base_http_api_url = base_http_api_url

    messages = [
        {
            "role": "user",
            "content": [
                {"image": IMAGE_URL},
                {"text": "What products are shown in the image?"},
            ],
        }
    ]
    response = MultiModalConversation.call(
        # API keys vary by region. To obtain an API key, see https://www.alibabacloud.com/help/en/model-studio/get-api-key
        api_key=api_key,  # changed: was os.getenv('DASHSCOPE_API_KEY')
        model="qwen3-vl-plus",  # You can replace this with other multimodal models and modify the messages as needed
        messages=messages,
    )

    print(f"Model first round output {response.output.choices[0].message.content[0]['text']}")
    first = response.output.choices[0].message.content[0]["text"]  # changed: kept for the test
    messages.append(response["output"]["choices"][0]["message"])
    user_msg = {"role": "user", "content": [{"text": "What style are they?"}]}
    messages.append(user_msg)
    response = MultiModalConversation.call(
        # If the environment variable is not configured, please replace the following line with: api_key="sk-xxx",
        api_key=api_key,  # changed: was os.getenv('DASHSCOPE_API_KEY')
        model="qwen3-vl-plus",
        messages=messages,
    )

    print(f"Model second round output {response.output.choices[0].message.content[0]['text']}")
    return first, response.output.choices[0].message.content[0]["text"], messages  # changed: returned


def thinking_loop(base_http_api_url: str, api_key: str, inputs: list[str]) -> list[tuple[str, str]]:
    """For thinking models / DashScope / Python: the streaming loop with ``enable_thinking``,
    ``stream=True``, ``incremental_output=True``. Returns (reasoning, answer) per round."""
    inputs = list(inputs)
    rounds: list[tuple[str, str]] = []  # changed: collected for the test
    # changed: was "https://dashscope-intl.aliyuncs.com/api/v1/" (the guide's trailing slash is kept)
    dashscope.base_http_api_url = base_http_api_url + "/"

    messages = []
    conversation_idx = 1
    while inputs:  # changed: was `while True`, bounded by the scripted inputs
        print("=" * 20 + f"Conversation Round {conversation_idx}" + "=" * 20)
        conversation_idx += 1
        user_msg = {"role": "user", "content": inputs.pop(0)}  # changed: was input("Enter your message: ")
        messages.append(user_msg)
        response = dashscope.Generation.call(
            # changed: was api_key=os.getenv('DASHSCOPE_API_KEY')
            api_key=api_key,
            # This example uses qwen-plus. You can replace it with other deep thinking models as needed
            model="qwen-plus",
            messages=messages,
            enable_thinking=True,
            result_format="message",
            stream=True,
            incremental_output=True,
        )
        # Define the complete thinking process
        reasoning_content = ""
        # Define the complete response
        answer_content = ""
        # Determine whether to end the thinking process and start responding
        is_answering = False
        print("=" * 20 + "Thinking Process" + "=" * 20)
        for chunk in response:
            # If both the thinking process and the response are empty, ignore
            if (
                chunk.output.choices[0].message.content == ""
                and chunk.output.choices[0].message.reasoning_content == ""
            ):
                pass
            else:
                # If it is currently the thinking process
                if (
                    chunk.output.choices[0].message.reasoning_content != ""
                    and chunk.output.choices[0].message.content == ""
                ):
                    print(chunk.output.choices[0].message.reasoning_content, end="", flush=True)
                    reasoning_content += chunk.output.choices[0].message.reasoning_content
                # If it is currently the response
                elif chunk.output.choices[0].message.content != "":
                    if not is_answering:
                        print("\n" + "=" * 20 + "Complete Response" + "=" * 20)
                        is_answering = True
                    print(chunk.output.choices[0].message.content, end="", flush=True)
                    answer_content += chunk.output.choices[0].message.content
        # Add the content of the model's response to the context
        messages.append({"role": "assistant", "content": answer_content})
        print("\n")
        rounds.append((reasoning_content, answer_content))  # changed: kept for the test
    return rounds
