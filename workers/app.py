"""The Celery app jobgate workers run: ``celery -A jobgate.workers.app worker``.

Needs ``JOBGATE_URL`` (and optionally ``JOBGATE_TENANT``) in the environment;
``jobgate worker`` sets them from its options. Flower can load the same app.
"""

from __future__ import annotations

from jobgate.client.celeryconf import make_celery
from jobgate.client.connection import tenant_from_env, url_from_env
from jobgate.workers import worker_setup

app = make_celery(url_from_env(), tenant_from_env(), main="jobgate")
app.conf.include = ["jobgate.workers.tasks"]
worker_setup.install(app)
