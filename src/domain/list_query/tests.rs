//! The list query language: examples and properties.

use std::borrow::Cow;
use std::collections::HashSet;
use std::ops::RangeInclusive;

use proptest::prelude::*;
use url::form_urlencoded;

use super::*;
use crate::domain::errors::FieldError;

const UUID: &str = "6f1c2a9e-3b4d-4e5f-8a9b-0c1d2e3f4a5b";

fn parse(query: &str) -> Result<ListQuery<IdentityFilter>, Vec<FieldError>> {
    ListQuery::parse(query, &IDENTITY_LIST)
}

fn filters(query: &str) -> Vec<Filter<IdentityFilter>> {
    match parse(query) {
        Ok(parsed) => parsed.filters,
        Err(errors) => panic!("{query}: {errors:?}"),
    }
}

fn condition(query: &str) -> Condition {
    let mut parsed = filters(query);
    assert_eq!(parsed.len(), 1, "{query}");
    parsed.remove(0).condition
}

fn errors(query: &str) -> Vec<FieldError> {
    match parse(query) {
        Ok(parsed) => panic!("{query}: expected errors, got {parsed:?}"),
        Err(errors) => errors,
    }
}

/// The single error of a query, as (field, message).
fn error(query: &str) -> (String, String) {
    let mut all = errors(query);
    assert_eq!(all.len(), 1, "{query}: {all:?}");
    let only = all.remove(0);
    (only.field, only.message)
}

#[test]
fn empty_query_gives_the_defaults() {
    let parsed = parse("").unwrap();
    assert_eq!(
        parsed,
        ListQuery {
            filters: vec![],
            sort: Sort {
                field: SortField::CreatedAt,
                descending: true
            },
            page: Page::Paged {
                size: 30,
                number: 1,
                counted: true
            },
        }
    );
    assert_eq!(parse("&&").unwrap(), parsed);
}

#[test]
fn brackets_may_be_raw_or_percent_encoded() {
    let raw = parse("filter[email]=a@x.com&page[size]=5&page[number]=2").unwrap();
    let encoded = parse("filter%5Bemail%5D=a%40x.com&page%5Bsize%5D=5&page%5bnumber%5d=2").unwrap();
    assert_eq!(raw, encoded);
    assert_eq!(
        raw.filters,
        [Filter {
            field: IdentityFilter::Email,
            condition: Condition::Eq("a@x.com".into())
        }]
    );
    assert_eq!(
        raw.page,
        Page::Paged {
            size: 5,
            number: 2,
            counted: true
        }
    );
}

#[test]
fn filters_keep_the_order_they_were_given_in() {
    let fields: Vec<_> = filters(&format!(
        "filter[type]=person&filter[blocked]=false&filter[appId]={UUID}"
    ))
    .into_iter()
    .map(|filter| filter.field)
    .collect();
    assert_eq!(
        fields,
        [
            IdentityFilter::Type,
            IdentityFilter::Blocked,
            IdentityFilter::AppId
        ]
    );
}

#[test]
fn uuids_are_normalized_to_lowercase_hyphenated() {
    let upper = UUID.to_uppercase();
    let simple = UUID.replace('-', "");
    for sent in [UUID, &upper, &simple] {
        assert_eq!(
            condition(&format!("filter[appId]={sent}")),
            Condition::Eq(UUID.into()),
            "{sent}"
        );
    }
    let (field, message) = error("filter[appId]=not-a-uuid");
    assert_eq!(
        (field.as_str(), message.as_str()),
        ("filter[appId]", "must be a UUID")
    );
}

#[test]
fn bools_are_exactly_true_or_false() {
    assert_eq!(
        condition("filter[blocked]=true"),
        Condition::Eq("true".into())
    );
    assert_eq!(
        condition("filter[blocked]=false"),
        Condition::Eq("false".into())
    );
    for bad in ["TRUE", "1", "yes", ""] {
        assert_eq!(
            error(&format!("filter[blocked]={bad}")).1,
            "must be true or false"
        );
    }
}

#[test]
fn one_of_values_match_exactly() {
    assert_eq!(
        condition("filter[type]=company"),
        Condition::Eq("company".into())
    );
    assert_eq!(
        error("filter[type]=Company").1,
        "must be one of: person, company"
    );
    assert_eq!(
        error("filter[riskRating]=extreme"),
        (
            "filter[riskRating]".into(),
            "must be one of: low, medium, high".into()
        )
    );
}

