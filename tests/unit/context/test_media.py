"""Media go before text: when a request does not fit its budget, the planner replaces the media of
older rounds by placeholders, oldest first, before it drops any round's text (``window``) or
refuses the request (``full``); the newest round's media always stay. ``media_bytes`` caps the
bytes sent inline the same way."""

from __future__ import annotations

from multiturn.context.plan import Policy, plan_context
from multiturn.tokens import EstimateTokenizer
from multiturn.types import ImagePart, Message, TextPart

from .paths import PNG_280, PathBuilder, png_url

TOKENIZER = EstimateTokenizer()
BIG = png_url(1120, 1120)
"""A 1120 x 1120 image: about 1,200 tokens for Qwen-VL, far more than a round of text."""


def _conversation(rounds: int, image: str = BIG) -> PathBuilder:
    path = PathBuilder()
    for n in range(rounds):
        path.add("user", content=(TextPart(f"question {n} about this picture"), ImagePart(image)))
        path.add("assistant", f"answer {n}")
    return path


def _images(messages: list[Message]) -> list[str]:
    return [p.url for m in messages for p in m.content if isinstance(p, ImagePart)]


def _texts(messages: list[Message]) -> str:
    return " ".join(p.text for m in messages for p in m.content if isinstance(p, TextPart))


def _plan(policy: Policy, path: PathBuilder, window: int) -> tuple[list[Message], object]:
    return plan_context(None, path.items, policy=policy, window_tokens=window, reserved_output=100, tokenizer=TOKENIZER)


def test_the_window_drops_old_images_before_any_text() -> None:
    path = _conversation(4)
    path.add("user", content=(TextPart("and this one?"), ImagePart(BIG)))
    messages, report = _plan(Policy(name="window"), path, window=2000)
    assert _images(messages) == [BIG]  # the newest round's image only
    for n in range(4):  # every earlier round's text is still sent
        assert f"question {n}" in _texts(messages) and f"answer {n}" in _texts(messages)
    assert "[image omitted]" in _texts(messages)
    assert report.count("dropped") == 0  # type: ignore[attr-defined]


def test_old_images_go_oldest_first_and_only_as_far_as_needed() -> None:
    path = _conversation(6)
    path.add("user", "and now?")
    messages, _ = _plan(Policy(name="window"), path, window=5600)
    texts = _texts(messages)
    assert all(f"question {n}" in texts for n in range(6))
    kept = len(_images(messages))
    assert 0 < kept < 6  # some images fit: the newest ones
    assert texts.count("[image omitted]") == 6 - kept
    first_kept = next(i for i, m in enumerate(messages) if _images([m]))
    assert all("[image omitted]" in _texts([m]) for m in messages[:first_kept] if m.role == "user")


def test_full_omits_images_rather_than_refuse() -> None:
    path = _conversation(3)
    path.add("user", "what did they have in common?")
    messages, report = _plan(Policy(name="full"), path, window=3000)
    assert not report.over_budget  # type: ignore[attr-defined]
    assert all(f"question {n}" in _texts(messages) for n in range(3))
    assert len(_images(messages)) < 3


def test_inline_media_bytes_are_capped_keeping_the_newest() -> None:
    path = _conversation(5, image=PNG_280)
    path.add("user", content=(TextPart("last"), ImagePart(PNG_280)))
    cap = 2 * len(PNG_280)
    messages, _ = _plan(Policy(name="window", media_bytes=cap), path, window=100_000)
    sent = _images(messages)
    assert len(sent) > 0 and sum(len(url) for url in sent) <= cap
    assert messages[-1].content[-1] == ImagePart(PNG_280)  # the newest round's image stays
    assert all(f"question {n}" in _texts(messages) for n in range(5))


def test_without_pressure_every_image_is_sent() -> None:
    path = _conversation(3, image=PNG_280)
    path.add("user", "fine")
    messages, _ = _plan(Policy(name="window"), path, window=100_000)
    assert len(_images(messages)) == 3


def test_images_are_counted_as_the_model_counts_them() -> None:
    from multiturn.context.cache import PlanCache
    from multiturn.tokens import image_tokens

    path = _conversation(2)
    path.add("user", content=(TextPart("and this one?"), ImagePart(BIG)))
    plan = {
        images: plan_context(
            None,
            path.items,
            policy=Policy(name="full"),
            window_tokens=100_000,
            reserved_output=100,
            tokenizer=TOKENIZER,
            images=images,
        )[1]
        for images in ("qwen-vl", "openai-tiles", 7)
    }
    for images in ("openai-tiles", 7):
        per_image = image_tokens(ImagePart(BIG), images) - image_tokens(ImagePart(BIG), "qwen-vl")
        assert plan[images].tokens - plan["qwen-vl"].tokens == 3 * per_image != 0  # type: ignore[attr-defined]
    # a window that holds two Qwen-VL images but all three at 7 tokens each
    tight = plan["qwen-vl"].tokens - image_tokens(ImagePart(BIG), "qwen-vl") // 2 + 100  # type: ignore[attr-defined]
    squeezed = plan_context(
        None, path.items, policy=Policy(name="window"), window_tokens=tight, reserved_output=100, tokenizer=TOKENIZER
    )[0]
    roomy = plan_context(
        None,
        path.items,
        policy=Policy(name="window"),
        window_tokens=tight,
        reserved_output=100,
        tokenizer=TOKENIZER,
        images=7,
    )[0]
    assert len(_images(squeezed)) < 3 == len(_images(roomy))
    try:
        plan_context(
            None,
            path.items,
            policy=Policy(name="full"),
            window_tokens=100_000,
            reserved_output=100,
            tokenizer=TOKENIZER,
            cache=PlanCache(64),
            images=7,
        )
    except ValueError as exc:
        assert "counts images as 'qwen-vl'" in str(exc)
    else:
        raise AssertionError("a cache that counts images otherwise was used")
