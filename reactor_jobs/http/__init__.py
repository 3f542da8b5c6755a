"""The HTTP API (aiohttp): /jobs/v1, /functions/v1 and the auth routes; see app.py."""