#[test]
fn text_is_kept_as_sent_within_its_limits() {
    assert_eq!(
        condition("filter[name]=+Ann%20Lee+"),
        Condition::Eq(" Ann Lee ".into())
    );
    assert_eq!(error("filter[name]=").1, "must not be empty");
    let longest = "é".repeat(MAX_TEXT_CHARS);
    assert_eq!(
        condition(&format!("filter[name]={longest}")),
        Condition::Eq(longest.clone())
    );
    assert_eq!(
        error(&format!("filter[name]={longest}x")).1,
        "must be at most 320 characters"
    );
}

#[test]
fn unknown_prefixes_on_text_are_part_of_an_exact_value() {
    assert_eq!(
        condition("filter[email]=a:b@x.com"),
        Condition::Eq("a:b@x.com".into())
    );
    assert_eq!(
        condition("filter[email]=foo:"),
        Condition::Eq("foo:".into())
    );
    // Prefixes are case-sensitive, so this is an unknown one.
    assert_eq!(
        condition("filter[name]=LIKE:x"),
        Condition::Eq("LIKE:x".into())
    );
}

#[test]
fn unknown_prefixes_elsewhere_are_invalid_values() {
    assert_eq!(error("filter[appId]=foo:bar").1, "must be a UUID");
    assert_eq!(error("filter[blocked]=foo:true").1, "must be true or false");
    assert_eq!(
        error("filter[type]=eq:person").1,
        "must be one of: person, company"
    );
}

#[test]
fn unknown_prefixes_on_filters_without_exact_match_are_unknown_operators() {
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    struct Note;
    impl FilterField for Note {
        fn name(self) -> &'static str {
            "note"
        }
    }
    static LIKE_ONLY: ListSpec<Note> = ListSpec {
        filters: &[FilterSpec {
            field: Note,
            operators: &[Operator::Like],
            kind: ValueKind::Text,
        }],
        sort_fields: &[SortField::CreatedAt],
        default_sort: Sort {
            field: SortField::CreatedAt,
            descending: false,
        },
    };
    let single = |query: &str| {
        let errors = ListQuery::parse(query, &LIKE_ONLY).unwrap_err();
        assert_eq!(errors.len(), 1, "{errors:?}");
        errors[0].message.clone()
    };
    assert_eq!(
        single("filter[note]=foo:bar"),
        "`foo:` is not a known operator; use one of: like:"
    );
    assert_eq!(
        single("filter[note]=bar"),
        "needs an operator; use one of: like:"
    );
    assert_eq!(
        ListQuery::parse("filter[note]=like:a:b", &LIKE_ONLY)
            .unwrap()
            .filters[0]
            .condition,
        Condition::Like("a:b".into())
    );
}

#[test]
fn like_returns_the_raw_substring() {
    assert_eq!(
        condition("filter[email]=like:Foo%25_bar%5C"),
        Condition::Like("Foo%_bar\\".into())
    );
    assert_eq!(
        condition("filter[name]=like:in:x"),
        Condition::Like("in:x".into())
    );
    assert_eq!(error("filter[email]=like:").1, "must not be empty");
    assert_eq!(
        error(&format!("filter[email]=like:{}", "a".repeat(321))).1,
        "must be at most 320 characters"
    );
    assert_eq!(
        condition(&format!("filter[email]=like:{}", "a".repeat(320))),
        Condition::Like("a".repeat(320))
    );
}

#[test]
fn operators_not_allowed_say_which_are() {
    assert_eq!(
        error("filter[email]=in:a@x.com"),
        (
            "filter[email]".into(),
            "operator `in:` is not allowed on this filter; use one of: exact match (no prefix), like:"
                .into()
        )
    );
    assert_eq!(
        error(&format!("filter[id]=nin:{UUID}")).1,
        "operator `nin:` is not allowed on this filter; use one of: exact match (no prefix), in:"
    );
    assert_eq!(
        error("filter[riskRating]=like:low").1,
        "operator `like:` is not allowed on this filter; use one of: exact match (no prefix), in:, nin:"
    );
}

