//! The identity: a person or a company, as the PublicMint contract shapes
//! it. `parse_identity` is the one way in; past it, nothing holds invalid
//! data.

use chrono::NaiveDate;
use serde::Serialize;
use serde_json::Value;
use validator::ValidateEmail;

use super::document::{DocumentSide, DocumentType};
use super::ids::IdentityId;
use super::input::{bounded_text, join, required, type_name, Errors, Field, ObjectReader};
use super::metadata::MetadataChanges;
use super::stored::StoredText;
use crate::domain::errors::FieldError;
use crate::domain::stored::text_enum;

pub const MIN_AGE: u32 = 18;
pub const MAX_AGE: u32 = 99;
/// Per identity and request: more is a client bug, not a real identity.
pub const MAX_DOCUMENTS: usize = 20;
pub const MAX_URL_LEN: usize = 2048;

/// Characters a WHATWG-normalised URL may still contain that are not valid
/// in an RFC 3986 URI.
const RFC3986_LEFTOVERS: &percent_encoding::AsciiSet = &percent_encoding::CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'<')
    .add(b'>')
    .add(b'\\')
    .add(b'^')
    .add(b'`')
    .add(b'{')
    .add(b'|')
    .add(b'}');

text_enum! {
    #[serde(rename_all = "lowercase")]
    #[strum(serialize_all = "lowercase")]
    pub enum IdentityKind {
        Person,
        Company,
    }
}

text_enum! {
    /// `Male`, `Female` or `Undefined`; input in any letter case.
    pub enum Gender {
        Male,
        Female,
        Undefined,
    }
}

impl Gender {
    /// Accepts any letter case (`male`, `MALE`), answers `Male`.
    pub fn parse_input(s: &str) -> Option<Self> {
        Self::ALL
            .iter()
            .copied()
            .find(|g| g.as_str().eq_ignore_ascii_case(s))
    }
}

/// An ISO 3166-1 alpha-2 code, upper case.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    diesel::expression::AsExpression,
    diesel::deserialize::FromSqlRow,
)]
#[diesel(sql_type = diesel::sql_types::Text)]
pub struct Country(&'static str);

impl StoredText for Country {
    fn stored(&self) -> &str {
        self.0
    }

    fn from_stored(s: &str) -> Option<Self> {
        Self::parse(s)
    }
}

impl Serialize for Country {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.0)
    }
}

impl Country {
    /// Two ASCII letters in any case, as ISO 3166-1 alpha-2 (no Unicode
    /// case mapping: "ß" is not "SS"). Every stored row's countries are
    /// parsed again when read, so this is on the path of every list and
    /// stream: a binary search of the codes in alpha-2 order, where
    /// `for_alpha2_caseless` allocates an upper-cased copy and then compares
    /// it with each code in turn (2.3 % of the server's CPU in an `all=true`
    /// stream).
    pub fn parse(s: &str) -> Option<Self> {
        let [a, b] = <[u8; 2]>::try_from(s.as_bytes()).ok()?;
        let upper = [a.to_ascii_uppercase(), b.to_ascii_uppercase()];
        let upper = std::str::from_utf8(&upper).ok()?;
        let codes = isocountry::CountryCode::as_array_alpha2();
        codes
            .binary_search_by(|code| code.alpha2().cmp(upper))
            .ok()
            .map(|at| Country(codes[at].alpha2()))
    }

    pub fn as_str(self) -> &'static str {
        self.0
    }

    pub fn is_us(self) -> bool {
        self.0 == "US"
    }
}

/// The client's own id for a customer: 1 to 128 characters of
/// `A-Z a-z 0-9 . _ : -`, compared exactly.
#[derive(
    Debug,
    Clone,
    PartialEq,
    Eq,
    Serialize,
    diesel::expression::AsExpression,
    diesel::deserialize::FromSqlRow,
)]
#[diesel(sql_type = diesel::sql_types::Text)]
#[serde(transparent)]
pub struct RefId(String);

impl RefId {
    pub const MAX_LEN: usize = 128;

