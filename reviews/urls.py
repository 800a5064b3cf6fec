from django.urls import path

from reviews.apis import OutputBatchApi, OutputCollectionApi, OutputDetailApi

urlpatterns = [
    path("outputs", OutputCollectionApi.as_view(), name="outputs"),
    path("outputs/batch", OutputBatchApi.as_view(), name="outputs-batch"),
    path("outputs/<uuid:output_id>", OutputDetailApi.as_view(), name="output-detail"),
]