#[test]
fn in_and_nin_lists_validate_and_normalize_each_value() {
    let upper = UUID.to_uppercase();
    assert_eq!(
        condition(&format!("filter[id]=in:{upper},{UUID}")),
        Condition::In(vec![UUID.into(), UUID.into()])
    );
    assert_eq!(
        condition("filter[riskRating]=nin:low%2Chigh"),
        Condition::NotIn(vec!["low".into(), "high".into()])
    );
    assert_eq!(
        condition("filter[riskRating]=in:medium"),
        Condition::In(vec!["medium".into()])
    );
}

#[test]
fn in_lists_report_every_bad_value() {
    let all = errors(&format!("filter[id]=in:x,{UUID},,y"));
    let messages: Vec<_> = all.iter().map(|e| e.message.as_str()).collect();
    assert_eq!(
        messages,
        [
            "value 1 of the list must be a UUID",
            "value 3 of the list is empty",
            "value 4 of the list must be a UUID",
        ]
    );
    assert!(all.iter().all(|e| e.field == "filter[id]"));
    assert_eq!(
        error("filter[riskRating]=in:low,").1,
        "value 2 of the list is empty"
    );
    assert_eq!(
        error("filter[riskRating]=in:").1,
        "the list is empty; give 1 to 100 comma-separated values"
    );
}

#[test]
fn in_lists_take_at_most_one_hundred_values() {
    let values = |n: usize| vec!["low"; n].join(",");
    assert_eq!(
        condition(&format!("filter[riskRating]=in:{}", values(100))),
        Condition::In(vec!["low".into(); 100])
    );
    assert_eq!(
        error(&format!("filter[riskRating]=in:{}", values(101))).1,
        "the list has 101 values; at most 100 are allowed"
    );
}

#[test]
fn unknown_parameters_and_filters_are_named() {
    let (field, message) = error("foo=1");
    assert_eq!(field, "foo");
    assert!(message.starts_with("is not a known parameter"), "{message}");
    assert_eq!(error("page[foo]=1").0, "page[foo]");
    assert_eq!(error("Sort=createdAt").0, "Sort");
    assert_eq!(error("filter%5Bx=1").0, "filter[x");
    assert_eq!(
        error("filter[nope]=1"),
        (
            "filter[nope]".into(),
            "is not a known filter; allowed filters: appId, blocked, email, id, identityOwner, metadata.<key>, name, refId, relatedPersonId, riskRating, type"
                .into()
        )
    );
    // A filter of another endpoint is unknown here.
    assert_eq!(error("filter[status]=pending").0, "filter[status]");
}

#[test]
fn repeated_parameters_are_reported_once() {
    assert_eq!(
        error("filter[email]=a&filter%5Bemail%5D=b&filter[email]=c"),
        (
            "filter[email]".into(),
            "is given more than once; give it once".into()
        )
    );
    for query in [
        "sort=createdAt&sort=updatedAt",
        "page[size]=1&page[size]=1",
        "page[number]=1&page%5Bnumber%5D=2",
        "all=true&all=true",
    ] {
        assert_eq!(
            error(query).1,
            "is given more than once; give it once",
            "{query}"
        );
    }
    // Already reported as unknown; repeating it adds nothing.
    assert_eq!(error("foo=1&foo=2").0, "foo");
    assert_eq!(errors("filter[x]=1&filter[x]=2").len(), 1);
}

#[test]
fn sort_takes_one_allowed_field() {
    assert_eq!(
        parse("sort=-updatedAt").unwrap().sort,
        Sort {
            field: SortField::UpdatedAt,
            descending: true
        }
    );
    assert_eq!(
        parse("sort=createdAt").unwrap().sort,
        Sort {
            field: SortField::CreatedAt,
            descending: false
        }
    );
    let allowed =
        "allowed: createdAt, updatedAt, each optionally prefixed with `-` for descending order";
    for bad in ["name", "", "-", "--createdAt", "+createdAt", "CreatedAt"] {
        assert_eq!(
            error(&format!("sort={bad}")),
            (
                "sort".into(),
                format!("cannot sort by this field; {allowed}")
            ),
            "{bad}"
        );
    }
    assert_eq!(
        error("sort=createdAt,-updatedAt").1,
        format!("only one sort key is supported; {allowed}")
    );
}

