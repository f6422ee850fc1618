"""The ready-made provider error bodies, in each form the real provider answers with."""

from __future__ import annotations

from whizrouter.testing import (
    errors_list_body,
    graph_error_body,
    html_error_page,
    meta_error_body,
    rate_limit_400_body,
    restarting_555_body,
)


def test_error_bodies() -> None:
    assert meta_error_body(400, "bad", ["d"]) == {
        "meta": {"success": False, "http_code": 400, "developer_message": "bad", "details": ["d"]}
    }
    assert meta_error_body(403, "no", camel_case=True) == {
        "meta": {"success": False, "httpCode": 403, "developerMessage": "no"}
    }
    assert errors_list_body(1006, "Resource not found", "gone", with_meta=False) == {
        "errors": [{"code": 1006, "title": "Resource not found", "details": "gone"}]
    }
    assert graph_error_body(131047, "Re-engagement", details="24h", subcode=1)["error"] == {
        "message": "Re-engagement",
        "type": "OAuthException",
        "code": 131047,
        "fbtrace_id": "AFakeTraceId0123456789",
        "error_data": {"messaging_product": "whatsapp", "details": "24h"},
        "error_subcode": 1,
    }
    assert "exceeded the endpoint rate limit" in rate_limit_400_body()["meta"]["developer_message"]
    assert "1 request every 6 seconds" in rate_limit_400_body(6)["meta"]["developer_message"]
    assert restarting_555_body()["meta"]["http_code"] == 555
    assert html_error_page().startswith("<html>")
