"""[http]: the API and web worklist server, its reader tokens and TLS."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr, model_validator

from dicomnode.config.base import Section, require_files, require_together

# The secret deploy/dicomnode.example.toml shows: public, so refused wherever it appears.
EXAMPLE_TOKEN = "change-me-to-a-long-random-secret"


class ReaderToken(Section):
    """A bearer token for the HTTP API; its name is what the worklist records as the reader."""

    name: str = Field(min_length=1, max_length=64, pattern=r"^[\w .@-]+$")
    token: SecretStr = Field(min_length=16, description="The secret; at least 16 characters.")


class HttpConfig(Section):
    """The HTTP API (REST, UPS-RS) and the web worklist, served by `dicomnode serve`."""

    enabled: bool = True
    host: str = "0.0.0.0"
    port: int = Field(8080, ge=0, le=65535)
    tokens: list[ReaderToken] = Field(
        default_factory=list, description="Who may use the API; none configured: every API request gets 401."
    )
    tls_cert_file: Path | None = Field(None, description="Serve HTTPS with this certificate (PEM).")
    tls_key_file: Path | None = None

    @model_validator(mode="after")
    def _unique_and_tls(self) -> HttpConfig:
        names = [t.name for t in self.tokens]
        if len(set(names)) != len(names):
            raise ValueError("token names must be unique")
        secrets = [t.token.get_secret_value() for t in self.tokens]
        if len(set(secrets)) != len(secrets):
            raise ValueError("two tokens share the same secret")
        if EXAMPLE_TOKEN in secrets:
            raise ValueError("a token is the example's public secret: generate one, e.g. `openssl rand -hex 24`")
        require_together(self, "tls_cert_file", "tls_key_file")
        require_files(self, "tls_cert_file", "tls_key_file")
        return self