#[test]
fn page_bounds() {
    assert_eq!(
        parse("page[size]=100&page[number]=1000000").unwrap().page,
        Page::Paged {
            size: 100,
            number: 1_000_000,
            counted: true
        }
    );
    assert_eq!(
        parse("page[size]=1").unwrap().page,
        Page::Paged {
            size: 1,
            number: 1,
            counted: true
        }
    );
    for bad in [
        "0",
        "101",
        "-1",
        "+5",
        "5.0",
        "abc",
        "",
        "99999999999999999999",
    ] {
        assert_eq!(
            error(&format!("page[size]={bad}")),
            (
                "page[size]".into(),
                "must be an integer from 1 to 100".into()
            ),
            "{bad}"
        );
    }
    for bad in ["0", "1000001", " 1"] {
        assert_eq!(
            error(&format!("page[number]={bad}")),
            (
                "page[number]".into(),
                "must be an integer from 1 to 1000000".into()
            ),
            "{bad}"
        );
    }
}

#[test]
fn offset_and_limit() {
    let page = Page::Paged {
        size: 30,
        number: 3,
        counted: true,
    };
    assert_eq!((page.offset(), page.limit()), (60, Some(30)));
    let first = Page::Paged {
        size: 100,
        number: 1,
        counted: true,
    };
    assert_eq!((first.offset(), first.limit()), (0, Some(100)));
    let last = Page::Paged {
        size: MAX_PAGE_SIZE,
        number: MAX_PAGE_NUMBER,
        counted: true,
    };
    assert_eq!(last.offset(), 99_999_900);
    // Not produced by the parser, but must not go negative.
    assert_eq!(
        Page::Paged {
            size: 10,
            number: 0,
            counted: true
        }
        .offset(),
        0
    );
    assert_eq!((Page::All.offset(), Page::All.limit()), (0, None));
}

#[test]
fn all_replaces_paging_but_page_parameters_are_still_checked() {
    assert_eq!(
        parse("all=true&page[size]=5&page[number]=9").unwrap().page,
        Page::All
    );
    assert_eq!(
        parse("all=false&page[size]=5").unwrap().page,
        Page::Paged {
            size: 5,
            number: 1,
            counted: true
        }
    );
    assert_eq!(error("all=true&page[size]=0").0, "page[size]");
    for bad in ["yes", "1", "True", ""] {
        assert_eq!(
            error(&format!("all={bad}")),
            ("all".into(), "must be true or false".into()),
            "{bad}"
        );
    }
    assert_eq!(error("all").0, "all");
}

#[test]
fn a_numbered_page_may_go_without_its_total() {
    let page = parse("page[total]=false&page[size]=20&page[number]=3")
        .unwrap()
        .page;
    assert_eq!(
        page,
        Page::Paged {
            size: 20,
            number: 3,
            counted: false
        }
    );
    // Its rows, one more to know if a next page exists, one spare.
    assert_eq!(page.reach(), Some(40 + 20 + 2));
    let counted = parse("page[total]=true").unwrap().page;
    assert_eq!(
        counted,
        Page::Paged {
            size: 30,
            number: 1,
            counted: true
        }
    );
    assert_eq!(counted.reach(), None);
    // `all=true` ignores page parameters and always counts.
    let all = parse("all=true&page[total]=false").unwrap().page;
    assert_eq!(all, Page::All);
    assert_eq!(all.reach(), None);
    // A cursor page never counts; false says so again, true is refused.
    let cursor = parse("page[after]=abc.def&page[total]=false&page[size]=5")
        .unwrap()
        .page;
    assert_eq!(cursor.reach(), Some(7));
    let (field, message) = error("page[before]=abc.def&page[total]=true");
    assert_eq!(field, "page[total]");
    assert!(message.contains("no total"), "{message}");
    for bad in ["yes", "1", "False", ""] {
        assert_eq!(
            error(&format!("page[total]={bad}")),
            ("page[total]".into(), "must be true or false".into()),
            "{bad}"
        );
    }
}

