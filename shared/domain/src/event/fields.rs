//! Reading one raw JSON fragment as the type its field requires, with an error naming it.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::value::RawValue;

use super::*;

pub(super) type Fragment<'a> = Option<&'a RawValue>;

pub(super) fn required_str<'a>(
    fragment: Fragment<'a>,
    field: &'static str,
) -> Result<Cow<'a, str>, EventError> {
    let raw = fragment.ok_or(EventError::Missing { field })?;
    serde_json::from_str(raw.get()).map_err(|_| EventError::WrongType {
        field,
        expected: "a string",
    })
}

/// Optional free text: trimmed, capped, and absent when empty.
pub(super) fn text(
    fragment: Fragment<'_>,
    field: &'static str,
) -> Result<Option<String>, EventError> {
    let Some(raw) = fragment else {
        return Ok(None);
    };
    let value: Cow<'_, str> =
        serde_json::from_str(raw.get()).map_err(|_| EventError::WrongType {
            field,
            expected: "a string",
        })?;
    let value = check_text(value.trim(), field)?;
    Ok((!value.is_empty()).then(|| value.to_owned()))
}

pub(super) fn check_text<'a>(text: &'a str, field: &'static str) -> Result<&'a str, EventError> {
    if text.len() > MAX_TEXT_LEN {
        return Err(EventError::Invalid {
            field,
            problem: "is longer than 256 bytes",
        });
    }
    Ok(text)
}

pub(super) fn object<'a, T: Deserialize<'a>>(
    fragment: Fragment<'a>,
    field: &'static str,
) -> Result<Option<T>, EventError> {
    let Some(raw) = fragment else {
        return Ok(None);
    };
    if !raw.get().starts_with('{') {
        return Err(EventError::WrongType {
            field,
            expected: "an object",
        });
    }
    serde_json::from_str(raw.get())
        .map(Some)
        .map_err(|_| EventError::Invalid {
            field,
            problem: "has the same key twice",
        })
}

pub(super) fn count(
    fragment: Fragment<'_>,
    field: &'static str,
) -> Result<Option<u64>, EventError> {
    let Some(raw) = fragment else {
        return Ok(None);
    };
    match serde_json::from_str::<u64>(raw.get()) {
        Ok(count) => Ok(Some(count)),
        Err(_) if looks_numeric(raw) => Err(EventError::Invalid {
            field,
            problem: "must be a non-negative whole number",
        }),
        Err(_) => Err(EventError::WrongType {
            field,
            expected: "a non-negative whole number",
        }),
    }
}

pub(super) fn looks_numeric(raw: &RawValue) -> bool {
    raw.get()
        .starts_with(|c: char| c == '-' || c.is_ascii_digit())
}

/// Where the JSON broke, without quoting the body (it may hold an e-mail address).
pub(super) fn json_error_position(err: &serde_json::Error) -> String {
    let class = match err.classify() {
        serde_json::error::Category::Eof => "unexpected end of input",
        serde_json::error::Category::Syntax => "syntax error",
        serde_json::error::Category::Data => "unexpected data",
        serde_json::error::Category::Io => "read error",
    };
    format!("{class} at line {} column {}", err.line(), err.column())
}
