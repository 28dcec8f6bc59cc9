//! Which database a `DATABASE_URL` names.

use std::path::PathBuf;

use anyhow::bail;

/// Where the data lives, decided by the URL scheme.
///
/// `Debug` prints the URL with its password hidden (see `redacted`), so a
/// settings dump cannot leak the database password into a log.
#[derive(Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    Postgres(String),
    Sqlite(PathBuf),
}

impl std::fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DatabaseUrl({})", self.redacted())
    }
}

impl DatabaseUrl {
    /// `postgres://` / `postgresql://` URLs (scheme in any letter case) and
    /// libpq keyword/value strings (`host=db dbname=kyc user=kyc`) select
    /// PostgreSQL; `sqlite://path`, `sqlite:path` or a bare file path select
    /// SQLite.
    pub fn parse(url: &str) -> anyhow::Result<Self> {
        let url = url.trim();
        for scheme in ["postgres://", "postgresql://"] {
            if url.len() >= scheme.len() && url[..scheme.len()].eq_ignore_ascii_case(scheme) {
                let url = format!("{scheme}{}", &url[scheme.len()..]);
                return Ok(DatabaseUrl::Postgres(with_libpq_defaults(&url)));
            }
        }
        if is_libpq_keywords(url) {
            return Ok(DatabaseUrl::Postgres(with_libpq_keyword_defaults(url)));
        }
        let path = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
            .unwrap_or(url);
        if path.is_empty() {
            bail!("the SQLite database path is empty");
        }
        if path == ":memory:" || path.contains("mode=memory") {
            // Each pooled connection would get its own empty database.
            bail!("in-memory SQLite is not supported; give a file path");
        }
        if path.contains("://") {
            bail!(
                "unsupported database URL scheme in `{}`; use postgres:// or sqlite://",
                redact_password(url)
            );
        }
        Ok(DatabaseUrl::Sqlite(PathBuf::from(path)))
    }

    pub fn backend_name(&self) -> &'static str {
        match self {
            DatabaseUrl::Postgres(_) => "postgresql",
            DatabaseUrl::Sqlite(_) => "sqlite",
        }
    }

    /// The URL with any password removed, for logs.
    pub fn redacted(&self) -> String {
        match self {
            DatabaseUrl::Sqlite(path) => format!("sqlite://{}", path.display()),
            DatabaseUrl::Postgres(raw) if is_libpq_keywords(raw) => raw
                .split_whitespace()
                .map(|pair| match pair.split_once('=') {
                    Some(("password", _)) => "password=***",
                    _ => pair,
                })
                .collect::<Vec<_>>()
                .join(" "),
            DatabaseUrl::Postgres(raw) => redact_password(raw),
        }
    }
}

fn redact_password(raw: &str) -> String {
    match url::Url::parse(raw) {
        Ok(mut parsed) => {
            if parsed.password().is_some() {
                let _ = parsed.set_password(Some("***"));
            }
            // libpq also takes the password as a query parameter.
            if parsed.query_pairs().any(|(k, _)| k == "password") {
                let pairs: Vec<(String, String)> = parsed
                    .query_pairs()
                    .map(|(k, v)| {
                        let v = if k == "password" { "***".into() } else { v };
                        (k.into_owned(), v.into_owned())
                    })
                    .collect();
                parsed.query_pairs_mut().clear().extend_pairs(pairs);
            }
            parsed.to_string()
        }
        Err(_) => "<unparseable database URL>".to_string(),
    }
}

/// libpq settings added to a PostgreSQL URL that does not set them (libpq
/// would otherwise wait for the operating system's TCP timeouts, minutes,
/// on a host that drops packets): give up
/// connecting after 5 s, and find a dead peer by TCP keepalives (probe after
/// 30 s idle, every 10 s, 3 misses) and by unacknowledged data
/// (`tcp_user_timeout`, 30 s), so a connection to a server that vanished
/// errors instead of waiting forever.
const LIBPQ_DEFAULTS: &[(&str, &str)] = &[
    ("connect_timeout", "5"),
    ("keepalives", "1"),
    ("keepalives_idle", "30"),
    ("keepalives_interval", "10"),
    ("keepalives_count", "3"),
    ("tcp_user_timeout", "30000"),
];

fn with_libpq_defaults(url: &str) -> String {
    let mut url = url.to_string();
    for (name, value) in LIBPQ_DEFAULTS {
        let given = url
            .split(['?', '&'])
            .skip(1)
            .any(|pair| pair.split('=').next() == Some(*name));
        if !given {
            let separator = if url.contains('?') { '&' } else { '?' };
            url = format!("{url}{separator}{name}={value}");
        }
    }
    url
}

