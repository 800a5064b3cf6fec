"""Swagger UI and ReDoc work offline: every asset they load is served by this application.

The pages reference only URLs of this application (no CDN, no web fonts of another host),
and each of those URLs answers: through the staticfiles finders, as ``runserver`` serves
them in development, and through WhiteNoise after ``collectstatic``, as in production.
"""

import re
from html.parser import HTMLParser
from urllib.parse import urlsplit

import pytest
from django.contrib.staticfiles import finders
from django.core.management import call_command
from django.test import Client
from django.urls import reverse

PAGES = ["/api/v1/docs/", "/api/v1/redoc/"]
URL_ATTRIBUTES = {"src", "href", "spec-url", "action", "poster", "data"}
ABSOLUTE_URL = re.compile(r"""(?:https?:)?//[^\s"'<>()]+""", re.IGNORECASE)


class _UrlCollector(HTMLParser):
    def __init__(self):
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.urls.extend(value for name, value in attrs if name in URL_ATTRIBUTES and value)


def referenced_urls(html: str) -> list[str]:
    collector = _UrlCollector()
    collector.feed(html)
    return collector.urls


def assert_same_origin(page: str, html: str) -> list[str]:
    """Every URL the page names is a path of this server; returns those paths."""
    foreign = [url for url in ABSOLUTE_URL.findall(html) if urlsplit(url).netloc not in ("", "testserver")]
    assert not foreign, f"{page} loads from other hosts: {foreign}"
    urls = referenced_urls(html)
    assert urls, f"{page} references no assets at all"
    for url in urls:
        parts = urlsplit(url)
        assert not parts.scheme and not parts.netloc, f"{page} references {url}"
        assert url.startswith("/"), f"{page} references {url}, relative to the page"
    return urls


@pytest.mark.parametrize("page", PAGES)
def test_docs_page_assets_are_found_by_the_development_server(settings, page):
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }
    client = Client()
    response = client.get(page)
    assert response.status_code == 200
    urls = assert_same_origin(page, response.content.decode())

    static_paths = [url.removeprefix(settings.STATIC_URL) for url in urls if url.startswith(settings.STATIC_URL)]
    assert static_paths, f"{page} loads nothing from the static files"
    for path in static_paths:
        assert path.startswith("drf_spectacular_sidecar/"), path
        assert finders.find(path), f"{page}: no static file {path}"
    schema = reverse("schema")  # served by a view, tested in tests/test_openapi.py (and slow to build)
    for url in set(urls) - {settings.STATIC_URL + path for path in static_paths} - {schema}:
        assert client.get(url).status_code == 200, f"{page}: {url} does not answer"


def test_docs_page_assets_are_served_after_collectstatic(settings, tmp_path):
    # Production: hashed names from a manifest written by collectstatic, served by WhiteNoise.
    # (Production's CompressedManifestStaticFilesStorage also writes .gz copies, which is
    # WhiteNoise's business and slow here; the names and the manifest are the same.)
    settings.STATIC_ROOT = tmp_path
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.ManifestStaticFilesStorage"},
    }
    call_command("collectstatic", "--noinput", verbosity=0)
    whitenoise = "whitenoise.middleware.WhiteNoiseMiddleware"
    settings.MIDDLEWARE = [settings.MIDDLEWARE[0], whitenoise, *settings.MIDDLEWARE[1:]]  # where settings.py puts it
    settings.WHITENOISE_USE_FINDERS = False  # only what collectstatic wrote, as in production

    client = Client()
    for page in PAGES:
        response = client.get(page)
        assert response.status_code == 200
        urls = assert_same_origin(page, response.content.decode())

        static_urls = [url for url in urls if url.startswith(settings.STATIC_URL)]
        assert static_urls, f"{page} loads nothing from the static files"
        assert all(re.search(r"\.[0-9a-f]{12}\.", url) for url in static_urls), static_urls  # the manifest's names
        for url in static_urls:
            asset = client.get(url)
            assert asset.status_code == 200, f"{page}: {url} answered {asset.status_code}"
            assert b"".join(asset.streaming_content), f"{page}: {url} is empty"
            if url.endswith(".js"):
                assert asset["Content-Type"].startswith(("text/javascript", "application/javascript")), url


def test_swagger_ui_has_no_inline_script():
    """Swagger UI's start-up script is a URL of its own, so a strict CSP can allow it."""
    html = Client().get("/api/v1/docs/").content.decode()
    assert re.findall(r"<script(?![^>]*\bsrc=)[^>]*>", html) == []
