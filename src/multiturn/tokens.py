"""Token accounting: how many tokens a text, a part and a whole message cost a model.

- ``Tokenizer`` is the seam: ``count(text)`` and a ``name``. Built in:
  ``QwenTokenizer`` (the Qwen vocabulary through tiktoken, the file the ``dashscope`` package
  ships as ``dashscope/resources/qwen.tiktoken``; exact for Qwen text) and
  ``EstimateTokenizer`` (the fallback for unknown models: ceil(UTF-8 bytes / 3), which errs on
  the high side for English, code and CJK alike). A backend with its own vocabulary (the
  embedded llama.cpp model) implements the same protocol.
- ``message_tokens`` adds what the chat template costs around a message and estimates image,
  audio and video parts (Qwen-VL / Qwen-Audio conventions, see the constants below; images as
  the model counts them when its alias says otherwise: ``ImageEstimate``).
- What a backend adds that we cannot count (another template, another vocabulary) is measured
  on its answers and taken off the budget (``context/budget.py``), not scaled in here.

Everything here is pure and cheap except the first ``QwenTokenizer.count`` in a process, which
reads the vocabulary (~0.2 s); the encoding is then shared by every ``QwenTokenizer``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import importlib.util
import logging
import math
import struct
import threading
import unicodedata
from collections import OrderedDict
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol, TypeAlias

from .errors import MissingDependency, ModelUnavailable
from .types import AudioPart, ImagePart, Message, Part, TextPart, VideoPart

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    import tiktoken


class Tokenizer(Protocol):
    """Counts tokens in one model family's vocabulary."""

    @property
    def name(self) -> str:
        """A short, stable name (``qwen``, ``estimate``...), recorded with counts."""
        ...

    def count(self, text: str) -> int:
        """Tokens of ``text`` alone: no template, no special tokens added.

        Returns:
            A non-negative count; 0 for the empty string.
        """
        ...


# -- Qwen vocabulary ----------------------------------------------------------------------------

# The facts of dashscope's own Qwen tokenizer (dashscope/tokenizers/qwen_tokenizer.py, 2.0.2):
# the pre-tokenization pattern, the special tokens numbered from 151643, NFC normalization,
# special-token text allowed in input, and chunking of very long inputs (tiktoken's merge
# recursion can overflow the stack past ~100k characters).
QWEN_PATTERN = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"""
    r"""|\s*[\r\n]+|\s+(?!\S)|\s+"""
)
QWEN_SPECIAL_START = 151643
QWEN_SPECIAL_TOKENS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>", *(f"<|extra_{i}|>" for i in range(205)))
_CHUNK_CHARS = 100_000

_encodings: dict[Path, tiktoken.Encoding] = {}
_encodings_lock = threading.Lock()


def qwen_vocabulary_path() -> Path:
    """Where the installed ``dashscope`` package keeps ``qwen.tiktoken`` (dashscope is not imported).

    Raises:
        MissingDependency: ``dashscope`` is not installed.
    """
    spec = importlib.util.find_spec("dashscope")
    if spec is None or not spec.submodule_search_locations:
        raise MissingDependency("dashscope", "qwen")
    return Path(next(iter(spec.submodule_search_locations))) / "resources" / "qwen.tiktoken"


def _load_ranks(path: Path) -> dict[bytes, int]:
    # The format tiktoken.load.load_tiktoken_bpe reads ("<base64 token> <rank>" per line), parsed
    # here because load_tiktoken_bpe copies every file it reads into a shared temp cache keyed by
    # its path, and would keep serving that copy after dashscope replaced the file.
    try:
        lines = path.read_bytes().splitlines()
        return {base64.b64decode(token): int(rank) for token, rank in (line.split() for line in lines if line)}
    except (OSError, ValueError, binascii.Error) as exc:
        raise ModelUnavailable(f"cannot read the Qwen vocabulary {path}: {exc}") from exc


def _qwen_encoding(path: Path) -> tiktoken.Encoding:
    with _encodings_lock:
        encoding = _encodings.get(path)
        if encoding is None:
            try:
                import tiktoken
            except ImportError as exc:
                raise MissingDependency("tiktoken", "qwen") from exc
            encoding = tiktoken.Encoding(
                "qwen",
                pat_str=QWEN_PATTERN,
                mergeable_ranks=_load_ranks(path),
                special_tokens={token: QWEN_SPECIAL_START + i for i, token in enumerate(QWEN_SPECIAL_TOKENS)},
            )
            _encodings[path] = encoding
        return encoding


def _chunks(text: str) -> list[str]:
    """Split a very long text at line starts into pieces of at most ``_CHUNK_CHARS``."""
    pieces: list[str] = []
    for i, line in enumerate(text.split("\n")):
        piece = line if i == 0 else "\n" + line
        pieces.extend(piece[j : j + _CHUNK_CHARS] for j in range(0, len(piece), _CHUNK_CHARS))
    chunks: list[str] = []
    current = ""
    for piece in pieces:
        if current and len(current) + len(piece) > _CHUNK_CHARS:
            chunks.append(current)
            current = ""
        current += piece
    if current:
        chunks.append(current)
    return chunks


class QwenTokenizer:
    """Qwen's vocabulary (Qwen, Qwen2/2.5/3 text): exact counts for the Qwen models of Model Studio.

    Counts agree with ``dashscope.get_tokenizer("qwen-plus").encode``. The vocabulary is read on
    the first ``count`` (not at construction) and cached per process. Counts of recent texts are
    memoized per instance, keyed by a 128-bit digest (a history is counted again every turn;
    hashing is ~100x cheaper than tokenizing, and the memo holds no text).

    Args:
        vocabulary: a ``.tiktoken`` file; default: the one inside the installed ``dashscope``.
        memo: how many distinct texts to remember counts for (0 disables).
    """

    name = "qwen"

    def __init__(self, vocabulary: Path | None = None, *, memo: int = 65_536) -> None:
        self._path = vocabulary
        self._memo: OrderedDict[bytes, int] = OrderedDict()
        self._memo_size = memo
        self._lock = threading.Lock()

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text`` (NFC-normalized; special-token text becomes the special token)."""
        if self._path is None:  # found once: looking a package up costs more than counting a message
            self._path = qwen_vocabulary_path()
        encoding = _qwen_encoding(self._path)
        text = unicodedata.normalize("NFC", text)
        if len(text) <= _CHUNK_CHARS:
            return encoding.encode(text, allowed_special="all", disallowed_special=())
        ids: list[int] = []
        for chunk in _chunks(text):
            ids.extend(encoding.encode(chunk, allowed_special="all", disallowed_special=()))
        return ids

    def count(self, text: str) -> int:
        if not text:
            return 0
        if not self._memo_size:
            return len(self.encode(text))
        key = hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()
        with self._lock:
            cached = self._memo.get(key)
            if cached is not None:
                self._memo.move_to_end(key)
                return cached
        n = len(self.encode(text))
        with self._lock:
            self._memo[key] = n
            if len(self._memo) > self._memo_size:
                self._memo.popitem(last=False)
        return n


