"""User text is text: control-token strings a user types are never read as control tokens.

A tokenizer matches its special and added tokens (``<image>``, ``</s>``, ``<start_of_turn>``, ...) anywhere
in the text it is given, so a user who types ``<image>`` into a prompt would make the processor look for an
image that is not there (a crash any user of a guarded service could trigger), and ``</s>`` would become a
real end-of-sequence id. Chat templates insert their own control tokens around the user's text; only
those may be control tokens.

``safe_user_text`` *defuses* every control-token string inside the user's text by inserting U+2060 WORD
JOINER (an invisible, zero-width character) after its first character: the string still reads the same,
but no longer matches the token, so it is tokenized as ordinary text. Prompts without such strings, the
common case, are returned unchanged (and keep exact parity with Hugging Face). Lone UTF-16 surrogates
(which no tokenizer can encode) are replaced by U+FFFD; valid surrogate pairs are joined.

>>> safe_user_text("show <image> then </s>", ["<image>", "</s>"]) == "show <\u2060image> then <\u2060/s>"
True
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache
from typing import Any

WORD_JOINER = "\u2060"
_SURROGATE = re.compile("[\ud800-\udfff]")


def control_strings(processor: Any) -> tuple[str, ...]:
    """Every string the processor's tokenizer would read as a control token (special and added tokens,
    and the processor's own image / video tokens), longest first."""
    tokenizer = getattr(processor, "tokenizer", processor)
    found: set[str] = set(getattr(tokenizer, "all_special_tokens", None) or [])
    for token in (getattr(tokenizer, "added_tokens_decoder", None) or {}).values():
        found.add(str(getattr(token, "content", token)))
    for attribute in ("image_token", "video_token", "boi_token", "eoi_token", "fake_image_token"):
        value = getattr(processor, attribute, None)
        if isinstance(value, str):
            found.add(value)
    return tuple(sorted((s for s in found if len(s) > 1 and not s.isspace()), key=lambda s: (-len(s), s)))


@lru_cache(maxsize=64)
def _pattern(strings: tuple[str, ...]) -> re.Pattern[str] | None:
    return re.compile("|".join(re.escape(s) for s in strings)) if strings else None


def safe_user_text(text: str, strings: Iterable[str]) -> str:
    """``text`` with lone surrogates replaced and every control-token string in it defused (see above)."""
    if _SURROGATE.search(text):
        text = text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    pattern = _pattern(tuple(strings))
    if pattern is None:
        return text
    for _ in range(8):  # defusing cannot create a new match, but stay safe against odd token sets
        if pattern.search(text) is None:
            break
        text = pattern.sub(lambda m: m.group(0)[0] + WORD_JOINER + m.group(0)[1:], text)
    return text
