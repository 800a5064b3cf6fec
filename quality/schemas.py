"""The quality layer's request and response models (pydantic), published by drf-spectacular."""

import re
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator
from pydantic_core import PydanticCustomError

from policies.schemas import ApplicationName, Name

# RFC 3339 date-time (OpenAPI's ``format: date-time``): an offset is required, and a number is not
# a time (pydantic alone would read "0.5" as seconds since 1970).
_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})")


def _rfc3339(value):
    if not isinstance(value, str) or not _RFC3339.fullmatch(value):
        # A type error of the published schema (format: date-time), so a 400 like any malformed value.
        raise PydanticCustomError(
            "datetime_parsing", "Input should be an RFC 3339 date-time with an offset, e.g. 2026-01-01T00:00:00Z"
        )
    return value


Instant = Annotated[datetime, BeforeValidator(_rfc3339)]
DatasetFormat = Literal["chat", "preference"]
DatasetDecision = Literal["approved", "corrected"]


class DatasetQuery(BaseModel):
    """``GET /api/v1/datasets/fine-tuning``'s query: which reviewed outputs, in which format."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    format: DatasetFormat = Field(
        default="chat",
        description="chat: supervised examples ({messages}); preference: pairs of the correction over the "
        "original ({input, preferred_output, non_preferred_output}).",
    )
    start: Instant | None = Field(default=None, alias="from", description="Received at or after (RFC 3339).")
    end: Instant | None = Field(default=None, alias="to", description="Received before (RFC 3339).")
    application: Annotated[list[ApplicationName], Field(max_length=100)] = Field(default_factory=list)
    tier: Annotated[list[Name], Field(max_length=20)] = Field(default_factory=list)
    decision: Annotated[list[DatasetDecision], Field(max_length=2)] = Field(
        default_factory=list,
        description="chat: approved and/or corrected (default corrected); preference: corrected only.",
    )

    @model_validator(mode="after")
    def _coherent(self):
        if self.start is not None and self.end is not None and self.end <= self.start:
            raise ValueError("to must be later than from")
        if self.format == "preference" and set(self.decision) - {"corrected"}:
            raise ValueError("preference pairs are made of corrected outputs only")
        return self
