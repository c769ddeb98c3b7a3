"""The Model Studio multi-turn guide read as its samples, and the means to run them.

``guide/model-studio-multi-turn-guide.md`` is a copy of the page multiturn implements. A
*sample* is the fenced code block under a language heading (Python, Node.js, curl, Java) of a
protocol heading (OpenAI compatible, DashScope) of one of the three sections that hold code
(Getting started, For multimodal models, For thinking models); the guide's other blocks are
message arrays that illustrate. A sample is named by its place: ``text/openai/python``,
``thinking/dashscope/curl``...

Python, Node.js and curl samples run from the guide's own text, changed as little as
possible, and every change is visible here:

- the guide's base URLs (``https://dashscope-intl.aliyuncs.com/compatible-mode/v1`` and
  ``.../api/v1``) become the server's; no other occurrence of the host may remain;
- ``Edit``s, each of which must match the sample's text exactly once (an edit that stops
  applying because the guide changed fails the run, it is never skipped): a small
  ``max_tokens`` where the sample runs on the embedded model (the guide sets none; 2 CPU
  cores), scripted input in place of Node's readline;
- ``input()`` (Python) reads scripted answers; when they run out the sample's loop ends there;
- the API key is ``DASHSCOPE_API_KEY`` in the environment, where the guide reads it.

Java samples use the DashScope Java SDK, which is not reachable; ``java/`` sends their
request bodies with the JDK's client (``java_runner.py``).
"""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stdout
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

GUIDE = Path(__file__).with_name("guide") / "model-studio-multi-turn-guide.md"
GUIDE_HOST = "https://dashscope-intl.aliyuncs.com"
GUIDE_COMPAT = f"{GUIDE_HOST}/compatible-mode/v1"
GUIDE_NATIVE = f"{GUIDE_HOST}/api/v1"
IMAGE_URL = "https://help-static-aliyun-doc.aliyuncs.com/file-manage-files/zh-CN/20251031/ownrof/f26d201b1e3f4e62ab4a1fc82dd5c9bb.png"
EMBEDDED_MAX_TOKENS = 32

SECTIONS = {"Getting started": "text", "For multimodal models": "multimodal", "For thinking models": "thinking"}
PROTOCOLS = {"OpenAI compatible": "openai", "DashScope": "dashscope"}
LANGUAGES = {"Python": "python", "Node.js": "node", "curl": "curl", "Java": "java"}
GROUPING = {"HTTP"}  # a heading the thinking section puts between a protocol and its curl sample


@dataclass(frozen=True)
class Sample:
    section: str  # text | multimodal | thinking
    protocol: str  # openai | dashscope
    language: str  # python | node | curl | java
    code: str
    line: int  # where its fence opens in the guide

    @property
    def id(self) -> str:
        return f"{self.section}/{self.protocol}/{self.language}"


def samples(path: Path = GUIDE) -> list[Sample]:
    """The guide's samples, in the guide's order."""
    found: list[Sample] = []
    section = protocol = language = None
    fence: list[str] | None = None
    opened = 0
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if fence is not None:
            if line.strip() == "```":
                if section and protocol and language:
                    found.append(Sample(section, protocol, language, "\n".join(fence) + "\n", opened))
                    language = None  # one sample per language heading
                fence = None
            else:
                fence.append(line)
            continue
        if line.strip().startswith("```"):
            fence, opened = [], number
            continue
        heading = re.fullmatch(r"##\s+(.*?)\s*", line)
        if heading is None:
            continue
        title = heading.group(1).strip("* ")
        if title in PROTOCOLS:
            protocol, language = PROTOCOLS[title], None
        elif title in LANGUAGES:
            language = LANGUAGES[title]
        elif title not in GROUPING:  # a section: only the three with code hold samples
            section, protocol, language = SECTIONS.get(title), None, None
    return found


# -- changing a sample ------------------------------------------------------------------------


@dataclass(frozen=True)
class Edit:
    """``old`` becomes ``new``; ``old`` must occur exactly once in the sample."""

    old: str
    new: str


def prepared(sample: Sample, base_url: str, edits: tuple[Edit, ...] = ()) -> str:
    """The sample's code pointed at ``base_url`` (the OpenAI-compatible base for ``openai``
    samples, the DashScope one for ``dashscope`` samples), with ``edits`` applied."""
    code = sample.code
    guide_base = GUIDE_COMPAT if sample.protocol == "openai" else GUIDE_NATIVE
    assert guide_base in code, f"{sample.id} does not name {guide_base}"
    code = code.replace(guide_base, base_url)
    assert GUIDE_HOST not in code, f"{sample.id} names the guide's host other than as its base URL"
    for edit in edits:
        assert code.count(edit.old) == 1, f"{sample.id}: {edit.old!r} occurs {code.count(edit.old)} times"
        code = code.replace(edit.old, edit.new)
    return code


