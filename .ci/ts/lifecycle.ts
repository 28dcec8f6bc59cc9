// Drives an identity's life cycle through a client generated from
// openapi.yaml with openapi-typescript and openapi-fetch (run by
// .ci/contract.sh after `tsc --noEmit --strict` has checked this file):
// a person and the company it owns, narrowed by `type`, a relation, a
// sandbox approval, block and unblock, typed error codes, deletion.
//
//     node lifecycle.js <base url> <api key>
import createClient from "openapi-fetch";
import type { components, paths } from "./schema.js";

type Identity = components["schemas"]["Identity"];
// An external document (an https URL the server stores as given).
const DOCUMENT_URL = "https://example-bucket.s3.amazonaws.com/fd/fc/09/dd/4nHVF9Hz9FArIrUo.jpeg";

const [baseUrl, apiKey] = process.argv.slice(2);
if (!baseUrl || !apiKey) {
  throw new Error("usage: node lifecycle.js <base url> <api key>");
}
const client = createClient<paths>({ baseUrl, headers: { apiKey } });
const anonymous = createClient<paths>({ baseUrl });

function check(condition: boolean, message: string): asserts condition {
  if (!condition) {
    throw new Error(message);
  }
}

function unique(local: string): string {
  return `${local}+${Math.random().toString(36).slice(2, 12)}@example.com`;
}

