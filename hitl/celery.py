"""The Celery application.

With no ``CELERY_BROKER_URL`` set, settings make every task run in-process
(``task_always_eager``), so the embedded demo needs no broker.
"""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hitl.settings")

app = Celery("hitl")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
