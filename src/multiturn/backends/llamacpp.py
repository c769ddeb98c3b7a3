"""The embedded backend: a GGUF model run in-process by llama-cpp-python.

Measured facts shape it (docs/architecture.md has the numbers):
- Every llama call runs on **one dedicated, long-lived thread** fed by a queue. Decoding from a
  second OS thread costs a third of the speed, so neither ``asyncio.to_thread`` nor a pool is
  used. Concurrent callers wait their turn in the queue; the event loop is never blocked.
- llama.cpp keeps one KV sequence and reuses the longest common token prefix with the previous
  call. The reused length is reported as ``Usage.cached_tokens``.
- The prompt is rendered with the model's own chat template (from the GGUF) and tokenized here,
  so the prefix and the context-window check are exact. The request's ``tools`` are rendered by
  the template too; the calls the model writes (``<tool_call>`` blocks) come out as
  ``tool_calls``, and a forced ``tool_choice``, a ``strict`` tool's arguments or a JSON
  ``response_format`` is enforced by a grammar (``grammar.py``).

A model file is loaded once per process: backends for the same file and options share one
``_Runner`` (thread + model).
"""

from __future__ import annotations

import asyncio
import codecs
import json
import logging
import os
import queue
import threading
from collections.abc import AsyncGenerator, Callable, Iterator, Sequence
from concurrent.futures import Future
from contextlib import suppress
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from .. import catalog
from ..errors import BackendError, ContextTooLong, InvalidInput, MissingDependency, ModelUnavailable
from ..types import Delta, FinishReason, GenerationParams, Message, TextPart, ToolCall, ToolCallDelta, Usage
from .base import BackendInfo, Honours
from .grammar import Steer, request_constraint, text_tags
from .thinking import ThinkSplitter
from .tool_calls import CLOSE, OPEN, ToolCallSplitter, render_tools, tool_use

log = logging.getLogger(__name__)

CHATML = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


@dataclass(frozen=True, slots=True)
class LlamaOptions:
    """How a model file is loaded (one loaded model per file and options)."""

    n_ctx: int = 8192
    n_threads: int | None = None
    n_batch: int = 512
    flash_attn: bool = True


@dataclass(frozen=True, slots=True)
class Sampling:
    """What a request that leaves a field unset gets. Repeat penalty 1.0: llama_cpp.server's
    1.1 makes small models repeat earlier answers verbatim."""

    max_tokens: int = 1024
    temperature: float = 0.7
    top_p: float = 0.8
    top_k: int = 20
    repeat_penalty: float = 1.0

    def fill(self, params: GenerationParams) -> GenerationParams:
        return replace(
            params,
            max_tokens=params.max_tokens or self.max_tokens,
            temperature=self.temperature if params.temperature is None else params.temperature,
            top_p=self.top_p if params.top_p is None else params.top_p,
            top_k=self.top_k if params.top_k is None else params.top_k,
            repetition_penalty=params.repetition_penalty or self.repeat_penalty,
        )


DEFAULT_SAMPLING = Sampling()

EMBEDDED = Honours(backend="the embedded llama.cpp backend", grammar=True, extra=frozenset({"user", "metadata"}))
"""One choice, no thinking (no small thinking model is reachable offline), no log probabilities
(llama.cpp has them per token, but not through this backend yet); ``user`` and ``metadata`` are
labels that change no answer."""