    pub fn parse(s: &str) -> Result<Self, &'static str> {
        if s.is_empty() || s.len() > Self::MAX_LEN {
            return Err("must be 1 to 128 characters");
        }
        if !s
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
        {
            return Err("may hold only letters, digits and . _ : -");
        }
        Ok(RefId(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl StoredText for RefId {
    fn stored(&self) -> &str {
        &self.0
    }

    fn from_stored(s: &str) -> Option<Self> {
        RefId::parse(s).ok()
    }
}

/// As sent (trimmed); compared through `normalized`.
#[derive(
    Debug,
    Clone,
    PartialEq,
    Eq,
    Serialize,
    diesel::expression::AsExpression,
    diesel::deserialize::FromSqlRow,
)]
#[diesel(sql_type = diesel::sql_types::Text)]
#[serde(transparent)]
pub struct Email(String);

impl StoredText for Email {
    fn stored(&self) -> &str {
        &self.0
    }

    /// Stored addresses were checked by `parse` when they were written; an
    /// address the validator has since become stricter about must still
    /// read back.
    fn from_stored(s: &str) -> Option<Self> {
        (!s.is_empty()).then(|| Email(s.to_string()))
    }
}

impl Email {
    pub fn parse(s: &str) -> Result<Self, String> {
        let s = bounded_text(s, 254)?;
        if !s.validate_email() {
            return Err("must be an email address".into());
        }
        Ok(Email(s))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The form two addresses are compared in (the unique index, exact
    /// filters): Unicode lowercase, as Rust defines it, on both backends.
    /// `Dora@MÜNCHEN.de` and `dora@münchen.de` are one address.
    pub fn normalized(&self) -> String {
        Self::normalize(&self.0)
    }

    /// `normalized` for any text (a filter value, a stored row).
    pub fn normalize(raw: &str) -> String {
        raw.trim().to_lowercase()
    }

    /// The keys that `@`-patterns of `filter[email]=like:` search by index.
    pub fn search_keys(&self) -> crate::domain::email_search::EmailKeys {
        crate::domain::email_search::EmailKeys::of(&self.0)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Address {
    pub street: String,
    pub city: String,
    pub state: Option<String>,
    pub postal_code: String,
    pub country: Country,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Phone {
    pub number: String,
    pub sms: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tax {
    pub country: Country,
    pub id_number: String,
    pub state: Option<String>,
    pub formation_region: Option<String>,
}

/// An absolute http(s) URL of bounded length.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocumentUrl(String);

impl DocumentUrl {
    /// Parses and normalises (scheme and host lower case, IDN hosts in
    /// punycode, unsafe characters percent-encoded), so what is stored and
    /// answered is always a valid URI.
    pub fn parse(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if s.len() > MAX_URL_LEN {
            return Err(format!("must be at most {MAX_URL_LEN} characters"));
        }
        let url = url::Url::parse(s).map_err(|_| "must be an absolute http(s) URL".to_string())?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none_or(str::is_empty) {
            return Err("must be an absolute http(s) URL".into());
        }
        // WHATWG parsing (the url crate) leaves a few characters that RFC 3986
        // forbids (`|`, `^`, `{`, ...); encode those too, keeping existing
        // `%XX` escapes as they are.
        let normalised =
            percent_encoding::utf8_percent_encode(url.as_str(), RFC3986_LEFTOVERS).to_string();
        if normalised.len() > MAX_URL_LEN {
            return Err(format!(
                "must be at most {MAX_URL_LEN} characters once encoded"
            ));
        }
        Ok(DocumentUrl(normalised))
    }

    /// A URL as stored: [`DocumentUrl::parse`]'s output read back. Every
    /// document of a list is read this way, so it is checked for the shape
    /// `parse` gives (http(s), a host, within the length, nothing left to
    /// percent-encode) without parsing it again with the `url` crate, which
    /// cost 8 % of an `all=true` download.
    pub fn from_stored(s: &str) -> Option<Self> {
        let rest = s
            .strip_prefix("https://")
            .or_else(|| s.strip_prefix("http://"))?;
        let encoded = percent_encoding::utf8_percent_encode(s, RFC3986_LEFTOVERS);
        let normal = matches!(
            std::borrow::Cow::from(encoded),
            std::borrow::Cow::Borrowed(_)
        );
        let has_host = !rest.is_empty() && !rest.starts_with(['/', '?', '#']);
        (s.len() <= MAX_URL_LEN && normal && has_host).then(|| DocumentUrl(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn is_https(&self) -> bool {
        self.0.starts_with("https://")
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocumentInput {
    pub document_type: DocumentType,
    pub side: DocumentSide,
    pub label: Option<String>,
    pub description: Option<String>,
    pub url: DocumentUrl,
}

/// A complete, valid identity (without ids and times).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityData {
    pub kind: IdentityKind,
    pub name: String,
    pub email: Email,
    pub birthday: Option<NaiveDate>,
    pub gender: Option<Gender>,
    pub address: Address,
    pub phone: Phone,
    pub tax: Tax,
    pub identity_owner: Option<IdentityId>,
    pub ref_id: Option<RefId>,
}

/// A create (or the result of a patch) with the document sets it sends;
/// `None` means "not sent" (a patch keeps the current set).
#[derive(Debug, Clone)]
pub struct IdentityInput {
    pub data: IdentityData,
    /// The metadata keys sent: set, or (`None`) deleted; `None` when the
    /// body sends no `metadata`.
    pub metadata: Option<MetadataChanges>,
    pub documents: Option<Vec<DocumentInput>>,
    pub face_images: Option<Vec<DocumentUrl>>,
}

impl IdentityInput {
    /// Every document URL the input sends, with the field it came in:
    /// `documents[i].url`, then `faceImages[i]`.
    pub fn document_urls(&self) -> Vec<(String, &DocumentUrl)> {
        document_urls(&self.documents, &self.face_images)
    }

    /// Every document this input would create, in wire order: `documents`
    /// first, then one `faceImage` per face image URL.
    pub fn face_image_documents(&self) -> Option<Vec<DocumentInput>> {
        self.face_images.as_ref().map(|urls| {
            urls.iter()
                .map(|url| DocumentInput {
                    document_type: DocumentType::FaceImage,
                    side: DocumentSide::FrontSide,
                    label: None,
                    description: None,
                    url: url.clone(),
                })
                .collect()
        })
    }
}

/// The URLs of the document sets sent, each with the field it came in.
fn document_urls<'a>(
    documents: &'a Option<Vec<DocumentInput>>,
    face_images: &'a Option<Vec<DocumentUrl>>,
) -> Vec<(String, &'a DocumentUrl)> {
    let documents = documents.iter().flatten().enumerate();
    let faces = face_images.iter().flatten().enumerate();
    documents
        .map(|(i, d)| (format!("documents[{i}].url"), &d.url))
        .chain(faces.map(|(i, url)| (format!("faceImages[{i}]"), url)))
        .collect()
}

/// Every top-level field of an identity body, each read and checked on its
/// own; whether they fit together (required fields, the person and company
/// rules) is decided by `complete`, once the whole identity is known.
#[derive(Debug, Clone)]
struct IdentityFields {
    kind: Field<IdentityKind>,
    name: Field<String>,
    email: Field<Email>,
    birthday: Field<NaiveDate>,
    gender: Field<Gender>,
    address: Field<Address>,
    phone: Field<Phone>,
    tax: Field<Tax>,
    identity_owner: Field<IdentityId>,
    ref_id: Field<RefId>,
    metadata: Option<MetadataChanges>,
    documents: Option<Vec<DocumentInput>>,
    face_images: Option<Vec<DocumentUrl>>,
}

/// Parses and validates a create body.
pub fn parse_identity(body: &Value, today: NaiveDate) -> Result<IdentityInput, Vec<FieldError>> {
    let mut errors = Errors::new();
    let fields = read_fields(body, &mut errors);
    fields.complete(errors, today, true)
}

/// A PATCH body, parsed once before the change starts: each top-level field
/// it sends replaces the current one whole (nested objects must be
/// complete), `null` clears an optional field, and what it does not send is
/// kept. `apply` checks the result exactly like a create.
#[derive(Debug, Clone)]
pub struct IdentityPatch {
    fields: IdentityFields,
    /// Problems of the fields themselves, reported by `apply` together with
    /// the rules the patched identity breaks, so one answer lists them all.
    errors: Vec<FieldError>,
}

impl IdentityPatch {
    /// The document URLs the patch sends (see `IdentityInput::document_urls`);
    /// none when a field is already wrong, since `apply` then refuses it.
    pub fn document_urls(&self) -> Vec<(String, &DocumentUrl)> {
        if !self.errors.is_empty() {
            return Vec::new();
        }
        document_urls(&self.fields.documents, &self.fields.face_images)
    }

    pub fn parse(body: &Value) -> IdentityPatch {
        let mut errors = Errors::new();
        let fields = read_fields(body, &mut errors);
        IdentityPatch {
            fields,
            errors: errors.into_vec(),
        }
    }

    /// The identity `current` becomes, with the document sets the patch
    /// sends. The age bounds apply when the birthday (or the type) is sent:
    /// an identity that has since aged past them can still be edited.
    pub fn apply(
        &self,
        current: &IdentityData,
        today: NaiveDate,
    ) -> Result<IdentityInput, Vec<FieldError>> {
        let sent = &self.fields;
        let check_age = sent.birthday.is_present() || sent.kind.is_present();
        let mut merged = sent.clone();
        macro_rules! keep {
            ($field:ident, $current:expr) => {
                if !sent.$field.is_present() {
                    merged.$field = $current.map_or(Field::Absent, Field::Value);
                }
            };
        }
        keep!(kind, Some(current.kind));
        keep!(name, Some(current.name.clone()));
        keep!(email, Some(current.email.clone()));
        keep!(birthday, current.birthday);
        keep!(gender, current.gender);
        keep!(address, Some(current.address.clone()));
        keep!(phone, Some(current.phone.clone()));
        keep!(tax, Some(current.tax.clone()));
        keep!(identity_owner, current.identity_owner.clone());
        keep!(ref_id, current.ref_id.clone());
        let mut errors = Errors::new();
        for error in &self.errors {
            errors.add(error.field.clone(), error.message.clone());
        }
        merged.complete(errors, today, check_age)
    }
}

fn read_fields(body: &Value, errors: &mut Errors) -> IdentityFields {
    let mut r = ObjectReader::new(body, "", errors);

    let kind = r.string("type", 20, errors).and_then_parse(|k| {
        IdentityKind::parse(&k).or_else(|| {
            errors.add("type", "must be `person` or `company`");
            None
        })
    });
    let name = r.string("name", 200, errors);
    let email = r
        .string("email", 254, errors)
        .and_then_parse(|e| Email::parse(&e).map_err(|m| errors.add("email", m)).ok());
    let birthday = r.string("birthday", 10, errors).and_then_parse(|s| {
        let date = NaiveDate::parse_from_str(&s, "%Y-%m-%d")
            .ok()
            .filter(|_| s.len() == 10);
        if date.is_none() {
            errors.add("birthday", "must be a date as YYYY-MM-DD");
        }
        date
    });
    let gender = r.string("gender", 20, errors).and_then_parse(|s| {
        let gender = Gender::parse_input(&s);
        if gender.is_none() {
            errors.add("gender", "must be Male, Female or Undefined");
        }
        gender
    });
    let address = r
        .raw("address")
        .and_then_parse(|v| parse_address(v, errors));
    let phone = r.raw("phone").and_then_parse(|v| parse_phone(v, errors));
    let tax = r.raw("tax").and_then_parse(|v| parse_tax(v, errors));
    let identity_owner = r.string("identityOwner", 36, errors).and_then_parse(|s| {
        let id = IdentityId::parse(&s).filter(|_| s.len() == 36);
        if id.is_none() {
            errors.add("identityOwner", "must be a UUID");
        }
        id
    });
    // Checked as sent, untrimmed: an id with spaces is not the same id.
    let ref_id = r
        .raw("refId")
        .and_then_parse(|v| match v.as_str().map(RefId::parse) {
            Some(Ok(id)) => Some(id),
            Some(Err(why)) => {
                errors.add("refId", why);
                None
            }
            None => {
                errors.add("refId", "must be a string or null");
                None
            }
        });
    let metadata = match r.raw("metadata") {
        Field::Value(v) => super::metadata::parse(v, errors),
        Field::Null => {
            errors.add("metadata", "must be an object, not null");
            None
        }
        Field::Absent | Field::Invalid => None,
    };
    let documents = match r.raw("documents") {
        Field::Value(v) => parse_documents(v, errors),
        Field::Null => {
            errors.add("documents", "must be an array, not null");
            None
        }
        Field::Absent | Field::Invalid => None,
    };
    let face_images = match r.raw("faceImages") {
        Field::Value(v) => parse_face_images(v, errors),
        Field::Null => {
            errors.add("faceImages", "must be an array, not null");
            None
        }
        Field::Absent | Field::Invalid => None,
    };
    r.finish(errors);
    IdentityFields {
        kind,
        name,
        email,
        birthday,
        gender,
        address,
        phone,
        tax,
        identity_owner,
        ref_id,
        metadata,
        documents,
        face_images,
    }
}

impl IdentityFields {
    /// The identity these fields make, or every problem: the field errors
    /// already found, required fields, and the rules of its type.
    fn complete(
        self,
        mut errors: Errors,
        today: NaiveDate,
        check_age: bool,
    ) -> Result<IdentityInput, Vec<FieldError>> {
        let IdentityFields {
            kind,
            name,
            email,
            birthday,
            gender,
            address,
            phone,
            tax,
            identity_owner,
            ref_id,
            metadata,
            documents,
            face_images,
        } = self;
        let kind = required(kind, "type", &mut errors);
        let name = required(name, "name", &mut errors);
        let email = required(email, "email", &mut errors);
        let address = required(address, "address", &mut errors);
        let phone = required(phone, "phone", &mut errors);
        let tax = required(tax, "tax", &mut errors);

        // Rules that depend on the type, checked only once the type is known.
        match kind {
            Some(IdentityKind::Person) => {
                if birthday.is_missing() {
                    errors.add("birthday", "is required for a person");
                }
                if let (Field::Value(date), true) = (&birthday, check_age) {
                    check_age_bounds(*date, today, &mut errors);
                }
                if gender.is_missing() {
                    errors.add("gender", "is required for a person");
                }
                if matches!(identity_owner, Field::Value(_)) {
                    errors.add("identityOwner", "only a company has an identity owner");
                }
                if tax.as_ref().is_some_and(|t| t.formation_region.is_some()) {
                    errors.add(
                        "tax.formationRegion",
                        "only a company has a formation region",
                    );
                }
            }
            Some(IdentityKind::Company) => {
                if matches!(birthday, Field::Value(_)) {
                    errors.add("birthday", "a company has no birthday");
                }
                if matches!(gender, Field::Value(_)) {
                    errors.add("gender", "a company has no gender");
                }
                if identity_owner.is_missing() {
                    errors.add("identityOwner", "is required for a company");
                }
                if tax.as_ref().is_some_and(|t| t.formation_region.is_none()) {
                    errors.add("tax.formationRegion", "is required for a company");
                }
            }
            None => {}
        }

        if !errors.is_empty() {
            return Err(errors.into_vec());
        }
        let (Some(kind), Some(name), Some(email), Some(address), Some(phone), Some(tax)) =
            (kind, name, email, address, phone, tax)
        else {
            unreachable!("every missing required field recorded an error");
        };
        Ok(IdentityInput {
            data: IdentityData {
                kind,
                name,
                email,
                birthday: birthday.value(),
                gender: gender.value(),
                address,
                phone,
                tax,
                identity_owner: identity_owner.value(),
                ref_id: ref_id.value(),
            },
            metadata,
            documents,
            face_images,
        })
    }
}

fn check_age_bounds(birthday: NaiveDate, today: NaiveDate, errors: &mut Errors) {
    match today.years_since(birthday) {
        Some(age) if (MIN_AGE..=MAX_AGE).contains(&age) => {}
        Some(age) => errors.add(
            "birthday",
            format!("the age must be between {MIN_AGE} and {MAX_AGE} years (it is {age})"),
        ),
        None => errors.add("birthday", "must not be in the future"),
    }
}

fn country(field: Field<String>, path: &str, errors: &mut Errors) -> Option<Country> {
    required(field, path, errors).and_then(|c| {
        Country::parse(&c).or_else(|| {
            errors.add(path, "must be an ISO 3166-1 alpha-2 country code");
            None
        })
    })
}

fn parse_address(value: &Value, errors: &mut Errors) -> Option<Address> {
    let mut r = ObjectReader::new(value, "address", errors);
    let street = required(r.string("street", 200, errors), "address.street", errors);
    let city = required(r.string("city", 100, errors), "address.city", errors);
    let state = r.string("state", 100, errors).value();
    let postal_code = required(
        r.string("postalCode", 20, errors),
        "address.postalCode",
        errors,
    );
    let country = country(r.string("country", 2, errors), "address.country", errors);
    r.finish(errors);
    if country.is_some_and(Country::is_us) && state.is_none() {
        errors.add("address.state", "is required when the country is US");
    }
    Some(Address {
        street: street?,
        city: city?,
        state,
        postal_code: postal_code?,
        country: country?,
    })
}

fn parse_phone(value: &Value, errors: &mut Errors) -> Option<Phone> {
    let mut r = ObjectReader::new(value, "phone", errors);
    let number = required(r.string("number", 32, errors), "phone.number", errors).and_then(|n| {
        let digits = n.chars().filter(char::is_ascii_digit).count();
        let allowed = n
            .chars()
            .all(|c| c.is_ascii_digit() || " +-().".contains(c));
        if allowed && digits >= 3 {
            Some(n)
        } else {
            errors.add(
                "phone.number",
                "must be a phone number: digits, spaces and + - ( ) .",
            );
            None
        }
    });
    let sms = r.boolean("sms", errors).value().unwrap_or(false);
    r.finish(errors);
    Some(Phone {
        number: number?,
        sms,
    })
}

fn parse_tax(value: &Value, errors: &mut Errors) -> Option<Tax> {
    let mut r = ObjectReader::new(value, "tax", errors);
    let country = country(r.string("country", 2, errors), "tax.country", errors);
    let id_number = required(r.string("idNumber", 64, errors), "tax.idNumber", errors);
    let state = r.string("state", 100, errors).value();
    let formation_region = r.string("formationRegion", 100, errors).value();
    r.finish(errors);
    if country.is_some_and(Country::is_us) && state.is_none() {
        errors.add("tax.state", "is required when the country is US");
    }
    Some(Tax {
        country: country?,
        id_number: id_number?,
        state,
        formation_region,
    })
}

fn parse_documents(value: &Value, errors: &mut Errors) -> Option<Vec<DocumentInput>> {
    let Value::Array(items) = value else {
        errors.add(
            "documents",
            format!("must be an array, not {}", type_name(value)),
        );
        return None;
    };
    if items.len() > MAX_DOCUMENTS {
        errors.add(
            "documents",
            format!("must hold at most {MAX_DOCUMENTS} documents"),
        );
        return None;
    }
    let mut documents = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let path = format!("documents[{i}]");
        let mut r = ObjectReader::new(item, &path, errors);
        let type_path = join(&path, "type");
        let document_type = required(r.string("type", 50, errors), &type_path, errors).and_then(|t| {
            DocumentType::parse_input(&t).or_else(|| {
                errors.add(
                    &type_path,
                    "must be one of DriverLicense, IdentityCard, Other, Passport, ResidencePermit, UtilityBill",
                );
                None
            })
        });
        let side_path = join(&path, "side");
        let side = required(r.string("side", 20, errors), &side_path, errors).and_then(|s| {
            DocumentSide::parse_input(&s).or_else(|| {
                errors.add(&side_path, "must be FrontSide or BackSide");
                None
            })
        });
        let label = r.string("label", 200, errors).value();
        let description = r.string("description", 1000, errors).value();
        let url_path = join(&path, "url");
        let url = required(r.string("url", MAX_URL_LEN, errors), &url_path, errors).and_then(|u| {
            DocumentUrl::parse(&u)
                .map_err(|m| errors.add(&url_path, m))
                .ok()
        });
        r.finish(errors);
        if let (Some(document_type), Some(side), Some(url)) = (document_type, side, url) {
            documents.push(DocumentInput {
                document_type,
                side,
                label,
                description,
                url,
            });
        }
    }
    Some(documents)
}

fn parse_face_images(value: &Value, errors: &mut Errors) -> Option<Vec<DocumentUrl>> {
    let Value::Array(items) = value else {
        errors.add(
            "faceImages",
            format!("must be an array, not {}", type_name(value)),
        );
        return None;
    };
    if items.len() > MAX_DOCUMENTS {
        errors.add(
            "faceImages",
            format!("must hold at most {MAX_DOCUMENTS} images"),
        );
        return None;
    }
    let mut urls = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let path = format!("faceImages[{i}]");
        match item {
            Value::String(s) => match DocumentUrl::parse(s) {
                Ok(url) => urls.push(url),
                Err(m) => errors.add(path, m),
            },
            other => errors.add(
                path,
                format!("must be a string URL, not {}", type_name(other)),
            ),
        }
    }
    Some(urls)
}

/// The top-level fields, by wire name, in which `next` differs from
/// `current` (what an `identity.updated` change names).
pub fn changed_fields(current: &IdentityData, next: &IdentityData) -> Vec<&'static str> {
    let mut changed = Vec::new();
    let mut check = |differs: bool, name: &'static str| {
        if differs {
            changed.push(name);
        }
    };
    check(current.kind != next.kind, "type");
    check(current.name != next.name, "name");
    check(current.email != next.email, "email");
    check(current.birthday != next.birthday, "birthday");
    check(current.gender != next.gender, "gender");
    check(current.address != next.address, "address");
    check(current.phone != next.phone, "phone");
    check(current.tax != next.tax, "tax");
    check(
        current.identity_owner != next.identity_owner,
        "identityOwner",
    );
    check(current.ref_id != next.ref_id, "refId");
    changed
}

/// The fields that cannot change once the identity is confirmed, by wire
/// name, that `next` would change.
pub fn locked_field_changes(current: &IdentityData, next: &IdentityData) -> Vec<&'static str> {
    let mut changed = Vec::new();
    if current.name != next.name {
        changed.push("name");
    }
    if current.birthday != next.birthday {
        changed.push("birthday");
    }
    if current.gender != next.gender {
        changed.push("gender");
    }
    if current.tax.country != next.tax.country {
        changed.push("tax.country");
    }
    if current.tax.id_number != next.tax.id_number {
        changed.push("tax.idNumber");
    }
    changed
}

#[cfg(test)]
mod document_url_tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// What `parse` stores reads back as itself.
        #[test]
        fn a_parsed_url_reads_back_unchanged(path in "\\PC{0,40}", host in "[a-zA-Z0-9.-]{1,20}") {
            for scheme in ["http", "https"] {
                if let Ok(url) = DocumentUrl::parse(&format!("{scheme}://{host}/{path}")) {
                    prop_assert_eq!(DocumentUrl::from_stored(url.as_str()), Some(url));
                }
            }
        }
    }

    #[test]
    fn a_stored_url_must_have_the_shape_parse_gives() {
        for bad in [
            "",
            "ftp://example.com/a",
            "https://",
            "https:///path",
            "example.com/a.png",
            "https://example.com/a b.png",
            "https://example.com/é.png",
            "https://example.com/a|b",
            "https://example.com/\n",
        ] {
            assert_eq!(DocumentUrl::from_stored(bad), None, "{bad:?}");
        }
        let long = format!("https://example.com/{}", "a".repeat(MAX_URL_LEN));
        assert_eq!(DocumentUrl::from_stored(&long), None);
        assert!(DocumentUrl::from_stored("https://example.com/a%20b.png?x=1#y").is_some());
    }
}

#[cfg(test)]
mod country_tests {
    use super::*;
    use proptest::prelude::*;

    /// The binary search answers as the crate's own case-insensitive parse
    /// does for ASCII. The crate upper-cases any Unicode, so it took "ß"
    /// (two bytes) for "SS", South Sudan: a code is two ASCII letters.
    fn crate_parse(s: &str) -> Option<&'static str> {
        if s.len() != 2 || !s.is_ascii() {
            return None;
        }
        isocountry::CountryCode::for_alpha2_caseless(s)
            .ok()
            .map(|c| c.alpha2())
    }

    #[test]
    fn every_pair_of_letters_parses_as_the_crate_parses_it() {
        let letters = ('A'..='Z').chain('a'..='z');
        let mut found = 0;
        for a in letters.clone() {
            for b in letters.clone() {
                let s = format!("{a}{b}");
                let ours = Country::parse(&s).map(Country::as_str);
                assert_eq!(ours, crate_parse(&s), "{s}");
                found += usize::from(ours.is_some());
            }
        }
        // Each of the 249 codes in four spellings (US, us, Us, uS).
        assert_eq!(found, 4 * isocountry::CountryCode::as_array_alpha2().len());
    }

    #[test]
    fn only_ascii_letters_name_a_country() {
        assert_eq!(
            isocountry::CountryCode::for_alpha2_caseless("ß").map(|c| c.alpha2()),
            Ok("SS")
        );
        for text in ["ß", "ſs", "Ｕs", "u\u{73}\u{301}"] {
            assert_eq!(Country::parse(text), None, "{text:?}");
        }
        assert_eq!(Country::parse("ss").map(Country::as_str), Some("SS"));
    }

    proptest! {
        #[test]
        fn any_text_parses_as_the_crate_parses_it(s in "\\PC{0,3}") {
            prop_assert_eq!(Country::parse(&s).map(Country::as_str), crate_parse(&s));
        }
    }
}
