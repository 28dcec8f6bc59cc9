//! What an event reports: its type, with the one text form used on the
//! wire (`identity.created`), in the database and in `filter[type]`.

use crate::domain::stored::text_enum;

text_enum! {
    #[strum(serialize_all = "snake_case")]
    pub enum EventType {
        #[strum(serialize = "identity.created")]
        #[serde(rename = "identity.created")]
        IdentityCreated,
        #[strum(serialize = "identity.updated")]
        #[serde(rename = "identity.updated")]
        IdentityUpdated,
        #[strum(serialize = "identity.deleted")]
        #[serde(rename = "identity.deleted")]
        IdentityDeleted,
        #[strum(serialize = "identity.erased")]
        #[serde(rename = "identity.erased")]
        IdentityErased,
        #[strum(serialize = "identity.blocked")]
        #[serde(rename = "identity.blocked")]
        IdentityBlocked,
        #[strum(serialize = "identity.unblocked")]
        #[serde(rename = "identity.unblocked")]
        IdentityUnblocked,
        #[strum(serialize = "identity.operations_changed")]
        #[serde(rename = "identity.operations_changed")]
        IdentityOperationsChanged,
        #[strum(serialize = "document.created")]
        #[serde(rename = "document.created")]
        DocumentCreated,
        #[strum(serialize = "document.deleted")]
        #[serde(rename = "document.deleted")]
        DocumentDeleted,
        #[strum(serialize = "verification.created")]
        #[serde(rename = "verification.created")]
        VerificationCreated,
        #[strum(serialize = "verification.status_changed")]
        #[serde(rename = "verification.status_changed")]
        VerificationStatusChanged,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_type_has_one_dotted_name() {
        for t in EventType::ALL {
            let name = t.as_str();
            assert!(name.contains('.'), "{name}");
            assert_eq!(EventType::parse(name), Some(*t));
            assert_eq!(serde_json::to_value(t).unwrap(), name);
        }
        assert_eq!(EventType::parse("Identity.Created"), None);
    }
}
