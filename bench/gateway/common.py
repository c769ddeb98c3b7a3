"""What the fake upstream, the load generator and the orchestrator must agree on."""

from __future__ import annotations

import os

import orjson

MODEL = "qwen-plus"
# 18 words: U streams them as 18 content chunks, between a role chunk and a finish chunk.
SENTENCE = "The quick brown fox jumps over the lazy dog while the patient old cat watches from the window."
WORDS = [w if i == 0 else " " + w for i, w in enumerate(SENTENCE.split(" "))]
UPSTREAM_CHUNKS = len(WORDS) + 2  # role + 18 words + finish = 20 (+1 usage chunk when asked for)
PROMPT = "Please say the usual test sentence again."
MASTER_KEY_PREFIX = "sk-bench-"

OPENAI_PATH = "/v1/chat/completions"
DASHSCOPE_PATH = "/api/v1/services/aigc/text-generation/generation"

assert len(WORDS) == 18


def openai_body(stream: bool) -> bytes:
    """About 119 bytes: the model, one user message and the stream flag."""
    return orjson.dumps({"model": MODEL, "messages": [{"role": "user", "content": PROMPT}], "stream": stream})


def dashscope_body() -> bytes:
    return orjson.dumps(
        {
            "model": MODEL,
            "input": {"messages": [{"role": "user", "content": PROMPT}]},
            "parameters": {"result_format": "message", "incremental_output": True},
        }
    )


TICK = os.sysconf("SC_CLK_TCK")


def proc_cpu(pid: int) -> float:
    """utime + stime of a process (all its threads), in seconds, from ``/proc/<pid>/stat``."""
    with open(f"/proc/{pid}/stat", "rb") as f:
        fields = f.read().rsplit(b")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def machine_busy() -> float:
    """CPU seconds used by everything on the machine (all cores), from ``/proc/stat``."""
    with open("/proc/stat", "rb") as f:
        ticks = [int(x) for x in f.readline().split()[1:9]]
    return (sum(ticks) - ticks[3] - ticks[4]) / TICK


def percentile(values: list[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    if not values:
        return float("nan")
    s = sorted(values)
    pos = (len(s) - 1) * q
    lo = int(pos)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


def positions(spans: str) -> list[int]:
    """The positions of a context report's runs (``kept``, ``dropped``...): ``"0,3-5"`` -> ``[0, 3, 4, 5]``."""
    out: list[int] = []
    for run in filter(None, spans.split(",")):
        first, _, last = run.partition("-")
        out += range(int(first), int(last or first) + 1)
    return out
