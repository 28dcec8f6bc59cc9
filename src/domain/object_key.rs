//! Object keys: where a stored file lives, namespaced by app.
//!
//! A key is never taken from a client: it is made by [`ObjectKey::new_upload`]
//! (random name, extension from the client's filename) or
//! [`ObjectKey::evidence_copy`], or read back by [`ObjectKey::parse`], which
//! accepts exactly the shapes these make: `apps/<appId>/documents/<uuid>.<ext>`
//! (an upload) and `apps/<appId>/evidence/<uuid>.<ext>` (the sealed copy of
//! an upload, made when a document is attached; no upload form ever names
//! one, so its bytes cannot be replaced), both ids lowercase hyphenated UUIDs,
//! `ext` one of `jpg`, `jpeg`, `png`, `pdf` in lowercase. Anything else (extra
//! or missing segments, `..`, percent-escapes, upper case, other UUID spellings)
//! is refused, so a key can be joined to a directory or a bucket prefix safely.

use std::fmt;

use uuid::Uuid;

use crate::domain::ids::AppId;

/// The content types the storage accepts, fixed by the key's extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ContentType {
    Jpeg,
    Png,
    Pdf,
}

impl ContentType {
    pub fn as_str(self) -> &'static str {
        match self {
            ContentType::Jpeg => "image/jpeg",
            ContentType::Png => "image/png",
            ContentType::Pdf => "application/pdf",
        }
    }

    /// The content type of a (lowercase) key extension.
    fn from_extension(ext: &str) -> Option<Self> {
        match ext {
            "jpg" | "jpeg" => Some(ContentType::Jpeg),
            "png" => Some(ContentType::Png),
            "pdf" => Some(ContentType::Pdf),
            _ => None,
        }
    }
}

impl fmt::Display for ContentType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A filename whose extension is not one the storage accepts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", unsupported_message(.extension.as_deref()))]
pub struct UnsupportedFileType {
    /// The extension found (as written), if the filename had one.
    pub extension: Option<String>,
}

fn unsupported_message(extension: Option<&str>) -> String {
    let allowed = ObjectKey::ALLOWED_EXTENSIONS.join(", ");
    match extension {
        Some(ext) => format!("file type \".{ext}\" is not accepted; allowed types: {allowed}"),
        None => format!("the filename has no extension; allowed types: {allowed}"),
    }
}

/// A string that is not a key of the shape
/// `apps/<appId>/{documents,evidence}/<uuid>.<ext>`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a valid object key")]
pub struct InvalidObjectKey;

/// What an object is for, named by its key's third segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ObjectKind {
    /// `documents`: what an upload form writes to.
    Upload,
    /// `evidence`: a document's sealed copy, written once by the server.
    Evidence,
}

impl ObjectKind {
    fn segment(self) -> &'static str {
        match self {
            ObjectKind::Upload => "documents",
            ObjectKind::Evidence => "evidence",
        }
    }

    fn of_segment(segment: &str) -> Option<Self> {
        match segment {
            "documents" => Some(ObjectKind::Upload),
            "evidence" => Some(ObjectKind::Evidence),
            _ => None,
        }
    }
}

/// Where one stored file lives: `apps/<appId>/<documents|evidence>/<uuid>.<ext>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ObjectKey {
    key: String,
    app_id: AppId,
    kind: ObjectKind,
    content_type: ContentType,
}

