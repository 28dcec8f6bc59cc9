//! The SQLite limit for kyc-api's create and get: the same statements the
//! server issues per request (see bench/README section in BENCHMARKS.md),
//! with the same PRAGMAs (WAL, synchronous=NORMAL, busy_timeout=10000,
//! foreign_keys=ON) and `BEGIN IMMEDIATE` write transactions, from N threads,
//! each with its own connection, for a fixed time. No HTTP, no JSON.
//!
//! usage: sqlite-limit create|get DB_PATH KEY_HASH TEMPLATE_ID THREADS SECONDS [IDS_FILE]
//! Prints one JSON line: {"mode","threads","seconds","tx","errors","tps","p50_ms","p99_ms"}.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::Rng;
use rusqlite::{params_from_iter, types::Value, Connection};

const KEY_SQL: &str = "SELECT `api_keys`.`id`, `api_keys`.`app_id`, `api_keys`.`key_hash`, `api_keys`.`key_prefix`, `api_keys`.`created_at`, `api_keys`.`revoked_at` FROM `api_keys` WHERE (`api_keys`.`key_hash` = ?) LIMIT ?";
const IDENTITY_COLS: &str = "`identities`.`id`, `identities`.`app_id`, `identities`.`identity_type`, `identities`.`name`, `identities`.`email`, `identities`.`birthday`, `identities`.`gender`, `identities`.`address_street`, `identities`.`address_city`, `identities`.`address_state`, `identities`.`address_postal_code`, `identities`.`address_country`, `identities`.`phone_number`, `identities`.`phone_sms`, `identities`.`tax_country`, `identities`.`tax_id_number`, `identities`.`tax_state`, `identities`.`tax_formation_region`, `identities`.`identity_owner`, `identities`.`blocked`, `identities`.`identity_confirmed`, `identities`.`risk_rating`, `identities`.`created_at`, `identities`.`updated_at`, `identities`.`deleted_at`, `identities`.`email_domain`, `identities`.`email_local_reversed`, `identities`.`email_normalized`";
const DOC_COLS: &str = "`documents`.`id`, `documents`.`app_id`, `documents`.`identity_id`, `documents`.`document_type`, `documents`.`side`, `documents`.`label`, `documents`.`description`, `documents`.`url`, `documents`.`position`, `documents`.`created_at`, `documents`.`updated_at`, `documents`.`deleted_at`";

fn open(path: &str) -> Connection {
    let conn = Connection::open(path).expect("open");
    conn.execute_batch(
        "PRAGMA busy_timeout = 10000; PRAGMA journal_mode = WAL; \
         PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL;",
    )
    .expect("pragmas");
    conn
}

fn uuid4(rng: &mut impl Rng) -> String {
    let mut b: [u8; 16] = rng.gen();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!("{}-{}-{}-{}-{}", &h[0..8], &h[8..12], &h[12..16], &h[16..20], &h[20..32])
}

/// A UUIDv7 of now, as the server makes identity ids.
fn uuid7(rng: &mut impl Rng) -> String {
    let ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64;
    let mut b: [u8; 16] = rng.gen();
    b[..6].copy_from_slice(&ms.to_be_bytes()[2..]);
    b[6] = (b[6] & 0x0f) | 0x70;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!("{}-{}-{}-{}-{}", &h[0..8], &h[8..12], &h[12..16], &h[16..20], &h[20..32])
}

fn read_all(stmt: &mut rusqlite::Statement, params: &[Value]) -> rusqlite::Result<usize> {
    let n = stmt.column_count();
    let mut rows = stmt.query(params_from_iter(params.iter()))?;
    let mut count = 0;
    while let Some(row) = rows.next()? {
        for i in 0..n {
            let _ = row.get_ref(i)?;
        }
        count += 1;
    }
    Ok(count)
}

