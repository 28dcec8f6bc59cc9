"""Prints the SQL that seeds N identities for bench/run.sh.

usage: python3 seed.py sqlite|postgres DB APP_ID N TEMPLATE_ID TAG | sqlite3 DB  (or psql URL)

Every seeded identity is a copy of one template identity that the server
itself created from the reference body, with all its child rows (documents,
verifications, identity history events, whatever tables reference
identities(id)), so each column is exactly what the server writes. Only ids
(fresh UUIDv4 strings), app_id, email, timestamps and the personal fields
(in the clear, without a data key: see PLAIN_PII) differ:
  ids        identity ids are UUIDv7 of the seeded created_at (as the server
             makes them), child rows' ids UUIDv4
  email      seed<TAG><n>@mail<n % 50>.example.com  (like:@mail7. matches 1 in 50),
             and its search keys (email_normalized, email_domain, email_local_reversed) as the server writes them
  timestamps 2025-01-01 00:00:00 + n * 10 ms + 7 us (6 decimals, as the server writes)
Secondary indexes are dropped before the bulk insert and recreated from
their own definitions afterwards; ANALYZE runs at the end on PostgreSQL
(and on SQLite only with SQLITE_ANALYZE=1: see the end of this file).
"""
import json
import subprocess
import sys

dialect, db, app, n, template, tag = sys.argv[1:7]
n = int(n)


def query(sql):
    if dialect == "sqlite":
        out = subprocess.run(["sqlite3", "-batch", "-noheader", "-separator", "\t", db, sql], check=True,
                             capture_output=True, text=True).stdout
    else:
        out = subprocess.run(["psql", "-qAt", "-F", "\t", db, "-c", sql], check=True, capture_output=True,
                             text=True).stdout
    return [line.split("\t") for line in out.splitlines() if line]


def columns(table):
    if dialect == "sqlite":
        return [r[1] for r in query(f"PRAGMA table_info({table})")]
    return [r[0] for r in query(
        f"SELECT attname FROM pg_attribute WHERE attrelid = '{table}'::regclass AND attnum > 0 "
        f"AND NOT attisdropped ORDER BY attnum")]


# Child tables: every table with an identity_id column, in FK-safe order.
if dialect == "sqlite":
    tables = [r[0] for r in query("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")]
else:
    tables = [r[0] for r in query("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")]
# Not copied: the event outbox and the audit trail (their rows are sealed
# under, or chained to, the template's own ids; no scenario reads them).
children = [t for t in tables if t not in ("identities", "bench_ids", "events", "audit_log")
            and "identity_id" in columns(t)]
# verifications before the events that reference them
children.sort(key=lambda t: 1 if "verification_id" in columns(t) else 0)

if dialect == "sqlite":
    # (random per call: a scalar subquery would be evaluated once for all rows)
    uuid = ("(lower(hex(randomblob(4)))||'-'||lower(hex(randomblob(2)))||'-4'||substr(lower(hex(randomblob(2))),2)"
            "||'-'||substr('89ab',1+abs(random())%4,1)||substr(lower(hex(randomblob(2))),2)||'-'||lower(hex(randomblob(6))))")
    ts = ("(strftime('%Y-%m-%d %H:%M:%S', 1735689600 + s.n / 100, 'unixepoch') || '.' || "
          "printf('%06d', (s.n % 100) * 10000 + 7))")
    series = f"WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c WHERE n < {n}) SELECT n FROM c"
    print("PRAGMA journal_mode = WAL; PRAGMA synchronous = OFF; PRAGMA cache_size = -2000000;")
    print("PRAGMA foreign_keys = OFF; PRAGMA temp_store = MEMORY;")
    indexes = query("SELECT name, replace(replace(sql, char(10), ' '), char(9), ' ') FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL "
                    f"AND tbl_name IN ('identities', {', '.join(repr(t) for t in children)})")
    drops = [f'DROP INDEX "{name}";' for name, _ in indexes]
    creates = [sql + ";" for _, sql in indexes]
    # The substring index (migration 22): its insert trigger finds the next
    # search_id with max(), which without the dropped index would scan the
    # table per row. Seeded rows get theirs here and their search rows in
    # one statement; the trigger comes back afterwards.
    search_trigger = query("SELECT replace(replace(sql, char(10), ' '), char(9), ' ') FROM sqlite_master "
                           "WHERE type = 'trigger' AND name = 'identities_search_insert'")
    search_base = int(query("SELECT coalesce(max(search_id), 0) FROM identities")[0][0]) if search_trigger else None
    if search_trigger:
        drops.append("DROP TRIGGER identities_search_insert;")
    print("BEGIN;")
    print(f"CREATE TEMP TABLE seed (n INTEGER PRIMARY KEY, id TEXT NOT NULL);")
    ms = "(1735689600000 + n * 10)"
    uuid7 = (f"printf('%08x-%04x-7%03x-%04x-%012x', {ms} >> 16, {ms} & 65535, abs(random()) % 4096, "
             "32768 + abs(random()) % 16384, abs(random()) % 281474976710656)")
    print(f"INSERT INTO seed SELECT n, {uuid7} FROM ({series});")
    print("CREATE TEMP TABLE kids (n INTEGER NOT NULL, old TEXT NOT NULL, new TEXT NOT NULL, PRIMARY KEY (n, old)) WITHOUT ROWID;")