class LlamaCppBackend:
    """One model name served by a shared ``_Runner``."""

    def __init__(
        self,
        name: str,
        locate: Callable[[], Path],
        options: LlamaOptions,
        *,
        sampling: Sampling | None = None,
        context_window: int | None = None,
        description: str = "",
        served_by: str = "the embedded model",
    ) -> None:
        self.name = name
        self._served_by = served_by
        self._locate = locate
        self._options = options
        self._sampling = sampling or Sampling()
        self._trained_window = context_window
        self._description = description
        self._runner: _Runner | None = None

    @classmethod
    def for_catalog(
        cls,
        spec: catalog.ModelSpec,
        models_dir: Path,
        options: LlamaOptions,
        *,
        name: str | None = None,
        sampling: Sampling | None = None,
    ) -> LlamaCppBackend:
        return cls(
            name or spec.name,
            lambda: catalog.resolve(spec, models_dir),
            options,
            sampling=sampling,
            context_window=spec.context_window,
            description=spec.description,
            served_by=f"the embedded model {spec.name}",
        )

    @classmethod
    def for_file(
        cls, name: str, path: Path, options: LlamaOptions, *, sampling: Sampling | None = None
    ) -> LlamaCppBackend:
        def locate() -> Path:
            if not path.is_file():
                raise ModelUnavailable(f"model file {path} does not exist")
            with path.open("rb") as handle:
                if handle.read(4) != b"GGUF":
                    raise ModelUnavailable(f"{path} is not a GGUF model file")
            return path

        return cls(name, locate, options, sampling=sampling, description=str(path))

    def info(self) -> BackendInfo:
        window = self._options.n_ctx
        if self._trained_window is not None:
            window = min(window, self._trained_window)
        return BackendInfo(
            name=self.name,
            context_window=window,
            max_output_tokens=window,
            capabilities=frozenset({"text", "stream"}),
            description=self._description,
            served_by=self._served_by,
            honours=EMBEDDED,
        )

    async def prepare(self) -> None:
        if self._runner is None:
            path = await asyncio.get_running_loop().run_in_executor(None, self._locate)
            self._runner = _Runner.shared(path, self._options)
        await asyncio.wrap_future(self._runner.submit(lambda state: None))

    async def count_tokens(self, text: str) -> int:
        runner = await self._ready()
        return await asyncio.wrap_future(
            runner.submit(lambda state: len(state.llm.tokenize(text.encode(), False, False)))
        )

    async def generate(self, messages: Sequence[Message], params: GenerationParams) -> AsyncGenerator[Delta, None]:
        runner = await self._ready()
        loop = asyncio.get_running_loop()
        out: asyncio.Queue[Delta | BaseException | None] = asyncio.Queue()
        cancel = threading.Event()

        def emit(event: Delta | BaseException | None) -> None:
            try:
                loop.call_soon_threadsafe(out.put_nowait, event)
            except RuntimeError:  # the loop is gone: the caller left
                cancel.set()

        filled = self._sampling.fill(params)
        job = runner.submit(lambda state: _generate(state, messages, filled, emit, cancel))
        try:
            while True:
                event = await out.get()
                if event is None:
                    return
                if isinstance(event, BaseException):
                    raise event
                yield event
        finally:
            cancel.set()
            # Wait (at most one decode step) until the runner has left llama.cpp: a process that
            # exits while a decode is running tears the library down under it (SIGSEGV).
            with suppress(Exception):
                await asyncio.shield(asyncio.wrap_future(job))

    async def aclose(self) -> None:
        return None

    async def _ready(self) -> _Runner:
        if self._runner is None:
            await self.prepare()
        assert self._runner is not None
        return self._runner


