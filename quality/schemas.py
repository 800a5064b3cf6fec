"""The quality layer's request and response models (pydantic), published by drf-spectacular."""

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from policies.schemas import ApplicationName, Name

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
    start: datetime | None = Field(default=None, alias="from", description="Received at or after (RFC 3339).")
    end: datetime | None = Field(default=None, alias="to", description="Received before (RFC 3339).")
    application: Annotated[list[ApplicationName], Field(max_length=100)] = Field(default_factory=list)
    tier: Annotated[list[Name], Field(max_length=20)] = Field(default_factory=list)
    decision: Annotated[list[DatasetDecision], Field(max_length=2)] = Field(
        default_factory=list,
        description="chat: approved and/or corrected (default corrected); preference: corrected only.",
    )

    @model_validator(mode="after")
    def _coherent(self):
        for moment, name in ((self.start, "from"), (self.end, "to")):
            if moment is not None and moment.tzinfo is None:
                raise ValueError(f"{name}: give an offset (Z or +hh:mm)")
        if self.start is not None and self.end is not None and self.end <= self.start:
            raise ValueError("to must be later than from")
        if self.format == "preference" and set(self.decision) - {"corrected"}:
            raise ValueError("preference pairs are made of corrected outputs only")
        return self