#[test]
fn a_cursor_pages_beside_its_cursor_and_never_mixes_with_numbers() {
    assert_eq!(
        parse("page[after]=abc.def&page[size]=7&sort=updatedAt")
            .unwrap()
            .page,
        Page::Keyset {
            size: 7,
            direction: Direction::After,
            cursor: "abc.def".into()
        }
    );
    assert_eq!(
        parse("page%5Bbefore%5D=x").unwrap().page,
        Page::Keyset {
            size: DEFAULT_PAGE_SIZE,
            direction: Direction::Before,
            cursor: "x".into()
        }
    );
    for (query, field, words) in [
        (
            "page[after]=x&page[number]=2",
            "page[after]",
            "page[number]",
        ),
        (
            "page[number]=1&page[before]=x",
            "page[before]",
            "page[number]",
        ),
        ("all=true&page[after]=x", "page[after]", "all=true"),
        (
            "page[after]=x&page[before]=y",
            "page[before]",
            "page[after]",
        ),
        ("page[after]=", "page[after]", "cursor"),
        (
            "page[after]=x&page[after]=y",
            "page[after]",
            "more than once",
        ),
    ] {
        let (got_field, message) = error(query);
        assert_eq!(got_field, field, "{query}");
        assert!(message.contains(words), "{query}: {message}");
    }
    let long = "a".repeat(MAX_CURSOR_LEN + 1);
    assert_eq!(error(&format!("page[before]={long}")).0, "page[before]");
}

#[test]
fn a_cursor_names_its_filters_whatever_their_order() {
    let a = parse("filter[name]=like:ann&filter[type]=person&sort=-createdAt").unwrap();
    let b = parse("sort=-createdAt&filter[type]=person&filter%5Bname%5D=like%3Aann").unwrap();
    assert_eq!(a.filters_fingerprint(), b.filters_fingerprint());
    let c = parse("filter[name]=ann&filter[type]=person").unwrap();
    assert_ne!(a.filters_fingerprint(), c.filters_fingerprint());
    assert_eq!(a.sort.wire(), "-createdAt");
    assert_eq!(a.sort.reversed().wire(), "createdAt");
}

#[test]
fn every_problem_is_reported_in_order() {
    let all = errors(
        "foo=1&filter[email]=&sort=name&page[size]=0&page[number]=x&all=maybe&filter[email]=b",
    );
    let fields: Vec<_> = all.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(
        fields,
        [
            "foo",
            "filter[email]",
            "sort",
            "page[size]",
            "page[number]",
            "all",
            "filter[email]"
        ]
    );
}

#[test]
fn verification_list_filters() {
    let parsed = ListQuery::parse(
        &format!("filter[status]=in:pending,inReview&filter[level]=enhanced&filter[identityId]={UUID}&sort=updatedAt"),
        &VERIFICATION_LIST,
    )
    .unwrap();
    assert_eq!(
        parsed.filters,
        [
            Filter {
                field: VerificationFilter::Status,
                condition: Condition::In(vec!["pending".into(), "inReview".into()])
            },
            Filter {
                field: VerificationFilter::Level,
                condition: Condition::Eq("enhanced".into())
            },
            Filter {
                field: VerificationFilter::IdentityId,
                condition: Condition::Eq(UUID.into())
            },
        ]
    );
    let errors = ListQuery::parse(
        "filter[email]=a&filter[level]=nin:basic",
        &VERIFICATION_LIST,
    )
    .unwrap_err();
    let fields: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(fields, ["filter[email]", "filter[level]"]);
}

#[test]
fn specs_are_consistent() {
    fn check<F: FilterField + strum::VariantArray>(spec: &ListSpec<F>) {
        assert!(spec.sort_fields.contains(&spec.default_sort.field));
        let names: HashSet<_> = spec.filters.iter().map(|f| f.field.name()).collect();
        assert_eq!(names.len(), spec.filters.len(), "filter names are unique");
        assert_eq!(names.len(), F::VARIANTS.len(), "every field has a spec");
        assert!(spec
            .filters
            .iter()
            .all(|filter| !filter.operators.is_empty()));
    }
    check(&IDENTITY_LIST);
    check(&VERIFICATION_LIST);
}

#[test]
fn like_patterns_escape_wildcards_and_lowercase() {
    assert_eq!(like_pattern("Ann"), "%ann%");
    assert_eq!(like_pattern("50%_off"), "%50\\%\\_off%");
    assert_eq!(like_pattern("a\\b"), "%a\\\\b%");
    assert_eq!(like_pattern("ÉCOLE"), "%école%");
    assert_eq!(like_pattern(""), "%%");
}

