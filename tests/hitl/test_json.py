"""hitl.json.ContentNegotiation answers as DRF's own negotiation does, header by header."""

import pytest
from django.http import Http404
from rest_framework.exceptions import NotAcceptable
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.renderers import BrowsableAPIRenderer, StaticHTMLRenderer
from rest_framework.request import Request
from rest_framework.test import APIRequestFactory

from hitl.json import ContentNegotiation, OrjsonRenderer
from tests.conftest import make_client

ACCEPTS = [
    None,
    "",
    "*/*",
    "application/json",
    "application/json; indent=4",
    "text/html",
    "text/html, */*;q=0.1",
    "application/xml",
    "text/*",
]
RENDERERS = [
    [OrjsonRenderer()],
    [OrjsonRenderer(), BrowsableAPIRenderer()],
    [StaticHTMLRenderer(), OrjsonRenderer()],
]


def _answer(negotiation, accept, renderers, query=""):
    headers = {} if accept is None else {"HTTP_ACCEPT": accept}
    request = Request(APIRequestFactory().get("/api/v1/outputs" + query, **headers))
    try:
        renderer, media_type = negotiation.select_renderer(request, renderers)
    except NotAcceptable:
        return "406"
    except Http404:  # ?format= that no renderer writes
        return "404"
    return type(renderer).__name__, media_type


@pytest.mark.parametrize("renderers", RENDERERS, ids=["json", "json+browsable", "html+json"])
@pytest.mark.parametrize("accept", ACCEPTS)
@pytest.mark.parametrize("query", ["", "?format=json", "?format=api"])
def test_the_same_answer_as_drf(accept, renderers, query):
    assert _answer(ContentNegotiation(), accept, renderers, query) == _answer(
        DefaultContentNegotiation(), accept, renderers, query
    )


@pytest.mark.django_db
def test_the_api_answers_in_json(tenant):
    client = make_client(tenant, "admin")
    response = client.get("/api/v1/outputs", HTTP_ACCEPT="*/*")
    assert response.status_code == 200 and response["Content-Type"] == "application/json"
