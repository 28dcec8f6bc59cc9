//! The wire format of times: UTC, millisecond precision, `Z`, as in the
//! reference (`2022-03-31T13:08:52.030Z`).

use chrono::{NaiveDateTime, SecondsFormat};

pub fn format_timestamp(t: NaiveDateTime) -> String {
    t.and_utc().to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// A timestamp a client sends (a filter bound): RFC 3339 with any offset,
/// read as the UTC instant it names.
pub fn parse_timestamp(text: &str) -> Option<NaiveDateTime> {
    chrono::DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.naive_utc())
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
    use proptest::prelude::*;

    #[test]
    fn milliseconds_and_z() {
        let t = chrono::NaiveDate::from_ymd_opt(2022, 3, 31)
            .unwrap()
            .and_hms_micro_opt(13, 8, 52, 30_999)
            .unwrap();
        assert_eq!(format_timestamp(t), "2022-03-31T13:08:52.030Z");
    }

    #[test]
    fn offsets_are_read_as_utc() {
        let t = parse_timestamp("2026-12-04T10:00:00+02:00").unwrap();
        assert_eq!(format_timestamp(t), "2026-12-04T08:00:00.000Z");
        for bad in [
            "",
            "2026-12-04",
            "2026-12-04T10:00:00",
            "yesterday",
            "2026-13-01T00:00:00Z",
        ] {
            assert_eq!(parse_timestamp(bad), None, "{bad}");
        }
    }

    proptest! {
        #[test]
        fn what_we_format_parses_back(millis in 0i64..4_102_444_800_000) {
            let t = chrono::DateTime::from_timestamp_millis(millis).unwrap().naive_utc();
            prop_assert_eq!(parse_timestamp(&format_timestamp(t)), Some(t));
        }

        #[test]
        fn any_text_parses_or_is_refused_without_panic(text in ".{0,40}") {
            let _ = parse_timestamp(&text);
        }
    }
}