class _State:
    """What lives on the runner thread: the model and its chat template."""

    def __init__(self, path: Path, options: LlamaOptions) -> None:
        try:
            import llama_cpp
            from llama_cpp.llama_chat_format import Jinja2ChatFormatter
        except ImportError as exc:
            raise MissingDependency("llama_cpp", "embedded") from exc
        self.lib = llama_cpp
        try:
            self.llm = llama_cpp.Llama(
                model_path=str(path),
                n_ctx=options.n_ctx,
                n_threads=options.n_threads or os.cpu_count() or 1,
                n_batch=options.n_batch,
                flash_attn=options.flash_attn,
                verbose=False,
            )
        except (ValueError, RuntimeError) as exc:
            raise ModelUnavailable(f"cannot load {path}: {exc}") from exc
        model = self.llm._model
        eos_id, bos_id = self.llm.token_eos(), self.llm.token_bos()
        self.eos = model.token_get_text(eos_id) if eos_id != -1 else ""
        template = self.llm.metadata.get("tokenizer.chat_template") or CHATML
        self.formatter = Jinja2ChatFormatter(
            template=template,
            eos_token=self.eos,
            bos_token=model.token_get_text(bos_id) if bos_id != -1 else "",
        )
        self.n_ctx = self.llm.n_ctx()
        self.grammars: dict[str, Any] = {}
        """Compiled grammars by their text (tools and formats repeat from request to request)."""
        self.tag_tokens = all(len(self.llm.tokenize(tag.encode(), False, True)) == 1 for tag in (OPEN, CLOSE))
        """The vocabulary has a token for each tool-call tag (Qwen's): grammars may name them."""

    def is_eog(self, token: int) -> bool:
        return bool(self.lib.llama_vocab_is_eog(self.llm._model.vocab, token))

    def prompt_tokens(self, messages: Sequence[Message], params: GenerationParams) -> list[int]:
        extra: dict[str, Any] = {}
        if params.enable_thinking is not None:
            extra["enable_thinking"] = params.enable_thinking
        shown = tool_use(params).shown
        if shown:
            extra["tools"] = render_tools(shown)
        template_messages: list[Any] = [_template_message(m) for m in messages]
        rendered = self.formatter(messages=template_messages, **extra)
        tokens: list[int] = self.llm.tokenize(
            rendered.prompt.encode(), add_bos=not rendered.added_special, special=True
        )
        return tokens


class _Runner:
    """One thread that owns one ``Llama`` and runs every job on it, in order."""

    _shared: dict[tuple[Path, LlamaOptions], _Runner] = {}
    _shared_lock = threading.Lock()

    @classmethod
    def shared(cls, path: Path, options: LlamaOptions) -> _Runner:
        key = (path.resolve(), options)
        with cls._shared_lock:
            runner = cls._shared.get(key)
            if runner is None:
                runner = cls._shared[key] = cls(path, options)
            return runner

    def __init__(self, path: Path, options: LlamaOptions) -> None:
        self._jobs: queue.SimpleQueue[tuple[Callable[[_State], Any], Future[Any]]] = queue.SimpleQueue()
        self._path = path
        self._options = options
        self._state: _State | None = None
        self._load_error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=f"llama:{path.name}", daemon=True)
        self._thread.start()

    def submit(self, job: Callable[[_State], Any]) -> Future[Any]:
        future: Future[Any] = Future()
        self._jobs.put((job, future))
        return future

    def _run(self) -> None:
        while True:
            job, future = self._jobs.get()
            if not future.set_running_or_notify_cancel():
                continue
            try:
                state = self._load()
                future.set_result(job(state))
            except BaseException as exc:  # handed to the waiting caller, never lost
                future.set_exception(exc)

    def _load(self) -> _State:
        if self._state is None:
            if self._load_error is not None:
                raise self._load_error
            try:
                self._state = _State(self._path, self._options)
            except BaseException as exc:
                self._load_error = exc
                raise
        return self._state


