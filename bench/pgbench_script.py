"""Prints the pgbench script for the PostgreSQL limit of create or get.

usage: python3 pgbench_script.py create|get DB_URL KEY_HASH APP_ID TEMPLATE_ID IDS_COUNT

The statements are the ones kyc-api sends per request, as PostgreSQL logs
them with log_statement=all (BENCHMARKS.md lists them), minus the r2d2
`SELECT 1` checkout probes (a server overhead, not the workload). Values
are literals from the server-made template identity and its child rows;
identity ids are UUIDv7 of now and other ids gen_random_uuid() (the server
makes them client-side, the same kinds), unique
emails from pgbench's client id and a random number. For get, the random
existing id is picked through a helper table bench_ids(n, id).
"""
import subprocess
import sys

mode, url, key_hash, app, template, ids_count = sys.argv[1:7]


def query(sql):
    out = subprocess.run(["psql", "-qAt", "-F", "\t", url, "-c", sql], check=True, capture_output=True, text=True)
    return [line.split("\t") for line in out.stdout.splitlines() if line]


def columns(table):
    return [r[0] for r in query(f"SELECT attname FROM pg_attribute WHERE attrelid = '{table}'::regclass "
                                "AND attnum > 0 AND NOT attisdropped ORDER BY attnum")]


def qcols(table):
    return ", ".join(f'"{table}"."{c}"' for c in columns(table))


tables = [r[0] for r in query("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")]
children = [t for t in tables if t not in ("identities", "bench_ids") and "identity_id" in columns(t)]
children.sort(key=lambda t: (t != "documents", "verification_id" in columns(t)))
has_verifications = "verifications" in tables

print(f'SELECT {qcols("api_keys")} FROM "api_keys" WHERE ("api_keys"."key_hash" = \'{key_hash}\') LIMIT 1;')
docs_sql = (f'SELECT {qcols("documents")} FROM "documents" WHERE ((("documents"."app_id" = \'{app}\') AND '
            '("documents"."identity_id" = {id})) AND ("documents"."deleted_at" IS NULL)) ORDER BY "documents"."position";')
# kycStatus: five columns of the identity's verifications (db::kyc::statuses_of).
verif_sql = (f'SELECT "verifications"."id", "verifications"."identity_id", "verifications"."level", '
             f'"verifications"."status", "verifications"."updated_at" FROM "verifications" WHERE '
             f'(("verifications"."app_id" = \'{app}\') AND ("verifications"."identity_id" = {{id}})) '
             'ORDER BY "verifications"."created_at" DESC, "verifications"."id" DESC;')
metadata_sql = (f'SELECT "identity_metadata"."identity_id", "identity_metadata"."meta_key", '
                f'"identity_metadata"."meta_value" FROM "identity_metadata" WHERE ((("identity_metadata"."app_id" || \'\') = '
                f'\'{app}\') AND ("identity_metadata"."identity_id" = {{id}})) '
                'ORDER BY "identity_metadata"."meta_key";')


# A UUIDv7 of now, as the server makes identity ids (PostgreSQL 15 has no
# uuidv7()); child rows' ids stay gen_random_uuid(), as the server's.
MS = "(floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint)"
UUID7 = (f"(lpad(to_hex({MS} >> 16), 8, '0') || '-' || lpad(to_hex({MS} & 65535), 4, '0') || '-7' "
         "|| substr(md5(random()::text), 1, 3) || '-' || to_hex(8 + floor(random() * 4)::int) "
         "|| substr(md5(random()::text), 1, 3) || '-' || substr(md5(random()::text), 1, 12))")


def literal_row(table, where):
    """(columns, [[quoted literal or NULL per column] per row]) of template rows."""
    cols = columns(table)
    sel = ", ".join(f"quote_nullable({c}::text)" for c in cols)
    return cols, query(f"SELECT {sel} FROM {table} WHERE {where} ORDER BY " + ("position" if "position" in cols else "created_at, id"))


if mode == "create":
    print(r"\set r random(1, 1000000000000)")
    print("BEGIN;")
    cols, rows = literal_row("identities", f"id = '{template}'")
    vals = []
    for c, v in zip(cols, rows[0]):
        if c == "id":
            v = UUID7
        elif c == "email":
            v = "'limit-' || :client_id::text || '-' || :r::text || '@bench.example'"
        elif c == "email_normalized":
            v = "'limit-' || :client_id::text || '-' || :r::text || '@bench.example'"
        elif c == "email_domain":
            v = "'bench.example'"
        elif c == "email_local_reversed":
            v = "reverse('limit-' || :client_id::text || '-' || :r::text)"
        elif c in ("created_at", "updated_at"):
            v = "localtimestamp"
        vals.append(v)
    print(f'INSERT INTO "identities" ({", ".join(chr(34) + c + chr(34) for c in cols)}) VALUES ({", ".join(vals)}) '
          r'RETURNING id AS iid \gset')
    names = {}
    for i, table in enumerate(children):
        cols, rows = literal_row(table, f"identity_id = '{template}'")
        for row in rows:
            vals, returning = [], ""
            for c, v in zip(cols, row):
                if c == "id":
                    names[v] = f"v{len(names)}"
                    returning = f" RETURNING id AS {names[v]} \\gset"
                    v = "gen_random_uuid()::text"
                elif c == "identity_id":
                    v = ":iid"
                elif c == "verification_id" and v in names:
                    v = f":{names[v]}"
                elif c in ("created_at", "updated_at"):
                    v = "localtimestamp"
                vals.append(v)
            print(f'INSERT INTO "{table}" ({", ".join(chr(34) + c + chr(34) for c in cols)}) VALUES ({", ".join(vals)})'
                  + (returning if returning else ";"))
    print("COMMIT;")
else:
    print(f"\\set k random(1, {ids_count})")
    pick = "(SELECT id FROM bench_ids WHERE n = :k)"
    print(f'SELECT {qcols("identities")} FROM "identities" WHERE ((("identities"."app_id" = \'{app}\') AND '
          f'("identities"."deleted_at" IS NULL)) AND ("identities"."id" = {pick})) LIMIT 1;')
    print(docs_sql.format(id=pick))
    if has_verifications:
        print(verif_sql.format(id=pick))
    print(metadata_sql.format(id=pick))
