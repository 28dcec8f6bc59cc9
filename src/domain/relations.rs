//! A company's related parties (KYB): the people who own, direct, represent
//! or sign for it, each a person identity of the same app.

use std::fmt;

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

impl fmt::Display for Ownership {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} %", self.percent())
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
