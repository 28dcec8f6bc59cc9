-- A company's related parties (KYB): each row says that a person identity
-- of the same app is one of the company's beneficial owners, directors,
-- representatives or authorized signatories. A person may hold several
-- roles. `ownership` is in hundredths of a percent (2500 = 25 %), so that
-- a company's beneficial owners add up exactly; required for beneficial
-- owners (checked by the API, which also keeps their total at most 100 %).
CREATE TABLE identity_relations (
    id TEXT PRIMARY KEY,
    app_id TEXT NOT NULL,
    company_id TEXT NOT NULL,
    person_id TEXT NOT NULL,
    role TEXT NOT NULL,
    ownership INTEGER,
    title TEXT,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
-- A company's relations, in the order they were made.
CREATE INDEX identity_relations_company ON identity_relations (app_id, company_id, created_at);
-- A person's companies (`filter[relatedPersonId]`).
CREATE INDEX identity_relations_person ON identity_relations (app_id, person_id);
