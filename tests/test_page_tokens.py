from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from retained.page_tokens import InvalidPageTokenError, decode_page_token, encode_page_token

KEY = b"k" * 32


@given(st.text())
def test_round_trip(topic: str) -> None:
    assert decode_page_token(encode_page_token(topic, key=KEY), key=KEY) == topic


def test_other_key_is_refused() -> None:
    token = encode_page_token("a/b", key=KEY)
    with pytest.raises(InvalidPageTokenError):
        decode_page_token(token, key=b"other" * 8)


@pytest.mark.parametrize(
    "token",
    ["", ".", "abc", "a.b.c", "!!!.???", "e30.AAAAAAAAAAAAAAAAAAAAAA", "\u00e9.x", "a" * 5000],
)
def test_garbage_is_refused(token: str) -> None:
    with pytest.raises(InvalidPageTokenError):
        decode_page_token(token, key=KEY)


@settings(max_examples=300)
@given(st.text())
def test_arbitrary_text_raises_only_our_error(token: str) -> None:
    with contextlib.suppress(InvalidPageTokenError):
        decode_page_token(token, key=KEY)
