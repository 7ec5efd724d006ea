"""Settings from the environment, and the embedded defaults of a fresh machine."""

import json
import os
import subprocess
import sys

import pytest
import redis
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.handlers.wsgi import WSGIHandler
from django.db import connection
from django.test import RequestFactory

from config import worker_settings
from config.embedded_redis import EmbeddedRedis
from config.env import env_bool, env_float_list, env_int, redis_url_with_db
from tests.processes import BASE_DIR


@pytest.mark.embedded
def test_the_bundled_redis_server_starts_serves_and_stops(tmp_path):
    server = EmbeddedRedis(tmp_path / "redis")
    assert not server.is_running()
    server.ensure_running()
    try:
        client = redis.Redis.from_url(server.url(db=3))
        client.set("k", "v")
        assert client.get("k") == b"v"
        server.ensure_running()  # a second process finds it running
        assert server.is_running()
    finally:
        assert server.stop()
    assert not server.is_running()


@pytest.mark.embedded
@pytest.mark.django_db
def test_sqlite_runs_in_wal_mode():
    if connection.vendor != "sqlite":
        pytest.skip("the embedded default is SQLite; this run uses " + connection.vendor)
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA journal_mode")
        assert cursor.fetchone()[0] == "wal"


@pytest.mark.embedded
@pytest.mark.django_db(transaction=True)
def test_a_request_leaves_its_database_connection_open_for_the_next():
    # Opening one costs Django's function registrations and the PRAGMAs, on
    # SQLite as on PostgreSQL: at one per request, a fifth of the API's
    # publishes per second on SQLite. (Through the WSGI handler as a server
    # calls it: the test client keeps connections open whatever the setting.)
    handler = WSGIHandler()

    def serve() -> None:
        environ = RequestFactory()._base_environ(PATH_INFO="/healthz", REQUEST_METHOD="GET")
        response = handler(environ, lambda status, headers: None)
        response.close()  # request_finished: where Django closes what it will not keep

    connection.ensure_connection()
    first = connection.connection
    serve()
    serve()
    assert connection.connection is first


@pytest.mark.parametrize(
    "url, db, expected",
    [
        ("redis://127.0.0.1:6379/0", 15, "redis://127.0.0.1:6379/15"),
        ("redis://:pw@h:1", 2, "redis://:pw@h:1/2"),
        ("unix:///tmp/r.sock?db=0", 15, "unix:///tmp/r.sock?db=15"),
    ],
)
def test_redis_url_with_db(url, db, expected):
    assert redis_url_with_db(url, db) == expected


def test_booleans_integers_and_schedules_from_the_environment(monkeypatch):
    monkeypatch.setenv("X_BOOL", "on")
    monkeypatch.setenv("X_INT", "7")
    monkeypatch.setenv("X_LIST", "0, 5,30")
    assert env_bool("X_BOOL") is True
    assert env_int("X_INT", 1) == 7
    assert env_float_list("X_LIST", "1") == [0.0, 5.0, 30.0]
    assert env_bool("X_UNSET", True) is True


@pytest.mark.parametrize(
    "reader, value",
    [
        (lambda: env_bool("X"), "maybe"),
        (lambda: env_int("X", 1), "ten"),
        (lambda: env_int("X", 1, minimum=1), "0"),
        (lambda: env_float_list("X", "1"), "5,soon"),
        (lambda: env_float_list("X", "1"), "-5"),
    ],
)
def test_bad_settings_fail_loudly_with_the_variable_named(monkeypatch, reader, value):
    monkeypatch.setenv("X", value)
    with pytest.raises(ImproperlyConfigured, match="X"):
        reader()


def test_the_engine_processes_run_with_the_web_settings_less_the_apps_that_only_serve_pages():
    for procfile in ("Procfile", "Procfile.demo"):
        lines = dict(
            line.split(":", 1) for line in (BASE_DIR / procfile).read_text().splitlines() if line
        )
        # Without Django's checks too: they import the URLs, and so the API.
        for process in ("worker", "scheduler"):
            assert "--skip-checks --settings config.worker_settings" in lines[process], procfile
        assert "--settings" not in lines["web"]
    # In a process of its own, as a worker starts.
    script = (
        "import json, sys, django; django.setup(); from django.apps import apps; "
        "print(json.dumps([[a.name for a in apps.get_app_configs()], "
        "[m for m in ('ninja', 'pydantic', 'django.contrib.admin.sites') if m in sys.modules]]));"
        # What `rqworker` runs before it starts (URLs included), and a URL reversed.
        "from django.core.management import call_command; call_command('check'); "
        "from django.urls import reverse; print(reverse('healthz'))"
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.worker_settings"}
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=BASE_DIR, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    listed, checked, reversed_url = done.stdout.splitlines()
    apps, imported = json.loads(listed)
    assert checked.startswith("System check identified no issues")
    assert reversed_url == "/healthz"
    assert apps == [
        app for app in settings.INSTALLED_APPS if app not in worker_settings.WEB_ONLY_APPS
    ]
    assert {"webhooks", "deliveries", "monitoring", "api"} <= set(apps)
    # What makes its start shorter: none of the web pages' modules.
    assert imported == []
