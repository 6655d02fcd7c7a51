"""jobgate client: submit batch jobs to clusters through Redis, follow them, get results.

>>> gw = Gateway("redis://127.0.0.1:6379/0")
>>> job = gw.submit(JobSpec(name="hello", command="echo hello"), cluster="local")
>>> job.wait(timeout_s=600).status
"""

from jobgate.client.clusters import ClusterInfo
from jobgate.client.errors import (
    BackendError,
    BrokerTlsError,
    BrokerUnavailableError,
    ClusterNotServedWarning,
    ConfigurationError,
    JobgateError,
    JobNotFoundError,
    JobTimeoutError,
    PermissionDeniedError,
    PolicyBlockedError,
    ProfileNotFoundError,
    SchedulerUnavailableError,
    SpecInvalidError,
)
from jobgate.client.gateway import Gateway, Job
from jobgate.client.models import (
    ArraySpec,
    ElementState,
    JobRecord,
    JobSpec,
    JobStatus,
    PolicyFinding,
    PolicyLevel,
    Resources,
)
from jobgate.client.policy import evaluate_policy, summarize_preflight
from jobgate.client.profiles import ClusterProfile, load_profile
from jobgate.client.validation import validate_job_spec

__all__ = [
    "ArraySpec",
    "BackendError",
    "BrokerTlsError",
    "BrokerUnavailableError",
    "ClusterInfo",
    "ClusterNotServedWarning",
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
    "PermissionDeniedError",
    "PolicyBlockedError",
    "PolicyFinding",
    "PolicyLevel",
    "ProfileNotFoundError",
    "Resources",
    "SchedulerUnavailableError",
    "SpecInvalidError",
    "evaluate_policy",
    "load_profile",
    "summarize_preflight",
    "validate_job_spec",
]
