"""Settings for the engine's processes, the worker pool and the scheduler:
the web's (config.settings), less the apps that only serve web pages (the
admin, messages, static files, template filters, htmx, and django-ninja's
API docs). Neither renders a page or reverses a URL, and installing those
apps imports their modules (all of ninja and pydantic, the admin's forms
and views): a quarter of a worker's start, before its first request
(`make bench` counts b and c from the worker's start), and CPU a scheduler
starting beside running workers would take from them.

Both run with --skip-checks as well: Django's checks load the URL
configuration, which imports the API (ninja and pydantic) all the same.
The web process and `migrate` run them."""

from config.settings import *  # noqa: F403
from config.settings import INSTALLED_APPS as WEB_APPS

WEB_ONLY_APPS = {
    "django.contrib.admin",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "django_htmx",
    "ninja",
}

INSTALLED_APPS = [app for app in WEB_APPS if app not in WEB_ONLY_APPS]
