"""Authenticating a request's ``Authorization`` header and checking its roles."""

from __future__ import annotations

from ..errors import AuthenticationError, PermissionDeniedError
from .oidc import OidcValidator
from .principals import Principal
from .tokens import TOKEN_PREFIX, authenticate_token


def authorize(engine, oidc: OidcValidator | None, authorization: str, required_roles) -> Principal:
    """Return the principal of an ``Authorization`` header value if it holds one of ``required_roles``.

    ``Bearer mlg_...`` is an API token; any other bearer credential is a JWT
    for ``oidc`` (when one is configured).

    Raises:
        AuthenticationError: no usable credentials.
        PermissionDeniedError: the principal lacks every role asked for.
    """
    scheme, _, credentials = authorization.partition(" ")
    if scheme.lower() != "bearer" or not credentials.strip():
        raise AuthenticationError("authentication required: send Authorization: Bearer <token>")
    credentials = credentials.strip()
    if credentials.startswith(TOKEN_PREFIX):
        principal = authenticate_token(engine, credentials)
    else:
        if oidc is None:
            raise AuthenticationError("unknown API token")
        principal = oidc.authenticate(credentials)
    if not principal.has_any(required_roles):
        raise PermissionDeniedError(
            f"{principal.name} lacks the role this needs: one of {', '.join(required_roles)}")
    return principal
