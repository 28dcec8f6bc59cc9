//! A company's related parties (KYB): the people who own, direct, represent
//! or sign for it, each a person identity of the same app.

use serde_json::Value;

use crate::domain::errors::FieldError;
use crate::domain::ids::IdentityId;
use crate::domain::input::{required, type_name, Errors, Field, ObjectReader};
use crate::domain::stored::text_enum;

text_enum! {
    /// What a person is to a company (Ballerine's and the EU AMLD's roles).
    #[serde(rename_all = "camelCase")]
    #[strum(serialize_all = "camelCase")]
    pub enum RelationRole {
        BeneficialOwner,
        Director,
        Representative,
        AuthorizedSignatory,
    }
}

/// A share of a company in hundredths of a percent (0 to 10,000), so that
/// shares add up exactly: `33.33 + 33.33 + 33.34` is 100, not 99.99999.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Ownership(u16);

/// The whole company.
pub const WHOLE: Ownership = Ownership(10_000);

/// The share from which a person is a beneficial owner under the EU AML
/// directives (and FinCEN's CDD rule): 25 %.
pub const UBO_THRESHOLD: Ownership = Ownership(2_500);

impl Ownership {
    /// A percentage as sent (`25`, `33.33`): 0 to 100, at most two decimals.
    pub fn from_percent(percent: f64) -> Result<Ownership, &'static str> {
        if !percent.is_finite() || !(0.0..=100.0).contains(&percent) {
            return Err("must be a number from 0 to 100");
        }
        let hundredths = (percent * 100.0).round();
        if (percent * 100.0 - hundredths).abs() > 1e-6 {
            return Err("must have at most two decimals");
        }
        Ok(Ownership(hundredths as u16))
    }

    /// As stored: hundredths of a percent.
    pub fn from_hundredths(hundredths: i32) -> Option<Ownership> {
        u16::try_from(hundredths)
            .ok()
            .filter(|h| *h <= WHOLE.0)
            .map(Ownership)
    }

    pub fn hundredths(self) -> i32 {
        i32::from(self.0)
    }

    /// As answered: a number, `25` or `33.33`.
    pub fn percent(self) -> f64 {
        f64::from(self.0) / 100.0
    }

    /// The sum of shares, if it is at most the whole company.
    pub fn total(shares: impl IntoIterator<Item = Ownership>) -> Option<Ownership> {
        let sum: u32 = shares.into_iter().map(|s| u32::from(s.0)).sum();
        u16::try_from(sum)
            .ok()
            .filter(|s| *s <= WHOLE.0)
            .map(Ownership)
    }
}

/// A relation as the rules need it: valid by construction (a beneficial
/// owner always has a share).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelationTerms {
    pub role: RelationRole,
    pub ownership: Option<Ownership>,
    pub title: Option<String>,
}

impl RelationTerms {
    /// Checks the terms together: a beneficial owner needs its share.
    pub fn new(
        role: RelationRole,
        ownership: Option<Ownership>,
        title: Option<String>,
    ) -> Result<RelationTerms, (&'static str, &'static str)> {
        if role == RelationRole::BeneficialOwner && ownership.is_none() {
            return Err(("ownershipPercent", "is required for a beneficial owner"));
        }
        Ok(RelationTerms {
            role,
            ownership,
            title,
        })
    }

    /// The share this relation counts toward the 100 % bound: a beneficial
    /// owner's (a director's own shares, if given, are informative).
    pub fn owned(&self) -> Option<Ownership> {
        match self.role {
            RelationRole::BeneficialOwner => self.ownership,
            _ => None,
        }
    }
}

/// `POST /identities/:id/relations`, parsed: every problem named.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRelation {
    pub person_id: IdentityId,
    pub terms: RelationTerms,
}

/// `PATCH /identities/:id/relations/:relationId`, parsed: each field
/// absent (kept) or set (`Some(None)` clears an optional one).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RelationPatch {
    pub role: Option<RelationRole>,
    pub ownership: Option<Option<Ownership>>,
    pub title: Option<Option<String>>,
}