/// `host=db dbname=kyc`: every whitespace-separated part is `keyword=value`
/// with a libpq keyword (a file path has no such shape).
fn is_libpq_keywords(s: &str) -> bool {
    const KEYWORDS: &[&str] = &[
        "host",
        "hostaddr",
        "port",
        "dbname",
        "user",
        "password",
        "sslmode",
        "application_name",
        "options",
        "connect_timeout",
        "service",
        "target_session_attrs",
        "sslrootcert",
        "sslcert",
        "sslkey",
        "keepalives",
        "keepalives_idle",
        "keepalives_interval",
        "keepalives_count",
        "tcp_user_timeout",
        "passfile",
        "channel_binding",
        "gssencmode",
    ];
    !s.contains("://")
        && s.split_whitespace().all(|pair| {
            pair.split_once('=')
                .is_some_and(|(key, _)| KEYWORDS.contains(&key))
        })
}

fn with_libpq_keyword_defaults(s: &str) -> String {
    let mut out = s.to_string();
    for (name, value) in LIBPQ_DEFAULTS {
        let given = s
            .split_whitespace()
            .any(|pair| pair.split('=').next() == Some(*name));
        if !given {
            out = format!("{out} {name}={value}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schemes_in_any_case_and_keyword_strings_are_postgres() {
        assert!(matches!(
            DatabaseUrl::parse("POSTGRES://u@h/db").unwrap(),
            DatabaseUrl::Postgres(u) if u.starts_with("postgres://u@h/db?")
        ));
        let parsed =
            DatabaseUrl::parse("host=db.internal dbname=kyc user=kyc password=s3cret").unwrap();
        match &parsed {
            DatabaseUrl::Postgres(u) => {
                assert!(u.starts_with("host=db.internal dbname=kyc user=kyc password=s3cret "));
                assert!(
                    u.contains(" connect_timeout=5") && u.contains(" keepalives=1"),
                    "{u}"
                );
            }
            other => panic!("{other:?}"),
        }
        assert!(
            !parsed.redacted().contains("s3cret"),
            "{}",
            parsed.redacted()
        );
        assert!(!format!("{parsed:?}").contains("s3cret"));
        assert!(matches!(
            DatabaseUrl::parse("data/kyc.db").unwrap(),
            DatabaseUrl::Sqlite(_)
        ));
    }

    #[test]
    fn url_scheme_selects_the_backend() {
        assert!(matches!(
            DatabaseUrl::parse("postgres://u@h/db").unwrap(),
            DatabaseUrl::Postgres(u) if u == "postgres://u@h/db?connect_timeout=5&keepalives=1&keepalives_idle=30&keepalives_interval=10&keepalives_count=3&tcp_user_timeout=30000"
        ));
        assert!(matches!(
            DatabaseUrl::parse("postgresql://u@h/db?sslmode=disable&connect_timeout=2").unwrap(),
            DatabaseUrl::Postgres(u) if u.contains("connect_timeout=2&") && !u.contains("connect_timeout=5")
        ));
        assert_eq!(
            DatabaseUrl::parse("sqlite://data/kyc.db").unwrap(),
            DatabaseUrl::Sqlite("data/kyc.db".into())
        );
        assert_eq!(
            DatabaseUrl::parse("kyc.db").unwrap(),
            DatabaseUrl::Sqlite("kyc.db".into())
        );
        assert!(DatabaseUrl::parse("sqlite://:memory:").is_err());
        assert!(DatabaseUrl::parse("mysql://h/db").is_err());
    }

    #[test]
    fn redaction_hides_passwords() {
        let url = DatabaseUrl::parse("postgres://user:secret@host/db").unwrap();
        assert!(!url.redacted().contains("secret"));
        let url = DatabaseUrl::parse("postgres://user@host/db?password=secret").unwrap();
        assert!(!url.redacted().contains("secret"));
    }

    #[test]
    fn debug_never_shows_the_password() {
        for raw in [
            "postgres://user:hunter2@host/db",
            "postgres://user@host/db?password=hunter2&sslmode=require",
        ] {
            let url = DatabaseUrl::parse(raw).unwrap();
            let printed = format!("{url:?}");
            assert!(!printed.contains("hunter2"), "{printed}");
            assert!(printed.contains("host"), "{printed}");
        }
        let err = DatabaseUrl::parse("mysql://u:hunter2@h/db").unwrap_err();
        assert!(!err.to_string().contains("hunter2"), "{err}");
    }
}
