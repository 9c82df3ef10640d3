"""Identity: who is calling. Principals and roles, API tokens (stored hashed), OIDC bearer JWTs.

May import ``ledger`` and the projections room; never Flask (the HTTP adapter
hands :func:`authentication.authorize` the request's ``Authorization`` header).
"""
