// Must NOT type-check (.ci/contract.sh asserts that tsc refuses it): a
// company needs `identityOwner`, and the generated types must say so.
import type { components } from "./schema.js";

type IdentityCreate = components["schemas"]["IdentityCreate"];

export const company: IdentityCreate = {
  type: "company",
  name: "Acme Lda",
  email: "acme@example.com",
  address: { street: "Rua A 1", city: "Braga", postalCode: "4700-000", country: "PT" },
  phone: { number: "+351 253 000 000" },
  tax: { country: "PT", idNumber: "500000000", formationRegion: "Braga" },
};
