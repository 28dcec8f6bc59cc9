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
}

/// For enums whose strum serialization (`IntoStaticStr`, `EnumString`,
/// `VariantArray`) is their one text form, on the wire, in the database and
/// in the rules file: `as_str`, an exact `parse`, `ALL`, and `StoredText`.
macro_rules! text_enum {
    ($($t:ty),* $(,)?) => {$(
        impl $t {
            pub const ALL: &'static [$t] = <$t as strum::VariantArray>::VARIANTS;

            pub fn as_str(self) -> &'static str {
                self.into()
            }

            /// Exactly the text form: stored values are written by us and
            /// clients are told the exact spelling, so leniency would only
            /// hide typos.
            pub fn parse(s: &str) -> Option<Self> {
                <$t as std::str::FromStr>::from_str(s).ok()
            }
        }

        impl $crate::domain::stored::StoredText for $t {
            fn stored(&self) -> &str {
                <&'static str>::from(*self)
            }

            fn from_stored(s: &str) -> Option<Self> {
                <$t as std::str::FromStr>::from_str(s).ok()
            }
        }
    )*};
}
pub(crate) use text_enum;