fn columns(conn: &Connection, table: &str) -> Vec<String> {
    conn.prepare(&format!("PRAGMA table_info(`{table}`)"))
        .unwrap()
        .query_map([], |r| r.get(1))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

/// Rows of `table` where `col` = `value`, with the column names.
fn load(conn: &Connection, table: &str, col: &str, value: &str) -> Vec<(Vec<String>, Vec<Value>)> {
    let cols = columns(conn, table);
    if !cols.iter().any(|c| c == col) {
        return Vec::new();
    }
    let mut st = conn.prepare(&format!("SELECT * FROM `{table}` WHERE `{col}` = ? ORDER BY rowid")).unwrap();
    let n = st.column_count();
    st.query_map([value], |r| (0..n).map(|i| r.get::<_, Value>(i)).collect::<Result<Vec<_>, _>>())
        .unwrap()
        .map(|r| (cols.clone(), r.unwrap()))
        .collect()
}

/// `sqlite-limit sql DB SQL [REPEAT]`: runs one statement with the server's
/// SQLite (3.50.x, bundled) and prints its rows (EXPLAIN QUERY PLAN works)
/// and the best wall time of REPEAT runs.
fn sql_mode(args: &[String]) {
    let conn = open(&args[2]);
    let repeat: usize = args.get(4).and_then(|r| r.parse().ok()).unwrap_or(1);
    let mut best = f64::MAX;
    for i in 0..repeat {
        let t0 = Instant::now();
        let mut st = conn.prepare(&args[3]).expect("prepare");
        let n = st.column_count();
        let mut rows = st.query([]).unwrap();
        let mut count = 0;
        while let Some(row) = rows.next().unwrap() {
            count += 1;
            if i == 0 && count <= 20 {
                let vals: Vec<String> = (0..n)
                    .map(|c| match row.get_ref(c).unwrap() {
                        rusqlite::types::ValueRef::Text(t) => String::from_utf8_lossy(t).into_owned(),
                        v => format!("{v:?}"),
                    })
                    .collect();
                println!("{}", vals.join(" | "));
            }
        }
        best = best.min(t0.elapsed().as_secs_f64() * 1000.0);
        if i == 0 {
            println!("({count} rows)");
        }
    }
    println!("best of {repeat}: {best:.2} ms (SQLite {})", rusqlite::version());
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("sql") {
        return sql_mode(&args);
    }
    if args.len() < 7 {
        eprintln!("usage: sqlite-limit create|get DB KEY_HASH TEMPLATE_ID THREADS SECONDS [IDS_FILE]");
        std::process::exit(2);
    }
    let mode = args[1].clone();
    let db = args[2].clone();
    let key_hash = args[3].clone();
    let template_id = args[4].clone();
    let threads: usize = args[5].parse().unwrap();
    let seconds: f64 = args[6].parse().unwrap();
    let ids: Arc<Vec<String>> = Arc::new(match args.get(7) {
        Some(f) => std::fs::read_to_string(f).unwrap().lines().map(str::to_owned).collect(),
        None => Vec::new(),
    });

    // The template identity (created by the server from the reference body)
    // and its child rows in every table that has an identity_id column:
    // every create inserts the same values with new ids and a new email.
    let conn = open(&db);
    let (id_cols, template) = load(&conn, "identities", "id", &template_id).pop().map(|(c, r)| (c, vec![r])).unwrap();
    let template = template.into_iter().next().unwrap();
    let mut tables: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    tables.retain(|t| t != "identities");
    // documents first (as the server), then verifications, then rows that reference them
    let mut children: Vec<(String, Vec<String>, Vec<Vec<Value>>)> = Vec::new();
    for t in &tables {
        let rows = load(&conn, t, "identity_id", &template_id);
        if let Some((cols, _)) = rows.first() {
            let cols = cols.clone();
            children.push((t.clone(), cols, rows.into_iter().map(|(_, r)| r).collect()));
        } else if columns(&conn, t).iter().any(|c| c == "identity_id") {
            children.push((t.clone(), columns(&conn, t), Vec::new()));
        }
    }
    children.sort_by_key(|(t, cols, _)| (t != "documents", cols.iter().any(|c| c == "verification_id")));
    let has_verifications = children.iter().any(|(t, _, _)| t == "verifications");
    drop(conn);
    let app_id = template[id_cols.iter().position(|c| c == "app_id").unwrap()].clone();
    let email_at = id_cols.iter().position(|c| c == "email").unwrap();
    // The email's search keys, as the server derives them (EmailKeys).
    let domain_at = id_cols.iter().position(|c| c == "email_domain").unwrap();
    let local_at = id_cols.iter().position(|c| c == "email_local_reversed").unwrap();
    let normalized_at = id_cols.iter().position(|c| c == "email_normalized").unwrap();
    let search_at = id_cols.iter().position(|c| c == "search_id");
    eprintln!(
        "sqlite-limit: per create: 1 identity + {} child rows ({})",
        children.iter().map(|c| c.2.len()).sum::<usize>(),
        children.iter().map(|c| format!("{} {}", c.2.len(), c.0)).collect::<Vec<_>>().join(", ")
    );

    let stop = Arc::new(AtomicBool::new(false));
    let writers = Arc::new(std::sync::Mutex::new(()));
    let started = Instant::now();
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let (mode, db, key_hash, stop, ids) = (mode.clone(), db.clone(), key_hash.clone(), stop.clone(), ids.clone());
            let writers = writers.clone();
            let (template, children, app_id, id_cols) = (template.clone(), children.clone(), app_id.clone(), id_cols.clone());
            std::thread::spawn(move || {
                let conn = open(&db);
                let mut rng = rand::thread_rng();
                let mut lat: Vec<u32> = Vec::with_capacity(1 << 16);
                let mut errors = 0u64;
                let mut n = 0u64;
                let insert_sql = |table: &str, cols: &[String]| {
                    format!("INSERT INTO `{table}` ({}) VALUES ({})", cols.iter().map(|c| format!("`{c}`")).collect::<Vec<_>>().join(", "), vec!["?"; cols.len()].join(", "))
                };
                let ins_identity = insert_sql("identities", &id_cols);
                let child_inserts: Vec<String> = children.iter().map(|(t, c, _)| insert_sql(t, c)).collect();
                let find = format!("SELECT {IDENTITY_COLS} FROM `identities` WHERE (((`identities`.`app_id` = ?) AND (`identities`.`deleted_at` IS NULL)) AND (`identities`.`id` = ?)) LIMIT ?");
                // As the server's get (db::identities::live_documents_of,
                // db::kyc::statuses_of, db::identities::metadata_of).
                let docs = format!("SELECT {DOC_COLS} FROM `documents` WHERE (((`documents`.`app_id` = ?) AND (`documents`.`identity_id` = ?)) AND (`documents`.`deleted_at` IS NULL)) ORDER BY `documents`.`position`");
                let verifs = "SELECT `verifications`.`id`, `verifications`.`identity_id`, `verifications`.`level`, `verifications`.`status`, `verifications`.`updated_at` FROM `verifications` WHERE ((`verifications`.`app_id` = ?) AND (`verifications`.`identity_id` = ?)) ORDER BY `verifications`.`created_at` DESC, `verifications`.`id` DESC";
                let metadata = "SELECT `identity_metadata`.`identity_id`, `identity_metadata`.`meta_key`, `identity_metadata`.`meta_value` FROM `identity_metadata` WHERE (((`identity_metadata`.`app_id` || ?) = ?) AND (`identity_metadata`.`identity_id` = ?)) ORDER BY `identity_metadata`.`meta_key`";
                while !stop.load(Ordering::Relaxed) {
                    let t0 = Instant::now();
                    let result: rusqlite::Result<()> = (|| {
                        // A get is one read transaction, key check included, as
                        // the server's keyed reads (auth::ApiKey::run); it ends
                        // (rolled back: nothing was written) when dropped.
                        let _read = if mode == "create" { None } else { Some(conn.unchecked_transaction()?) };
                        read_all(&mut *conn.prepare_cached(KEY_SQL)?, &[Value::Text(key_hash.clone()), Value::Integer(1)])?;
                        if mode == "create" {
                            let id = uuid7(&mut rng);
                            let mut row = template.clone();
                            row[0] = Value::Text(id.clone());
                            let local = format!("limit-{t}-{n}-{}", rng.gen::<u32>());
                            row[local_at] = Value::Text(local.chars().rev().collect());
                            row[domain_at] = Value::Text("bench.example".into());
                            row[email_at] = Value::Text(format!("{local}@bench.example"));
                            row[normalized_at] = Value::Text(format!("{local}@bench.example"));
                            if let Some(at) = search_at {
                                // Its insert trigger gives each identity a new one.
                                row[at] = Value::Null;
                            }
                            // Writers queue on an in-process mutex, as the server's
                            // do (Db::write), not in SQLite's sleeping busy handler.
                            let _turn = writers.lock().unwrap();
                            conn.execute_batch("BEGIN IMMEDIATE")?;
                            let r = (|| {
                                conn.prepare_cached(&ins_identity)?.execute(params_from_iter(row.iter()))?;
                                let mut new_ids: std::collections::HashMap<String, String> = Default::default();
                                for (i, (_table, cols, rows)) in children.iter().enumerate() {
                                    for r0 in rows {
                                        let mut r = r0.clone();
                                        for (c, v) in cols.iter().zip(r.iter_mut()) {
                                            match c.as_str() {
                                                "id" => {
                                                    let new = uuid4(&mut rng);
                                                    if let Value::Text(old) = &*v { new_ids.insert(old.clone(), new.clone()); }
                                                    *v = Value::Text(new);
                                                }
                                                "identity_id" => *v = Value::Text(id.clone()),
                                                "verification_id" => if let Value::Text(old) = &*v {
                                                    *v = Value::Text(new_ids.get(old).cloned().unwrap_or_default());
                                                },
                                                _ => {}
                                            }
                                        }
                                        conn.prepare_cached(&child_inserts[i])?.execute(params_from_iter(r.iter()))?;
                                    }
                                }
                                Ok(())
                            })();
                            match r {
                                Ok(()) => conn.execute_batch("COMMIT"),
                                Err(e) => {
                                    let _ = conn.execute_batch("ROLLBACK");
                                    Err(e)
                                }
                            }
                        } else {
                            let id = &ids[rng.gen_range(0..ids.len())];
                            let found = read_all(
                                &mut *conn.prepare_cached(&find)?,
                                &[app_id.clone(), Value::Text(id.clone()), Value::Integer(1)],
                            )?;
                            assert_eq!(found, 1, "id {id} not found");
                            let owner = [app_id.clone(), Value::Text(id.clone())];
                            read_all(&mut *conn.prepare_cached(&docs)?, &owner)?;
                            if has_verifications {
                                read_all(&mut *conn.prepare_cached(verifs)?, &owner)?;
                            }
                            let metadata_owner =
                                [Value::Text(String::new()), app_id.clone(), Value::Text(id.clone())];
                            read_all(&mut *conn.prepare_cached(metadata)?, &metadata_owner)?;
                            Ok(())
                        }
                    })();
                    if result.is_err() {
                        errors += 1;
                        if errors < 5 {
                            eprintln!("thread {t}: {:?}", result);
                        }
                    }
                    lat.push(t0.elapsed().as_micros() as u32);
                    n += 1;
                }
                (lat, errors)
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs_f64(seconds));
    stop.store(true, Ordering::Relaxed);
    let mut all = Vec::new();
    let mut errors = 0;
    for h in handles {
        let (l, e) = h.join().unwrap();
        all.extend(l);
        errors += e;
    }
    let elapsed = started.elapsed().as_secs_f64();
    all.sort_unstable();
    let pct = |p: f64| all.get(((all.len() as f64 * p) as usize).min(all.len().saturating_sub(1))).copied().unwrap_or(0) as f64 / 1000.0;
    println!(
        "{{\"mode\":\"{mode}\",\"threads\":{threads},\"seconds\":{elapsed:.2},\"tx\":{},\"errors\":{errors},\"tps\":{:.1},\"p50_ms\":{:.3},\"p99_ms\":{:.3}}}",
        all.len(),
        all.len() as f64 / elapsed,
        pct(0.50),
        pct(0.99)
    );
}
