"""Drives an identity's life cycle through the Python client that
openapi-python-client generates from openapi.yaml (run by .ci/contract.sh,
with the generated package `kyc_api_client` on PYTHONPATH).

    python .ci/sdk_smoke.py --url http://127.0.0.1:8080 --api-key KEY

Creates the reference's person (João Pedro Soares) with a document and a
face image, gets it, finds it with filters, patches it, reads its
operations, deletes it, and checks the error shape on the way. Exits
non-zero on the first wrong answer.
"""

import argparse
import datetime
import sys
import urllib.parse
import uuid
from http import HTTPStatus

from kyc_api_client import AuthenticatedClient, Client
from kyc_api_client.api.identities import (
    create_identity,
    delete_identity,
    erase_identity,
    get_identity,
    list_identities,
    update_identity,
)
from kyc_api_client.api.operations import get_identity_operations
from kyc_api_client.api.service import health
from kyc_api_client.models import (
    AddressInput,
    Country,
    DocumentInput,
    DocumentInputSide,
    DocumentInputType,
    DocumentSide,
    DocumentType,
    ErasedIdentity,
    Gender,
    IdentityList,
    IdentityLookupResponse,
    IdentityResponse,
    IdentityType,
    IdentityUpdate,
    OperationList,
    Person,
    PersonCreate,
    PersonTaxInput,
    PhoneInput,
    Status,
)
from kyc_api_client.types import Unset

DOCUMENT_URL = (
    "https://pmint-custodial-api-sandbox-identity-docs.s3.amazonaws.com/"
    "fd/fc/09/dd/4nHVF9Hz9FArIrUo.jpeg"
)


def check(condition, message):
    if not condition:
        raise AssertionError(message)


def is_error(value, code=None):
    """An error answer: each operation and status has its own generated
    class, whose `code` is an enum of the codes the contract lists there."""
    found = hasattr(value, "code") and hasattr(value, "details") and hasattr(value, "message")
    return found and (code is None or value.code == code)


def expect(value, kind, what):
    if is_error(value):
        raise AssertionError(f"{what}: error {value.code}: {value.message} {value.details}")
    check(isinstance(value, kind), f"{what}: expected {kind.__name__}, got {value!r}")
    return value


