"""What writing keys for an answered round with the embedded model would cost (#19).

The memory's misses on multi-evidence questions share no word with the question, and static
word vectors do not link them (``bench/results/memory_baseline.md``). Memory systems that do
link them write keys for each round when it is indexed: facts, keyphrases, entities, from a
language model. This measures that step with the embedded model of the catalogue: for the first
``--rounds`` rounds (a turn and the next) of each data set, one chat completion (temperature 0,
at most ``--max-tokens`` tokens) asked for the round's facts and keyphrases; the seconds a
round, the tokens, and what indexing a whole data set would take at that rate, against the
issue's 2 ms a round. A few of the keys are printed, to judge them.

    .venv/bin/python bench/memory_keys_cost.py [--model qwen2.5-coder-0.5b] [--rounds 20]
        [--max-tokens 48] [--data FILE ...]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

from llama_cpp import Llama

from multiturn.bench.memory_data import Conversation, load
from multiturn.catalog import find, model_file
from multiturn.settings import Settings

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
DATA = [SHARED / "locomo" / "locomo10.json", SHARED / "longmemeval" / "longmemeval_s_dev120.json.gz"]
INSTRUCTION = (
    "List the facts and keyphrases of this exchange (people, events, places, dates, feelings, topics) "
    "as one short comma-separated line."
)
INDEX_BUDGET_S = 0.002


def rounds(conversations: list[Conversation]) -> list[str]:
    """Every round of the data set as text: a turn and the one after it, with their speakers."""
    out = []
    for conversation in conversations:
        turns = conversation.turns
        for a, b in zip(turns[::2], turns[1::2], strict=False):
            out.append(f"{a.role}: {a.text}\n{b.role}: {b.text}")
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="qwen2.5-coder-0.5b", help="a catalogue model [%(default)s]")
    p.add_argument("--rounds", type=int, default=20, help="rounds measured a data set [20]")
    p.add_argument("--max-tokens", type=int, default=48, help="the keys' length at most [48]")
    p.add_argument("--threads", type=int, default=2, help="llama.cpp threads [2]")
    p.add_argument("--data", type=Path, nargs="*", default=DATA, help="data sets [LoCoMo, LongMemEval-S dev]")
    args = p.parse_args()
    path = model_file(find(args.model), Settings.load().models_dir)
    if not path.is_file():
        raise SystemExit(f"{path} is missing: run `multiturn setup` first")
    llm = Llama(model_path=str(path), n_ctx=4096, n_threads=args.threads, verbose=False)
    llm.create_chat_completion([{"role": "user", "content": "hi"}], max_tokens=4)  # warm-up
    print(f"{args.model}, {args.threads} threads, at most {args.max_tokens} tokens of keys a round")
    for data in args.data:
        every = rounds(load(data))
        seconds, prompt, written, keys = [], [], [], []
        for text in every[: args.rounds]:
            messages = [{"role": "system", "content": INSTRUCTION}, {"role": "user", "content": text}]
            started = time.perf_counter()
            answer = llm.create_chat_completion(messages, max_tokens=args.max_tokens, temperature=0)
            seconds.append(time.perf_counter() - started)
            prompt.append(answer["usage"]["prompt_tokens"])
            written.append(answer["usage"]["completion_tokens"])
            keys.append((text, answer["choices"][0]["message"]["content"] or ""))
        p50 = statistics.median(seconds)
        print(
            f"\n{data.name}: {len(seconds)} of {len(every):,} rounds; seconds a round p50 {p50:.2f} "
            f"(min {min(seconds):.2f}, max {max(seconds):.2f}), {p50 / INDEX_BUDGET_S:,.0f}x the 2 ms budget; "
            f"prompt tokens p50 {statistics.median(prompt):.0f}, keys p50 {statistics.median(written):.0f} tokens; "
            f"every round at that rate: {p50 * len(every) / 3600:.1f} h"
        )
        for text, written_keys in keys[:3]:
            print(f"  round: {text[:160]!r}\n  keys:  {written_keys[:160]!r}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
