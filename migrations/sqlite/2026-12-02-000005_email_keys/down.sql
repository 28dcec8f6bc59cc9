DROP INDEX identities_email_local_idx;
DROP INDEX identities_email_domain_idx;
ALTER TABLE identities DROP COLUMN email_local_reversed;
ALTER TABLE identities DROP COLUMN email_domain;
