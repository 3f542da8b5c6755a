"""The HTTP API's wire schema: the request and response Structs the server and the client
share (objects.py). Imports nothing else of reactor_jobs, so the client can depend on it."""
