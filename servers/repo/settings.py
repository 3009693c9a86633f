"""The `[repo]` table of a settings file: the repo server has no settings yet, so any key is an error."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class RepoSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