impl ObjectKey {
    /// Extensions accepted in an upload's filename (any letter case).
    pub const ALLOWED_EXTENSIONS: [&'static str; 4] = ["jpg", "jpeg", "png", "pdf"];

    /// A fresh key for a file the app `app_id` is about to upload. Only the
    /// extension of `filename` is used (case-insensitively); the name itself
    /// is random.
    pub fn new_upload(
        app_id: &AppId,
        filename: &str,
    ) -> Result<(ObjectKey, ContentType), UnsupportedFileType> {
        let extension = filename.rsplit_once('.').map(|(_, ext)| ext);
        let lower = extension.map(str::to_ascii_lowercase);
        let content_type = lower
            .as_deref()
            .and_then(ContentType::from_extension)
            .ok_or_else(|| UnsupportedFileType {
                extension: extension.map(str::to_owned),
            })?;
        let ext = lower.expect("a content type was found, so there is an extension");
        let key = ObjectKey::fresh(app_id, ObjectKind::Upload, &ext, content_type);
        Ok((key, content_type))
    }

    /// A fresh key for the sealed copy of this object: same app and
    /// extension, kind [`ObjectKind::Evidence`], a new random name.
    pub fn evidence_copy(&self) -> ObjectKey {
        let ext = self
            .key
            .rsplit_once('.')
            .map(|(_, ext)| ext)
            .expect("a parsed or made key has an extension");
        ObjectKey::fresh(&self.app_id, ObjectKind::Evidence, ext, self.content_type)
    }

    fn fresh(app_id: &AppId, kind: ObjectKind, ext: &str, content_type: ContentType) -> ObjectKey {
        ObjectKey {
            key: format!(
                "apps/{app_id}/{}/{}.{ext}",
                kind.segment(),
                Uuid::new_v4().hyphenated()
            ),
            app_id: app_id.clone(),
            kind,
            content_type,
        }
    }

    /// Reads back a key made by [`ObjectKey::new_upload`] or
    /// [`ObjectKey::evidence_copy`]; nothing else is accepted.
    pub fn parse(s: &str) -> Result<ObjectKey, InvalidObjectKey> {
        let mut parts = s.split('/');
        let (Some("apps"), Some(app), Some(kind), Some(file), None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return Err(InvalidObjectKey);
        };
        let kind = ObjectKind::of_segment(kind).ok_or(InvalidObjectKey)?;
        let app_id = AppId::from_uuid(canonical_uuid(app).ok_or(InvalidObjectKey)?);
        let (name, ext) = file.split_once('.').ok_or(InvalidObjectKey)?;
        canonical_uuid(name).ok_or(InvalidObjectKey)?;
        let content_type = ContentType::from_extension(ext).ok_or(InvalidObjectKey)?;
        Ok(ObjectKey {
            key: s.to_owned(),
            app_id,
            kind,
            content_type,
        })
    }

    pub fn kind(&self) -> ObjectKind {
        self.kind
    }

    /// The app whose file this is. Callers that accept a key (or an object
    /// URL) from a client must check this against the calling app.
    pub fn app_id(&self) -> &AppId {
        &self.app_id
    }

    pub fn as_str(&self) -> &str {
        &self.key
    }

    pub fn content_type(&self) -> ContentType {
        self.content_type
    }
}

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.key)
    }
}