else:
    search_trigger, search_base = [], None
    uuid = "gen_random_uuid()::text"
    ts = "(timestamp '2025-01-01' + s.n * interval '10 ms' + interval '7 us')"
    series = f"SELECT generate_series(1, {n}) AS n"
    print("SET maintenance_work_mem = '1GB';")
    print("SET session_replication_role = replica; -- rows are consistent by construction: skip FK triggers")
    indexes = query("SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public' "
                    f"AND tablename IN ('identities', {', '.join(repr(t) for t in children)}) "
                    "AND indexname NOT IN (SELECT conname FROM pg_constraint)")
    drops = [f'DROP INDEX "{name}";' for name, _ in indexes]
    creates = [sql + ";" for _, sql in indexes]
    print("BEGIN;")
    ms = "(1735689600000 + n * 10)"
    uuid7 = (f"lpad(to_hex({ms} >> 16), 8, '0') || '-' || lpad(to_hex({ms} & 65535), 4, '0') || '-7' "
             "|| substr(md5(random()::text), 1, 3) || '-' || to_hex(8 + floor(random() * 4)::int) "
             "|| substr(md5(random()::text), 1, 3) || '-' || substr(md5(random()::text), 1, 12)")
    print(f"CREATE TEMP TABLE seed AS SELECT n, {uuid7} AS id FROM ({series}) g;")
    print("CREATE TEMP TABLE kids (n int NOT NULL, old text NOT NULL, new text NOT NULL);")

for d in drops:
    print(d)
# Child tables keyed by their own id get fresh ids (through `kids`); those
# keyed by the identity alone (identity_metadata, operations_seen) are
# copied per seeded identity.
with_id = [t for t in children if "id" in columns(t)]
union = " UNION ALL ".join(f"SELECT id FROM {t} WHERE identity_id = '{template}'" for t in with_id) or "SELECT NULL WHERE false"
print(f"INSERT INTO kids SELECT s.n, c.id, {uuid} FROM seed s, ({union}) c;")
if dialect == "postgres":
    print("CREATE INDEX ON kids (n, old); ANALYZE kids; ANALYZE seed;")


# The template's personal fields are sealed under its own data key and bound
# to its id, so they cannot be copied: seeded rows hold them in the clear
# with no data key, which the server reads as a row written before
# encryption at rest (and seals on its first change).
with open(f"{__import__('os').path.dirname(__file__)}/reference_person.json") as f:
    reference = json.load(f)


def literal(v):
    return "NULL" if v is None else "'" + str(v).replace("'", "''") + "'"


PLAIN_PII = {
    "birthday": reference.get("birthday"),
    "address_street": reference["address"]["street"],
    "address_state": reference["address"].get("state"),
    "address_postal_code": reference["address"]["postalCode"],
    "phone_number": reference["phone"]["number"],
    "tax_id_number": reference["tax"]["idNumber"],
    "tax_state": reference["tax"].get("state"),
    "tax_formation_region": reference["tax"].get("formationRegion"),
    "wrapped_key": None,
}


def value(table, col):
    if table == "identities" and col in PLAIN_PII:
        return literal(PLAIN_PII[col])
    if col == "id":
        return "s.id" if table == "identities" else "k.new"
    if col == "app_id":
        return f"'{app}'"
    if col == "identity_id":
        return "s.id"
    if col == "email" and table == "identities":
        return f"'seed{tag}' || s.n || '@mail' || (s.n % 50) || '.example.com'"
    if col == "email_normalized" and table == "identities":
        # seed emails are lower case already: the normalized form is the email
        return f"'seed{tag}' || s.n || '@mail' || (s.n % 50) || '.example.com'"
    if col == "email_domain" and table == "identities":
        return "'mail' || (s.n % 50) || '.example.com'"
    if col == "email_local_reversed" and table == "identities":
        # reverse('seed<tag><n>'): the digits of n reversed, then the rest
        digits = "CAST(s.n AS TEXT)"
        rev_n = " || ".join(f"substr({digits}, {i}, 1)" for i in range(10, 0, -1))
        return f"({rev_n} || '{(tag[::-1])}dees')"
    if col in ("created_at", "updated_at"):
        return ts
    if col == "search_id" and table == "identities":
        return f"{search_base} + s.n"
    if col == "verification_id":
        return "(SELECT k2.new FROM kids k2 WHERE k2.n = s.n AND k2.old = t.verification_id)"
    return f"t.{col}"


cols = columns("identities")
print(f"INSERT INTO identities ({', '.join(cols)}) SELECT {', '.join(value('identities', c) for c in cols)} "
      f"FROM seed s, identities t WHERE t.id = '{template}' ORDER BY s.n;")
if search_trigger:
    print("INSERT INTO identity_search (rowid, email_normalized, name) "
          f"SELECT search_id, email_normalized, name FROM identities WHERE search_id > {search_base};")
for table in children:
    cols = columns(table)
    if table in with_id:
        source = f"seed s JOIN kids k ON k.n = s.n JOIN {table} t ON t.id = k.old ORDER BY s.n, k.old"
    else:
        source = f"seed s JOIN {table} t ON t.identity_id = '{template}' ORDER BY s.n"
    print(f"INSERT INTO {table} ({', '.join(cols)}) SELECT {', '.join(value(table, c) for c in cols)} FROM {source};")
print("COMMIT;")
for c in creates:
    print(c)
for (sql,) in search_trigger:
    print(sql + ";")
print("DROP TABLE kids; DROP TABLE seed;")
# SQLite: no ANALYZE unless SQLITE_ANALYZE=1. The server never analyzes a
# SQLite database, so without statistics is how production plans its
# queries; the runs before 2026-12-06 seeded with ANALYZE and so measured
# plans that production never made. PostgreSQL's autovacuum analyzes on
# its own, so it is analyzed here as it would be.
if dialect == "postgres" or __import__("os").environ.get("SQLITE_ANALYZE") == "1":
    print("ANALYZE;")
if dialect == "sqlite":
    print("PRAGMA wal_checkpoint(TRUNCATE);")