def _generate(
    state: _State,
    messages: Sequence[Message],
    params: GenerationParams,
    emit: Callable[[Delta | BaseException | None], None],
    cancel: threading.Event,
) -> None:
    """Runs on the runner thread: stream one completion into ``emit``."""
    if cancel.is_set():
        return
    try:
        use = tool_use(params)
        constraint = request_constraint(params)  # built by the capability check already
        steer = None
        if constraint is not None:
            for text in (constraint.grammar, constraint.after_tag):
                _grammar(state, text)  # checked by llama.cpp before anything is generated
            steer = Steer(constraint)
        tokens = state.prompt_tokens(messages, params)
    except InvalidInput as exc:
        emit(exc)
        return
    except Exception as exc:  # the template refused the messages
        emit(BackendError(f"cannot render the chat template: {exc}"))
        return
    if len(tokens) >= state.n_ctx:
        emit(
            ContextTooLong(
                f"Range of input length should be [1, {state.n_ctx - 1}]: the prompt has {len(tokens)} tokens",
                prompt_tokens=len(tokens),
                limit=state.n_ctx - 1,
            )
        )
        return
    llm = state.llm
    cached = _reused_prefix(list(llm._input_ids), tokens)
    budget = min(params.max_tokens or DEFAULT_SAMPLING.max_tokens, state.n_ctx - len(tokens))
    if params.seed is not None:
        llm.set_seed(params.seed)
    stops = tuple(s for s in params.stop if s)
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    splitter = ThinkSplitter()
    calls = ToolCallSplitter([tool.name for tool in use.shown]) if use.shown else None
    called = 0
    held = ""  # text that might be the start of a stop sequence
    generated = 0
    reasoning_tokens = 0
    sent = False
    finish: FinishReason = "length"
    try:
        for token in _sample(state, tokens, params, steer):
            if cancel.is_set():
                finish = "cancelled"
                break
            if state.is_eog(token):
                finish = "stop"
                break
            generated += 1
            held += decoder.decode(llm.detokenize([token]))
            text, held, stopped = _cut_stop(held, stops)
            if text:
                content, reasoning = splitter.feed(text)
                if reasoning:
                    reasoning_tokens += 1
                found: tuple[ToolCallDelta, ...] = ()
                if calls is not None and content:
                    content, made = calls.feed(content)
                    found = tuple(_call_delta(called + n, call) for n, call in enumerate(made))
                    called += len(found)
                if content or reasoning or found:
                    # The first delta tells the prompt's size at once (native streams report a
                    # constant input_tokens on every event); the last one has the final usage.
                    early = None if sent else Usage(len(tokens), generated, cached, reasoning_tokens)
                    emit(Delta(content=content, reasoning=reasoning, tool_calls=found, usage=early))
                    sent = True
                if found and params.parallel_tool_calls is False:  # one call asked for: it is made
                    finish = "stop"
                    held = ""
                    break
            if stopped:
                finish = "stop"
                held = ""
                break
            if generated >= budget:
                break
    except Exception as exc:
        emit(BackendError(f"llama.cpp failed while generating: {exc}"))
        return
    held += decoder.decode(b"", final=True)
    content, reasoning = splitter.feed(held)
    tail_content, tail_reasoning = splitter.flush()
    content += tail_content
    found = ()
    if calls is not None:
        content, made = calls.feed(content)
        rest, last = calls.flush()
        content, made = content + rest, made + last
        found = tuple(_call_delta(called + n, call) for n, call in enumerate(made))
        called += len(found)
    if content or reasoning + tail_reasoning or found:
        emit(Delta(content=content, reasoning=reasoning + tail_reasoning, tool_calls=found))
    if called and finish == "stop":
        finish = "tool_calls"
    usage = Usage(
        prompt_tokens=len(tokens),
        completion_tokens=generated,
        cached_tokens=cached,
        reasoning_tokens=reasoning_tokens,
    )
    emit(Delta(finish_reason=finish, usage=usage))
    emit(None)


def _sample(state: _State, prompt: list[int], params: GenerationParams, steer: Steer | None) -> Iterator[int]:
    """The answer's tokens: ``Llama.generate`` under the grammar ``steer`` holds now, started
    again from where the answer is whenever that grammar changes (llama.cpp reuses the KV
    prefix: a restart evaluates one token again). A sampler's state starts afresh with it
    (penalties look back over the tokens it has sampled)."""
    llm = state.llm
    answer: list[int] = []
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    while True:
        changed = False
        for token in llm.generate(
            prompt + answer,
            top_k=params.top_k if params.top_k is not None else DEFAULT_SAMPLING.top_k,
            top_p=params.top_p if params.top_p is not None else DEFAULT_SAMPLING.top_p,
            min_p=0.0,
            temp=params.temperature if params.temperature is not None else DEFAULT_SAMPLING.temperature,
            repeat_penalty=params.repetition_penalty or DEFAULT_SAMPLING.repeat_penalty,
            frequency_penalty=params.frequency_penalty or 0.0,
            presence_penalty=params.presence_penalty or 0.0,
            grammar=_grammar(state, steer.grammar if steer is not None else None),
        ):
            answer.append(token)
            yield token
            if steer is not None and not state.is_eog(token):
                changed = steer.feed(decoder.decode(llm.detokenize([token])))
                if changed:
                    break
        if not changed:
            return


