//! The identity: a person or a company, as the PublicMint contract shapes
//! it. `parse_identity` is the one way in; past it, nothing holds invalid
//! data.

use chrono::NaiveDate;
use serde_json::{json, Map, Value};
use uuid::Uuid;
use validator::ValidateEmail;

use super::document::{DocumentSide, DocumentType};
use super::input::{bounded_text, join, required, type_name, Errors, Field, ObjectReader};
use crate::domain::errors::FieldError;

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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdentityKind {
    Person,
    Company,
}

impl IdentityKind {
    pub fn as_str(self) -> &'static str {
        match self {
            IdentityKind::Person => "person",
            IdentityKind::Company => "company",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "person" => Some(IdentityKind::Person),
            "company" => Some(IdentityKind::Company),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gender {
    Male,
    Female,
    Undefined,
}

impl Gender {
    pub fn as_str(self) -> &'static str {
        match self {
            Gender::Male => "Male",
            Gender::Female => "Female",
            Gender::Undefined => "Undefined",
        }
    }

    /// Accepts any letter case (`male`, `MALE`), answers `Male`.
    pub fn parse(s: &str) -> Option<Self> {
        [Gender::Male, Gender::Female, Gender::Undefined]
            .into_iter()
            .find(|g| g.as_str().eq_ignore_ascii_case(s))
    }
}

/// An ISO 3166-1 alpha-2 code, upper case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Country(&'static str);

impl Country {
    pub fn parse(s: &str) -> Option<Self> {
        if s.len() != 2 {
            return None;
        }
        isocountry::CountryCode::for_alpha2_caseless(s)
            .ok()
            .map(|c| Country(c.alpha2()))
    }

    pub fn as_str(self) -> &'static str {
        self.0
    }

    pub fn is_us(self) -> bool {
        self.0 == "US"
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

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
    pub identity_owner: Option<Uuid>,
}

/// A create (or the result of a patch) with the document sets it sends;
/// `None` means "not sent" (a patch keeps the current set).
#[derive(Debug, Clone)]
pub struct IdentityInput {
    pub data: IdentityData,
    pub documents: Option<Vec<DocumentInput>>,
    pub face_images: Option<Vec<DocumentUrl>>,
}

impl IdentityInput {
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

/// Parses and validates a create body (or a merged patch, see
/// `merge_patch`). `check_age` is false when a patch leaves the birthday as
/// it was, so that an identity that aged past the bound can still be edited.
pub fn parse_identity(
    body: &Value,
    today: NaiveDate,
    check_age: bool,
) -> Result<IdentityInput, Vec<FieldError>> {
    let mut errors = Errors::new();
    let mut r = ObjectReader::new(body, "", &mut errors);

    let kind = r.string("type", 20, &mut errors);
    let kind = required(kind, "type", &mut errors).and_then(|k| {
        IdentityKind::parse(&k).or_else(|| {
            errors.add("type", "must be `person` or `company`");
            None
        })
    });
    let name = required(r.string("name", 200, &mut errors), "name", &mut errors);
    let email = required(r.string("email", 254, &mut errors), "email", &mut errors)
        .and_then(|e| Email::parse(&e).map_err(|m| errors.add("email", m)).ok());
    let birthday = r.string("birthday", 10, &mut errors).and_then_parse(|s| {
        let date = NaiveDate::parse_from_str(&s, "%Y-%m-%d")
            .ok()
            .filter(|_| s.len() == 10);
        if date.is_none() {
            errors.add("birthday", "must be a date as YYYY-MM-DD");
        }
        date
    });
    let gender = r.string("gender", 20, &mut errors).and_then_parse(|s| {
        let gender = Gender::parse(&s);
        if gender.is_none() {
            errors.add("gender", "must be Male, Female or Undefined");
        }
        gender
    });
    let address = match r.raw("address") {
        Field::Value(v) => parse_address(v, &mut errors),
        other => {
            required(other, "address", &mut errors);
            None
        }
    };
    let phone = match r.raw("phone") {
        Field::Value(v) => parse_phone(v, &mut errors),
        other => {
            required(other, "phone", &mut errors);
            None
        }
    };
    let tax = match r.raw("tax") {
        Field::Value(v) => parse_tax(v, &mut errors),
        other => {
            required(other, "tax", &mut errors);
            None
        }
    };
    let identity_owner = r
        .string("identityOwner", 36, &mut errors)
        .and_then_parse(|s| {
            let id = Uuid::parse_str(&s).ok().filter(|_| s.len() == 36);
            if id.is_none() {
                errors.add("identityOwner", "must be a UUID");
            }
            id
        });
    let documents = match r.raw("documents") {
        Field::Value(v) => parse_documents(v, &mut errors),
        Field::Null => {
            errors.add("documents", "must be an array, not null");
            None
        }
        Field::Absent | Field::Invalid => None,
    };
    let face_images = match r.raw("faceImages") {
        Field::Value(v) => parse_face_images(v, &mut errors),
        Field::Null => {
            errors.add("faceImages", "must be an array, not null");
            None
        }
        Field::Absent | Field::Invalid => None,
    };
    r.finish(&mut errors);

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
        },
        documents,
        face_images,
    })
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

/// The identity as a create body, so a patch can be applied over it and the
/// result validated exactly like a create.
pub fn as_input_json(data: &IdentityData) -> Map<String, Value> {
    let mut body = Map::new();
    body.insert("type".into(), json!(data.kind.as_str()));
    body.insert("name".into(), json!(data.name));
    body.insert("email".into(), json!(data.email.as_str()));
    if let Some(b) = data.birthday {
        body.insert("birthday".into(), json!(b.format("%Y-%m-%d").to_string()));
    }
    if let Some(g) = data.gender {
        body.insert("gender".into(), json!(g.as_str()));
    }
    let mut address = json!({
        "street": data.address.street,
        "city": data.address.city,
        "postalCode": data.address.postal_code,
        "country": data.address.country.as_str(),
    });
    if let Some(state) = &data.address.state {
        address["state"] = json!(state);
    }
    body.insert("address".into(), address);
    body.insert(
        "phone".into(),
        json!({"number": data.phone.number, "sms": data.phone.sms}),
    );
    let mut tax = json!({"country": data.tax.country.as_str(), "idNumber": data.tax.id_number});
    if let Some(state) = &data.tax.state {
        tax["state"] = json!(state);
    }
    if let Some(region) = &data.tax.formation_region {
        tax["formationRegion"] = json!(region);
    }
    body.insert("tax".into(), tax);
    if let Some(owner) = data.identity_owner {
        body.insert("identityOwner".into(), json!(owner.to_string()));
    }
    body
}

/// Applies a PATCH body over the current identity: each top-level field sent
/// replaces the current one whole (nested objects must be complete); `null`
/// clears an optional field. The result goes through `parse_identity`.
pub fn merge_patch(current: &IdentityData, patch: &Value) -> Result<Value, Vec<FieldError>> {
    let Value::Object(patch) = patch else {
        return Err(vec![FieldError::new(
            "body",
            format!("must be an object, not {}", type_name(patch)),
        )]);
    };
    let mut merged = as_input_json(current);
    for (key, value) in patch {
        merged.insert(key.clone(), value.clone());
    }
    Ok(Value::Object(merged))
}
