"""The bearer header as the admin API and /metrics read it, through one function."""

from __future__ import annotations

import pytest

from analytics.auth import bearer_matches, bearer_token

TOKEN = "s3cret-token-for-the-unit-test"


@pytest.mark.parametrize(
    ("header", "token"),
    [
        (f"Bearer {TOKEN}", TOKEN),
        (f"bearer   {TOKEN}  ", TOKEN),
        (f"Basic {TOKEN}", None),
        ("Bearer ", None),
        ("Bearer", None),
        ("", None),
        (TOKEN, None),
    ],
)
def test_the_bearer_token_of_a_header(header: str, token: str | None) -> None:
    assert bearer_token(header) == token
    assert bearer_matches(header, TOKEN) is (token is not None)


def test_a_near_miss_does_not_match() -> None:
    for wrong in (TOKEN.upper(), TOKEN[:-1], TOKEN + "x", ""):
        assert not bearer_matches(f"Bearer {wrong}", TOKEN)
