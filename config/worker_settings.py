"""Settings for the worker pool: the web's (config.settings), less the apps
that only serve web pages (the admin, messages, static files, template
filters, htmx, and django-ninja's API docs). A worker renders no page and
reverses no URL, and installing those apps imports their modules (all of
ninja and pydantic, the admin's forms and views): a quarter of a worker's
start, before its first request (`make bench` counts b and c from the
worker's start)."""

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