/// A UUID in its canonical spelling (lowercase, hyphenated) only.
fn canonical_uuid(s: &str) -> Option<Uuid> {
    let id = Uuid::parse_str(s).ok()?;
    let mut buf = Uuid::encode_buffer();
    (id.hyphenated().encode_lower(&mut buf) == s).then_some(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    const APP: &str = "6f0c1f8e-3b7a-4d2e-9a51-0c2d4e6f8a10";
    const FILE: &str = "0b9e6d0e-2f1a-4c3b-8d7e-5a4b3c2d1e0f";

    fn app() -> AppId {
        AppId::parse(APP).unwrap()
    }

    #[test]
    fn new_upload_makes_a_namespaced_random_key() {
        let (key, ct) = ObjectKey::new_upload(&app(), "Passport Scan.JPG").unwrap();
        assert_eq!(ct, ContentType::Jpeg);
        assert_eq!(key.content_type(), ContentType::Jpeg);
        assert_eq!(key.app_id(), &app());
        let s = key.as_str();
        assert!(s.starts_with(&format!("apps/{APP}/documents/")), "{s}");
        assert!(s.ends_with(".jpg"), "{s}");
        assert!(!s.contains("Passport"));
        assert_eq!(ObjectKey::parse(s).unwrap(), key);
        let (other, _) = ObjectKey::new_upload(&app(), "Passport Scan.JPG").unwrap();
        assert_ne!(other, key, "names are random");
    }

    #[test]
    fn new_upload_maps_extensions_case_insensitively() {
        for (name, ct, ext) in [
            ("a.jpg", ContentType::Jpeg, "jpg"),
            ("a.JPEG", ContentType::Jpeg, "jpeg"),
            ("x.y.Png", ContentType::Png, "png"),
            ("scan.PDF", ContentType::Pdf, "pdf"),
            (".png", ContentType::Png, "png"),
        ] {
            let (key, got) = ObjectKey::new_upload(&app(), name).unwrap();
            assert_eq!(got, ct, "{name}");
            assert!(key.as_str().ends_with(&format!(".{ext}")), "{name}: {key}");
        }
        assert_eq!(ContentType::Jpeg.as_str(), "image/jpeg");
        assert_eq!(ContentType::Png.as_str(), "image/png");
        assert_eq!(ContentType::Pdf.as_str(), "application/pdf");
    }

    #[test]
    fn new_upload_refuses_other_types_listing_the_allowed_ones() {
        for name in [
            "a.gif",
            "a.svg",
            "a.html",
            "a.jpg.exe",
            "noext",
            "a.",
            "",
            "a.pdf/",
        ] {
            let err = ObjectKey::new_upload(&app(), name).unwrap_err();
            let msg = err.to_string();
            assert!(msg.contains("jpg, jpeg, png, pdf"), "{name}: {msg}");
        }
        let err = ObjectKey::new_upload(&app(), "photo.GIF").unwrap_err();
        assert_eq!(err.extension.as_deref(), Some("GIF"));
        assert_eq!(
            err.to_string(),
            "file type \".GIF\" is not accepted; allowed types: jpg, jpeg, png, pdf"
        );
        let err = ObjectKey::new_upload(&app(), "photo").unwrap_err();
        assert_eq!(err.extension, None);
    }

    #[test]
    fn parse_accepts_exactly_the_upload_and_evidence_shapes() {
        for ext in ["jpg", "jpeg", "png", "pdf"] {
            for (segment, kind) in [
                ("documents", ObjectKind::Upload),
                ("evidence", ObjectKind::Evidence),
            ] {
                let s = format!("apps/{APP}/{segment}/{FILE}.{ext}");
                let key = ObjectKey::parse(&s).unwrap();
                assert_eq!(key.as_str(), s);
                assert_eq!(key.app_id(), &app());
                assert_eq!(key.kind(), kind);
                assert_eq!(key.to_string(), s);
            }
        }
    }

    #[test]
    fn evidence_copies_keep_app_and_type_under_a_new_name() {
        let (upload, _) = ObjectKey::new_upload(&app(), "scan.JPEG").unwrap();
        assert_eq!(upload.kind(), ObjectKind::Upload);
        let sealed = upload.evidence_copy();
        assert_eq!(sealed.kind(), ObjectKind::Evidence);
        assert_eq!(sealed.app_id(), upload.app_id());
        assert_eq!(sealed.content_type(), ContentType::Jpeg);
        assert!(
            sealed
                .as_str()
                .starts_with(&format!("apps/{APP}/evidence/")),
            "{sealed}"
        );
        assert!(sealed.as_str().ends_with(".jpeg"), "{sealed}");
        assert_eq!(ObjectKey::parse(sealed.as_str()).unwrap(), sealed);
        assert_ne!(sealed.evidence_copy(), sealed);
    }

    #[test]
    fn parse_refuses_everything_else() {
        let other_app = "11111111-2222-4333-8444-555555555555";
        let bad = [
            String::new(),
            "apps".into(),
            format!("apps/{APP}/documents/{FILE}"),
            format!("apps/{APP}/documents/{FILE}.gif"),
            format!("apps/{APP}/documents/{FILE}.PNG"),
            format!("apps/{APP}/documents/{FILE}.png.png"),
            format!("apps/{APP}/documents/{FILE}.png/"),
            format!("/apps/{APP}/documents/{FILE}.png"),
            format!("apps/{APP}/documents//{FILE}.png"),
            format!("apps/{APP}/documents/x/{FILE}.png"),
            format!("apps/{APP}/documents/../../{other_app}/documents/{FILE}.png"),
            format!("apps/{APP}/../{other_app}/documents/{FILE}.png"),
            format!("apps/{APP}/documents/..%2f{FILE}.png"),
            format!("apps/{APP}/documents/%2e%2e.png"),
            format!("apps/{APP}/documents/...png"),
            format!("apps/{APP}/documents/..png"),
            format!("apps/{APP}/documents/{FILE}.png "),
            format!("apps/{APP}/documents/{FILE}.png\0"),
            format!("apps\\{APP}\\documents\\{FILE}.png"),
            format!("apps/{APP}/identities/{FILE}.png"),
            format!("apps/{APP}/Evidence/{FILE}.png"),
            format!("apps/{APP}/evidence/{FILE}"),
            format!("apps/{APP}/evidence/../documents/{FILE}.png"),
            format!("Apps/{APP}/documents/{FILE}.png"),
            format!("apps/{}/documents/{FILE}.png", APP.to_uppercase()),
            format!("apps/{{{APP}}}/documents/{FILE}.png"),
            format!("apps/{}/documents/{FILE}.png", APP.replace('-', "")),
            format!("apps/urn:uuid:{APP}/documents/{FILE}.png"),
            format!("apps/{APP}/documents/{}.png", FILE.to_uppercase()),
            format!("apps/{APP}/documents/passport.png"),
            format!("apps/../documents/{FILE}.png"),
            format!("./apps/{APP}/documents/{FILE}.png"),
        ];
        for s in &bad {
            assert_eq!(ObjectKey::parse(s), Err(InvalidObjectKey), "{s:?}");
        }
    }

    #[test]
    fn keys_of_other_apps_parse_but_name_their_app() {
        let other = AppId::new();
        let (key, _) = ObjectKey::new_upload(&other, "a.png").unwrap();
        let parsed = ObjectKey::parse(key.as_str()).unwrap();
        assert_eq!(parsed.app_id(), &other);
        assert_ne!(parsed.app_id(), &app());
    }
}
