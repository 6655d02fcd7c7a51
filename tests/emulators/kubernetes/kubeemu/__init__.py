"""kubeemu: an emulated Kubernetes API server (batch/v1 Jobs, core/v1 Pods and their
logs) for tests, spoken to by the real ``kubernetes`` client and by kubectl."""

from .auth import ANONYMOUS, Rule
from .faults import Fault
from .httpd import RequestRecord
from .outcomes import Outcome
from .server import KubeApiServer

__all__ = ["ANONYMOUS", "Fault", "KubeApiServer", "Outcome", "RequestRecord", "Rule"]
