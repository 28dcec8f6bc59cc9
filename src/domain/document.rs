//! Identity documents: what kind of paper (or face image) a record is, and
//! which side of it.
//!
//! The wire contract takes PascalCase on input (`IdentityCard`, `FrontSide`,
//! in any letter case) and answers camelCase (`identityCard`, `frontSide`),
//! as the PublicMint reference does. The database stores the camelCase form.

use serde::{Serialize, Serializer};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
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

    pub fn as_str(self) -> &'static str {
        match self {
            DocumentType::DriverLicense => "driverLicense",
            DocumentType::IdentityCard => "identityCard",
            DocumentType::Other => "other",
            DocumentType::Passport => "passport",
            DocumentType::ResidencePermit => "residencePermit",
            DocumentType::UtilityBill => "utilityBill",
            DocumentType::FaceImage => "faceImage",
        }
    }

    /// The PascalCase name used on input and in configuration files.
    pub fn input_name(self) -> &'static str {
        match self {
            DocumentType::DriverLicense => "DriverLicense",
            DocumentType::IdentityCard => "IdentityCard",
            DocumentType::Other => "Other",
            DocumentType::Passport => "Passport",
            DocumentType::ResidencePermit => "ResidencePermit",
            DocumentType::UtilityBill => "UtilityBill",
            DocumentType::FaceImage => "FaceImage",
        }
    }

    /// Parses a client-supplied `documents[].type` (any letter case).
    /// `FaceImage` is not accepted here: face images arrive in `faceImages[]`.
    pub fn parse_input(s: &str) -> Option<Self> {
        Self::UPLOADABLE
            .into_iter()
            .find(|t| t.input_name().eq_ignore_ascii_case(s))
    }

    /// Parses the stored (camelCase) form.
    pub fn from_stored(s: &str) -> Option<Self> {
        Self::UPLOADABLE
            .into_iter()
            .chain([DocumentType::FaceImage])
            .find(|t| t.as_str() == s)
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

impl Serialize for DocumentType {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DocumentSide {
    FrontSide,
    BackSide,
}

impl DocumentSide {
    pub fn as_str(self) -> &'static str {
        match self {
            DocumentSide::FrontSide => "frontSide",
            DocumentSide::BackSide => "backSide",
        }
    }

    pub fn parse_input(s: &str) -> Option<Self> {
        [DocumentSide::FrontSide, DocumentSide::BackSide]
            .into_iter()
            .find(|side| side.as_str().eq_ignore_ascii_case(s))
    }

    pub fn from_stored(s: &str) -> Option<Self> {
        [DocumentSide::FrontSide, DocumentSide::BackSide]
            .into_iter()
            .find(|side| side.as_str() == s)
    }
}

impl Serialize for DocumentSide {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
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
    }

    #[test]
    fn stored_form_round_trips() {
        for t in DocumentType::UPLOADABLE
            .into_iter()
            .chain([DocumentType::FaceImage])
        {
            assert_eq!(DocumentType::from_stored(t.as_str()), Some(t));
        }
    }
}
