DROP TABLE documents;
DROP TABLE identities;