/// Undoes `like_pattern`'s escaping of the part between the outer `%`s,
/// or `None` if it holds an unescaped wildcard or a dangling escape.
fn unescape_like(inner: &str) -> Option<String> {
    let mut out = String::new();
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.push(chars.next()?),
            '%' | '_' => return None,
            other => out.push(other),
        }
    }
    Some(out)
}

#[test]
fn control_characters_in_text_are_refused() {
    for raw in [
        "filter[email]=like:a%00b",
        "filter[name]=a%0Ab",
        "filter[name]=%7F",
    ] {
        let errors = ListQuery::parse(raw, &IDENTITY_LIST).unwrap_err();
        assert_eq!(errors.len(), 1, "{raw}");
        assert!(errors[0].message.contains("control"), "{raw}: {errors:?}");
    }
}

const KNOWN_PREFIXES: [&str; 3] = ["like:", "in:", "nin:"];

/// Every character but the control ones (`char::is_control`: C0, DEL, C1).
const PRINTABLE: &[RangeInclusive<char>] = &[' '..='~', '\u{a0}'..=char::MAX];

#[test]
fn the_printable_ranges_are_every_character_but_the_control_ones() {
    for c in (0..=u32::from(char::MAX)).filter_map(char::from_u32) {
        let printable = PRINTABLE.iter().any(|range| range.contains(&c));
        assert_eq!(printable, !c.is_control(), "{:?}", c);
    }
}

/// Valid filter text: anything but control characters. Drawn from the
/// printable ranges rather than filtered, so that no draw is thrown away:
/// a filter rejected about an eighth of `any::<char>()`'s draws (it
/// favours NUL, tab and the like), and at `PROPTEST_CASES=20000` proptest
/// gave up on too many local rejections.
fn text_value() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::char::ranges(Cow::Borrowed(PRINTABLE)), 1..=40)
        .prop_map(String::from_iter)
}

/// A valid value of `kind`: (normalized, as sent on the wire).
fn value_of(kind: ValueKind) -> BoxedStrategy<(String, String)> {
    match kind {
        ValueKind::Uuid => (any::<u128>(), 0..4u8)
            .prop_map(|(bits, form)| {
                let id = uuid::Uuid::from_u128(bits);
                let sent = match form {
                    0 => id.hyphenated().to_string(),
                    1 => id.hyphenated().to_string().to_uppercase(),
                    2 => id.simple().to_string(),
                    _ => id.braced().to_string(),
                };
                (id.hyphenated().to_string(), sent)
            })
            .boxed(),
        ValueKind::Bool => any::<bool>()
            .prop_map(|value| (value.to_string(), value.to_string()))
            .boxed(),
        ValueKind::Text => text_value().prop_map(|text| (text.clone(), text)).boxed(),
        ValueKind::OneOf(choices) => prop::sample::select(choices)
            .prop_map(|choice| (choice.to_owned(), choice.to_owned()))
            .boxed(),
        // Named per key, not by one `filter[<name>]`; tested on its own.
        ValueKind::Keyed => Just(("x".to_owned(), "x".to_owned())).boxed(),
    }
}

/// A valid condition for `spec` and its wire value.
fn condition_of<F: FilterField>(
    spec: &'static FilterSpec<F>,
) -> BoxedStrategy<(Condition, String)> {
    prop::sample::select(spec.operators)
        .prop_flat_map(move |operator| match operator {
            Operator::Eq => value_of(spec.kind)
                .prop_map(|(value, sent)| {
                    // A text value starting with an operator prefix would
                    // be read as that operator.
                    let escape = KNOWN_PREFIXES.iter().any(|p| sent.starts_with(p));
                    let fix = |s: String| if escape { format!("x{s}") } else { s };
                    (Condition::Eq(fix(value)), fix(sent))
                })
                .boxed(),
            Operator::Like => text_value()
                .prop_map(|text| (Condition::Like(text.clone()), format!("like:{text}")))
                .boxed(),
            Operator::In | Operator::NotIn => prop::collection::vec(
                value_of(spec.kind)
                    .prop_map(|(value, sent)| (value.replace(',', ";"), sent.replace(',', ";"))),
                1..=5,
            )
            .prop_map(move |items| {
                let (values, sent): (Vec<_>, Vec<_>) = items.into_iter().unzip();
                let condition = if operator == Operator::In {
                    Condition::In(values)
                } else {
                    Condition::NotIn(values)
                };
                (
                    condition,
                    format!("{}{}", operator.prefix(), sent.join(",")),
                )
            })
            .boxed(),
        })
        .boxed()
}

