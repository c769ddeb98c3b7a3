"""A model's own image estimate: set on its alias (``image_tokens``), carried by its backend's
``BackendInfo``, and counted by ``tokens.message_tokens``."""

from __future__ import annotations

import base64
import struct

import pytest
from pydantic import ValidationError

from multiturn.backends.registry import BackendRegistry
from multiturn.settings import ModelAlias, Settings
from multiturn.tokens import EstimateTokenizer, image_tokens, message_tokens, openai_tile_tokens
from multiturn.types import ImagePart, Message, TextPart


def png(width: int, height: int) -> str:
    """A data URL whose bytes begin as a PNG of that size does (all ``image_size`` reads)."""
    head = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\x0dIHDR" + struct.pack(">II", width, height) + b"\x08\x02\x00\x00\x00"
    return "data:image/png;base64," + base64.b64encode(head).decode()


def settings(tmp_path: object, **alias: object) -> Settings:
    upstream = {"backend": "upstream", "base_url": "http://127.0.0.1:9/v1", **alias}
    return Settings(models={"vision": ModelAlias.model_validate(upstream)}, data_dir=str(tmp_path))


@pytest.mark.parametrize("estimate", ["qwen-vl", "openai-tiles", 258])
def test_an_alias_estimate_reaches_its_backend_info(tmp_path: object, estimate: str | int) -> None:
    registry = BackendRegistry(settings(tmp_path, image_tokens=estimate))
    assert registry.get("vision").info().image_tokens == estimate


def test_the_default_is_qwen_vl(tmp_path: object) -> None:
    registry = BackendRegistry(settings(tmp_path))
    assert registry.get("vision").info().image_tokens == "qwen-vl"
    assert ModelAlias().image_tokens == "qwen-vl"


@pytest.mark.parametrize("bad", [0, -5, "tiles", 1.5])
def test_an_estimate_is_a_known_formula_or_a_positive_count(bad: object) -> None:
    with pytest.raises(ValidationError):
        ModelAlias.model_validate({"image_tokens": bad})


def test_each_estimate_counts_the_same_image_its_way() -> None:
    image = ImagePart(url=png(1024, 1024))
    # Qwen-VL: 1024 px is 37 patches a side, over the 1,280 cap: resized to 35 x 35, plus markers.
    assert image_tokens(image) == image_tokens(image, "qwen-vl") == 35 * 35 + 2
    assert image_tokens(image, "openai-tiles") == 765  # OpenAI's own example: 4 tiles
    assert image_tokens(image, 258) == 258


def test_openai_tiles_follow_openai_examples() -> None:
    assert openai_tile_tokens((1024, 1024), "high") == 765
    assert openai_tile_tokens((2048, 4096), "high") == 1105
    assert openai_tile_tokens((4096, 8192), "low") == 85
    assert openai_tile_tokens(None, None) == 85 + 170 * 8  # unknown size: the largest after scaling


def test_a_message_is_counted_with_the_model_estimate(tmp_path: object) -> None:
    message = Message(role="user", content=(ImagePart(url=png(1024, 1024)), TextPart("What is this?")))
    tokenizer = EstimateTokenizer()
    registry = BackendRegistry(settings(tmp_path, image_tokens="openai-tiles"))
    estimate = registry.get("vision").info().image_tokens

    as_qwen = message_tokens(message, tokenizer)
    as_openai = message_tokens(message, tokenizer, estimate)

    assert as_qwen - as_openai == (35 * 35 + 2) - 765
