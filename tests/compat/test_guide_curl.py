"""The guide's curl examples, run by ``bash`` with the real ``curl`` binary.

The commands are the guide's text with only the host replaced (``https://dashscope-intl.aliyuncs.com``
becomes the gateway's ``http://127.0.0.1:PORT``; ``$DASHSCOPE_API_KEY`` comes from the
environment). The two that run on the embedded model get a small ``max_tokens`` added to their
JSON (the guide sets none), to keep the run short on 2 CPU cores. The output must parse: one
JSON body, or SSE events whose data each parse as JSON, ``[DONE]`` only on the OpenAI stream.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from typing import Any

import pytest

from support.serve import Server

GUIDE_HOST = "https://dashscope-intl.aliyuncs.com"

# Getting started / OpenAI compatible / curl (+ "max_tokens": 32 for the embedded model)
COMPAT_TEXT = """curl -X POST https://dashscope-intl.aliyuncs.com/compatible-mode/v1/chat/completions \\
-H "Authorization: Bearer $DASHSCOPE_API_KEY" \\
-H "Content-Type: application/json" \\
-d '{
    "model": "qwen-plus",
    "max_tokens": 32,
    "messages":[
        {
            "role": "system",
            "content": "You are a helpful assistant."
        },
        {
            "role": "user",
            "content": "Hello"
        },
        {
            "role": "assistant",
            "content": "Hello, I am Qwen."
        },
        {
            "role": "user",
            "content": "What can you do?"
        }
    ]
}'"""

# Getting started / DashScope / curl (+ "parameters": {"max_tokens": 32} for the embedded model)
NATIVE_TEXT = """curl -X POST https://dashscope-intl.aliyuncs.com/api/v1/services/aigc/text-generation/generation \\
-H "Authorization: Bearer $DASHSCOPE_API_KEY" \\
-H "Content-Type: application/json" \\
-d '{
    "model": "qwen-plus",
    "input":{
        "messages":[
            {
                "role": "system",
                "content": "You are a helpful assistant."
            },
            {
                "role": "user",
                "content": "Hello"
            },
            {
                "role": "assistant",
                "content": "Hello, I am Qwen."
            },
            {
                "role": "user",
                "content": "What can you do?"
            }
        ]
    },
    "parameters": {"max_tokens": 32}
}'"""

# For multimodal models / OpenAI compatible / curl
COMPAT_MULTIMODAL = """curl -X POST https://dashscope-intl.aliyuncs.com/compatible-mode/v1/chat/completions \\
-H "Authorization: Bearer $DASHSCOPE_API_KEY" \\
-H 'Content-Type: application/json' \\
-d '{
  "model": "qwen3-vl-plus",
  "messages": [
    {
      "role": "user",
      "content": [
        {
          "type": "image_url",
          "image_url": {
            "url": "https://help-static-aliyun-doc.aliyuncs.com/file-manage-files/zh-CN/20251031/ownrof/f26d201b1e3f4e62ab4a1fc82dd5c9bb.png"
          }
        },
        {
          "type": "text",
          "text": "What products are shown in the image?"
        }
      ]
    },
    {
      "role": "assistant",
      "content": [
        {
          "type": "text",
          "text": "The image shows three items: a pair of light blue overalls, a blue and white striped short-sleeve shirt, and a pair of white sneakers."
        }
      ]
    },
    {
      "role": "user",
      "content": [
        {
          "type": "text",
          "text": "What style are they?"
        }
      ]
    }
  ]
}'"""  # noqa: E501

# For multimodal models / DashScope / curl
NATIVE_MULTIMODAL = """curl -X POST https://dashscope-intl.aliyuncs.com/api/v1/services/aigc/multimodal-generation/generation \\
-H "Authorization: Bearer $DASHSCOPE_API_KEY" \\
-H 'Content-Type: application/json' \\
-d '{
    "model": "qwen3-vl-plus",
    "input":{
        "messages":[
            {
                "role": "user",
                "content": [
                    {"image": "https://help-static-aliyun-doc.aliyuncs.com/file-manage-files/zh-CN/20251031/ownrof/f26d201b1e3f4e62ab4a1fc82dd5c9bb.png"},
                    {"text": "What products are shown in the image?"}
                ]
            },
            {
                "role": "assistant",
                "content": [
                    {"text": "The image shows three items: a pair of light blue overalls, a blue and white striped short-sleeve shirt, and a pair of white sneakers."}
                ]
            },
            {
                "role": "user",
                "content": [
                    {"text": "What style are they?"}
                ]
            }
        ]
    }
}'"""  # noqa: E501

# For thinking models / OpenAI compatible / curl (streaming, include_usage)
COMPAT_THINKING_STREAM = """curl -X POST https://dashscope-intl.aliyuncs.com/compatible-mode/v1/chat/completions \\
-H "Authorization: Bearer $DASHSCOPE_API_KEY" \\
-H "Content-Type: application/json" \\
-d '{
    "model": "qwen-plus",
    "messages": [
        {
            "role": "user",
            "content": "Hello"
        },
        {
            "role": "assistant",
            "content": "Hello! Nice to meet you. Is there anything I can help you with?"
        },
        {
            "role": "user",
            "content": "Who are you?"
        }
    ],
    "stream": true,
    "stream_options": {
        "include_usage": true
    },
    "enable_thinking": true
}'"""

