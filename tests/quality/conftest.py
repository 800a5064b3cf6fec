"""The quality tests share the review-workflow fixtures (a policy sampling everything, a rubric)."""

from tests.reviews.conftest import workflow  # noqa: F401 (a fixture)
