//! Database errors that are faults of the database or its disk, not of the
//! query: they are answered 503 (retry later), and the connection that met
//! one is dropped from the pool, so that a fault that has passed (a disk
//! made writable again, space freed, a server back) does not live on in a
//! pooled connection.
//!
//! SQLite's messages are fixed English strings (`sqlite3_errstr`).
//! PostgreSQL's follow the server's `lc_messages`; Diesel gives the message
//! but not the SQLSTATE, so the PostgreSQL classes below are recognised in
//! English (the default `C` locale) and otherwise fall back to 500.

use diesel::result::{DatabaseErrorKind, Error};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The server or the file cannot be reached, or the connection is gone.
    Unavailable,
    /// A statement, lock or busy wait ran out of time.
    Timeout,
    /// The database cannot be written (read-only file or disk, standby).
    ReadOnly,
    /// The database or its disk is full.
    Full,
}

/// The fault class of a database error, or `None` for an error of the
/// query itself (a constraint, a bug).
pub fn fault_of(err: &Error) -> Option<Fault> {
    let (kind, message) = match err {
        Error::DatabaseError(kind, info) => (kind, info.message()),
        _ => return None,
    };
    match kind {
        DatabaseErrorKind::ClosedConnection | DatabaseErrorKind::UnableToSendCommand => {
            return Some(Fault::Unavailable)
        }
        DatabaseErrorKind::ReadOnlyTransaction => return Some(Fault::ReadOnly),
        _ => {}
    }
    const CLASSES: &[(&str, Fault)] = &[
        // SQLite
        ("attempt to write a readonly database", Fault::ReadOnly),
        ("database or disk is full", Fault::Full),
        ("disk I/O error", Fault::Unavailable),
        ("unable to open database file", Fault::Unavailable),
        ("database is locked", Fault::Timeout),
        // PostgreSQL
        (
            "canceling statement due to statement timeout",
            Fault::Timeout,
        ),
        ("canceling statement due to lock timeout", Fault::Timeout),
        // Two transactions waited on each other; PostgreSQL aborted this
        // one. Nothing was changed and a retry succeeds.
        ("deadlock detected", Fault::Timeout),
        ("could not serialize access", Fault::Timeout),
        ("idle-in-transaction timeout", Fault::Unavailable),
        ("could not extend file", Fault::Full),
        ("No space left on device", Fault::Full),
        (
            "server closed the connection unexpectedly",
            Fault::Unavailable,
        ),
        ("terminating connection", Fault::Unavailable),
        ("read-only transaction", Fault::ReadOnly),
    ];
    CLASSES
        .iter()
        .find(|(text, _)| message.contains(text))
        .map(|&(_, fault)| fault)
}

/// Errors that can say whether the connection they happened on should be
/// dropped rather than reused.
pub trait ConnectionFault {
    fn is_connection_fault(&self) -> bool;
}

impl ConnectionFault for Error {
    fn is_connection_fault(&self) -> bool {
        fault_of(self).is_some()
    }
}

impl ConnectionFault for anyhow::Error {
    fn is_connection_fault(&self) -> bool {
        self.chain()
            .filter_map(|cause| cause.downcast_ref::<Error>())
            .any(ConnectionFault::is_connection_fault)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn database_error(kind: DatabaseErrorKind, message: &str) -> Error {
        Error::DatabaseError(kind, Box::new(message.to_string()))
    }

    #[test]
    fn faults_are_told_from_query_errors() {
        use DatabaseErrorKind::*;
        let cases = [
            (
                Unknown,
                "attempt to write a readonly database",
                Some(Fault::ReadOnly),
            ),
            (Unknown, "database or disk is full", Some(Fault::Full)),
            (Unknown, "database is locked", Some(Fault::Timeout)),
            (
                Unknown,
                "canceling statement due to lock timeout",
                Some(Fault::Timeout),
            ),
            (Unknown, "deadlock detected", Some(Fault::Timeout)),
            (ClosedConnection, "server closed", Some(Fault::Unavailable)),
            (UniqueViolation, "duplicate key value", None),
            (Unknown, "no such column: x", None),
        ];
        for (kind, message, fault) in cases {
            assert_eq!(fault_of(&database_error(kind, message)), fault, "{message}");
        }
        assert_eq!(fault_of(&Error::NotFound), None);
        let wrapped = anyhow::Error::new(database_error(Unknown, "database or disk is full"))
            .context("creating an app");
        assert!(wrapped.is_connection_fault());
    }
}
