"""``multiturn.tokens``: Qwen counts checked against dashscope's own tokenizer, the template
overhead against the rendered ChatML, media estimates."""

from __future__ import annotations

import base64
import math
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from multiturn.errors import ModelUnavailable
from multiturn.tokens import (
    AUDIO_DEFAULT_SECONDS,
    IMAGE_MAX_TOKENS,
    IMAGE_MAX_TOKENS_HIGH,
    VIDEO_DEFAULT_FRAMES,
    VISION_MARKERS,
    EstimateTokenizer,
    QwenTokenizer,
    Tokenizer,
    audio_tokens,
    image_size,
    image_tokens,
    message_tokens,
    qwen_vocabulary_path,
    video_tokens,
    vision_tokens,
)
from multiturn.types import AudioPart, ImagePart, Message, TextPart, ToolCall, VideoPart

from .paths import png_url

KNOWN = [
    ("", 0),
    ("Hello, world!", 4),
    ("你好，世界", 3),  # noqa: RUF001 (a Chinese comma, on purpose)
    ("<|im_start|>user\n", 3),  # special-token text counts as the special token, as in dashscope
    ("assistant", 1),
]
SAMPLES = [
    "The quick brown fox jumps over the lazy dog.",
    "def f(x):\n    return x ** 2  # square\n\n\n",
    "多轮对话需要在每次请求中传入完整的历史。",
    "e\u0301 and é: NFC makes them one",
    "emoji 🙂🙃 and tabs\t\tand   spaces   ",
    "<|endoftext|><|im_end|><|extra_3|> mixed with text",
    "x" * 250_000,
    "line\n" * 30_000 + "y" * 120_000,
]


@pytest.fixture(scope="module")
def reference() -> Any:
    import dashscope

    return dashscope.get_tokenizer("qwen-plus")


@pytest.mark.parametrize(("text", "expected"), KNOWN)
def test_known_qwen_counts(qwen: QwenTokenizer, reference: Any, text: str, expected: int) -> None:
    assert qwen.count(text) == expected == len(reference.encode(text))


@pytest.mark.parametrize("text", SAMPLES, ids=lambda s: s[:20])
def test_qwen_ids_match_dashscope(qwen: QwenTokenizer, reference: Any, text: str) -> None:
    assert qwen.encode(text) == reference.encode(text)
    assert qwen.count(text) == len(reference.encode(text))


@given(st.text(max_size=300))
def test_qwen_counts_match_dashscope_on_any_text(qwen: QwenTokenizer, reference: Any, text: str) -> None:
    assert qwen.count(text) == len(reference.encode(text))


def test_qwen_satisfies_the_protocol(qwen: QwenTokenizer) -> None:
    tokenizers: list[Tokenizer] = [qwen, EstimateTokenizer()]
    assert [t.name for t in tokenizers] == ["qwen", "estimate"]


def test_vocabulary_is_read_on_first_count_not_at_construction(tmp_path: Path) -> None:
    tokenizer = QwenTokenizer(tmp_path / "missing.tiktoken")  # no error yet
    with pytest.raises(ModelUnavailable, match=r"missing\.tiktoken"):
        tokenizer.count("hello")


