"""Bearer tokens from config. A request's token names its reader; tokens are never logged or echoed."""

from __future__ import annotations

import hmac

from fastapi import HTTPException, Request

from dicomnode.config.http import ReaderToken


class Readers:
    def __init__(self, tokens: list[ReaderToken]) -> None:
        self.replace(tokens)

    def replace(self, tokens: list[ReaderToken]) -> None:
        """Take a new token list (SIGHUP): a removed token is refused from the next request on."""
        self._tokens = [(t.name, t.token.get_secret_value().encode()) for t in tokens]

    def __len__(self) -> int:
        return len(self._tokens)

    def name_of(self, authorization: str | None) -> str | None:
        """The reader whose token the Authorization header carries, or None."""
        scheme, _, presented = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not presented:
            return None
        found = None
        for name, secret in self._tokens:  # compare with every token: the time taken says nothing
            if hmac.compare_digest(secret, presented.strip().encode()):
                found = name
        return found


def reader(request: Request) -> str:
    """FastAPI dependency: the authenticated reader's name, or 401."""
    name = request.app.state.readers.name_of(request.headers.get("authorization"))
    if name is None:
        raise HTTPException(401, "a valid bearer token is required", headers={"WWW-Authenticate": "Bearer"})
    return name