def _grammar(state: _State, text: str | None) -> Any:
    """The grammar for ``Llama.generate`` (``None``: sample freely), checked by llama.cpp
    against the model's vocabulary first: ``LlamaGrammar`` does not parse its text, and a
    sampler built from a grammar llama.cpp cannot parse crashes the process (measured:
    SIGSEGV). Grammars are kept by text (tools and formats repeat from request to request).

    Raises:
        InvalidInput: llama.cpp cannot parse the grammar (its reason goes to stderr).
    """
    if text is None:
        return None
    compiled = state.grammars.get(text)
    if compiled is None:
        from llama_cpp.llama_grammar import LlamaGrammar

        source = text if state.tag_tokens else text_tags(text)
        checked = state.lib.llama_sampler_init_grammar(state.llm._model.vocab, source.encode(), b"root")
        if not checked:
            raise InvalidInput("the requested output format cannot be enforced: llama.cpp cannot parse its grammar")
        state.lib.llama_sampler_free(checked)
        compiled = LlamaGrammar.from_string(source, verbose=False)
        if len(state.grammars) >= 64:
            state.grammars.pop(next(iter(state.grammars)))
        state.grammars[text] = compiled
    return compiled


def _call_delta(index: int, call: ToolCall) -> ToolCallDelta:
    return ToolCallDelta(index=index, id=call.id, name=call.name, arguments=call.arguments)


def _reused_prefix(live: list[int], tokens: list[int]) -> int:
    """How many prompt tokens llama.cpp keeps from the previous call (as ``Llama.generate`` does)."""
    common = 0
    for a, b in zip(live, tokens, strict=False):
        if a != b:
            break
        common += 1
    if common == len(tokens) and len(live) == len(tokens):
        return common  # the whole prompt is live: nothing is evaluated again
    return max(common - 1, 0) if common == len(tokens) else common


def _cut_stop(text: str, stops: tuple[str, ...]) -> tuple[str, str, bool]:
    """Split ``text`` into (safe to emit, held back, a stop sequence was hit)."""
    if not stops:
        return text, "", False
    hits = [index for index in (text.find(stop) for stop in stops) if index >= 0]
    if hits:
        return text[: min(hits)], "", True
    keep = 0
    for stop in stops:
        for size in range(min(len(stop) - 1, len(text)), 0, -1):
            if text.endswith(stop[:size]):
                keep = max(keep, size)
                break
    return text[: len(text) - keep], text[len(text) - keep :], False


def _template_message(message: Message) -> dict[str, Any]:
    for part in message.content:
        if not isinstance(part, TextPart):
            raise InvalidInput(f"this model reads text only; the {part.type} part cannot be sent to it")
    rendered: dict[str, Any] = {"role": message.role, "content": message.text}
    if message.tool_calls:
        rendered["tool_calls"] = [
            {"id": call.id, "type": "function", "function": {"name": call.name, "arguments": _arguments(call)}}
            for call in message.tool_calls
        ]
    if message.tool_call_id is not None:
        rendered["tool_call_id"] = message.tool_call_id
    return rendered


def _arguments(call: ToolCall) -> Any:
    """A call's arguments as the template writes them back (an object: templates ``tojson`` it)."""
    try:
        return json.loads(call.arguments) if call.arguments.strip() else {}
    except ValueError:
        return call.arguments
