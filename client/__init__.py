"""jobgate client: submit batch jobs to clusters through Redis, follow them, get results.

>>> gw = Gateway("redis://127.0.0.1:6379/0")
>>> job = gw.submit(JobSpec(name="hello", command="echo hello"), cluster="local")
>>> job.wait(timeout_s=600).status
"""

from jobgate.client.errors import (
    BackendError,
    BrokerUnavailableError,
    ConfigurationError,
    JobgateError,
    JobNotFoundError,
    JobTimeoutError,
    ProfileNotFoundError,
    SchedulerUnavailableError,
    SpecInvalidError,
)
from jobgate.client.gateway import Gateway, Job
from jobgate.client.models import ArraySpec, ElementState, JobRecord, JobSpec, JobStatus, Resources
from jobgate.client.profiles import ClusterProfile, load_profile

__all__ = [
    "ArraySpec",
    "BackendError",
    "BrokerUnavailableError",
    "ClusterProfile",
    "ConfigurationError",
    "ElementState",
    "Gateway",
    "Job",
    "JobNotFoundError",
    "JobRecord",
    "JobSpec",
    "JobStatus",
    "JobTimeoutError",
    "JobgateError",
    "ProfileNotFoundError",
    "Resources",
    "SchedulerUnavailableError",
    "SpecInvalidError",
    "load_profile",
]
