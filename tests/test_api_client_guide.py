"""The README's client guide is true: its code, copied out of README.md, run.

- every curl command, in order, through the API (each answers the status its
  `# →` comment says);
- the Python receiver, on a real delivery's raw body and headers;
- the Node receiver, run with `node` as the endpoint of a real delivery, with
  the real `standardwebhooks` npm package, installed once into
  var/client-guide-node. Should the npm registry be unreachable the test is
  skipped, saying so: a verifier of our own would check us against ourselves.
"""

import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests
from django.conf import settings
from django.core.management import call_command
from django.test import Client

from deliveries.models import Delivery, DeliveryAttempt, Event
from deliveries.publishing import publish
from tests.conftest import deliver_due
from tests.factories import WebhookFactory
from tests.receiver import Answer
from webhooks.models import Organization, Webhook

README = Path(settings.BASE_DIR) / "README.md"
NODE_DIR = Path(settings.BASE_DIR) / "var" / "client-guide-node"


def guide(title: str = "Client guide") -> str:
    text = README.read_text()
    start = text.index(f"\n## {title}")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else None]


def code_blocks(language: str, title: str = "Client guide") -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", guide(title), re.S)


# --- curl -------------------------------------------------------------------------


def curl_commands(title: str = "Client guide") -> list[tuple[str, int]]:
    """(command, expected status) for each documented curl call."""
    found = []
    for block in code_blocks("sh", title):
        lines = block.replace("\\\n", " ").splitlines()
        for index, line in enumerate(lines):
            if line.startswith("curl "):
                expected = re.match(r"# → (\d{3})", lines[index + 1])
                assert expected, f"no '# → status' after: {line}"
                found.append((line, int(expected.group(1))))
    return found


def run_curl(client, command: str, variables: dict):
    for name in sorted(variables, key=len, reverse=True):
        command = command.replace(f"${name}", variables[name])
    args = shlex.split(command)[1:]
    method, headers, data, url = "GET", {}, "", None
    while args:
        arg = args.pop(0)
        if arg == "-X":
            method = args.pop(0)
        elif arg == "-H":
            name, _, value = args.pop(0).partition(": ")
            headers[name] = value
        elif arg == "-d":
            data = args.pop(0)
            method = "POST" if method == "GET" else method
        else:
            assert url is None, f"unexpected argument {arg!r}"
            url = arg
    content_type = headers.pop("Content-Type", "")
    return client.generic(method, url, data, content_type=content_type, headers=headers)


def test_the_curl_examples_work_as_shown(client, org, api_key, receiver):
    commands = curl_commands()
    assert len(commands) >= 8
    variables = {"HERALD": "", "HERALD_KEY": api_key}

    for command, expected in commands:
        if "$DELIVERY_ID" in command and "DELIVERY_ID" not in variables:
            # The documented endpoint is example.com: answer from a local
            # receiver instead, with an error, so that there is a failure to find.
            receiver.always("/fail", Answer(status=500, body=b"boom"))
            Webhook.objects.filter(public_id=variables["WEBHOOK_ID"]).update(
                url=receiver.url("/fail"), max_attempts=1
            )
            deliver_due()
            delivery = Delivery.objects.get(event__public_id=variables["EVENT_ID"])
            assert delivery.status == Delivery.Status.FAILED
            variables["DELIVERY_ID"] = delivery.public_id

        response = run_curl(client, command, variables)

        assert response.status_code == expected, (command, response.content)
        body = response.json()
        if '/webhooks"' in command and "-X POST" in command:
            variables["WEBHOOK_ID"] = body["id"]
            assert body["secret"].startswith("whsec_")
        if '/events"' in command:
            variables["EVENT_ID"] = body["id"]
            assert body["deliveries"] == 1

    listed = [c for c, _ in commands if "status=failed" in c]
    assert listed, "the guide lists failed deliveries"


def test_the_platform_guide_works_as_shown(client, db, receiver, capsys):
    """README's "Use Herald from your product", its calls in order: a platform
    key from the command, an organization, events for it, a portal session
    whose link opens the customer's pages."""
    call_command("createplatformkey", "acme back end")
    platform_key = capsys.readouterr().out.strip().splitlines()[-1]
    commands = curl_commands("Use Herald from your product")
    assert len(commands) == 5
    variables = {"HERALD": "", "HERALD_PLATFORM_KEY": platform_key}
    answers = []
    for command, expected in commands:
        response = run_curl(client, command, variables)
        assert response.status_code == expected, (command, response.content)
        answers.append(response.json())
    created, listed, single, batch, portal_session = answers
    assert listed["items"][0]["id"] == created["id"]
    organization = Organization.objects.get(public_id=created["id"], external_id="cus_1234")
    assert single["type"] == "invoice.paid"
    assert [item["duplicate"] for item in batch["items"]] == [False, False]
    assert Event.objects.filter(organization=organization).count() == 3
    # The iframe's link signs the browser into the customer's pages, once.
    path = urlsplit(portal_session["url"]).path
    browser = Client()
    assert browser.get(path).status_code == 302
    assert "Globex" in browser.get("/").content.decode()
    assert Client().get(path).status_code == 410
    (page,) = code_blocks("html", "Use Herald from your product")
    assert '<iframe src="PORTAL_URL"' in page


# --- receivers --------------------------------------------------------------------


