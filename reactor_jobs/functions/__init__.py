"""Functions: bundles, their manifests, the registry of versions and jobs, and runtimes.

Bundle code imports what it returns from here: `from reactor_jobs.functions import Response`.
"""

from reactor_jobs.functions.errors import NonRetryableError
from reactor_jobs.functions.messages import Request, Response

__all__ = ["NonRetryableError", "Request", "Response"]
