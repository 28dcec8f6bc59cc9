DROP TABLE identity_relations;
