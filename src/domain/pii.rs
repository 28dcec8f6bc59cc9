//! Which parts of an identity are personal data sealed at rest, and the
//! associated data each sealed value is bound to.
//!
//! The fields below are sealed under the identity's own data key
//! ([`DataKey`]) with `identities/<id>/<field>` as associated data, so a
//! sealed value copied to another identity or another field does not open.
//! `name`, `email`, the countries and `address.city` stay in the clear:
//! the list filters search them.

use crate::domain::crypto::{DataKey, OpenError};
use crate::domain::ids::IdentityId;

/// A field sealed at rest, by its wire name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PiiField {
    TaxIdNumber,
    TaxState,
    TaxFormationRegion,
    Birthday,
    PhoneNumber,
    AddressStreet,
    AddressPostalCode,
    AddressState,
}

impl PiiField {
    pub const ALL: [PiiField; 8] = [
        PiiField::TaxIdNumber,
        PiiField::TaxState,
        PiiField::TaxFormationRegion,
        PiiField::Birthday,
        PiiField::PhoneNumber,
        PiiField::AddressStreet,
        PiiField::AddressPostalCode,
        PiiField::AddressState,
    ];

    pub fn wire_name(self) -> &'static str {
        match self {
            PiiField::TaxIdNumber => "tax.idNumber",
            PiiField::TaxState => "tax.state",
            PiiField::TaxFormationRegion => "tax.formationRegion",
            PiiField::Birthday => "birthday",
            PiiField::PhoneNumber => "phone.number",
            PiiField::AddressStreet => "address.street",
            PiiField::AddressPostalCode => "address.postalCode",
            PiiField::AddressState => "address.state",
        }
    }
}

/// The associated data of a sealed field.
fn field_context(identity: &IdentityId, field: PiiField) -> Vec<u8> {
    format!("identities/{identity}/{}", field.wire_name()).into_bytes()
}

/// The associated data of an identity's wrapped data key.
pub fn key_context(identity: &IdentityId) -> Vec<u8> {
    format!("identity_keys/{identity}").into_bytes()
}

/// The associated data of a document's sealed bytes: the identity and the
/// object's key, so bytes copied to another object or identity do not open.
pub fn document_context(identity: &IdentityId, object_key: &str) -> Vec<u8> {
    format!("identities/{identity}/objects/{object_key}").into_bytes()
}

/// Seals one field's value for the identity.
pub fn seal_field(key: &DataKey, identity: &IdentityId, field: PiiField, clear: &str) -> String {
    key.seal_text(clear, &field_context(identity, field))
}

/// Opens one field's stored value. A value stored before encryption at
/// rest (not sealed) is read as it is; a sealed value needs the identity's
/// key.
pub fn open_field(
    key: Option<&DataKey>,
    identity: &IdentityId,
    field: PiiField,
    stored: &str,
) -> Result<String, OpenError> {
    if !DataKey::is_sealed_text(stored) {
        return Ok(stored.to_owned());
    }
    let key = key.ok_or_else(|| OpenError::UnknownKey(format!("data key of {identity}")))?;
    key.open_text(stored, &field_context(identity, field))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::crypto::KeyRing;

    fn data_key() -> DataKey {
        KeyRing::single("t", &[7; 32])
            .unwrap()
            .new_data_key(b"identity_keys/x")
            .0
    }

    #[test]
    fn a_field_opens_only_for_its_identity_and_field() {
        let key = data_key();
        let a = IdentityId::new();
        let b = IdentityId::new();
        let sealed = seal_field(&key, &a, PiiField::TaxIdNumber, "123-45-6789");
        assert!(!sealed.contains("123"));
        assert_eq!(
            open_field(Some(&key), &a, PiiField::TaxIdNumber, &sealed).unwrap(),
            "123-45-6789"
        );
        assert!(open_field(Some(&key), &b, PiiField::TaxIdNumber, &sealed).is_err());
        assert!(open_field(Some(&key), &a, PiiField::PhoneNumber, &sealed).is_err());
        assert!(open_field(Some(&data_key()), &a, PiiField::TaxIdNumber, &sealed).is_err());
        assert!(open_field(None, &a, PiiField::TaxIdNumber, &sealed).is_err());
    }

    #[test]
    fn values_stored_before_encryption_read_as_they_are() {
        let a = IdentityId::new();
        assert_eq!(
            open_field(None, &a, PiiField::AddressStreet, "1 Main St").unwrap(),
            "1 Main St"
        );
    }

    #[test]
    fn every_field_has_its_own_wire_name() {
        let names: std::collections::HashSet<_> =
            PiiField::ALL.iter().map(|f| f.wire_name()).collect();
        assert_eq!(names.len(), PiiField::ALL.len());
    }
}