const TITLE_MAX: usize = 200;

fn role(r: &mut ObjectReader<'_>, errors: &mut Errors) -> Field<RelationRole> {
    let path = r.path_of("role");
    match r.string("role", 64, errors) {
        Field::Value(text) => match RelationRole::parse(&text) {
            Some(role) => Field::Value(role),
            None => {
                let names: Vec<&str> = RelationRole::ALL.iter().map(|r| r.as_str()).collect();
                errors.add(path, format!("must be one of {}", names.join(", ")));
                Field::Invalid
            }
        },
        Field::Null => Field::Null,
        Field::Absent => Field::Absent,
        Field::Invalid => Field::Invalid,
    }
}

fn ownership(r: &mut ObjectReader<'_>, errors: &mut Errors) -> Field<Ownership> {
    let path = r.path_of("ownershipPercent");
    match r.raw("ownershipPercent") {
        Field::Value(Value::Number(n)) => {
            match n
                .as_f64()
                .ok_or("must be a number from 0 to 100")
                .and_then(Ownership::from_percent)
            {
                Ok(share) => Field::Value(share),
                Err(message) => {
                    errors.add(path, message);
                    Field::Invalid
                }
            }
        }
        Field::Value(other) => {
            errors.add(path, format!("must be a number, not {}", type_name(other)));
            Field::Invalid
        }
        Field::Null => Field::Null,
        Field::Absent | Field::Invalid => Field::Absent,
    }
}

fn done<T>(value: Option<T>, errors: Errors) -> Result<T, Vec<FieldError>> {
    match value {
        Some(value) if errors.is_empty() => Ok(value),
        _ => Err(errors.into_vec()),
    }
}

impl NewRelation {
    pub fn parse(body: &Value) -> Result<NewRelation, Vec<FieldError>> {
        let mut errors = Errors::new();
        let mut r = ObjectReader::new(body, "", &mut errors);
        let person = r.string("personId", 64, &mut errors);
        let person_id = match person {
            Field::Value(text) => match IdentityId::parse(&text) {
                Some(id) => Field::Value(id),
                None => {
                    errors.add("personId", "must be a UUID");
                    Field::Invalid
                }
            },
            Field::Null => Field::Null,
            Field::Absent => Field::Absent,
            Field::Invalid => Field::Invalid,
        };
        let role = role(&mut r, &mut errors);
        let ownership = ownership(&mut r, &mut errors);
        let title = r.string("title", TITLE_MAX, &mut errors);
        r.finish(&mut errors);
        let person_id = required(person_id, "personId", &mut errors);
        let role = required(role, "role", &mut errors);
        let terms = role.and_then(|role| {
            match RelationTerms::new(role, ownership.value(), title.value()) {
                Ok(terms) => Some(terms),
                Err((field, message)) => {
                    errors.add(field, message);
                    None
                }
            }
        });
        let parsed = person_id
            .zip(terms)
            .map(|(person_id, terms)| NewRelation { person_id, terms });
        done(parsed, errors)
    }
}