def test_vocabulary_comes_from_the_dashscope_package_without_importing_it() -> None:
    assert qwen_vocabulary_path().is_file()
    code = (
        "import sys, multiturn.tokens as t\n"
        "assert 'tiktoken' not in sys.modules\n"  # nothing happens at import
        "assert t.QwenTokenizer().count('hello world') == 2\n"
        "assert 'dashscope' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_memoized_counts_stay_correct(reference: Any) -> None:
    tokenizer = QwenTokenizer(memo=2)
    texts = ["one", "two two", "three three three", "one", "two two"]
    assert [tokenizer.count(t) for t in texts] == [len(reference.encode(t)) for t in texts]


@given(st.text(max_size=200))
def test_estimate_is_a_third_of_the_utf8_bytes_rounded_up(text: str) -> None:
    assert EstimateTokenizer().count(text) == math.ceil(len(text.encode()) / 3)


@pytest.mark.parametrize("text", SAMPLES[:4], ids=lambda s: s[:20])
def test_estimate_errs_on_the_high_side_for_ordinary_text(qwen: QwenTokenizer, text: str) -> None:
    assert EstimateTokenizer().count(text) >= qwen.count(text)


@pytest.mark.parametrize("role", ["system", "user", "assistant"])
def test_message_overhead_is_the_rendered_chatml(qwen: QwenTokenizer, reference: Any, role: Any) -> None:
    text = "What products are shown in the image?"
    rendered = f"<|im_start|>{role}\n{text}<|im_end|>\n"
    assert message_tokens(Message.of(role, text), qwen) == len(reference.encode(rendered))


def test_reasoning_tool_calls_and_results_are_counted(qwen: QwenTokenizer) -> None:
    plain = message_tokens(Message.of("assistant", "4"), qwen)
    assert message_tokens(Message(role="assistant", content=(TextPart("4"),), reasoning="2 and 2"), qwen) > plain
    call = ToolCall(id="c1", name="weather", arguments='{"city": "Paris"}')
    assert message_tokens(Message(role="assistant", tool_calls=(call,)), qwen) > 20
    result = Message(role="tool", content=(TextPart("sunny"),), tool_call_id="c1")
    assert message_tokens(result, qwen) > message_tokens(Message.of("user", "sunny"), qwen)


# -- media --------------------------------------------------------------------------------------


def _data_url(mime: str, data: bytes) -> str:
    return f"data:{mime};base64," + base64.b64encode(data).decode()


def _jpeg(width: int, height: int) -> bytes:
    app0 = b"\xff\xe0" + struct.pack(">H", 16) + b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
    sof0 = b"\xff\xc0" + struct.pack(">HBHHB", 17, 8, height, width, 3) + b"\x00" * 9
    return b"\xff\xd8" + app0 + sof0 + b"\xff\xd9"


def test_image_sizes_from_headers() -> None:
    assert image_size(base64.b64decode(png_url(640, 480).partition(",")[2])) == (640, 480)
    assert image_size(_jpeg(1024, 768)) == (1024, 768)
    assert image_size(b"GIF89a" + struct.pack("<HH", 33, 44) + b"\x00" * 8) == (33, 44)
    vp8x = b"RIFF\x00\x00\x00\x00WEBPVP8X" + b"\x00" * 8 + (99).to_bytes(3, "little") + (49).to_bytes(3, "little")
    assert image_size(vp8x) == (100, 50)
    assert image_size(b"not an image at all") is None


def test_image_tokens_follow_qwen_vl_patches() -> None:
    assert image_tokens(ImagePart(png_url(280, 280))) == 100 + VISION_MARKERS
    assert image_tokens(ImagePart(_data_url("image/jpeg", _jpeg(28, 28)))) == 4 + VISION_MARKERS  # the minimum
    big = ImagePart(png_url(4000, 3000))
    assert image_tokens(big) <= IMAGE_MAX_TOKENS + VISION_MARKERS
    assert image_tokens(ImagePart(big.url, detail="high")) > IMAGE_MAX_TOKENS + VISION_MARKERS
    assert image_tokens(ImagePart("https://example.com/a.png")) == IMAGE_MAX_TOKENS + VISION_MARKERS


@given(st.integers(1, 20_000), st.integers(1, 20_000), st.sampled_from([IMAGE_MAX_TOKENS, IMAGE_MAX_TOKENS_HIGH]))
def test_vision_tokens_stay_within_qwen_bounds(width: int, height: int, cap: int) -> None:
    assert 4 <= vision_tokens(width, height, cap) <= cap


def _wav(seconds: float, byte_rate: int = 32_000) -> bytes:
    size = int(seconds * byte_rate)
    header = (
        b"RIFF"
        + struct.pack("<I", 36 + size)
        + b"WAVEfmt "
        + struct.pack("<IHHIIHH", 16, 1, 1, 16_000, byte_rate, 2, 16)
    )
    return header + b"data" + struct.pack("<I", size) + b"\x00" * size


def test_audio_tokens_are_25_per_second() -> None:
    wav = _wav(2.0)
    assert audio_tokens(AudioPart(data=base64.b64encode(wav).decode(), format="wav")) == 50 + VISION_MARKERS
    assert audio_tokens(AudioPart(url=_data_url("audio/wav", wav))) == 50 + VISION_MARKERS
    mp3 = AudioPart(data=base64.b64encode(b"\xff\xfb" * 16_000).decode(), format="mp3")  # 2 s at 128 kbit/s
    assert audio_tokens(mp3) == 50 + VISION_MARKERS
    assert audio_tokens(AudioPart(url="https://example.com/a.mp3")) == AUDIO_DEFAULT_SECONDS * 25 + VISION_MARKERS


def test_video_tokens_grow_with_frames() -> None:
    frames = tuple(png_url(280, 280) for _ in range(4))
    assert video_tokens(VideoPart(frames=frames)) == 4 * 50 + VISION_MARKERS
    assert video_tokens(VideoPart(url="https://example.com/v.mp4")) == VIDEO_DEFAULT_FRAMES * 384 + VISION_MARKERS


def test_media_parts_add_to_a_message(qwen: QwenTokenizer) -> None:
    text = message_tokens(Message.of("user", "what is this?"), qwen)
    both = Message(role="user", content=(ImagePart(png_url(280, 280)), TextPart("what is this?")))
    assert message_tokens(both, qwen) == text + 100 + VISION_MARKERS