def real_delivery(org, receiver):
    """A delivery made by Herald's dispatcher: the webhook, and the request as sent."""
    webhook = WebhookFactory(organization=org, url=receiver.url("/hook"))
    event = publish(org, "person.created", {"id": 42, "name": "Zoë 🚀"}).event
    deliver_due()
    received = receiver.wait_for(1, "/hook")[0]
    assert received.header("webhook-id") == event.public_id
    return webhook, event, received


def test_the_python_receiver_verifies_a_real_delivery(org, receiver, monkeypatch, capsys):
    (snippet,) = code_blocks("python")
    webhook, event, received = real_delivery(org, receiver)
    monkeypatch.setenv("HERALD_WEBHOOK_SECRET", webhook.secret)
    namespace: dict = {}
    exec(compile(snippet, "README.md (Python receiver)", "exec"), namespace)
    receive = namespace["receive"]

    assert receive(received.body, received.headers) == 204
    assert f"verified person.created {event.public_id}" in capsys.readouterr().out

    tampered = received.body.replace(b'"id":42', b'"id":43')
    assert tampered != received.body
    assert receive(tampered, received.headers) == 400
    unsigned = {k: v for k, v in received.headers.items() if k.lower() != "webhook-signature"}
    assert receive(received.body, unsigned) == 400

    monkeypatch.setenv("HERALD_WEBHOOK_SECRET", Webhook(organization=org).secret)
    exec(compile(snippet, "README.md (Python receiver)", "exec"), namespace)
    assert namespace["receive"](received.body, received.headers) == 400  # another secret


def install_standardwebhooks_for_node() -> None:
    """Install the npm package once (var/ keeps it); skip, saying why, when
    npm cannot: a verifier of our own would only check us against ourselves."""
    package = NODE_DIR / "node_modules" / "standardwebhooks" / "package.json"
    if package.exists() and json.loads(package.read_text()).get("version"):
        return
    NODE_DIR.mkdir(parents=True, exist_ok=True)
    try:
        subprocess.run(
            ["npm", "install", "--prefix", str(NODE_DIR), "standardwebhooks@1"]
            + ["--no-audit", "--no-fund", "--no-save", "--loglevel=error"],
            check=True,
            capture_output=True,
            timeout=120,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        pytest.skip(f"npm could not install the standardwebhooks package: {exc}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def node_receiver(tmp_path):
    if shutil.which("node") is None:
        pytest.fail("the client guide's Node receiver needs Node.js (see README: make test)")
    install_standardwebhooks_for_node()
    (snippet,) = code_blocks("js")
    script = NODE_DIR / f"receiver-{os.getpid()}.mjs"
    script.write_text(snippet)
    processes = []

    def start(secret: str) -> str:
        port = free_port()
        env = {**os.environ, "PORT": str(port), "HOST": "127.0.0.1"}
        env["HERALD_WEBHOOK_SECRET"] = secret
        log = open(tmp_path / f"node-{port}.log", "w+")  # noqa: SIM115
        process = subprocess.Popen(
            ["node", str(script)], env=env, stdout=log, stderr=subprocess.STDOUT
        )
        processes.append((process, log))
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                return f"http://127.0.0.1:{port}/webhooks"
            except OSError:
                if process.poll() is not None:
                    break
                time.sleep(0.05)
        log.seek(0)
        pytest.fail(f"the Node receiver did not start: {log.read()}")

    def output() -> str:
        texts = []
        for _, log in processes:
            log.flush()
            log.seek(0)
            texts.append(log.read())
        return "".join(texts)

    start.output = output
    yield start
    for process, log in processes:
        process.terminate()
        process.wait(timeout=5)
        log.close()
    script.unlink(missing_ok=True)


def test_the_node_receiver_verifies_a_real_delivery(org, node_receiver):
    webhook = WebhookFactory(organization=org, url="http://127.0.0.1:9/unused")
    url = node_receiver(webhook.secret)
    Webhook.objects.filter(pk=webhook.pk).update(url=url)
    event = publish(org, "person.created", {"id": 42, "name": "Zoë 🚀", "x": 1.5}).event

    deliver_due()

    delivery = Delivery.objects.get(event=event)
    assert delivery.status == Delivery.Status.SUCCEEDED, delivery.last_error_kind
    assert delivery.last_status_code == 204
    deadline = time.monotonic() + 5
    while f"verified person.created {event.public_id}" not in node_receiver.output():
        assert time.monotonic() < deadline, node_receiver.output()
        time.sleep(0.05)

    # The same request with one byte of the body changed is refused.
    attempt = DeliveryAttempt.objects.get(delivery=delivery)
    headers = {k: v for k, v in attempt.request_headers.items() if k.lower() != "content-length"}
    body = attempt.request_body.encode()
    assert requests.post(url, data=body, headers=headers, timeout=5).status_code == 204
    tampered = body.replace(b'"id":42', b'"id":43')
    assert requests.post(url, data=tampered, headers=headers, timeout=5).status_code == 400


def test_the_node_receiver_refuses_a_delivery_signed_with_another_secret(org, node_receiver):
    webhook = WebhookFactory(organization=org, url="http://127.0.0.1:9/unused", max_attempts=1)
    url = node_receiver(Webhook(organization=org).secret)  # not this webhook's
    Webhook.objects.filter(pk=webhook.pk).update(url=url)
    event = publish(org, "person.created", {"id": 1}).event

    deliver_due()

    delivery = Delivery.objects.get(event=event)
    assert delivery.status == Delivery.Status.FAILED
    assert delivery.last_status_code == 400
    assert "verified" not in node_receiver.output()
