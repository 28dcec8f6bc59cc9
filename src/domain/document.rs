//! Identity documents: what kind of paper (or face image) a record is, and
//! which side of it.
//!
//! The wire contract takes PascalCase on input (`IdentityCard`, `FrontSide`,
//! in any letter case) and answers camelCase (`identityCard`, `frontSide`),
//! as the PublicMint reference does. The database stores the camelCase form.

use crate::domain::identity::DocumentUrl;
use crate::domain::object_key::ObjectKey;
use crate::domain::stored::text_enum;

text_enum! {
    #[serde(rename_all = "camelCase")]
    #[strum(serialize_all = "camelCase")]
    pub enum DocumentType {
        DriverLicense,
        IdentityCard,
        Other,
        Passport,
        ResidencePermit,
        UtilityBill,
        /// Never accepted in `documents[]`; created from `faceImages[]`.
        FaceImage,
    }
}

impl DocumentType {
    /// Types a client may send in `documents[].type`.
    pub const UPLOADABLE: [DocumentType; 6] = [
        DocumentType::DriverLicense,
        DocumentType::IdentityCard,
        DocumentType::Other,
        DocumentType::Passport,
        DocumentType::ResidencePermit,
        DocumentType::UtilityBill,
    ];

    /// The PascalCase name used on input and in configuration files.
    pub fn input_name(self) -> String {
        let stored = self.as_str();
        stored[..1].to_ascii_uppercase() + &stored[1..]
    }

    /// Parses a client-supplied `documents[].type` (any letter case).
    /// `FaceImage` is not accepted here: face images arrive in `faceImages[]`.
    pub fn parse_input(s: &str) -> Option<Self> {
        Self::UPLOADABLE
            .into_iter()
            .find(|t| t.as_str().eq_ignore_ascii_case(s))
    }

    /// Documents that prove who the person is (one of them, plus a face
    /// image, is what a `basic` verification needs).
    pub fn is_identity_document(self) -> bool {
        matches!(
            self,
            DocumentType::Passport
                | DocumentType::IdentityCard
                | DocumentType::DriverLicense
                | DocumentType::ResidencePermit
        )
    }
}

text_enum! {
    #[serde(rename_all = "camelCase")]
    #[strum(serialize_all = "camelCase")]
    pub enum DocumentSide {
        FrontSide,
        BackSide,
    }
}

impl DocumentSide {
    /// Parses a client-supplied `documents[].side` (any letter case).
    pub fn parse_input(s: &str) -> Option<Self> {
        Self::ALL
            .iter()
            .copied()
            .find(|side| side.as_str().eq_ignore_ascii_case(s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_names_are_case_insensitive_and_face_image_is_not_uploadable() {
        assert_eq!(
            DocumentType::parse_input("identitycard"),
            Some(DocumentType::IdentityCard)
        );
        assert_eq!(
            DocumentType::parse_input("UTILITYBILL"),
            Some(DocumentType::UtilityBill)
        );
        assert_eq!(DocumentType::parse_input("FaceImage"), None);
        assert_eq!(
            DocumentSide::parse_input("frontside"),
            Some(DocumentSide::FrontSide)
        );
        assert_eq!(DocumentSide::parse_input("middle"), None);
        assert_eq!(
            DocumentType::ResidencePermit.input_name(),
            "ResidencePermit"
        );
        assert_eq!(DocumentType::FaceImage.input_name(), "FaceImage");
    }

    #[test]
    fn stored_form_round_trips() {
        for t in DocumentType::UPLOADABLE
            .into_iter()
            .chain([DocumentType::FaceImage])
        {
            assert_eq!(DocumentType::parse(t.as_str()), Some(t));
        }
    }
}

/// Where a document's bytes are, as stored in `documents.url`: a key of our
/// storage (stored as the bare key, so the URL answered is built from the
/// current storage settings, and a new `KYC_PUBLIC_URL`, port or proxy never
/// strands a document), or an external https URL the client gave.
#[derive(
    Debug, Clone, PartialEq, Eq, diesel::expression::AsExpression, diesel::deserialize::FromSqlRow,
)]
#[diesel(sql_type = diesel::sql_types::Text)]
pub enum DocumentLocation {
    /// The sealed copy in our storage (or, for documents attached before
    /// sealing existed, the upload itself).
    Stored(ObjectKey),
    /// A URL outside our storage, kept as sent (normalized).
    External(DocumentUrl),
}

impl crate::domain::stored::StoredText for DocumentLocation {
    fn stored(&self) -> &str {
        match self {
            DocumentLocation::Stored(key) => key.as_str(),
            DocumentLocation::External(url) => url.as_str(),
        }
    }

    /// Keys never start with a scheme; external URLs always do.
    fn from_stored(s: &str) -> Option<Self> {
        if s.starts_with("http://") || s.starts_with("https://") {
            // What `DocumentUrl::parse` stores is read as it is; anything
            // else (a row from before URLs were normalized) is parsed again.
            DocumentUrl::from_stored(s)
                .or_else(|| DocumentUrl::parse(s).ok())
                .map(DocumentLocation::External)
        } else {
            ObjectKey::parse(s).ok().map(DocumentLocation::Stored)
        }
    }
}
