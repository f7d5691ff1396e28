"""A guide entry's status: plain enum, no pydantic, so `errlearn --help` can list the choices without the models."""

from __future__ import annotations

from enum import StrEnum


class GuideStatus(StrEnum):
    draft = "draft"
    approved = "approved"
    rejected = "rejected"
    superseded = "superseded"
