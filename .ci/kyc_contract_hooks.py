"""schemathesis hooks for .ci/contract.sh: see the comment above their use there."""
import copy
import datetime
import os
import threading
import urllib.parse
import uuid

import requests
import schemathesis

BASE = os.environ["KYC_CONTRACT_BASE_URL"]
# A fresh connection per hook request: a kept-alive one can be closed by the
# server's 5 s keep-alive limit just as a request goes out
# ("RemoteDisconnected"), which is the network's race, not the server's.
HEADERS = {"apiKey": os.environ["KYC_CONTRACT_API_KEY"], "Connection": "close"}
_session = requests.Session()
_lock = threading.Lock()
_state = {}


def _get(path):
    response = _session.get(BASE + path, headers=HEADERS, timeout=10)
    return response.json() if response.status_code == 200 else None


def _person(email):
    return {
        "type": "person",
        "name": "Owner Person",
        "email": email,
        "birthday": "1980-05-17",
        "gender": "Female",
        "address": {"street": "Rua A 1", "city": "Braga", "postalCode": "4700-000", "country": "PT"},
        "phone": {"number": "+351 910 000 000"},
        "tax": {"country": "PT", "idNumber": "123456789"},
    }


def _owner_id():
    """A live person of the app that companies can be owned by. Cases may
    delete or change it (its id shows in companies' answers), so it is
    checked each time and made anew when needed."""
    with _lock:
        owner = _state.get("owner")
        current = _get(f"/identities/{owner}") if owner else None
        if current is None or current["data"]["type"] != "person":
            body = _person(f"owner-{uuid.uuid4().hex}@example.com")
            response = _session.post(BASE + "/identities", json=body, headers=HEADERS, timeout=10)
            response.raise_for_status()
            _state["owner"] = response.json()["data"]["id"]
        return _state["owner"]


def _operation_codes():
    with _lock:
        if "operations" not in _state:
            _state["operations"] = None
    if _state["operations"] is None:
        listed = _get(f"/identities/{_owner_id()}/operations")
        _state["operations"] = [(op["action"], op["code"]) for op in (listed or {}).get("data", [])]
    return _state["operations"]


def _age(born, today):
    return today.year - born.year - ((today.month, today.day) < (born.month, born.day))


def _valid_birthday(value):
    today = datetime.date.today()
    try:
        born = datetime.date.fromisoformat(value.strip())
        if born <= today and 18 <= _age(born, today) <= 99:
            return value
    except (AttributeError, ValueError):
        pass
    return datetime.date(today.year - 30, 1, 15).isoformat()


def _unique_email(email):
    token = uuid.uuid4().hex[:12]
    local, _, domain = str(email).rpartition("@")
    local = f"{token}-{local}" if len(token) + 1 + len(local) <= 64 else token
    return f"{local}@{domain}"


def _fix_metadata_count(identity, fixed):
    """The merged metadata may hold at most 50 keys (stored data): drop new
    keys the identity's current ones leave no room for."""
    current_keys = set(identity.get("metadata") or {})
    changes = fixed["metadata"]
    kept = {}
    count = len(current_keys)
    for key, value in changes.items():
        if value is None:
            count -= key in current_keys
            kept[key] = value
    for key, value in changes.items():
        if value is not None and (key in current_keys or count < 50):
            count += key not in current_keys
            kept[key] = value
    fixed["metadata"] = kept


def _unique_ref_id(body):
    """A refId names one live identity: generated ones repeat."""
    if isinstance(body.get("refId"), str):
        body["refId"] = body["refId"][:100] + "-" + uuid.uuid4().hex


def _fix_create(body):
    """A create body: what the schema cannot state. A person's age window
    moves with today's date; a company's owner must be a live person of the
    app (stored data)."""
    if body.get("type") == "person":
        body["birthday"] = _valid_birthday(body.get("birthday"))
    elif body.get("type") == "company":
        body["identityOwner"] = _owner_id()


def _fix_merged(body, self_id):
    """A patch merged over the stored identity must obey the person/company
    rules: the patch schema cannot, since which rules apply depends on the
    stored type (stored data)."""
    if self_id == _state.get("owner"):
        body["type"] = "person"  # companies of other cases are owned by it
    kind = body.get("type")
    tax = body.get("tax") if isinstance(body.get("tax"), dict) else None
    if kind == "person":
        body["birthday"] = _valid_birthday(body.get("birthday"))
        if not body.get("gender"):
            body["gender"] = "Female"
        body.pop("identityOwner", None)
        if tax is not None:
            tax.pop("formationRegion", None)
    elif kind == "company":
        body.pop("birthday", None)
        body.pop("gender", None)
        body["identityOwner"] = _owner_id()
        if tax is not None and not tax.get("formationRegion"):
            tax["formationRegion"] = "Lisboa"
    for part in (body.get("address"), tax):
        if isinstance(part, dict) and str(part.get("country", "")).strip().upper() == "US":
            if not part.get("state"):
                part["state"] = "NY"


def _as_input(identity):
    """An identity as answered, in the shape of a create body."""
    body = {key: identity[key] for key in ("type", "name", "email", "address", "phone", "tax")}
    body = copy.deepcopy(body)
    for key in ("birthday", "gender", "identityOwner"):
        if identity.get(key) is not None:
            body[key] = identity[key]
    for part in ("address", "tax"):
        body[part] = {k: v for k, v in body[part].items() if v is not None}
    return body


LOCKED = ("name", "birthday", "gender")