#[derive(Debug, Clone)]
struct GeneratedParam<F> {
    /// With raw brackets.
    key: String,
    value: String,
    filter: Option<Filter<F>>,
}

/// A valid query string for `spec` and what it must parse to.
fn valid_query<F: FilterField>(
    spec: &'static ListSpec<F>,
) -> impl Strategy<Value = (String, ListQuery<F>)> {
    let filters: Vec<_> = spec
        .filters
        .iter()
        // A keyed filter is named per key (its own test above).
        .filter(|filter_spec| filter_spec.kind != ValueKind::Keyed)
        .map(|filter_spec| {
            prop::option::of(
                condition_of(filter_spec).prop_map(move |(condition, sent)| {
                    (
                        Filter {
                            field: filter_spec.field,
                            condition,
                        },
                        sent,
                    )
                }),
            )
        })
        .collect();
    let sort = prop::option::of((prop::sample::select(spec.sort_fields), any::<bool>()));
    (
        filters,
        sort,
        prop::option::of(1..=MAX_PAGE_SIZE),
        prop::option::of(1..=MAX_PAGE_NUMBER),
        prop::option::of(any::<bool>()),
        prop::option::of(any::<bool>()),
    )
        .prop_flat_map(move |(filters, sort, size, number, all, total)| {
            let mut params: Vec<GeneratedParam<F>> = filters
                .into_iter()
                .flatten()
                .map(|(filter, sent)| GeneratedParam {
                    key: format!("filter[{}]", filter.field.name()),
                    value: sent,
                    filter: Some(filter),
                })
                .collect();
            let mut plain = |key: &str, value: String| {
                params.push(GeneratedParam {
                    key: key.to_owned(),
                    value,
                    filter: None,
                })
            };
            if let Some((field, descending)) = sort {
                plain(
                    "sort",
                    format!("{}{}", if descending { "-" } else { "" }, field.name()),
                );
            }
            if let Some(size) = size {
                plain("page[size]", size.to_string());
            }
            if let Some(number) = number {
                plain("page[number]", number.to_string());
            }
            if let Some(all) = all {
                plain("all", all.to_string());
            }
            if let Some(total) = total {
                plain("page[total]", total.to_string());
            }
            let expected_sort = sort.map_or(spec.default_sort, |(field, descending)| Sort {
                field,
                descending,
            });
            let expected_page = if all == Some(true) {
                Page::All
            } else {
                Page::Paged {
                    size: size.unwrap_or(DEFAULT_PAGE_SIZE),
                    number: number.unwrap_or(1),
                    counted: total.unwrap_or(true),
                }
            };
            let count = params.len();
            (
                Just(params).prop_shuffle(),
                prop::collection::vec(any::<bool>(), count),
                Just((expected_sort, expected_page)),
            )
        })
        .prop_map(|(params, encode_brackets, (sort, page))| {
            let pairs: Vec<String> = params
                .iter()
                .zip(encode_brackets)
                .map(|(param, encode)| {
                    let key = if encode {
                        param.key.replace('[', "%5B").replace(']', "%5D")
                    } else {
                        param.key.clone()
                    };
                    let value: String =
                        form_urlencoded::byte_serialize(param.value.as_bytes()).collect();
                    format!("{key}={value}")
                })
                .collect();
            let expected = ListQuery {
                filters: params
                    .into_iter()
                    .filter_map(|param| param.filter)
                    .collect(),
                sort,
                page,
            };
            (pairs.join("&"), expected)
        })
}

fn query_soup() -> impl Strategy<Value = String> {
    let tokens = prop::sample::select(vec![
        "filter[",
        "filter%5B",
        "]",
        "%5D",
        "=",
        "&",
        "in:",
        "nin:",
        "like:",
        ",",
        "-",
        ":",
        "sort",
        "page[size]",
        "page[number]",
        "page%5Bsize%5D",
        "all",
        "true",
        "email",
        "id",
        "riskRating",
        "type",
        "%",
        "%ZZ",
        "%C3",
        "+",
        "createdAt",
        UUID,
        "0",
        "100",
        "99999999999999999999",
        "low",
    ]);
    prop::collection::vec(tokens, 0..40).prop_map(|tokens| tokens.concat())
}

