"""jobgate workers: the Celery app, its tasks and the scheduler backends.

Run on a gateway host with ``jobgate worker --profile NAME``. This package
imports the client's contract (models, task names, key schema); the client never
imports it.
"""
