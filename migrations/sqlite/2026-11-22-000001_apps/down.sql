DROP TABLE server_secrets;
DROP TABLE api_keys;
DROP TABLE apps;