# For thinking models / DashScope / curl (X-DashScope-SSE: enable)
NATIVE_THINKING_STREAM = """curl -X POST "https://dashscope-intl.aliyuncs.com/api/v1/services/aigc/text-generation/generation" \\
-H "Authorization: Bearer $DASHSCOPE_API_KEY" \\
-H "Content-Type: application/json" \\
-H "X-DashScope-SSE: enable" \\
-d '{
    "model": "qwen-plus",
    "input":{
        "messages":[
            {
                "role": "user",
                "content": "Hello"
            },
            {
                "role": "assistant",
                "content": "Hello! Nice to meet you. Is there anything I can help you with?"
            },
            {
                "role": "user",
                "content": "Who are you?"
            }
        ]
    },
    "parameters":{
        "enable_thinking": true,
        "incremental_output": true,
        "result_format": "message"
    }
}'"""  # noqa: E501


@pytest.fixture(scope="module")
def curl() -> str:
    exe = shutil.which("curl")
    if exe is None:
        pytest.skip("curl is not installed")
    return exe


def run_curl(command: str, server: Server) -> str:
    assert command.count(GUIDE_HOST) == 1
    env = {**os.environ, "DASHSCOPE_API_KEY": server.api_key}
    result = subprocess.run(
        ["bash", "-c", command.replace(GUIDE_HOST, server.base)],
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def sse_data(out: str) -> list[str]:
    """The ``data:`` payloads of an SSE body, checking that each event has exactly one."""
    events = [block for block in out.replace("\r\n", "\n").split("\n\n") if block.strip()]
    payloads = []
    for block in events:
        data = [line for line in block.split("\n") if line.startswith("data:")]
        assert len(data) == 1, block
        payloads.append(data[0][len("data:") :].strip())
    return payloads


@pytest.mark.model
def test_compat_curl_on_embedded_model(curl: str, embedded: Server) -> None:
    body = json.loads(run_curl(COMPAT_TEXT, embedded))

    assert body["object"] == "chat.completion"
    message = body["choices"][0]["message"]
    assert message["role"] == "assistant" and isinstance(message["content"], str) and message["content"]
    assert body["usage"]["total_tokens"] == body["usage"]["prompt_tokens"] + body["usage"]["completion_tokens"]


@pytest.mark.model
def test_native_curl_on_embedded_model(curl: str, embedded: Server) -> None:
    body = json.loads(run_curl(NATIVE_TEXT, embedded))

    # No result_format: qwen-plus's documented default over raw HTTP is "text".
    assert isinstance(body["output"]["text"], str) and body["output"]["text"]
    assert body["output"]["finish_reason"] in ("stop", "length")
    assert body["request_id"] and body["usage"]["input_tokens"] > 0


def test_compat_multimodal_curl_through_gateway(curl: str, gateway: Server) -> None:
    body = json.loads(run_curl(COMPAT_MULTIMODAL, gateway))

    assert body["choices"][0]["message"]["content"] == "You said: What style are they?"


def test_native_multimodal_curl_through_gateway(curl: str, gateway: Server) -> None:
    body = json.loads(run_curl(NATIVE_MULTIMODAL, gateway))

    (choice,) = body["output"]["choices"]
    assert choice["message"]["content"] == [{"text": "You said: What style are they?"}]
    assert choice["finish_reason"] == "stop"


def test_compat_thinking_stream_curl_through_gateway(curl: str, gateway: Server) -> None:
    payloads = sse_data(run_curl(COMPAT_THINKING_STREAM, gateway))

    assert payloads[-1] == "[DONE]" and payloads.count("[DONE]") == 1
    chunks: list[dict[str, Any]] = [json.loads(p) for p in payloads[:-1]]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    *with_choices, usage = chunks
    assert usage["choices"] == [] and usage["usage"]["total_tokens"] > 0  # include_usage: one last chunk
    deltas = [c["choices"][0]["delta"] for c in with_choices]
    reasoning = "".join(d.get("reasoning_content") or "" for d in deltas)
    content = "".join(d.get("content") or "" for d in deltas)
    assert (reasoning, content) == ("The user said: Who are you?. I will answer.", "You said: Who are you?")
    assert [c["choices"][0]["finish_reason"] for c in with_choices][-1] == "stop"


def test_native_thinking_stream_curl_through_gateway(curl: str, gateway: Server) -> None:
    payloads = sse_data(run_curl(NATIVE_THINKING_STREAM, gateway))

    assert "[DONE]" not in payloads
    events = [json.loads(p) for p in payloads]
    messages = [e["output"]["choices"][0]["message"] for e in events]
    assert "".join(m["reasoning_content"] for m in messages) == "The user said: Who are you?. I will answer."
    assert "".join(m["content"] for m in messages) == "You said: Who are you?"
    reasons = [e["output"]["choices"][0]["finish_reason"] for e in events]
    assert reasons[:-1] == ["null"] * (len(reasons) - 1) and reasons[-1] == "stop"
