"""Content negotiation remembered per process answers as DRF's own, every time, refusals included."""

import pytest
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.parsers import FormParser
from rest_framework.renderers import BrowsableAPIRenderer
from rest_framework.request import Request
from rest_framework.test import APIRequestFactory

from hitl import negotiation
from hitl.json import OrjsonParser, OrjsonRenderer
from hitl.negotiation import CachedContentNegotiation

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def empty_memory():
    CachedContentNegotiation._parsers.clear()
    CachedContentNegotiation._renderers.clear()
    yield
    CachedContentNegotiation._parsers.clear()
    CachedContentNegotiation._renderers.clear()


def a_request(path="/api/v1/outputs", **headers):
    return Request(APIRequestFactory().get(path, **headers))


RENDERERS = [OrjsonRenderer(), BrowsableAPIRenderer()]
ACCEPTS = [
    None,
    "*/*",
    "application/json",
    "application/json; indent=4",
    "text/html",
    "text/html;q=0.9, application/json",
    "application/*",
    "image/png",
    "text/html;q=0.1, */*;q=0.5",
]


@pytest.mark.parametrize("accept", ACCEPTS)
@pytest.mark.parametrize("renderers", [RENDERERS, RENDERERS[:1]], ids=["json-and-html", "json-only"])
def test_the_renderer_and_media_type_are_drfs_on_a_first_and_a_second_ask(accept, renderers):
    headers = {} if accept is None else {"HTTP_ACCEPT": accept}

    def answer(negotiator):
        try:
            renderer, media_type = negotiator.select_renderer(a_request(**headers), renderers)
        except Exception as error:
            return type(error).__name__
        return type(renderer).__name__, media_type

    expected = answer(DefaultContentNegotiation())
    cached = CachedContentNegotiation()
    assert [answer(cached), answer(cached)] == [expected, expected]


def test_a_format_asked_for_in_the_query_is_honoured_and_an_unknown_one_refused_each_time():
    cached = CachedContentNegotiation()
    renderer, _ = cached.select_renderer(a_request("/x?format=api"), RENDERERS)
    assert isinstance(renderer, BrowsableAPIRenderer)
    renderer, _ = cached.select_renderer(a_request("/x"), RENDERERS)
    assert isinstance(renderer, OrjsonRenderer)  # the same Accept, no format: not the remembered answer
    for _ in range(2):
        with pytest.raises(Exception) as refused:
            cached.select_renderer(a_request("/x?format=xml"), RENDERERS)
        assert type(refused.value).__name__ == "Http404"


def test_a_parser_is_chosen_by_content_type_and_an_unknown_type_finds_none_each_time():
    parsers = [OrjsonParser(), FormParser()]
    cached = CachedContentNegotiation()
    factory = APIRequestFactory()

    def chosen(content_type):
        request = Request(factory.post("/x", b"{}", content_type=content_type))
        return cached.select_parser(request, parsers)

    assert [chosen("application/json"), chosen("application/json")] == [parsers[0], parsers[0]]
    assert chosen("application/x-www-form-urlencoded") is parsers[1]
    assert [chosen("text/csv"), chosen("text/csv")] == [None, None]


def test_the_memory_is_bounded(monkeypatch):
    monkeypatch.setattr(negotiation, "LIMIT", 3)
    cached = CachedContentNegotiation()
    for number in range(10):
        cached.select_renderer(a_request(HTTP_ACCEPT=f"application/json; v={number}"), RENDERERS)
    assert 1 <= len(CachedContentNegotiation._renderers) <= 3


def test_the_api_refuses_what_it_cannot_render_or_read_on_every_request(service_client):
    for _ in range(2):
        assert service_client.get("/api/v1/outputs", HTTP_ACCEPT="text/csv").status_code == 406
        assert service_client.get("/api/v1/outputs", HTTP_ACCEPT="application/json").status_code == 200
        response = service_client.post("/api/v1/outputs", "a,b", content_type="text/csv")
        assert response.status_code == 415


def test_renderers_of_one_class_declaring_other_media_types_are_told_apart():
    class Plain(OrjsonRenderer):
        pass

    csv_one, json_one = Plain(), Plain()
    csv_one.media_type, csv_one.format = "text/csv", "csv"
    cached = CachedContentNegotiation()
    assert cached.select_renderer(a_request(HTTP_ACCEPT="text/csv"), [csv_one])[0] is csv_one
    with pytest.raises(Exception) as refused:
        cached.select_renderer(a_request(HTTP_ACCEPT="text/csv"), [json_one])
    assert type(refused.value).__name__ == "NotAcceptable"