class EstimateTokenizer:
    """The fallback for a model whose vocabulary we lack: ceil(UTF-8 bytes / 3).

    Real vocabularies average ~4 bytes per token on English and ~3 on CJK (one character of
    3 bytes per token or better), so this overestimates; an over-count only costs context,
    an under-count overflows the window; a backend's surplus over our count is measured on its
    answers and taken off the budget (``context/budget.py``).
    """

    name = "estimate"

    def count(self, text: str) -> int:
        return -(-len(text.encode("utf-8", "surrogatepass")) // 3)


# -- Chat template and media -------------------------------------------------------------------

MESSAGE_OVERHEAD = 4
"""ChatML around each message, besides the role: ``<|im_start|>`` role ``\\n`` ... ``<|im_end|>\\n``."""
REPLY_PRIMER = 3
"""``<|im_start|>assistant\\n``: the template's opening of the answer, once per request."""

PATCH = 28
"""Qwen-VL: one token per 28x28-pixel patch (14-pixel patches merged 2x2)."""
IMAGE_MIN_TOKENS = 4
IMAGE_MAX_TOKENS = 1280
"""Model Studio's default cap per image (``max_pixels`` = 1280 x 28 x 28); also the estimate for
an image whose size we cannot read (a remote URL): its upper bound, so budgets err on the safe side."""
IMAGE_MAX_TOKENS_HIGH = 16384
"""The cap with ``vl_high_resolution_images``; used for ``detail="high"``."""
VISION_MARKERS = 2
"""``<|vision_start|>`` and ``<|vision_end|>`` around each image or video."""
FRAME_MAX_TOKENS = 768
"""Qwen-VL's cap per video frame pair; two consecutive frames share one set of patches."""
VIDEO_DEFAULT_FRAMES = 20
"""A video file of unknown length: assumed 10 s sampled at 2 frames/s."""
AUDIO_TOKENS_PER_SECOND = 25
"""Qwen-Audio / Qwen-Omni: the audio encoder emits 25 tokens per second."""
AUDIO_BYTES_PER_SECOND = 16_000
"""A compressed stream of unknown rate (mp3, ogg...): assumed 128 kbit/s."""
PCM_BYTES_PER_SECOND = 32_000
"""Raw PCM without a readable header: 16 kHz, 16-bit, mono (what Qwen-Audio resamples to)."""
AUDIO_DEFAULT_SECONDS = 30
"""Audio given only by URL: assumed 30 s."""


def default_tokenizer() -> Tokenizer:
    """Qwen's vocabulary when the ``qwen`` extra is installed, else the estimate (logged)."""
    try:
        qwen_vocabulary_path()  # finds the packages without importing or parsing anything
        if importlib.util.find_spec("tiktoken") is None:
            raise MissingDependency("tiktoken", "qwen")
        return QwenTokenizer()
    except MissingDependency:
        log.info("the qwen extra is not installed: estimating token counts")
        return EstimateTokenizer()


def _data_url_bytes(url: str, limit: int | None = None) -> bytes | None:
    """The decoded bytes of a base64 ``data:`` URL (the first ``limit`` bytes or so), else None."""
    if not url.startswith("data:"):
        return None
    header, sep, payload = url.partition(",")
    if not sep or not header.endswith(";base64"):
        return None
    return _b64(payload, limit)


def _b64(payload: str, limit: int | None = None) -> bytes | None:
    if limit is not None:
        payload = payload[: (limit // 3 + 1) * 4]
    try:
        return base64.b64decode(payload + "=" * (-len(payload) % 4))
    except (binascii.Error, ValueError):
        return None


def _b64_size(payload: str) -> int:
    payload = payload.strip().rstrip("=")
    return len(payload) * 3 // 4


def image_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from a PNG, GIF, WebP or JPEG header, or None."""
    try:
        if data.startswith(b"\x89PNG\r\n\x1a\n"):
            w, h = struct.unpack(">II", data[16:24])
            return w, h
        if data[:6] in (b"GIF87a", b"GIF89a"):
            w, h = struct.unpack("<HH", data[6:10])
            return w, h
        if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
            kind = data[12:16]
            if kind == b"VP8 ":
                w, h = struct.unpack("<HH", data[26:30])
                return w & 0x3FFF, h & 0x3FFF
            if kind == b"VP8L":
                (bits,) = struct.unpack("<I", data[21:25])
                return 1 + (bits & 0x3FFF), 1 + ((bits >> 14) & 0x3FFF)
            if kind == b"VP8X":
                return 1 + int.from_bytes(data[24:27], "little"), 1 + int.from_bytes(data[27:30], "little")
            return None
        if data.startswith(b"\xff\xd8"):
            i = 2
            while i + 9 < len(data):
                if data[i] != 0xFF:
                    return None
                marker = data[i + 1]
                if marker == 0xFF:
                    i += 1
                    continue
                if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
                    h, w = struct.unpack(">HH", data[i + 5 : i + 9])
                    return w, h
                if marker == 0x01 or 0xD0 <= marker <= 0xD9:
                    i += 2
                    continue
                (length,) = struct.unpack(">H", data[i + 2 : i + 4])
                i += 2 + length
    except struct.error:
        return None
    return None


def vision_tokens(width: int, height: int, max_tokens: int = IMAGE_MAX_TOKENS) -> int:
    """Patches of an image after Qwen-VL's ``smart_resize`` (markers not included)."""
    if width <= 0 or height <= 0:
        return IMAGE_MIN_TOKENS
    area = PATCH * PATCH
    h = max(PATCH, round(height / PATCH) * PATCH)
    w = max(PATCH, round(width / PATCH) * PATCH)
    if h * w > max_tokens * area:
        beta = math.sqrt(height * width / (max_tokens * area))
        h = max(PATCH, math.floor(height / beta / PATCH) * PATCH)
        w = max(PATCH, math.floor(width / beta / PATCH) * PATCH)
    elif h * w < IMAGE_MIN_TOKENS * area:
        beta = math.sqrt(IMAGE_MIN_TOKENS * area / (height * width))
        h = math.ceil(height * beta / PATCH) * PATCH
        w = math.ceil(width * beta / PATCH) * PATCH
    return (h // PATCH) * (w // PATCH)


_HEADER_BYTES = 96 * 1024  # enough for a JPEG's frame header after a large EXIF block


ImageEstimate: TypeAlias = int | Literal["qwen-vl", "openai-tiles"]
"""How a model counts an image (a model alias's ``image_tokens``): ``"qwen-vl"`` (the default:
Qwen-VL's patches, below), ``"openai-tiles"`` (GPT-4o and kin: ``openai_tile_tokens``), or a
fixed number of tokens per image."""

OPENAI_BASE_TOKENS = 85
"""OpenAI's vision models: every image costs this, and only this with ``detail="low"``..."""
OPENAI_TILE_TOKENS = 170
"""...and this per 512-pixel tile otherwise."""


def openai_tile_tokens(size: tuple[int, int] | None, detail: str | None) -> int:
    """An image as OpenAI counts it: scaled to fit 2048 x 2048, then its short side to 768
    pixels (never up), 170 tokens per 512-pixel tile plus 85. An image of unknown size counts as
    the largest that scaling leaves (768 x 2048: 8 tiles)."""
    if detail == "low":
        return OPENAI_BASE_TOKENS
    pixels = size if size else (768, 2048)
    fit = min(1.0, 2048 / max(*pixels, 1))
    width, height = pixels[0] * fit, pixels[1] * fit
    short = min(1.0, 768 / max(min(width, height), 1.0))
    tiles = math.ceil(width * short / 512) * math.ceil(height * short / 512)
    return OPENAI_BASE_TOKENS + OPENAI_TILE_TOKENS * max(tiles, 1)


def image_tokens(part: ImagePart, estimate: ImageEstimate = "qwen-vl") -> int:
    """An image as ``estimate`` counts it. Qwen-VL: its patches when a ``data:`` URL lets us
    read its size, else the default cap."""
    if isinstance(estimate, int):
        return estimate
    data = _data_url_bytes(part.url, _HEADER_BYTES)
    size = image_size(data) if data else None
    if estimate == "openai-tiles":
        return openai_tile_tokens(size, part.detail)
    cap = IMAGE_MAX_TOKENS_HIGH if part.detail == "high" else IMAGE_MAX_TOKENS
    patches = vision_tokens(*size, max_tokens=cap) if size else IMAGE_MAX_TOKENS
    return patches + VISION_MARKERS


def _frame_tokens(url: str) -> int:
    data = _data_url_bytes(url, _HEADER_BYTES)
    size = image_size(data) if data else None
    pair = vision_tokens(*size, max_tokens=FRAME_MAX_TOKENS) if size else FRAME_MAX_TOKENS
    return -(-pair // 2)


def video_tokens(part: VideoPart) -> int:
    """A video: half a frame pair per listed frame; a file of unknown length as ``VIDEO_DEFAULT_FRAMES``."""
    if part.frames:
        return sum(_frame_tokens(url) for url in part.frames) + VISION_MARKERS
    return VIDEO_DEFAULT_FRAMES * FRAME_MAX_TOKENS // 2 + VISION_MARKERS


def _audio_seconds(data: bytes | None, size: int, fmt: str | None) -> float:
    if data is not None and data[:4] == b"RIFF" and data[8:12] == b"WAVE" and len(data) >= 32:
        byte_rate = int.from_bytes(data[28:32], "little")
        if byte_rate > 0:
            return max(0, size - 44) / byte_rate
    if fmt in ("wav", "pcm"):
        return size / PCM_BYTES_PER_SECOND
    return size / AUDIO_BYTES_PER_SECOND


def audio_tokens(part: AudioPart) -> int:
    """Audio: 25 tokens per second, the length read from a WAV header or guessed from the size."""
    payload = part.data
    if payload is None and part.url and part.url.startswith("data:") and ";base64," in part.url:
        payload = part.url.partition(",")[2]
    if payload is None:
        seconds: float = AUDIO_DEFAULT_SECONDS
    else:
        seconds = _audio_seconds(_b64(payload, 64), _b64_size(payload), part.format)
    return max(1, math.ceil(seconds * AUDIO_TOKENS_PER_SECOND)) + VISION_MARKERS


def part_tokens(part: Part, tokenizer: Tokenizer, images: ImageEstimate = "qwen-vl") -> int:
    if isinstance(part, TextPart):
        return tokenizer.count(part.text)
    if isinstance(part, ImagePart):
        return image_tokens(part, images)
    if isinstance(part, AudioPart):
        return audio_tokens(part)
    return video_tokens(part)


def message_tokens(message: Message, tokenizer: Tokenizer, images: ImageEstimate = "qwen-vl") -> int:
    """What ``message`` costs in a ChatML prompt (Qwen's template), media included.

    Counted: ``MESSAGE_OVERHEAD`` + the role; each part; reasoning when present, as
    ``<think>\\n...\\n</think>\\n\\n``; each tool call as Qwen renders it
    (``<tool_call>\\n{"name": ..., "arguments": ...}\\n</tool_call>``); a tool result's
    ``<tool_response>`` wrapper; the ``name`` field. Not counted: ``REPLY_PRIMER`` (once per
    request) and tool schemas (the request's, not a message's). ``images``: how the model the
    message goes to counts an image (``ImageEstimate``).
    """
    n = MESSAGE_OVERHEAD + tokenizer.count(message.role)
    n += sum(part_tokens(part, tokenizer, images) for part in message.content)
    if message.reasoning is not None:
        n += tokenizer.count(f"<think>\n{message.reasoning}\n</think>\n\n")
    for call in message.tool_calls:
        n += tokenizer.count(f'\n<tool_call>\n{{"name": "{call.name}", "arguments": {call.arguments}}}\n</tool_call>')
    if message.role == "tool":
        n += tokenizer.count("<tool_response>\n\n</tool_response>")
    if message.name:
        n += tokenizer.count(message.name)
    return n
