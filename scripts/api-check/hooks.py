"""Schemathesis hooks for facepay's API checks (scripts/api-check.sh).

Credentials, by the security scheme each operation declares: the demo's
merchant key, operator key and first member network's key, and the tokens
of users the script enrolled (DELETE /v1/users/me has a user of its own, so
that the others keep theirs). They are set by one auth provider, so that
Schemathesis knows them for real credentials (and checks that the server
refuses a request without them); a case that leaves a credential out on
purpose is sent without it.

Terminal requests are signed as a terminal signs them (the facepay-terminal
crate, `facepay_payments::signing`): Ed25519, by the terminal's key, over

    METHOD\\nPATH_AND_QUERY\\nTIMESTAMP_MS\\nNONCE\\nhex(sha256(body))

with the four x-facepay-* headers, made again just before each call over
the bytes sent. The key file is the demo's, named by FACEPAY_TERMINAL_FILE.

The demo's own parties (its merchant, store, terminal and keys, listed in
FACEPAY_PROTECTED_IDS) are what every other operation calls with: a write
that names one in its path is sent for another id, so that a merchant
closed, a terminal re-paired or a key revoked by a generated case cannot
take the credentials from the operations after it. Schemathesis finds
these ids in list answers and would otherwise pass them on.
"""

import base64
import hashlib
import json
import os
import secrets
import time

import requests
import schemathesis
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from schemathesis.core import NOT_SET
from schemathesis.transport.prepare import prepare_url
from schemathesis.transport.requests import prepare_query

TERMINAL = "x-facepay-terminal"
TIMESTAMP = "x-facepay-timestamp"
NONCE = "x-facepay-nonce"
SIGNATURE = "x-facepay-signature"
SIGNED_HEADERS = (TERMINAL, TIMESTAMP, NONCE, SIGNATURE)
TERMINAL_SCHEME = "terminal_signature"
# Each bearer scheme of the document, with the variable holding its secret.
BEARER_SECRETS = {
    "merchant_key": "FACEPAY_MERCHANT_KEY",
    "operator_key": "FACEPAY_OPERATOR_KEY",
    "hub_member_key": "FACEPAY_MEMBER_KEY",
    "user_token": "FACEPAY_USER_TOKEN",
}
PROTECTED_IDS = frozenset(filter(None, os.environ.get("FACEPAY_PROTECTED_IDS", "").split(",")))
# Operations whose caller is not the scheme's usual one.
BEARER_OVERRIDES = {"DELETE /v1/users/me": "FACEPAY_SPARE_USER_TOKEN"}


def _load_terminal():
    with open(os.environ["FACEPAY_TERMINAL_FILE"], encoding="utf-8") as f:
        file = json.load(f)
    seed = bytes.fromhex(file["secret_key_hex"])
    return file["terminal_id"], Ed25519PrivateKey.from_private_bytes(seed)


TERMINAL_ID, KEY = _load_terminal()


def _schemes(operation):
    """The security schemes the operation requires (its first requirement)."""
    requirements = operation.definition.raw.get("security") or [{}]
    return set(requirements[0])


def _is_json(media_type):
    return media_type is not None and media_type.split(";")[0].strip().lower() == "application/json"


def _body(case):
    """The bytes to send and sign, or None when the body is not ours to send."""
    if isinstance(case.body, (bytes, bytearray)):
        return bytes(case.body)
    if case.body is NOT_SET:
        return b""
    if not _is_json(case.media_type):
        return None
    try:
        return json.dumps(case.body, ensure_ascii=True, separators=(",", ":")).encode()
    except (TypeError, ValueError):
        return None


def _sign(case, base_url):
    """Signs the case's present x-facepay-* headers in place; returns the
    body signed, or None when it was not signed."""
    headers = case.headers if case.headers is not None else {}
    present = {name.lower(): name for name in headers}
    body = _body(case)
    if body is None:
        return None
    url = prepare_url(case, base_url)
    prepared = requests.Request(case.method, url, params=prepare_query(case)).prepare()
    timestamp_ms = str(int(time.time() * 1000))
    nonce = secrets.token_hex(16)
    digest = hashlib.sha256(body).hexdigest()
    message = "\n".join([case.method.upper(), prepared.path_url, timestamp_ms, nonce, digest])
    signature = base64.b64encode(KEY.sign(message.encode())).decode()
    values = {TERMINAL: TERMINAL_ID, TIMESTAMP: timestamp_ms, NONCE: nonce, SIGNATURE: signature}
    for name, value in values.items():
        if name in present:
            headers[present[name]] = value
    case.headers = headers
    return body


@schemathesis.auth(refresh_interval=None)
class DemoCredentials:
    """The demo's credential for whatever scheme the operation declares."""

    def get(self, case, context):
        schemes = _schemes(case.operation)
        if TERMINAL_SCHEME in schemes:
            return TERMINAL_SCHEME
        for scheme, variable in BEARER_SECRETS.items():
            if scheme in schemes:
                return os.environ[BEARER_OVERRIDES.get(case.operation.label, variable)]
        return None

    def set(self, case, data, context):
        headers = case.headers if case.headers is not None else {}
        if data == TERMINAL_SCHEME:
            for name in SIGNED_HEADERS:
                headers.setdefault(name, "")
            case.headers = headers
            _sign(case, None)
        else:
            headers["Authorization"] = f"Bearer {data}"
            case.headers = headers


def _spare_the_demo(case):
    """Points a write that names one of the demo's parties elsewhere."""
    if case.method.upper() in ("GET", "HEAD") or not case.path_parameters:
        return
    for name, value in list(case.path_parameters.items()):
        if str(value) in PROTECTED_IDS:
            case.path_parameters[name] = f"{value}-not-the-demo"


@schemathesis.hook
def before_call(context, case, kwargs):
    _spare_the_demo(case)
    if TERMINAL_SCHEME not in _schemes(case.operation):
        return
    present = {name.lower() for name in (case.headers or {})}
    if not all(name in present for name in SIGNED_HEADERS):
        return
    body = _sign(case, kwargs.get("base_url"))
    if body is not None and case.body is not NOT_SET:
        # Sent as these bytes, so the signature covers exactly what arrives.
        kwargs["data"] = body
