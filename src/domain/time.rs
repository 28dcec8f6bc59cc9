//! The wire format of times: UTC, millisecond precision, `Z`, as in the
//! reference (`2022-03-31T13:08:52.030Z`).

use chrono::{NaiveDateTime, SecondsFormat};

pub fn format_timestamp(t: NaiveDateTime) -> String {
    t.and_utc().to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Serde helpers for wire timestamps.
pub mod wire {
    use chrono::NaiveDateTime;
    use serde::Serializer;

    pub fn serialize<S: Serializer>(t: &NaiveDateTime, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::format_timestamp(*t))
    }

    pub mod option {
        use chrono::NaiveDateTime;
        use serde::Serializer;

        pub fn serialize<S: Serializer>(
            t: &Option<NaiveDateTime>,
            s: S,
        ) -> Result<S::Ok, S::Error> {
            match t {
                Some(t) => s.serialize_str(&super::super::format_timestamp(*t)),
                None => s.serialize_none(),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn milliseconds_and_z() {
        let t = chrono::NaiveDate::from_ymd_opt(2022, 3, 31)
            .unwrap()
            .and_hms_micro_opt(13, 8, 52, 30_999)
            .unwrap();
        assert_eq!(format_timestamp(t), "2022-03-31T13:08:52.030Z");
    }
}
