"""Request bodies of the query API, validated by pydantic (a bad body gets 422 with the reason)."""

from __future__ import annotations

import math
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


def _has_lone_surrogate(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


class Body(BaseModel):
    """A request body: unknown fields, NaN, ±Infinity (1e999 parses as one) and text that is not valid Unicode
    (a lone surrogate) are refused with 422 and the reason."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    @field_validator("*", mode="before")
    @classmethod
    def valid_unicode(cls, v: Any) -> Any:
        if isinstance(v, str) and _has_lone_surrogate(v):
            raise ValueError("text is not valid Unicode (a lone surrogate)")
        return v


class WorkloadType(StrEnum):
    inference = "inference"
    training = "training"
    fine_tune = "fine_tune"
    embedding = "embedding"
    batch_inference = "batch_inference"


class Priority(StrEnum):
    urgent = "urgent"
    normal = "normal"
    async_ = "async"


class WorkloadSubmission(Body):
    """A workload as an AI developer submits it."""

    name: str = Field(min_length=1, max_length=200)
    workload_type: WorkloadType
    image: str | None = Field(default=None, max_length=500)
    command: str | None = Field(default=None, max_length=4000)
    vram_mb: int = Field(gt=0, le=1_048_576, description="GPU memory needed, MiB")
    expected_hours: float = Field(gt=0, le=24 * 365, description="Expected run time on one GPU, hours")
    priority: Priority = Priority.normal
    green_only: bool = False
    max_carbon_gco2_kwh: float | None = Field(default=None, ge=0)
    budget_eur: float | None = Field(default=None, ge=0)
    deadline: datetime | None = Field(default=None, description="ISO 8601 with offset; must be in the future")
    checkpoint_gb: float | None = Field(default=None, gt=0)

    @field_validator("expected_hours", "max_carbon_gco2_kwh", "budget_eur", "checkpoint_gb")
    @classmethod
    def finite(cls, v: float | None) -> float | None:
        if v is not None and not math.isfinite(v):
            raise ValueError("must be a finite number")
        return v

    @model_validator(mode="after")
    def image_or_command(self) -> WorkloadSubmission:
        if not self.image and not self.command:
            raise ValueError("one of image or command is required")
        if self.deadline is not None and self.deadline.tzinfo is None:
            raise ValueError("deadline needs a UTC offset, e.g. 2026-12-01T12:00:00Z")
        return self

    def to_request(self, submitter: str) -> dict:
        data = self.model_dump(mode="json", exclude={"deadline"})
        data["deadline_ms"] = int(self.deadline.timestamp() * 1000) if self.deadline else None
        data["submitter"] = submitter
        return data


class SurplusEvent(Body):
    """An admin's declaration of curtailed renewable power in a zone for a span of minutes."""

    zone: str
    curtailment_mw: float = Field(gt=0, le=100_000)
    minutes: float = Field(gt=0, le=24 * 60)


class IssuableRole(StrEnum):
    admin = "admin"
    developer = "developer"
    datacenter = "datacenter"
    recycler = "recycler"
    gamer = "gamer"


Subject = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f]+$")]


class TokenRequest(Body):
    """Who a new token is for."""

    role: IssuableRole
    subject: Subject


class NodeRegistration(Body):
    """A GPU node as its provider registers it; the provider and its kind come from the provider's token."""

    node_id: str | None = Field(
        default=None, min_length=1, max_length=100, pattern=r"^[A-Za-z0-9._-]+$", description="Default: generated"
    )
    gpu_model: str = Field(min_length=1, max_length=100, description="e.g. H100, A100, RTX 4090")
    vram_mb: int = Field(gt=0, le=1_048_576, description="GPU memory, MiB")
    zone: str = Field(description="Grid zone the node draws power from (see /api/v1/zones)")
    lat: float = Field(ge=-90, le=90)
    lng: float = Field(ge=-180, le=180)
    pue: float = Field(default=1.0, ge=1.0, le=5.0, description="Power usage effectiveness of the site")
    mig_capable: bool = False
    wallet: str | None = Field(default=None, max_length=100, description="Solana wallet (base58) for payouts")
    billing_account: str | None = Field(default=None, max_length=200)
    declared_energy_source: str | None = Field(default=None, max_length=200)
    declared_carbon_gco2_per_kwh: float | None = Field(default=None, ge=0, le=5000)
    max_power_w: float = Field(default=0.0, ge=0, le=100_000, description="Power limit of the GPU, W (0 = unknown)")
