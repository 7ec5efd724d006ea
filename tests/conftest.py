import fcntl
import hashlib
import os
import re
import subprocess
import tempfile
from contextlib import contextmanager

import pytest
from django.conf import settings as django_settings
from django.db import connection
from django.test.utils import CaptureQueriesContext

from api import credentials
from deliveries import dispatch
from tests.factories import OrganizationFactory, WebhookFactory, api_key_for
from tests.receiver import Receiver

# The browser tests' fixtures (chromium, page, pump, admin).
pytest_plugins = ["tests.browser"]


# --- `make mutate` ------------------------------------------------------------
# mutmut runs each mutant's tests in a child forked from its own process, where
# Django is already set up, two children at a time (--max-children 2). Each
# child takes a free slot (a lock file it holds until it exits, killed or not)
# and with it a test database and a Redis database of its own, so that two
# children never create, flush or count in the same one. The slots' Redis
# databases: HERALD_MUTANT_REDIS_DBS (e.g. "10,11"), by default the two below
# the tests' own (HERALD_TEST_REDIS_DB).

_mutant_slot: tuple[int, object] | None = None


def _mutant_redis_dbs() -> list[int]:
    listed = os.environ.get("HERALD_MUTANT_REDIS_DBS", "")
    if listed.strip():
        return [int(db) for db in listed.split(",")]
    base = int(os.environ.get("HERALD_TEST_REDIS_DB", "15"))
    return [(base - 1) % 16, (base - 2) % 16]


def mutant_slot() -> int | None:
    """This process's slot when it runs a mutant's tests, else None."""
    global _mutant_slot
    if "__mutmut_" not in os.environ.get("MUTANT_UNDER_TEST", ""):
        return None
    if _mutant_slot is None:
        checkout = hashlib.sha1(str(django_settings.BASE_DIR).encode()).hexdigest()[:8]
        for slot in range(len(_mutant_redis_dbs())):
            path = os.path.join(tempfile.gettempdir(), f"herald-mutant-{checkout}-{slot}.lock")
            lock = open(path, "w")  # noqa: SIM115 (held until the process exits)
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                lock.close()
                continue
            _mutant_slot = (slot, lock)
            break
        else:
            pytest.exit("more mutmut children than HERALD_MUTANT_REDIS_DBS has databases", 3)
    return _mutant_slot[0]


def pytest_configure(config):
    slot = mutant_slot()
    if slot is None:
        return
    from asgiref.local import Local
    from django.core.cache import caches

    from config.env import redis_url_with_db
    from deliveries import wakeup
    from monitoring import health

    url = redis_url_with_db(django_settings.REDIS_URL, _mutant_redis_dbs()[slot])
    django_settings.REDIS_URL = url
    django_settings.CACHES["default"]["LOCATION"] = url
    for queue in django_settings.RQ_QUEUES.values():
        queue["URL"] = url
    # Clients made before the fork, by mutmut's own runs, speak to the old database.
    caches._connections = Local(caches.thread_critical)
    wakeup._queue = None
    health._redis_client = None
    # Threads do not survive a fork: the send pools of mutmut's own runs have
    # none left here, and work handed to them would never run.
    dispatch._pools.clear()


@pytest.fixture(scope="session")
def django_db_modify_db_settings(django_db_modify_db_settings_parallel_suffix):
    slot = mutant_slot()
    if slot is None:
        return
    for db in django_settings.DATABASES.values():
        test = db.setdefault("TEST", {})
        name = test.get("NAME") or f"test_{db['NAME']}"
        test["NAME"] = f"{name}_mutant{slot}"


@pytest.fixture(autouse=True)
def _forget_credentials():
    # Rows a test rolls back vanish without the signals that tell the API's
    # memo (api/credentials.py); a later test may reuse their ids.
    credentials.forget()


@pytest.fixture(autouse=True)
def _loopback_targets(settings):
    # Tests deliver to receivers on 127.0.0.1 over plain http; the SSRF tests
    # turn these off again.
    settings.HERALD_ALLOW_PRIVATE_TARGETS = True
    settings.HERALD_ALLOW_HTTP = True
    settings.HERALD_RETRY_JITTER = 0.0


@pytest.fixture
def receiver():
    server = Receiver()
    yield server
    server.close()


@pytest.fixture
def tls_receiver(tmp_path):
    """A receiver on HTTPS with a self-signed certificate for 127.0.0.1."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    server = Receiver(tls_cert=str(cert), tls_key=str(key))
    yield server
    server.close()


@pytest.fixture
def redis_conn():
    """The tests' Redis database, emptied before and after."""
    import django_rq

    connection = django_rq.get_connection(django_settings.HERALD_QUEUE)
    connection.flushdb()
    yield connection
    connection.flushdb()


@pytest.fixture
def org(db):
    return OrganizationFactory()


@pytest.fixture
def webhook(org, receiver):
    return WebhookFactory(organization=org, url=receiver.url("/hook"))


@pytest.fixture
def api_key(org):
    return api_key_for(org)


@pytest.fixture
def api(client, api_key):
    """A Django test client speaking JSON with the organization's API key."""
    return ApiClient(client, api_key)


class ApiClient:
    def __init__(self, client, key: str):
        self.client = client
        self.key = key

    def _headers(self, headers):
        return {"Authorization": f"Bearer {self.key}", **(headers or {})}

    def get(self, path, params=None, headers=None):
        return self.client.get(path, params or {}, headers=self._headers(headers))

    def post(self, path, json=None, headers=None, raw=None, content_type="application/json"):
        import json as jsonlib

        body = raw if raw is not None else ("" if json is None else jsonlib.dumps(json))
        return self.client.post(
            path, body, content_type=content_type, headers=self._headers(headers)
        )

    def patch(self, path, json, headers=None):
        import json as jsonlib

        return self.client.patch(
            path,
            jsonlib.dumps(json),
            content_type="application/json",
            headers=self._headers(headers),
        )

    def delete(self, path, headers=None):
        return self.client.delete(path, headers=self._headers(headers))


def deliver_due(**kwargs) -> int:
    """Run the dispatcher in this process until nothing is due."""
    kwargs.setdefault("concurrency", 8)
    kwargs.setdefault("max_seconds", 30)
    return dispatch.run(**kwargs)


def error_of(response, status: int, code: str | None = None, field: str | None = None) -> dict:
    """Assert the API's error envelope and return its `error` object."""
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) == {"error"}
    error = body["error"]
    assert isinstance(error["code"], str) and error["code"]
    assert isinstance(error["message"], str) and error["message"]
    assert set(error) <= {"code", "message", "field"}
    if code is not None:
        assert error["code"] == code
    assert error.get("field") == field
    return error


@pytest.fixture
def max_statements(django_assert_max_num_queries):
    """django_assert_max_num_queries, except that on SQLite, whose statements
    take at most 999 parameters, the inserts Django splits one bulk_create
    into count once: the bound is on round trips per step, not on rows."""
    if connection.vendor != "sqlite":
        return django_assert_max_num_queries

    @contextmanager
    def check(limit):
        with CaptureQueriesContext(connection) as captured:
            yield captured
        statements, previous = 0, None
        for query in captured.captured_queries:
            insert = re.match(r'INSERT INTO "?(\w+)', query["sql"])
            table = insert and insert.group(1)
            if not (table and table == previous):
                statements += 1
            previous = table
        assert statements <= limit, f"{statements} statements, expected at most {limit}"

    return check
