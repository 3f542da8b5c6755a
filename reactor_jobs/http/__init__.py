"""The aiohttp side of Reactor Jobs: the health check now; the /jobs/v1 API later."""
