"""Webhook deliveries checked by a second, independent implementation of
Standard Webhooks: the Python `standardwebhooks` package (run by
.ci/contract.sh against each backend).

    python .ci/webhook_check.py --url http://127.0.0.1:8080 --api-key KEY

Starts a receiver on a loopback port, registers it as a webhook endpoint,
creates, patches, blocks and unblocks an identity, verifies the signature of
every delivery it receives and validates each body against the payload
schema of its type in openapi.yaml's `webhooks` section (JSON Schema 2020-12,
jsonschema_rs). Exits non-zero when a delivery is missing, fails
verification or breaks its schema.
"""

import argparse
import json
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jsonschema_rs
import requests
import yaml
from standardwebhooks import Webhook, WebhookVerificationError

received = []
lock = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        with lock:
            received.append((dict(self.headers), body.decode("utf-8")))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


def fail(message):
    print(f"webhook check: FAILED: {message}", file=sys.stderr)
    sys.exit(1)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--api-key", required=True)
    parser.add_argument("--spec", required=True, help="openapi.yaml")
    args = parser.parse_args()
    with open(args.spec) as file:
        spec = yaml.safe_load(file)
    headers = {"apiKey": args.api_key}

    # Schemathesis ran first and left endpoints with unreachable URLs whose
    # deliveries (10 s timeouts each) would queue ahead of ours: delete them
    # (their pending deliveries then fail at once).
    listed = requests.get(f"{args.url}/webhook-endpoints", headers=headers, timeout=10)
    if listed.status_code != 200:
        fail(f"listing endpoints: {listed.status_code} {listed.text}")
    for old in listed.json()["data"]:
        gone = requests.delete(f"{args.url}/webhook-endpoints/{old['id']}", headers=headers, timeout=10)
        if gone.status_code != 204:
            fail(f"deleting endpoint {old['id']}: {gone.status_code} {gone.text}")

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    hook_url = f"http://127.0.0.1:{server.server_address[1]}/hook"

    endpoint = requests.post(
        f"{args.url}/webhook-endpoints",
        json={"url": hook_url},
        headers=headers,
        timeout=10,
    )
    if endpoint.status_code != 200:
        fail(f"registering the endpoint: {endpoint.status_code} {endpoint.text}")
    secret = endpoint.json()["data"]["secret"]

    person = {
        "type": "person",
        "name": "Webhook Check",
        "email": f"webhook-{uuid.uuid4().hex}@example.com",
        "birthday": "1980-05-17",
        "gender": "Female",
        "address": {"street": "Rua A 1", "city": "Braga", "postalCode": "4700-000", "country": "PT"},
        "phone": {"number": "+351 910 000 000"},
        "tax": {"country": "PT", "idNumber": "123456789"},
    }
    created = requests.post(f"{args.url}/identities", json=person, headers=headers, timeout=10)
    if created.status_code != 200:
        fail(f"creating an identity: {created.status_code} {created.text}")
    identity_id = created.json()["data"]["id"]
    patched = requests.patch(
        f"{args.url}/identities/{identity_id}", json={"name": "Webhook Checked"}, headers=headers, timeout=10
    )
    if patched.status_code != 200:
        fail(f"patching the identity: {patched.status_code} {patched.text}")
    for action, reason in (("block", "checking webhooks"), ("unblock", "checked")):
        done = requests.post(
            f"{args.url}/identities/{identity_id}/{action}", json={"reason": reason}, headers=headers, timeout=10
        )
        if done.status_code != 200:
            fail(f"{action}: {done.status_code} {done.text}")
    wanted = ["identity.blocked", "identity.created", "identity.unblocked", "identity.updated"]

    def about_ours(body):
        data = json.loads(body)["data"]
        return identity_id in (data.get("object", {}).get("id"), data.get("identityId"))

    # Schemathesis ran before: only this identity's events count.
    deadline = time.time() + 40
    while time.time() < deadline:
        with lock:
            ours = [(h, b) for h, b in received if about_ours(b)]
        if set(wanted) <= {json.loads(b)["type"] for _, b in ours}:
            break
        time.sleep(0.1)
    else:
        fail(f"expected {wanted} for {identity_id} within 40 s, got {len(ours)} deliveries")

    wh = Webhook(secret)
    for hdrs, body in ours:
        lowered = {k.lower(): v for k, v in hdrs.items()}
        try:
            event = wh.verify(body, lowered)
        except WebhookVerificationError as e:
            fail(f"a delivery did not verify: {e}: {lowered} {body}")
        if event["id"] != lowered["webhook-id"]:
            fail("webhook-id is not the event id")
        if event["type"] not in spec["webhooks"]:
            fail(f"{event['type']} is not in openapi.yaml's webhooks section")
        # The whole document as the root, so that the payload schema's
        # `#/components/...` references resolve.
        pointer = f"#/webhooks/{event['type']}/post/requestBody/content/application~1json/schema"
        validator = jsonschema_rs.Draft202012Validator({**spec, "$ref": pointer})
        problems = [error.message for error in validator.iter_errors(json.loads(body))]
        if problems:
            fail(f"a {event['type']} delivery breaks its schema: {problems[:3]}: {body}")
    types = sorted({json.loads(b)["type"] for _, b in ours})
    if not set(wanted) <= set(types):
        fail(f"unexpected event types {types}")
    try:
        Webhook("whsec_" + "QUJD" * 8).verify(ours[0][1], {k.lower(): v for k, v in ours[0][0].items()})
        fail("a wrong secret verified a delivery")
    except WebhookVerificationError:
        pass
    print(
        f"webhook check: {len(ours)} deliveries ({', '.join(types)}) verified by the Python "
        "standardwebhooks package and valid against openapi.yaml's webhooks section"
    )


if __name__ == "__main__":
    main()