async function main(): Promise<void> {
  const health = await anonymous.GET("/health");
  check(health.data?.status === "ok", `health: ${JSON.stringify(health.data)}`);

  const denied = await anonymous.GET("/identities/{id}", {
    params: { path: { id: "0190a1b2-0000-7000-8000-000000000000" } },
  });
  check(denied.response.status === 401, `no key: ${denied.response.status}`);
  check(denied.error?.code === "api_key_missing", `no key: ${JSON.stringify(denied.error)}`);

  const personEmail = unique("joao");
  const createdPerson = await client.POST("/identities", {
    body: {
      type: "person",
      name: "João Pedro Soares",
      email: personEmail,
      birthday: "1990-11-11",
      gender: "Male",
      address: { street: "Avenida D. João I, 40", city: "Braga", postalCode: "4444-333", country: "PT" },
      phone: { number: "910000000", sms: false },
      tax: { country: "PT", idNumber: "1111111111" },
      documents: [{ type: "IdentityCard", side: "FrontSide", url: DOCUMENT_URL, label: "id card" }],
      faceImages: [DOCUMENT_URL],
    },
  });
  check(createdPerson.data !== undefined, `create person: ${JSON.stringify(createdPerson.error)}`);
  const person: Identity = createdPerson.data.data;
  check(person.type === "person", `person type: ${person.type}`);
  // Narrowed by `type`: a person's birthday and gender are never null.
  const birthday: string = person.birthday;
  check(birthday === "1990-11-11", `birthday: ${birthday}`);
  check(person.identityOwner === null && person.tax.formationRegion === null, "a person owns nothing");
  check(person.riskRating === null && person.refId === null, "riskRating and refId start null");
  check(
    person.documents.map((d) => d.type).join(",") === "identityCard,faceImage",
    `documents: ${JSON.stringify(person.documents)}`,
  );

  const createdCompany = await client.POST("/identities", {
    body: {
      type: "company",
      name: "Soares Lda",
      email: unique("soares-lda"),
      identityOwner: person.id,
      address: { street: "Rua do Souto 1", city: "Braga", postalCode: "4700-000", country: "PT" },
      phone: { number: "+351 253 000 000" },
      tax: { country: "PT", idNumber: "500000000", formationRegion: "Braga" },
      refId: `soares-${Date.now()}`,
      metadata: { tier: "gold" },
    },
    headers: { "Idempotency-Key": `ts-${Date.now()}` },
  });
  check(createdCompany.data !== undefined, `create company: ${JSON.stringify(createdCompany.error)}`);
  const company = createdCompany.data.data;
  check(company.type === "company", `company type: ${company.type}`);
  // Narrowed: a company's owner is a string, and it has relations.
  const owner: string = company.identityOwner;
  check(owner === person.id, `identityOwner: ${owner}`);
  check(company.birthday === null && company.gender === null, "a company has no birthday or gender");
  check(company.relations.length === 0, "no relations yet");
  check(company.metadata["tier"] === "gold", `metadata: ${JSON.stringify(company.metadata)}`);

  const refused = await client.POST("/identities", {
    body: {
      type: "company",
      name: "Nobody's Lda",
      email: unique("nobody"),
      identityOwner: "0190a1b2-0000-7000-8000-000000000000",
      address: { street: "Rua 1", city: "Porto", postalCode: "4000-000", country: "PT" },
      phone: { number: "220000000" },
      tax: { country: "PT", idNumber: "500000001", formationRegion: "Porto" },
    },
  });
  check(refused.response.status === 404, `unknown owner: ${refused.response.status}`);
  check(refused.error?.code === "identity_owner_not_found", `unknown owner: ${JSON.stringify(refused.error)}`);

  const related = await client.POST("/identities/{id}/relations", {
    params: { path: { id: company.id } },
    body: { personId: person.id, role: "beneficialOwner", ownershipPercent: 60 },
  });
  check(related.data?.data.role === "beneficialOwner", `relation: ${JSON.stringify(related.error)}`);

  const looked = await client.GET("/identities/{id}", { params: { path: { id: company.id } } });
  check(looked.data !== undefined, `get: ${JSON.stringify(looked.error)}`);
  const found = looked.data.data;
  check(!("erased" in found) && found.type === "company", "get answers the live company");
  check(found.relations.length === 1 && found.relations[0].personId === person.id, "the relation shows");

  const patched = await client.PATCH("/identities/{id}", {
    params: { path: { id: company.id } },
    body: { name: "Soares & Filhos Lda", metadata: { tier: null, region: "north" } },
  });
  check(patched.data?.data.name === "Soares & Filhos Lda", `patch: ${JSON.stringify(patched.error)}`);
  check(JSON.stringify(patched.data.data.metadata) === '{"region":"north"}', "metadata merged");

  const listed = await client.GET("/identities", {
    params: { query: { "filter[email]": personEmail } },
  });
  check(listed.data?.total === 1 && listed.data.data[0].id === person.id, `list: ${JSON.stringify(listed.error)}`);

  const approved = await client.POST("/sandbox/identities/approve", {
    body: { identityId: person.id, email: personEmail },
  });
  check(approved.response.status === 200, `approve: ${JSON.stringify(approved.error)}`);
  const verifications = await client.GET("/verifications", {
    params: { query: { "filter[identityId]": person.id } },
  });
  check(verifications.data?.data[0]?.status === "approved", `verifications: ${JSON.stringify(verifications.error)}`);

  const operations = await client.GET("/identities/{id}/operations", { params: { path: { id: person.id } } });
  check(operations.data !== undefined && operations.data.data.length > 0, "operations");

  const blocked = await client.POST("/identities/{id}/block", {
    params: { path: { id: company.id } },
    body: { reason: "sanctions screening" },
  });
  check(blocked.data?.data.blocked === true, `block: ${JSON.stringify(blocked.error)}`);
  const unblocked = await client.POST("/identities/{id}/unblock", {
    params: { path: { id: company.id } },
    body: { reason: "cleared" },
  });
  check(unblocked.data?.data.blocked === false, `unblock: ${JSON.stringify(unblocked.error)}`);

  const ownerInUse = await client.DELETE("/identities/{id}", { params: { path: { id: person.id } } });
  check(ownerInUse.response.status === 409, `delete owner: ${ownerInUse.response.status}`);
  const inUse = ownerInUse.error?.code;
  check(inUse === "identity_owner_in_use" || inUse === "identity_related_party_in_use", `delete owner: ${inUse}`);

  const gone = await client.DELETE("/identities/{id}", { params: { path: { id: company.id } } });
  check(gone.response.status === 204, `delete company: ${gone.response.status}`);
  const missing = await client.GET("/identities/{id}", { params: { path: { id: company.id } } });
  check(missing.response.status === 404, `get deleted: ${missing.response.status}`);
  const code = missing.error?.code;
  check(code === "identity_not_found", `get deleted: ${code}`);
  // @ts-expect-error: the type lists only the codes getIdentity answers
  const impossible: typeof code = "email_already_in_use";
  void impossible;
  const removed = await client.DELETE("/identities/{id}", { params: { path: { id: person.id } } });
  check(removed.response.status === 204, `delete person: ${removed.response.status}`);

  console.log("typescript client: life cycle passed");
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
