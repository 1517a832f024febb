"""Users service settings (env prefix ``OPSC_USERS_``)."""

from __future__ import annotations

from pydantic import AliasChoices, Field
from pydantic_settings import SettingsConfigDict

from opsconductor_shared.settings import ServiceSettings


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="OPSC_USERS_", extra="ignore", populate_by_name=True)

    port: int = Field(default=3002, description="Port the users subgraph listens on.")
    auth_url: str = Field(
        default="http://127.0.0.1:3000/graphql",
        validation_alias=AliasChoices("OPSC_AUTH_URL", "auth_url"),
        description="The auth subgraph's GraphQL endpoint; createUser sets the password there "
        "(setUserCredential, with this service's token).",
    )
