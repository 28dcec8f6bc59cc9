//! The one way a domain value becomes a text column and back.
//!
//! Enums and ids are stored as text on both backends. Each such type says
//! here what its stored text is and how to read it back; `db::types` turns
//! that into Diesel's `ToSql`/`FromSql` for every backend with one macro,
//! and the types carry only Diesel's `AsExpression`/`FromSqlRow` derives
//! (which must sit on the type itself), so the domain holds no SQL.

pub trait StoredText: Sized {
    /// The text stored in the column.
    fn stored(&self) -> &str;
    /// The value of stored text; `None` when the text is not one this type
    /// writes (a row written by something else), which reading reports.
    fn from_stored(s: &str) -> Option<Self>;
    /// [`StoredText::from_stored`] of text already read into a `String`,
    /// for types that can keep it instead of copying it (ids: every row of
    /// a list holds several); the text back when it is not one.
    fn from_stored_string(s: String) -> Result<Self, String> {
        Self::from_stored(&s).ok_or(s)
    }
}

/// Declares an enum whose one text form (strum's serialization, named by
/// the `#[strum(serialize_all = ...)]` given) serves the wire, the database
/// and the rules file, with `as_str`, an exact `parse`, `ALL`, `Display`,
/// `StoredText`, and Diesel's "stored as Text" derives. Give serde's
/// `rename_all` the same case.
macro_rules! text_enum {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident {
            $($(#[$variant_meta:meta])* $variant:ident),* $(,)?
        }
    ) => {
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord,
            serde::Serialize, serde::Deserialize,
            strum::IntoStaticStr, strum::EnumString, strum::Display, strum::VariantArray,
            diesel::expression::AsExpression, diesel::deserialize::FromSqlRow,
        )]
        #[diesel(sql_type = diesel::sql_types::Text)]
        $(#[$meta])*
        $vis enum $name {
            $($(#[$variant_meta])* $variant),*
        }

        impl $name {
            pub const ALL: &'static [$name] = <$name as strum::VariantArray>::VARIANTS;

            pub fn as_str(self) -> &'static str {
                self.into()
            }

            /// Exactly the text form: stored values are written by us and
            /// clients are told the exact spelling, so leniency would only
            /// hide typos.
            pub fn parse(s: &str) -> Option<Self> {
                <$name as std::str::FromStr>::from_str(s).ok()
            }
        }

        impl $crate::domain::stored::StoredText for $name {
            fn stored(&self) -> &str {
                self.as_str()
            }

            fn from_stored(s: &str) -> Option<Self> {
                Self::parse(s)
            }
        }
    };
}
pub(crate) use text_enum;
