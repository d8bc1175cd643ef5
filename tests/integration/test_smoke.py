from flask.testing import FlaskClient

from tests.helpers import counters, hit


def test_a_hit_changes_the_counters(client: FlaskClient) -> None:
    assert hit(client) == 204
    doc = counters(client)
    assert doc["site"] == "demo"
    assert doc["as_of"] == "2026-11-26T22:01:05+07:00"
    assert doc["online"] == 1
    assert doc["windows"]["today"] == {
        "start": "2026-11-26", "pageviews": 1, "visits": 1, "visitors": 1
    }  # fmt: skip