# -- Python -----------------------------------------------------------------------------------


class InputExhausted(Exception):
    """The scripted answers ran out: the sample's loop ends there."""


@dataclass
class PythonRun:
    namespace: dict[str, Any]
    stdout: str
    error: Exception | None
    """What the sample raised (``None``: it ended, or its input ran out)."""


@contextmanager
def _environment(**values: str) -> Iterator[None]:
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def run_python(
    sample: Sample, base_url: str, key: str, inputs: list[str] = (), edits: tuple[Edit, ...] = ()
) -> PythonRun:
    """Execute the sample in a namespace of its own; ``input()`` answers from ``inputs``."""
    code = compile(prepared(sample, base_url, edits), f"<guide {sample.id}>", "exec")
    answers = list(inputs)

    def scripted(prompt: str = "") -> str:
        if not answers:
            raise InputExhausted
        answer = answers.pop(0)
        print(f"{prompt}{answer}")
        return answer

    namespace: dict[str, Any] = {"__name__": f"guide_{sample.section}_{sample.protocol}", "input": scripted}
    out = io.StringIO()
    error: Exception | None = None
    with redirect_stdout(out), _environment(DASHSCOPE_API_KEY=key):
        try:
            exec(code, namespace)
        except InputExhausted:
            pass
        except Exception as exc:  # what the client saw: the test reads it
            error = exc
    return PythonRun(namespace, out.getvalue(), error)


# -- Node.js ----------------------------------------------------------------------------------

# Put in front of a Node sample whose input the terminal would give: answers from
# SCRIPTED_INPUT (echoed after the prompt); when they run out, the conversation is printed as
# one JSON line and the process ends (the guide's loops would wait for the terminal).
NODE_SCRIPTED_INPUT = """\
// Added by tests/compat/guide.py: scripted answers in place of the terminal.
const scriptedAnswers = JSON.parse(process.env.SCRIPTED_INPUT || "[]");
function scriptedReadline() {
    const finish = () => { console.log("MESSAGES " + JSON.stringify(messages)); process.exit(0); };
    return {
        question: async (prompt) => {
            if (scriptedAnswers.length === 0) finish();
            const answer = scriptedAnswers.shift();
            console.log(prompt + answer);
            return answer;
        },
        close: finish,
    };
}
"""
NODE_TERMINAL = "createInterface({\n    input: process.stdin,\n    output: process.stdout\n});"


def node_code(sample: Sample, base_url: str, edits: tuple[Edit, ...] = ()) -> str:
    """The sample's code for ``node``; one that reads the terminal reads scripted answers."""
    code = prepared(sample, base_url, edits)
    terminal = re.compile(r"\b(?:readline\.)?" + re.escape(NODE_TERMINAL))
    found = len(terminal.findall(code))
    assert found <= 1, f"{sample.id} opens the terminal {found} times"
    return NODE_SCRIPTED_INPUT + terminal.sub("scriptedReadline();", code) if found else code


# -- curl -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Curl:
    exe: str


def curl_executable() -> Curl:
    exe = shutil.which("curl")
    if exe is None:
        pytest.skip("curl is not installed")
    return Curl(exe)


@dataclass
class CurlRun:
    stdout: str
    command: str = field(repr=False)


def run_curl(sample: Sample, base_url: str, key: str, edits: tuple[Edit, ...] = ()) -> CurlRun:
    """The sample's command run by ``bash`` (its ``curl`` the real binary); it must exit 0."""
    command = prepared(sample, base_url, edits)
    result = subprocess.run(
        ["bash", "-c", command],
        env={**os.environ, "DASHSCOPE_API_KEY": key},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return CurlRun(result.stdout, command)


def sse_data(out: str) -> list[str]:
    """The ``data:`` payloads of an SSE body, checking that each event has exactly one."""
    events = [block for block in out.replace("\r\n", "\n").split("\n\n") if block.strip()]
    payloads = []
    for block in events:
        data = [line for line in block.split("\n") if line.startswith("data:")]
        assert len(data) == 1, block
        payloads.append(data[0][len("data:") :].strip())
    return payloads
