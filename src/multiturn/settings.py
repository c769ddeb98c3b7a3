"""Settings: one object, built once at the edge and passed down.

Precedence, lowest first: defaults < config file (TOML) < ``MULTITURN_*`` environment < explicit
arguments (CLI flags). The config file is ``$MULTITURN_CONFIG`` or
``$XDG_CONFIG_HOME/multiturn/config.toml``. Data (the SQLite database) lives in the XDG data
directory, model files in the XDG cache directory.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal, TypeAlias

import platformdirs
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

DEFAULT_MODEL = "qwen2.5-coder-0.5b"

ReasoningReplay: TypeAlias = Literal["drop", "tool_chain", "keep"]
"""Which stored reasoning goes back to a model: ``drop`` none (Model Studio's rule, the default);
``tool_chain`` the reasoning of the assistant turns with tool calls since the last user message
(providers that require it while a tool-call chain runs); ``keep`` every turn's (Qwen3's
"preserve thinking")."""


def default_config_file() -> Path:
    explicit = os.environ.get("MULTITURN_CONFIG")
    if explicit:
        return Path(explicit)
    return platformdirs.user_config_path("multiturn") / "config.toml"


class PriceTier(BaseModel):
    """Prices per million tokens for requests of at most ``up_to`` prompt tokens (``None``: any)."""

    model_config = ConfigDict(extra="forbid")

    up_to: int | None = Field(
        default=None, ge=1, description="the tier holds requests of at most this many prompt tokens"
    )
    input: float = Field(ge=0, description="per million uncached prompt tokens")
    output: float = Field(ge=0, description="per million completion tokens (reasoning included)")
    cached_input: float | None = Field(
        default=None,
        ge=0,
        description="per million cached prompt tokens (default: 20 % of input, Model Studio's implicit cache)",
    )
    output_thinking: float | None = Field(
        default=None, ge=0, description="per million completion tokens of a turn that reasoned (default: output)"
    )


class PriceConfig(BaseModel):
    """A model alias's price (``[models.NAME] price = {...}``): one flat tier (``input``,
    ``output``, ``cached_input``, ``output_thinking``) or ``tiers`` by the request's prompt
    tokens, ascending, the last one open (no ``up_to``). Unknown keys are an error: a misspelt
    price would otherwise be a silent zero."""

    model_config = ConfigDict(extra="forbid")

    currency: str = Field(default="USD", min_length=1, max_length=16)
    input: float | None = Field(default=None, ge=0)
    output: float | None = Field(default=None, ge=0)
    cached_input: float | None = Field(default=None, ge=0)
    output_thinking: float | None = Field(default=None, ge=0)
    tiers: list[PriceTier] = Field(default_factory=list)

    @model_validator(mode="after")
    def _one_form(self) -> PriceConfig:
        flat = [k for k in ("input", "output", "cached_input", "output_thinking") if getattr(self, k) is not None]
        if self.tiers and flat:
            raise ValueError(f"give either tiers or {', '.join(flat)}, not both")
        if not self.tiers and (self.input is None or self.output is None):
            raise ValueError("a price needs input and output (per million tokens), or tiers")
        bounds = [tier.up_to for tier in self.tiers]
        if bounds and (bounds[-1] is not None or None in bounds[:-1]):
            raise ValueError("every tier but the last needs up_to; the last has none")
        closed = [bound for bound in bounds if bound is not None]
        if closed != sorted(set(closed)):
            raise ValueError("tiers must be in ascending order of up_to")
        return self

    def as_tiers(self) -> list[PriceTier]:
        """The price as tiers (a flat price is one open tier)."""
        if self.tiers:
            return list(self.tiers)
        assert self.input is not None and self.output is not None
        return [
            PriceTier(
                input=self.input,
                output=self.output,
                cached_input=self.cached_input,
                output_thinking=self.output_thinking,
            )
        ]


class ModelAlias(BaseModel):
    """What a model name served by the gateway maps to.

    ``backend = "embedded"`` runs a catalogue model (``model``, default: the configured model)
    in-process; ``backend = "upstream"`` relays to an OpenAI-compatible server at ``base_url``
    (Model Studio's compatible mode, vLLM, Ollama, OpenAI...) as ``model`` (default: the alias).
    """

    backend: Literal["embedded", "upstream"] = "embedded"
    model: str | None = None
    base_url: str | None = None
    api_key: str | None = None
    api_key_env: str | None = Field(default=None, description="environment variable holding the upstream key")
    capabilities: list[str] = Field(default_factory=lambda: ["text"])
    context_window: int | None = None
    max_output_tokens: int | None = None
    policy: str | None = Field(default=None, description="context policy preset for this model")
    reasoning_replay: ReasoningReplay = Field(
        default="drop",
        description="which stored reasoning is sent back as reasoning_content: drop (none), "
        "tool_chain (the assistant turns with tool calls since the last user message), keep (all)",
    )
    replay_reasoning: bool | None = Field(
        default=None, description="deprecated: true is reasoning_replay = keep, false is drop"
    )
    price: PriceConfig | None = Field(
        default=None,
        description="what a turn costs, per million tokens (default: Model Studio's published price for an "
        "upstream on its Singapore endpoint, zero for the embedded model; see multiturn.pricing)",
    )
    image_tokens: int | Literal["qwen-vl", "openai-tiles"] = Field(
        default="qwen-vl",
        description="how the model counts an image, for context budgets: qwen-vl (28-pixel patches, "
        "1,280 at most), openai-tiles (85 + 170 per 512-pixel tile), or a fixed count per image",
    )

    @field_validator("image_tokens")
    @classmethod
    def _positive_count(cls, value: int | str) -> int | str:
        if isinstance(value, int) and value < 1:
            raise ValueError("a fixed image_tokens count is at least 1")
        return value

    @model_validator(mode="after")
    def _old_replay_flag(self) -> ModelAlias:
        """The old boolean still configures the policy when the new field is not given."""
        if self.replay_reasoning is not None and "reasoning_replay" not in self.model_fields_set:
            self.reasoning_replay = "keep" if self.replay_reasoning else "drop"
        return self


def default_aliases() -> dict[str, ModelAlias]:
    """Model Studio's common names, all served by the embedded model until configured."""
    names = ("qwen-plus", "qwen-max", "qwen-turbo", "qwen-flash", "qwen3-max", "qwen3-vl-plus", "qwen-vl-plus")
    return {name: ModelAlias() for name in names}


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MULTITURN_", extra="ignore")

    data_dir: Path = Field(default_factory=lambda: platformdirs.user_data_path("multiturn"))
    cache_dir: Path = Field(default_factory=lambda: platformdirs.user_cache_path("multiturn"))
    db: str | None = Field(default=None, description="SQLAlchemy URL or SQLite file path")

    model: str = DEFAULT_MODEL
    model_path: Path | None = Field(default=None, description="a local GGUF file to use instead")
    n_ctx: int = Field(default=8192, ge=256)
    n_threads: int | None = None
    flash_attn: bool = True

    max_tokens: int = Field(default=1024, ge=1)
    temperature: float = Field(default=0.7, ge=0.0, le=2.0)
    top_p: float = Field(default=0.8, gt=0.0, le=1.0)
    top_k: int = Field(default=20, ge=0)
    repeat_penalty: float = Field(default=1.0, gt=0.0)
    system_prompt: str | None = None
    context_policy: str = Field(
        default="window", description="context policy preset: full, window, summary, retrieval, auto"
    )
    keep_media_rounds: int | None = Field(
        default=None, ge=1, description="replace images, audio and video older than this many rounds by a placeholder"
    )
    inline_media_bytes: int | None = Field(
        default=10 * 1024 * 1024,
        ge=0,
        description="most bytes of media sent inline (data: URLs) in one request; older media become placeholders",
    )
    summary_trigger: float = Field(
        default=0.7, gt=0.0, le=1.0, description="summarize when the history passes this share of the window"
    )
    summary_model: str | None = Field(
        default=None, description="model alias that writes summaries; unset: extractive (no model call)"
    )
    summary_mode: Literal["inline", "background"] = Field(
        default="inline", description="summarize before the turn that needs it, or after a turn for the next"
    )
    embedder: str = Field(
        default="wordllama", description="dense embedder of the retrieval index: wordllama, none, or a model alias"
    )

    models: dict[str, ModelAlias] = Field(default_factory=default_aliases)
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    api_keys: list[str] = Field(default_factory=list, description="keys the gateway accepts (Bearer)")
    max_request_bytes: int = Field(default=20 * 1024 * 1024, ge=1024)
    upload_ttl: int = Field(
        default=48 * 3600, ge=60, description="seconds an uploaded file (the DashScope SDK's local files) is kept"
    )
    cors_origins: list[str] = Field(default_factory=list)
    log_bodies: bool = False
    upstream_connect_timeout: float = Field(default=5.0, gt=0)
    upstream_read_timeout: float = Field(default=300.0, gt=0)
    upstream_retries: int = Field(default=2, ge=0, le=10)
    upstream_first_byte_timeout: float = Field(
        default=60.0,
        gt=0,
        description="seconds an upstream may stay silent before its first byte (capped by the read timeout)",
    )
    sse_keepalive: float = Field(
        default=15.0, ge=0, description="seconds of silence in a stream before a keep-alive comment; 0: none"
    )
    rate_limit_requests: int | None = Field(
        default=None, ge=1, description="requests per minute per API key (keyless: one bucket); unset: no limit"
    )
    rate_limit_burst: int | None = Field(
        default=None, ge=1, description="requests a key may send at once (default: a minute's worth)"
    )
    max_concurrent_streams: int | None = Field(
        default=None, ge=1, description="streams open at once per API key (keyless: one count); unset: no limit"
    )
    max_input_items: int = Field(
        default=10_000,
        ge=1,
        description="input items (messages) one request may carry, on every protocol; more is a 400",
    )
    max_turn_bytes: int = Field(
        default=16 * 1024 * 1024,
        ge=1024,
        description="bytes of text and media the input items of one stored turn may hold; more is a 400",
    )
    cache_items: int = Field(
        default=32_768,
        ge=256,
        description="items each process keeps in memory: conversation paths, and half as many planned rounds",
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml = TomlConfigSettingsSource(settings_cls, toml_file=default_config_file())
        return (init_settings, env_settings, toml)

    @property
    def database_url(self) -> str:
        """The SQLAlchemy URL of the store: ``db`` as given, or the default SQLite file."""
        if self.db is None:
            return sqlite_url(self.data_dir / "multiturn.db")
        if "://" in self.db:
            return self.db
        return sqlite_url(Path(self.db))

    @property
    def models_dir(self) -> Path:
        return self.cache_dir / "models"

    @classmethod
    def load(cls, **overrides: Any) -> Settings:
        """Build settings, ignoring ``None`` overrides (flags the user did not give)."""
        return cls(**{k: v for k, v in overrides.items() if v is not None})


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path.expanduser()}"
