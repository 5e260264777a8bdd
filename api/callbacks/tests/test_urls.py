"""Which callback URLs a submit may name: http(s) only, allowed hosts, no credentials, bounded."""

import pytest
from starlette.datastructures import QueryParams

from api.callbacks.urls import MAX_URL_LENGTH, check_callback_url, host_allowed
from api.config import Settings
from api.exceptions import InvalidRequest
from api.routes.predict import predict_options


def _refused(url: str, allowed: tuple[str, ...] = ()) -> str:
    with pytest.raises(InvalidRequest) as caught:
        check_callback_url(url, allowed, "m")
    assert caught.value.field == "callback_url"
    assert caught.value.model == "m"
    return str(caught.value)


def test_http_and_https_urls_are_accepted_as_they_are() -> None:
    for url in (
        "http://example.com/hook",
        "https://hooks.example.com:8443/a/b?c=d",
        "http://127.0.0.1:9000/",
        "https://[::1]:8443/x",
    ):
        assert check_callback_url(url, (), "m") == url


def test_other_schemes_and_relative_urls_are_refused() -> None:
    for url in ("ftp://example.com/x", "file:///etc/passwd", "javascript:alert(1)", "/hook",
                "example.com/hook", "gopher://example.com"):  # fmt: skip
        assert "http:// or https://" in _refused(url)


def test_credentials_spaces_hostless_port_zero_and_bad_ports_are_refused() -> None:
    assert "credentials" in _refused("https://user:pw@example.com/x")
    assert "credentials" in _refused("https://user@example.com/x")
    assert "printable ASCII" in _refused("https://example.com/a b")
    assert "printable ASCII" in _refused("https://exämple.com/")
    assert "no host" in _refused("http:///path")
    assert "port 0" in _refused("http://example.com:0/")
    assert "not a URL" in _refused("http://example.com:99999/")


def test_a_url_over_the_length_limit_is_refused() -> None:
    base = "https://example.com/"
    assert check_callback_url(base + "a" * (MAX_URL_LENGTH - len(base)), (), "m")
    assert "longer than" in _refused(base + "a" * (MAX_URL_LENGTH - len(base) + 1))


def test_allowed_hosts_names_and_suffixes() -> None:
    allowed = ("hooks.example.com", "*.partner.org")
    assert host_allowed("anything.test", ())
    assert host_allowed("hooks.example.com", allowed)
    assert host_allowed("HOOKS.example.com.", allowed)  # case and a trailing dot do not matter
    assert host_allowed("a.partner.org", allowed)
    assert host_allowed("deep.a.partner.org", allowed)
    assert not host_allowed("partner.org", allowed)  # '*.' needs a subdomain
    assert not host_allowed("evilpartner.org", allowed)
    assert not host_allowed("example.com", allowed)
    assert not host_allowed("hooks.example.com.evil.net", allowed)
    message = _refused("https://internal.local/x", allowed)
    assert "CALLBACK_ALLOWED_HOSTS" in message and "internal.local" in message
    assert check_callback_url("https://x.partner.org/cb", allowed, "m")


def test_predict_options_take_the_query_or_the_header_and_need_async() -> None:
    settings = Settings(callback_allowed_hosts="hooks.example.com")  # type: ignore[arg-type]
    query = QueryParams("mode=async&callback_url=https://hooks.example.com/q")
    assert predict_options(query, settings, "m").callback_url == "https://hooks.example.com/q"
    header = "https://hooks.example.com/h"
    options = predict_options(QueryParams("mode=async"), settings, "m", header)
    assert options.callback_url == header
    with pytest.raises(InvalidRequest, match="mode=async") as caught:
        predict_options(QueryParams("callback_url=https://hooks.example.com/q"), settings, "m")
    assert caught.value.field == "callback_url"
    with pytest.raises(InvalidRequest, match="CALLBACK_ALLOWED_HOSTS"):
        predict_options(QueryParams("mode=async"), settings, "m", "https://elsewhere.net/")
    # Both given: the query's is used, and each must be acceptable; an empty one is not.
    both = predict_options(query, settings, "m", header)
    assert both.callback_url == "https://hooks.example.com/q"
    with pytest.raises(InvalidRequest, match="CALLBACK_ALLOWED_HOSTS"):
        predict_options(query, settings, "m", "https://elsewhere.net/")
    with pytest.raises(InvalidRequest, match="http"):
        predict_options(QueryParams("mode=async&callback_url="), settings, "m", header)
