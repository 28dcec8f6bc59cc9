//! Parsing a query string against a `ListSpec`.

use std::collections::HashSet;

use url::form_urlencoded;

use super::*;
use crate::domain::errors::FieldError;

/// What a decoded parameter name refers to.
enum Param<F: 'static> {
    Filter(&'static FilterSpec<F>),
    /// `filter[<name>.<key>]` of a keyed filter.
    Keyed(&'static FilterSpec<F>, String),
    UnknownFilter,
    Sort,
    PageSize,
    PageNumber,
    PageCursor(Direction),
    PageTotal,
    All,
    Unknown,
}

impl<F: FilterField> Param<F> {
    fn classify(key: &str, spec: &ListSpec<F>) -> Param<F> {
        match key {
            "sort" => Param::Sort,
            "page[size]" => Param::PageSize,
            "page[number]" => Param::PageNumber,
            "page[after]" => Param::PageCursor(Direction::After),
            "page[before]" => Param::PageCursor(Direction::Before),
            "page[total]" => Param::PageTotal,
            "all" => Param::All,
            _ => match key
                .strip_prefix("filter[")
                .and_then(|rest| rest.strip_suffix(']'))
            {
                Some(name) => match spec.filter(name) {
                    Some(filter) => Param::Filter(filter),
                    None => name
                        .split_once('.')
                        .and_then(|(family, key)| {
                            spec.filter(family)
                                .filter(|f| f.kind == ValueKind::Keyed)
                                .map(|f| Param::Keyed(f, key.to_owned()))
                        })
                        .unwrap_or(Param::UnknownFilter),
                },
                None => Param::Unknown,
            },
        }
    }
}

impl<F: FilterField> ListQuery<F> {
    /// Parses a raw query string (as from `HttpRequest::query_string`, so
    /// possibly empty and still percent-encoded). On failure, returns every
    /// problem found, each named by the parameter as the client sent it.
    pub fn parse(query: &str, spec: &ListSpec<F>) -> Result<ListQuery<F>, Vec<FieldError>> {
        let mut errors = Vec::new();
        let mut seen = HashSet::new();
        let mut reported_twice = HashSet::new();
        let mut filters = Vec::new();
        let mut sort = None;
        let mut page_size = None;
        let mut page_number = None;
        let mut cursor = None;
        let mut all = None;
        let mut total = None;

        for (key, value) in form_urlencoded::parse(query.as_bytes()) {
            let param = Param::classify(&key, spec);
            if !seen.insert(key.clone()) {
                // A repeated unknown parameter was already reported as
                // unknown; saying it is also repeated adds only noise.
                let is_known = !matches!(param, Param::Unknown | Param::UnknownFilter);
                if is_known && reported_twice.insert(key.clone()) {
                    errors.push(FieldError::new(
                        key.as_ref(),
                        "is given more than once; give it once",
                    ));
                }
                continue;
            }
            match param {
                Param::Filter(filter_spec) => match parse_condition(filter_spec, &value) {
                    Ok(condition) => filters.push(Filter {
                        field: filter_spec.field,
                        condition,
                    }),
                    Err(problems) => errors.extend(
                        problems
                            .into_iter()
                            .map(|problem| FieldError::new(key.as_ref(), problem)),
                    ),
                },
                // Exact values only: a value is taken as sent, whatever
                // it starts with.
                Param::Keyed(filter_spec, filter_key) => {
                    let checked = crate::domain::metadata::check_key(&filter_key)
                        .and_then(|()| crate::domain::metadata::check_value(&value));
                    match checked {
                        Ok(()) => filters.push(Filter {
                            field: filter_spec.field,
                            condition: Condition::KeyEq {
                                key: filter_key,
                                value: value.clone().into_owned(),
                            },
                        }),
                        Err(problem) => errors.push(FieldError::new(key.as_ref(), problem)),
                    }
                }
                Param::UnknownFilter => errors.push(FieldError::new(
                    key.as_ref(),
                    format!(
                        "is not a known filter; allowed filters: {}",
                        spec.filters
                            .iter()
                            .map(|filter| match filter.kind {
                                ValueKind::Keyed => format!("{}.<key>", filter.field.name()),
                                _ => filter.field.name().to_owned(),
                            })
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                )),
                Param::Sort => match parse_sort(&value, spec) {
                    Ok(parsed) => sort = Some(parsed),
                    Err(problem) => errors.push(FieldError::new("sort", problem)),
                },
                Param::PageSize => match parse_bounded(&value, MAX_PAGE_SIZE) {
                    Ok(size) => page_size = Some(size),
                    Err(problem) => errors.push(FieldError::new("page[size]", problem)),
                },
                Param::PageNumber => match parse_bounded(&value, MAX_PAGE_NUMBER) {
                    Ok(number) => page_number = Some(number),
                    Err(problem) => errors.push(FieldError::new("page[number]", problem)),
                },
                Param::PageCursor(direction) => {
                    if value.is_empty() || value.len() > MAX_CURSOR_LEN {
                        errors.push(FieldError::new(
                            direction.param(),
                            "must be a cursor from a list answer's links",
                        ));
                    } else if let Some((other, _)) = &cursor {
                        errors.push(FieldError::new(
                            direction.param(),
                            format!(
                                "cannot be combined with {}; send one of them",
                                Direction::param(*other)
                            ),
                        ));
                    } else {
                        cursor = Some((direction, value.into_owned()));
                    }
                }
                Param::PageTotal => match parse_bool(&value) {
                    Ok(parsed) => total = Some(parsed),
                    Err(problem) => errors.push(FieldError::new("page[total]", problem)),
                },
                Param::All => match parse_bool(&value) {
                    Ok(parsed) => all = Some(parsed),
                    Err(problem) => errors.push(FieldError::new("all", problem)),
                },
                Param::Unknown => errors.push(FieldError::new(
                    key.as_ref(),
                    "is not a known parameter; allowed: filter[<name>], sort, page[size], page[number], page[after], page[before], page[total], all",
                )),
            }
        }

        if let Some((direction, _)) = &cursor {
            let with = if page_number.is_some() {
                Some("page[number]")
            } else if all == Some(true) {
                Some("all=true")
            } else {
                None
            };
            if let Some(with) = with {
                errors.push(FieldError::new(
                    direction.param(),
                    format!(
                        "cannot be combined with {with}: page by cursor or by number, not both"
                    ),
                ));
            }
            // A cursor page never counts: asking it to would be a promise
            // broken in silence.
            if total == Some(true) && all != Some(true) {
                errors.push(FieldError::new(
                    "page[total]",
                    format!(
                        "cannot be true with {}: a cursor page has no total",
                        direction.param()
                    ),
                ));
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        let size = page_size.unwrap_or(DEFAULT_PAGE_SIZE);
        let page = match (all, cursor) {
            (Some(true), _) => Page::All,
            (_, Some((direction, cursor))) => Page::Keyset {
                size,
                direction,
                cursor,
            },
            _ => Page::Paged {
                size,
                number: page_number.unwrap_or(1),
                counted: total.unwrap_or(true),
            },
        };
        Ok(ListQuery {
            filters,
            sort: sort.unwrap_or(spec.default_sort),
            page,
        })
    }
}

fn parse_condition<F>(spec: &FilterSpec<F>, raw: &str) -> Result<Condition, Vec<String>> {
    let allows = |operator: Operator| spec.operators.contains(&operator);
    let allowed_list = || {
        spec.operators
            .iter()
            .map(|operator| operator.describe())
            .collect::<Vec<_>>()
            .join(", ")
    };

    let prefixed = Operator::PREFIXED.into_iter().find_map(|operator| {
        raw.strip_prefix(operator.prefix())
            .map(|operand| (operator, operand))
    });
    let Some((operator, operand)) = prefixed else {
        if allows(Operator::Eq) {
            return check_value(spec.kind, raw)
                .map(Condition::Eq)
                .map_err(|problem| vec![problem]);
        }
        let problem = match raw.split_once(':') {
            Some((unknown, _)) => {
                format!(
                    "`{unknown}:` is not a known operator; use one of: {}",
                    allowed_list()
                )
            }
            None => format!("needs an operator; use one of: {}", allowed_list()),
        };
        return Err(vec![problem]);
    };

    if !allows(operator) {
        return Err(vec![format!(
            "operator `{}` is not allowed on this filter; use one of: {}",
            operator.prefix(),
            allowed_list()
        )]);
    }
    match operator {
        Operator::Like => check_text(operand)
            .map(Condition::Like)
            .map_err(|problem| vec![problem]),
        Operator::In => check_list(spec.kind, operand).map(Condition::In),
        Operator::NotIn => check_list(spec.kind, operand).map(Condition::NotIn),
        // Not a prefixed operator; handled above.
        Operator::Eq => check_value(spec.kind, operand)
            .map(Condition::Eq)
            .map_err(|problem| vec![problem]),
    }
}

fn check_list(kind: ValueKind, operand: &str) -> Result<Vec<String>, Vec<String>> {
    if operand.is_empty() {
        return Err(vec![format!(
            "the list is empty; give 1 to {MAX_LIST_VALUES} comma-separated values"
        )]);
    }
    let count = operand.split(',').count();
    if count > MAX_LIST_VALUES {
        return Err(vec![format!(
            "the list has {count} values; at most {MAX_LIST_VALUES} are allowed"
        )]);
    }

    let mut values = Vec::with_capacity(count);
    let mut problems = Vec::new();
    for (index, item) in operand.split(',').enumerate() {
        let position = index + 1;
        if item.is_empty() {
            problems.push(format!("value {position} of the list is empty"));
            continue;
        }
        match check_value(kind, item) {
            Ok(value) => values.push(value),
            Err(problem) => problems.push(format!("value {position} of the list {problem}")),
        }
    }
    if problems.is_empty() {
        Ok(values)
    } else {
        Err(problems)
    }
}

/// Problems are phrased to follow a subject ("must be ..."), so list items
/// can reuse them.
fn check_value(kind: ValueKind, raw: &str) -> Result<String, String> {
    match kind {
        ValueKind::Uuid => uuid::Uuid::try_parse(raw)
            .map(|id| id.hyphenated().to_string())
            .map_err(|_| "must be a UUID".to_owned()),
        ValueKind::Bool => parse_bool(raw).map(|value| value.to_string()),
        ValueKind::Text => check_text(raw),
        ValueKind::Keyed => Err("name a key: filter[<name>.<key>]=<value>".to_owned()),
        ValueKind::OneOf(choices) => choices
            .iter()
            .find(|choice| **choice == raw)
            .map(|choice| (*choice).to_owned())
            .ok_or_else(|| format!("must be one of: {}", choices.join(", "))),
    }
}

fn check_text(raw: &str) -> Result<String, String> {
    if raw.is_empty() {
        Err("must not be empty".to_owned())
    } else if raw.chars().count() > MAX_TEXT_CHARS {
        Err(format!("must be at most {MAX_TEXT_CHARS} characters"))
    } else if raw.chars().any(char::is_control) {
        // No stored value holds one (inputs refuse them), and PostgreSQL
        // rejects a NUL byte in a text parameter outright.
        Err("must not contain control characters".to_owned())
    } else {
        Ok(raw.to_owned())
    }
}

fn parse_bool(raw: &str) -> Result<bool, String> {
    match raw {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err("must be true or false".to_owned()),
    }
}

/// Digits only: `str::parse` would also take a leading `+`, which is not
/// part of the documented syntax.
fn parse_bounded(raw: &str, max: u32) -> Result<u32, String> {
    let out_of_range = || format!("must be an integer from 1 to {max}");
    if raw.is_empty() || !raw.bytes().all(|b| b.is_ascii_digit()) {
        return Err(out_of_range());
    }
    match raw.parse::<u32>() {
        Ok(value) if (1..=max).contains(&value) => Ok(value),
        _ => Err(out_of_range()),
    }
}

fn parse_sort<F>(raw: &str, spec: &ListSpec<F>) -> Result<Sort, String> {
    let allowed = || {
        let names: Vec<&str> = spec.sort_fields.iter().map(|f| f.name()).collect();
        format!(
            "allowed: {}, each optionally prefixed with `-` for descending order",
            names.join(", ")
        )
    };
    if raw.contains(',') {
        return Err(format!("only one sort key is supported; {}", allowed()));
    }
    let (descending, name) = match raw.strip_prefix('-') {
        Some(name) => (true, name),
        None => (false, raw),
    };
    spec.sort_fields
        .iter()
        .find(|field| field.name() == name)
        .map(|&field| Sort { field, descending })
        .ok_or_else(|| format!("cannot sort by this field; {}", allowed()))
}
