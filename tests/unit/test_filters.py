import pytest

from analytics.filters import is_bot, opted_out, origin_allowed, request_origin

SITE = ("https://laocai.gov.vn", "https://www.laocai.gov.vn")


@pytest.mark.parametrize(
    ("ua", "bot"),
    [
        ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/124.0", False),
        ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) Mobile/15E148", False),
        ("Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0", False),
        ("Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)", True),
        ("Mozilla/5.0 (compatible; coccocbot-web/1.0; +http://help.coccoc.com/searchengine)", True),
        ("facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)", True),
        ("Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; GPTBot/1.0)", True),
        ("curl/8.5.0", True),
        ("", True),
    ],
)  # fmt: skip
def test_bots(ua: str, bot: bool) -> None:
    assert is_bot(ua) is bot


@pytest.mark.parametrize(
    ("origin", "referer", "allowed"),
    [
        ("https://laocai.gov.vn", None, True),
        ("https://LAOCAI.gov.vn:443", None, True),
        ("https://laocai.gov.vn", "https://evil.example/", True),  # Origin wins
        (None, "https://www.laocai.gov.vn/tin-tuc?id=1", True),
        ("https://evil.example", "https://laocai.gov.vn/", False),
        ("http://laocai.gov.vn", None, False),
        ("https://laocai.gov.vn.evil.example", None, False),
        ("null", None, False),
        ("null", "https://laocai.gov.vn/", True),  # sandboxed frames send "null"
        ("not a url", None, False),
        (None, None, False),
    ],
)
def test_origins(origin: str | None, referer: str | None, allowed: bool) -> None:
    assert origin_allowed(SITE, origin, referer) is allowed


def test_a_site_without_origins_accepts_everything() -> None:
    assert origin_allowed((), None, None)
    assert origin_allowed((), "https://anything.example", None)


def test_request_origin_is_canonical() -> None:
    assert request_origin(None, "HTTP://Example.VN:80/a/b") == "http://example.vn"
    assert request_origin("https://example.vn:8443", None) == "https://example.vn:8443"


def test_gpc_only_when_the_site_honours_it() -> None:
    assert opted_out(True, "1")
    assert not opted_out(True, "0")
    assert not opted_out(True, None)
    assert not opted_out(False, "1")