fn percent_encoded_bytes() -> impl Strategy<Value = String> {
    prop::collection::vec(any::<u8>(), 0..200)
        .prop_map(|bytes| bytes.iter().map(|b| format!("%{b:02X}")).collect())
}

fn check_never_panics(query: &str) {
    check_never_panics_on(query, &IDENTITY_LIST);
    check_never_panics_on(query, &VERIFICATION_LIST);
}

fn check_never_panics_on<F: FilterField>(query: &str, spec: &ListSpec<F>) {
    {
        match ListQuery::parse(query, spec) {
            Ok(parsed) => {
                assert!(parsed
                    .filters
                    .iter()
                    .all(|f| spec.filter(f.field.name()).is_some()));
                if let Page::Paged { size, number, .. } = parsed.page {
                    assert!((1..=MAX_PAGE_SIZE).contains(&size));
                    assert!((1..=MAX_PAGE_NUMBER).contains(&number));
                }
            }
            Err(errors) => assert!(!errors.is_empty()),
        }
    }
}

proptest! {
    #[test]
    fn arbitrary_strings_never_panic(query in any::<String>()) {
        check_never_panics(&query);
    }

    #[test]
    fn arbitrary_percent_encoded_bytes_never_panic(query in percent_encoded_bytes()) {
        check_never_panics(&query);
    }

    #[test]
    fn near_miss_queries_never_panic(query in query_soup()) {
        check_never_panics(&query);
    }

    #[test]
    fn valid_identity_queries_parse_back((query, expected) in valid_query(&IDENTITY_LIST)) {
        prop_assert_eq!(ListQuery::parse(&query, &IDENTITY_LIST), Ok(expected), "{}", query);
    }

    #[test]
    fn valid_verification_queries_parse_back((query, expected) in valid_query(&VERIFICATION_LIST)) {
        prop_assert_eq!(ListQuery::parse(&query, &VERIFICATION_LIST), Ok(expected), "{}", query);
    }

    #[test]
    fn like_patterns_have_only_the_outer_wildcards(substring in any::<String>()) {
        let pattern = like_pattern(&substring);
        let inner = pattern
            .strip_prefix('%')
            .and_then(|rest| rest.strip_suffix('%'));
        prop_assert!(inner.is_some(), "{}", pattern);
        let unescaped = inner.and_then(unescape_like);
        prop_assert_eq!(unescaped, Some(substring.to_lowercase()));
    }
}

#[test]
fn metadata_filters_name_a_key_and_take_the_value_as_sent() {
    let query = ListQuery::parse(
        "filter[metadata.tier]=in:gold&filter[metadata.plan.v2]=a%20b",
        &IDENTITY_LIST,
    )
    .unwrap();
    assert_eq!(
        query.filters,
        [
            Filter {
                field: IdentityFilter::Metadata,
                condition: Condition::KeyEq {
                    key: "tier".into(),
                    value: "in:gold".into()
                },
            },
            Filter {
                field: IdentityFilter::Metadata,
                condition: Condition::KeyEq {
                    key: "plan.v2".into(),
                    value: "a b".into()
                },
            },
        ]
    );
    for bad in [
        "filter[metadata]=x",
        "filter[metadata.]=x",
        "filter[metadata.tier]=a%00b",
        "filter[metadata.tier]=x&filter[metadata.tier]=y",
    ] {
        assert!(ListQuery::parse(bad, &IDENTITY_LIST).is_err(), "{bad}");
    }
    let long_key = format!("filter[metadata.{}]=x", "k".repeat(41));
    assert!(ListQuery::parse(&long_key, &IDENTITY_LIST).is_err());
    let long_value = format!("filter[metadata.k]={}", "v".repeat(501));
    assert!(ListQuery::parse(&long_value, &IDENTITY_LIST).is_err());
    assert!(ListQuery::parse("filter[metadata.k]=x", &VERIFICATION_LIST).is_err());
}
