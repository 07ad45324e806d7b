"""A minimal Django project for tests/test_django.py: one app, SQLite, myrq.

Paths and the broker come from the environment the test sets.
"""

import os

SECRET_KEY = "not-secret: tests only"
DEBUG = True  # queries are logged: the worker must forget them after each job
ALLOWED_HOSTS = ["testserver"]
USE_TZ = True
ROOT_URLCONF = "project.urls"
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
INSTALLED_APPS = ["myrq.contrib.django", "shop"]
MIDDLEWARE: list[str] = []
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("MYRQ_TEST_DB", ":memory:"),
        "OPTIONS": {"timeout": 20},
    }
}
MYRQ = {
    "broker_url": os.environ.get("MYRQ_TEST_BROKER", "memory://djangoproject"),
    "allow": ["shop.tasks"],
    "queues": {"default": {}, "mail": {"default_timeout": "1m"}},
    "enqueue_on_commit": os.environ.get("MYRQ_TEST_ON_COMMIT", "1") == "1",
}