impl RelationPatch {
    pub fn parse(body: &Value) -> Result<RelationPatch, Vec<FieldError>> {
        let mut errors = Errors::new();
        let mut r = ObjectReader::new(body, "", &mut errors);
        let role = match role(&mut r, &mut errors) {
            Field::Value(role) => Some(role),
            Field::Null => {
                errors.add("role", "must not be null");
                None
            }
            Field::Absent | Field::Invalid => None,
        };
        let ownership = match ownership(&mut r, &mut errors) {
            Field::Value(share) => Some(Some(share)),
            Field::Null => Some(None),
            Field::Absent | Field::Invalid => None,
        };
        let title = match r.string("title", TITLE_MAX, &mut errors) {
            Field::Value(title) => Some(Some(title)),
            Field::Null => Some(None),
            Field::Absent | Field::Invalid => None,
        };
        r.finish(&mut errors);
        done(
            Some(RelationPatch {
                role,
                ownership,
                title,
            }),
            errors,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn percentages_are_exact_to_the_hundredth() {
        assert_eq!(Ownership::from_percent(25.0).unwrap().hundredths(), 2500);
        assert_eq!(Ownership::from_percent(33.33).unwrap().hundredths(), 3333);
        assert_eq!(Ownership::from_percent(0.0).unwrap().hundredths(), 0);
        assert_eq!(Ownership::from_percent(100.0).unwrap(), WHOLE);
        for bad in [-0.01, 100.01, 33.333, f64::NAN, f64::INFINITY] {
            assert!(Ownership::from_percent(bad).is_err(), "{bad}");
        }
        let thirds = [33.33, 33.33, 33.34].map(|p| Ownership::from_percent(p).unwrap());
        assert_eq!(Ownership::total(thirds), Some(WHOLE));
        let over = [50.0, 50.01].map(|p| Ownership::from_percent(p).unwrap());
        assert_eq!(Ownership::total(over), None);
    }

    #[test]
    fn a_beneficial_owner_needs_a_share() {
        assert!(RelationTerms::new(RelationRole::BeneficialOwner, None, None).is_err());
        let director = RelationTerms::new(RelationRole::Director, None, None).unwrap();
        assert_eq!(director.owned(), None);
        let share = Ownership::from_percent(10.0).unwrap();
        let director = RelationTerms::new(RelationRole::Director, Some(share), None).unwrap();
        assert_eq!(director.owned(), None, "a director's shares do not count");
        let owner = RelationTerms::new(RelationRole::BeneficialOwner, Some(share), None).unwrap();
        assert_eq!(owner.owned(), Some(share));
    }

    #[test]
    fn bodies_are_checked_field_by_field() {
        use serde_json::json;
        let person = "8c4a5f4e-2b7e-4c1a-9f0e-3d6b1a2c4e5f";
        let parsed = NewRelation::parse(&json!({
            "personId": person, "role": "beneficialOwner", "ownershipPercent": 25.5, "title": "CEO"
        }))
        .unwrap();
        assert_eq!(parsed.terms.ownership.unwrap().hundredths(), 2550);
        let fields = |body: Value| -> Vec<String> {
            NewRelation::parse(&body)
                .unwrap_err()
                .into_iter()
                .map(|e| e.field)
                .collect()
        };
        assert_eq!(fields(json!({})), vec!["personId", "role"]);
        assert_eq!(
            fields(json!({"personId": person, "role": "beneficialOwner"})),
            vec!["ownershipPercent"]
        );
        assert_eq!(
            fields(json!({"personId": "x", "role": "owner", "ownershipPercent": "25", "extra": 1})),
            vec!["personId", "role", "ownershipPercent", "extra"]
        );
        assert_eq!(
            fields(json!({"personId": person, "role": "director", "ownershipPercent": 100.5})),
            vec!["ownershipPercent"]
        );

        let patch =
            RelationPatch::parse(&json!({"ownershipPercent": null, "title": "Chair"})).unwrap();
        assert_eq!(patch.role, None);
        assert_eq!(patch.ownership, Some(None));
        assert_eq!(patch.title, Some(Some("Chair".into())));
        assert!(RelationPatch::parse(&json!({"role": null})).is_err());
        assert!(RelationPatch::parse(&json!({"personId": person})).is_err());
    }

    proptest! {
        #[test]
        fn every_hundredth_round_trips(hundredths in 0u16..=10_000) {
            let share = Ownership::from_hundredths(i32::from(hundredths)).unwrap();
            prop_assert_eq!(Ownership::from_percent(share.percent()), Ok(share));
        }

        #[test]
        fn any_number_parses_or_is_refused(percent in proptest::num::f64::ANY) {
            if let Ok(share) = Ownership::from_percent(percent) {
                prop_assert!(share <= WHOLE);
            }
        }
    }
}