def reference_person(email):
    """The reference's create example (only the email is made unique)."""
    return PersonCreate(
        type_="person",
        name="João Pedro Soares",
        email=email,
        birthday=datetime.date(2000, 11, 11),
        gender=Gender.MALE,
        address=AddressInput(
            street="Avenida D. João I,  40",
            city="Braga",
            state="Braga",
            postal_code="4444-333",
            country=Country.PT,
        ),
        phone=PhoneInput(number="910000000", sms=False),
        tax=PersonTaxInput(country=Country.PT, id_number="1111111111", state="Braga"),
        documents=[
            DocumentInput(
                description="ID card",
                label="id card",
                side=DocumentInputSide.FRONTSIDE,
                type_=DocumentInputType.IDENTITYCARD,
                url=DOCUMENT_URL,
            )
        ],
        face_images=[DOCUMENT_URL],
    )


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--api-key", required=True)
    args = parser.parse_args()

    anonymous = Client(base_url=args.url, raise_on_unexpected_status=True)
    client = AuthenticatedClient(
        base_url=args.url,
        token=args.api_key,
        prefix="",
        auth_header_name="apiKey",
        raise_on_unexpected_status=True,
    )

    status = expect(health.sync(client=anonymous), Status, "health")
    check(status.status.value == "ok", f"health: {status.status}")

    # Without a key: 401 in the shared error shape.
    denied = get_identity.sync_detailed(uuid.uuid4(), client=anonymous)
    check(denied.status_code == HTTPStatus.UNAUTHORIZED, f"no key: {denied.status_code}")
    check(is_error(denied.parsed), f"no key: {denied.parsed!r}")
    check(denied.parsed.code == "api_key_missing", f"no key: {denied.parsed.code}")

    # Create.
    email = f"foobar+{uuid.uuid4().hex[:12]}@publicmint.com"
    created = expect(
        create_identity.sync(client=client, body=reference_person(email)),
        IdentityResponse,
        "create",
    ).data
    check(created.name == "João Pedro Soares", f"name: {created.name}")
    check(isinstance(created, Person) and created.type_ == "person", f"type: {created!r}")
    check(created.email == email, f"email: {created.email}")
    check(created.birthday == datetime.date(2000, 11, 11), f"birthday: {created.birthday}")
    check(created.gender == Gender.MALE, f"gender: {created.gender}")
    check(created.address.country == Country.PT, f"country: {created.address.country}")
    check(created.address.postal_code == "4444-333", f"postalCode: {created.address.postal_code}")
    check(created.tax.id_number == "1111111111", f"idNumber: {created.tax.id_number}")
    check(created.identity_owner is None, f"identityOwner: {created.identity_owner}")
    check(created.blocked is False and created.identity_confirmed is False, "flags")
    check(created.risk_rating is None, f"riskRating: {created.risk_rating}")
    check(isinstance(created.kyc_status, list), "kycStatus is a list")
    kinds = [(d.type_, d.side) for d in created.documents]
    check(
        kinds == [(DocumentType.IDENTITYCARD, DocumentSide.FRONTSIDE),
                  (DocumentType.FACEIMAGE, DocumentSide.FRONTSIDE)],
        f"documents: {kinds}",
    )
    card = created.documents[0]
    check(card.label == "id card" and card.description == "ID card", "document label/description")
    check(card.url == DOCUMENT_URL and card.deleted_at is None, "document url/deletedAt")
    check(card.identity_id == created.id, "document identityId")
    check(created.created_at.tzinfo is not None, "timestamps carry a zone")
    identity_id = created.id

    # Get.
    got = expect(get_identity.sync(identity_id, client=client), IdentityLookupResponse, "get").data
    check(isinstance(got, Person), f"get: expected a Person, got {got!r}")
    check(got.id == identity_id and got.email == email, "get answers the created identity")
    check(len(got.documents) == 2, f"get: {len(got.documents)} documents")

    # List with filters.
    listed = expect(
        list_identities.sync(client=client, filteremail=email, filtertype=IdentityType.PERSON),
        IdentityList,
        "list by email",
    )
    check(listed.total == 1 and [i.id for i in listed.data] == [identity_id],
          f"list by email: total {listed.total}")
    liked = expect(
        list_identities.sync(client=client, filtername="like:pedro soares", pagesize=100, all_=True),
        IdentityList,
        "list by name",
    )
    check(identity_id in [i.id for i in liked.data], "list like: the identity is found")
    # Cursor pages: the newest identity by number, the one created just
    # before it through `links.next` (the cursor goes in `page[after]`).
    second = expect(
        create_identity.sync(client=client, body=reference_person(f"cursor+{uuid.uuid4().hex[:12]}@publicmint.com")),
        IdentityResponse,
        "create a second identity",
    ).data
    first_page = expect(list_identities.sync(client=client, pagesize=1), IdentityList, "list page 1")
    check([i.id for i in first_page.data] == [second.id], "page 1 holds the newest identity")
    check(isinstance(first_page.links.next_, str), f"page 1 links: {first_page.links!r}")
    cursor = urllib.parse.parse_qs(urllib.parse.urlsplit(first_page.links.next_).query)["page[after]"][0]
    after = expect(list_identities.sync(client=client, pagesize=1, pageafter=cursor), IdentityList, "list after")
    check([i.id for i in after.data] == [identity_id], f"page[after]: {[i.id for i in after.data]}")
    check(isinstance(after.total, Unset), f"a cursor page has no total: {after.total!r}")
    check(isinstance(after.links.prev, str), "a cursor page links back")
    # A numbered page without its count: the same rows, no total.
    uncounted = expect(list_identities.sync(client=client, pagesize=1, pagetotal=False), IdentityList,
                       "list without total")
    check([i.id for i in uncounted.data] == [second.id], "page[total]=false: the same first page")
    check(isinstance(uncounted.total, Unset), f"page[total]=false has no total: {uncounted.total!r}")
    check(isinstance(uncounted.links.next_, str), "page[total]=false links on")
    bad = list_identities.sync_detailed(client=client, filteremail="in:a,b")
    check(bad.status_code == HTTPStatus.BAD_REQUEST, f"bad filter: {bad.status_code}")
    check(is_error(bad.parsed, "validation_failed"), "bad filter code")
    check([d.field for d in bad.parsed.details] == ["filter[email]"], f"bad filter: {bad.parsed.details}")

    # Patch.
    patched = expect(
        update_identity.sync(
            identity_id,
            client=client,
            body=IdentityUpdate(
                phone=PhoneInput(number="+351 910 000 001", sms=True),
                address=AddressInput(
                    street="Rua do Souto 1", city="Porto", postal_code="4000-001", country=Country.PT
                ),
            ),
        ),
        IdentityResponse,
        "patch",
    ).data
    check(patched.phone.number == "+351 910 000 001" and patched.phone.sms is True, "patched phone")
    check(patched.address.city == "Porto" and patched.address.state is None, "patched address")
    check(patched.name == "João Pedro Soares", "untouched fields stay")
    check(patched.updated_at >= patched.created_at, "updatedAt moves forward")
    refused = update_identity.sync_detailed(
        identity_id, client=client, body=IdentityUpdate(birthday=datetime.date(2020, 1, 1))
    )
    check(refused.status_code == HTTPStatus.BAD_REQUEST, f"too young: {refused.status_code}")
    check(is_error(refused.parsed, "validation_failed"), "too young code")
    check("birthday" in [d.field for d in refused.parsed.details], f"too young: {refused.parsed.details}")

    # Operations.
    operations = expect(
        get_identity_operations.sync(identity_id, client=client), OperationList, "operations"
    )
    check(len(operations.data) > 0, "operations: some are configured")
    for operation in operations.data:
        check(operation.action.value in ("create", "confirm"), f"action {operation.action}")
        check(bool(operation.code), "operation code")
        if operation.active:
            check(isinstance(operation.reason, Unset), f"{operation.code}: active with a reason")
        else:
            check(not isinstance(operation.reason, Unset), f"{operation.code}: inactive without reason")

    # Delete.
    deleted = delete_identity.sync_detailed(identity_id, client=client)
    check(deleted.status_code == HTTPStatus.NO_CONTENT, f"delete: {deleted.status_code}")
    gone = get_identity.sync_detailed(identity_id, client=client)
    check(gone.status_code == HTTPStatus.NOT_FOUND, f"get after delete: {gone.status_code}")
    check(is_error(gone.parsed, "identity_not_found"), "gone code")

    # Erase (a deleted identity can be), then only includeErased finds it.
    erased = erase_identity.sync_detailed(identity_id, client=client)
    check(erased.status_code == HTTPStatus.NO_CONTENT, f"erase: {erased.status_code}")
    kept = expect(
        get_identity.sync(identity_id, client=client, include_erased=True),
        IdentityLookupResponse,
        "get includeErased",
    ).data
    check(isinstance(kept, ErasedIdentity), f"get includeErased: {kept!r}")
    check(kept.id == identity_id and kept.erased is True, "erased skeleton")

    print("sdk smoke: create, get, list, patch, operations, delete, erase: all as expected")


if __name__ == "__main__":
    try:
        main()
    except AssertionError as failure:
        print(f"sdk smoke FAILED: {failure}", file=sys.stderr)
        sys.exit(1)
