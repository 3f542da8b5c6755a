"""Auth: users, orgs, roles, JWTs, refresh tokens and service API keys."""
