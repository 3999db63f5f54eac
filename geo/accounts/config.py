"""Settings of accounts and sessions, read from ``CMM_GEO_*`` like :mod:`geo.settings`.

Kept here (not in the shared settings class) so the accounts capability owns its knobs.
"""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class AccountSettings(BaseSettings):
    """Session lifetimes, sign-in limits and password rules."""

    model_config = SettingsConfigDict(env_prefix="CMM_GEO_", extra="ignore")

    session_hours: float = Field(
        default=12.0, gt=0, description="A session ends this long after sign-in, at the latest."
    )
    session_idle_minutes: float = Field(
        default=120.0, gt=0, description="A session unused this long ends."
    )
    login_max_failures: int = Field(
        default=5, ge=1, description="Failed sign-ins per user name within the window: 429 after."
    )
    login_max_failures_ip: int = Field(
        default=20,
        ge=1,
        description="Failed sign-ins per client address within the window (several users may "
        "share an office's address): 429 after.",
    )
    login_window_minutes: float = Field(
        default=15.0, gt=0, description="The window in which failed sign-ins are counted."
    )
    min_password_length: int = Field(default=10, ge=8, description="Shortest password accepted.")


@lru_cache
def get_account_settings() -> AccountSettings:
    """The process-wide account settings (``cache_clear()`` in tests)."""
    return AccountSettings()