def _fix_patch(identity_id, patch):
    current = _get(f"/identities/{identity_id}")
    if current is None:
        return patch  # 404: nothing to keep consistent
    identity = current["data"]
    before = _as_input(identity)
    merged = copy.deepcopy(before)
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = copy.deepcopy(value)
    if identity["identityConfirmed"]:
        # Changing the type would change locked fields (birthday, gender).
        merged["type"] = before["type"]
    _fix_merged(merged, identity_id)
    if identity["identityConfirmed"]:
        for key in LOCKED:
            merged.pop(key, None)
            if key in before:
                merged[key] = before[key]
        if isinstance(merged.get("tax"), dict):
            merged["tax"]["country"] = before["tax"]["country"]
            merged["tax"]["idNumber"] = before["tax"]["idNumber"]
    fixed = {key: value for key, value in patch.items() if key in ("documents", "faceImages")}
    for key in set(before) | set(merged) | set(patch):
        if key in ("documents", "faceImages"):
            continue
        if key in patch or merged.get(key) != before.get(key):
            fixed[key] = merged.get(key)
    if "email" in patch:
        fixed["email"] = _unique_email(fixed["email"])
    if isinstance(fixed.get("metadata"), dict):
        _fix_metadata_count(identity, fixed)
    return fixed


CURSOR_PARAMS = ("page[after]", "page[before]")


def _fix_cursor(case):
    """A cursor is opaque and signed: a generated one is rightly refused. A
    positive case with one gets a real cursor of the same list, sort and
    filters (the next-page cursor of its first row), and loses what a cursor
    may not be sent with (page[number], all=true, the other cursor,
    page[total]=true: a cursor page has no total)."""
    query = case.query or {}
    given = [name for name in CURSOR_PARAMS if name in query]
    if not given:
        return
    keep = given[0]
    for name in (*CURSOR_PARAMS, "page[number]", "all"):
        if name != keep:
            query.pop(name, None)
    probe = {name: value for name, value in query.items() if name != keep}
    probe["page[size]"] = 1
    response = _session.get(BASE + case.operation.path, params=probe, headers=HEADERS, timeout=10)
    links = response.json().get("links", {}) if response.status_code == 200 else {}
    link = links.get("next") or links.get("prev")
    if link is None:
        # Nothing to page next to: page by number instead.
        query.pop(keep, None)
    else:
        parsed = urllib.parse.parse_qs(urllib.parse.urlsplit(link).query)
        query[keep] = (parsed.get("page[after]") or parsed["page[before]"])[0]
        if str(query.get("page[total]", "")).lower() == "true":
            query.pop("page[total]")
    case.query = query


def _fit_share(path, body):
    # A company's beneficial owners own at most 100 % together: state no
    # schema can say (like a unique email), so a valid share is cut to what
    # the company has left.
    if not isinstance(body.get("ownershipPercent"), (int, float)):
        return
    found = _get(f"/identities/{path['id']}/relations")
    if found is None:
        return
    taken = sum(
        r["ownershipPercent"] or 0
        for r in found["data"]
        if r["role"] == "beneficialOwner" and r["id"] != path.get("relationId")
    )
    left = max(0, round(100 - taken, 2))
    if body["ownershipPercent"] > left:
        body["ownershipPercent"] = left


def _rejected_for_good(identity_id):
    found = _get(f"/verifications?filter[identityId]={identity_id}&filter[rejectType]=final")
    return bool(found and found.get("data"))


def _positive(case):
    meta = case.meta
    return meta is not None and meta.generation.mode.is_positive


@schemathesis.hook
def before_call(context, case, kwargs):
    if not _positive(case):
        return
    # An Idempotency-Key names one request: generated keys repeat across
    # requests (a key reused with another body is rightly refused), so each
    # positive case gets a key of its own, as a client would send.
    if case.headers and "Idempotency-Key" in case.headers:
        case.headers["Idempotency-Key"] = uuid.uuid4().hex
    if case.operation.method.upper() == "GET":
        _fix_cursor(case)
    if not isinstance(case.body, dict):
        return
    if os.environ.get("KYC_HOOK_LOG"):
        with open(os.environ["KYC_HOOK_LOG"], "a") as log:
            log.write(f"{case.operation.label} {case.path_parameters} {case.body!r}\n")
    label = case.operation.label
    body = copy.deepcopy(case.body)
    if label == "POST /identities":
        _fix_create(body)
        body["email"] = _unique_email(body["email"])
        _unique_ref_id(body)
    elif label == "PATCH /identities/{id}":
        body = _fix_patch(case.path_parameters["id"], body)
        if _rejected_for_good(case.path_parameters["id"]):
            # New documents for a level rejected as final are refused (422
            # verification_rejected_final): state no schema can say.
            body.pop("documents", None)
            body.pop("faceImages", None)
        _unique_ref_id(body)
    elif label in ("POST /sandbox/identities/approve", "POST /sandbox/identities/reject"):
        found = _get(f"/identities/{body['identityId']}")
        if found is not None:
            body["email"] = found["data"]["email"]
    elif label in ("POST /identities/{id}/relations", "PATCH /identities/{id}/relations/{relationId}"):
        _fit_share(case.path_parameters, body)
    elif label == "POST /files/upload":
        # Like S3, the server reads the form in order and wants the file last.
        order = ["key", "Content-Type", "policy", "file"]
        body = {name: body[name] for name in sorted(body, key=lambda n: order.index(n) if n in order else 0)}
    elif label == "POST /verifications/{id}/decision":
        # A rejection's type and labels go with a rejection only.
        if body.get("status") != "rejected":
            body.pop("rejectType", None)
            body.pop("rejectLabels", None)
    elif label == "POST /operations/validate":
        codes = [code for action, code in _operation_codes() if action == body.get("action")]
        if codes and body.get("code") not in codes:
            body["code"] = codes[0]
    else:
        return
    case.body = body
