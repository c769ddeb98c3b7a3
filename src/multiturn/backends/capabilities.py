"""What a model can read and do: its capabilities against a request's content parts, and the
parameters a backend that decides for itself (the embedded one) honours against the request's.

No silent yes: a parameter the backend cannot honour is refused, naming it, before anything is
generated or stored. An upstream backend passes every parameter on, and the server behind it
answers for them (``BackendInfo.honours`` is ``None``) — except what multiturn itself cannot
bring back from it: more than one choice (one is relayed) and log probabilities (not relayed).
The table of every parameter is in ``docs/parameters.md``."""

from __future__ import annotations

from collections.abc import Sequence

from ..errors import InvalidParameter, UnsupportedContent
from ..types import AudioPart, GenerationParams, ImagePart, Message, VideoPart
from .base import BackendInfo


def check_capabilities(messages: Sequence[Message], info: BackendInfo, model: str) -> None:
    """Refuse parts the model cannot read, naming the first one found, what serves the model,
    and the configuration that maps the name to a model that reads them."""
    for message in messages:
        for part in message.content:
            needed = _CAPABILITY.get(type(part))
            if needed is not None and needed not in info.capabilities:
                served = f": it is served by {info.served_by}, which does not read it" if info.served_by else ""
                raise UnsupportedContent(
                    f"the model {model!r} does not accept {part.type} input{served}. To send {part.type}s, map "
                    f"{model!r} to an upstream model with {needed} support in the config file: [models.{model}] "
                    'backend = "upstream", base_url = "https://dashscope.aliyuncs.com/compatible-mode/v1", '
                    f'api_key_env = "DASHSCOPE_API_KEY", capabilities = ["text", "{needed}"]'
                )


_CAPABILITY: dict[type, str] = {ImagePart: "vision", AudioPart: "audio", VideoPart: "video"}


def check_params(params: GenerationParams, info: BackendInfo, model: str) -> None:
    """Refuse the first parameter ``info``'s backend cannot honour (``InvalidParameter`` naming
    it); nothing for a backend that passes parameters on."""
    honours = info.honours
    if honours is None:
        _check_relayed(params, model)
        return
    where = f"the model {model!r} runs on {honours.backend}"
    if params.n is not None and params.n > honours.choices:
        raise InvalidParameter(f"n: {where}, which answers {honours.choices} choice(s) a request", param="n")
    if not honours.thinking and (params.enable_thinking or params.thinking_budget is not None):
        param = "enable_thinking" if params.enable_thinking else "thinking_budget"
        raise InvalidParameter(
            f"{param}: {where} with a model that does not think; map the name to a thinking model "
            "(an upstream alias with the 'thinking' capability) or leave it out",
            param=param,
        )
    if honours.grammar:
        from .grammar import request_constraint

        request_constraint(params)  # raises naming what cannot be enforced; the backend finds it built
    for key, value in params.extra.items():
        if key in honours.extra or value in (None, False):
            continue
        if key in ("logprobs", "top_logprobs") and honours.logprobs:
            continue
        raise InvalidParameter(f"{key}: {where}, which cannot honour it; leave it out", param=key)


def _check_relayed(params: GenerationParams, model: str) -> None:
    """What an upstream could do but multiturn does not bring back from it."""
    if params.n is not None and params.n > 1:
        raise InvalidParameter(f"n: multiturn relays one choice from the model {model!r}; leave n out", param="n")
    for key in ("logprobs", "top_logprobs"):
        if params.extra.get(key) not in (None, False):
            raise InvalidParameter(
                f"{key}: multiturn does not relay log probabilities from the model {model!r}; leave it out", param=key
            )
