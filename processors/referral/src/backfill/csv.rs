//! CSV exports as webhooks: a header row of webhook fields in dot notation (any subset of
//! [`COLUMNS`], in any order), then one event a row. A row becomes the webhook's JSON body,
//! which then goes through the very validation ingest applies: no second validator.
//!
//! Records follow RFC 4180 (quoted cells may hold commas, doubled quotes and line breaks)
//! and are read one at a time, so a file may be larger than memory.

use std::io::BufRead;

use serde_json::{Map, Number, Value};

/// The columns a header may name.
pub const COLUMNS: [&str; 17] = [
    "event_id",
    "event_type",
    "occurred_at",
    "customer.email",
    "customer.name",
    "customer.address.street",
    "customer.address.city",
    "customer.address.state",
    "customer.address.zip",
    "service.id",
    "service.type",
    "service.satisfaction_score",
    "property_info.type",
    "property_info.square_feet",
    "property_info.year_built",
    "property_info.pest_issues",
    "services_count",
];

/// Webhook fields that are numbers: a cell that reads as a JSON number is one, anything
/// else stays text, which the validation then refuses naming the field.
const NUMERIC: [&str; 4] = [
    "service.satisfaction_score",
    "property_info.square_feet",
    "property_info.year_built",
    "services_count",
];
const LIST: &str = "property_info.pest_issues";
const EVENT_TYPE: &str = "event_type";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HeaderError {
    #[error("the file is empty: a header row naming webhook fields is needed")]
    Missing,
    #[error("column {0:?} is not a webhook field (known: {known})", known = COLUMNS.join(","))]
    Unknown(String),
    #[error("column {0:?} is named twice")]
    Twice(String),
    #[error("the header has no {0:?} column")]
    Required(&'static str),
    #[error("the header row is not UTF-8 text")]
    NotUtf8,
}

/// One record: the line it starts on, its cells, and its text as read (for the rejects file).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub line: usize,
    pub cells: Vec<String>,
    pub text: String,
    /// Whether the bytes were UTF-8 (else `cells` and `text` are a lossy rendering).
    pub utf8: bool,
    /// A quote still open at the end of the file.
    pub unterminated: bool,
}

/// Reads records one at a time from `input`.
#[derive(Debug)]
pub struct Records<R> {
    input: R,
    next_line: usize,
}

impl<R: BufRead> Records<R> {
    pub fn new(input: R) -> Self {
        Records {
            input,
            next_line: 1,
        }
    }

    /// The next record, `None` at the end; blank lines are no record.
    pub fn next_record(&mut self) -> std::io::Result<Option<Record>> {
        loop {
            let line = self.next_line;
            let mut bytes = Vec::new();
            let mut quoted = false;
            loop {
                let start = bytes.len();
                if self.input.read_until(b'\n', &mut bytes)? == 0 {
                    break;
                }
                self.next_line += 1;
                quoted ^= bytes[start..].iter().filter(|&&b| b == b'"').count() % 2 == 1;
                if !quoted {
                    break;
                }
            }
            if bytes.is_empty() {
                return Ok(None);
            }
            while matches!(bytes.last(), Some(b'\n' | b'\r')) {
                bytes.pop();
            }
            if bytes.is_empty() {
                continue;
            }
            let (text, utf8) = match String::from_utf8(bytes) {
                Ok(text) => (text, true),
                Err(error) => (
                    String::from_utf8_lossy(error.as_bytes()).into_owned(),
                    false,
                ),
            };
            return Ok(Some(Record {
                line,
                cells: split_cells(&text),
                text,
                utf8,
                unterminated: quoted,
            }));
        }
    }
}

/// The cells of one record's text.
fn split_cells(text: &str) -> Vec<String> {
    let mut cells = Vec::new();
    let mut cell = String::new();
    let mut quoted = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                cell.push('"');
            }
            (true, '"') => quoted = false,
            (false, '"') if cell.is_empty() => quoted = true,
            (false, ',') => cells.push(std::mem::take(&mut cell)),
            (_, c) => cell.push(c),
        }
    }
    cells.push(cell);
    cells
}

/// The columns of a header record, checked: known names, each once, `event_id` among them.
pub fn header(record: &Record) -> Result<Vec<&'static str>, HeaderError> {
    if !record.utf8 {
        return Err(HeaderError::NotUtf8);
    }
    let mut columns: Vec<&'static str> = Vec::with_capacity(record.cells.len());
    for (index, cell) in record.cells.iter().enumerate() {
        // A byte-order mark is how spreadsheets start a UTF-8 export.
        let name = match index {
            0 => cell.trim_start_matches('\u{feff}').trim(),
            _ => cell.trim(),
        };
        let Some(column) = COLUMNS.iter().find(|known| **known == name) else {
            return Err(HeaderError::Unknown(name.to_owned()));
        };
        if columns.contains(column) {
            return Err(HeaderError::Twice(name.to_owned()));
        }
        columns.push(column);
    }
    for required in ["event_id", "occurred_at", "customer.email"] {
        if !columns.contains(&required) {
            return Err(HeaderError::Required(required));
        }
    }
    Ok(columns)
}

/// Why a row could not become a webhook body at all (the body's own faults are the
/// validation's to name).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RowError {
    #[error("the row has {cells} cells and the header {columns}")]
    Width { cells: usize, columns: usize },
    #[error("a quoted cell is not closed before the end of the file")]
    Unterminated,
}

/// The webhook body a row stands for: an empty cell is an absent field, `event_type`
/// defaults to `service.completed`, `pest_issues` is split on `;`.
pub fn row_body(columns: &[&'static str], record: &Record) -> Result<String, RowError> {
    if record.unterminated {
        return Err(RowError::Unterminated);
    }
    if record.cells.len() != columns.len() {
        return Err(RowError::Width {
            cells: record.cells.len(),
            columns: columns.len(),
        });
    }
    let mut body = Map::new();
    for (column, cell) in columns.iter().zip(&record.cells) {
        if cell.is_empty() {
            continue;
        }
        let value = if NUMERIC.contains(column) {
            cell.parse::<Number>()
                .map_or_else(|_| Value::String(cell.clone()), Value::Number)
        } else if *column == LIST {
            Value::Array(
                cell.split(';')
                    .map(|issue| Value::String(issue.to_owned()))
                    .collect(),
            )
        } else {
            Value::String(cell.clone())
        };
        insert_dotted(&mut body, column, value);
    }
    body.entry(EVENT_TYPE)
        .or_insert_with(|| Value::String(referral_domain::event::SERVICE_COMPLETED.to_owned()));
    Ok(Value::Object(body).to_string())
}

fn insert_dotted(body: &mut Map<String, Value>, path: &str, value: Value) {
    let mut object = body;
    let mut parts = path.split('.').peekable();
    while let Some(part) = parts.next() {
        if parts.peek().is_none() {
            object.insert(part.to_owned(), value);
            return;
        }
        let entry = object
            .entry(part)
            .or_insert_with(|| Value::Object(Map::new()));
        // Only `COLUMNS` reach here, and no column is a prefix of a leaf.
        let Value::Object(inner) = entry else { return };
        object = inner;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn records(text: &str) -> Vec<Record> {
        let mut reader = Records::new(text.as_bytes());
        let mut out = Vec::new();
        while let Some(record) = reader.next_record().unwrap() {
            out.push(record);
        }
        out
    }

    #[test]
    fn quoted_cells_keep_commas_quotes_and_line_breaks_and_lines_are_counted() {
        let got = records("a,b\r\n\"x, \"\"y\"\"\",\"two\nlines\"\n\nlast,\n");
        let view: Vec<(usize, Vec<&str>)> = got
            .iter()
            .map(|r| (r.line, r.cells.iter().map(String::as_str).collect()))
            .collect();
        assert_eq!(
            view,
            vec![
                (1, vec!["a", "b"]),
                (2, vec!["x, \"y\"", "two\nlines"]),
                (5, vec!["last", ""]),
            ]
        );
    }

    #[test]
    fn an_open_quote_at_the_end_is_reported_not_lost() {
        let got = records("a\n\"never closed\n");
        assert!(got[1].unterminated);
        let columns = ["event_id"];
        assert_eq!(row_body(&columns, &got[1]), Err(RowError::Unterminated));
    }

    #[test]
    fn a_row_becomes_the_webhook_it_stands_for() {
        let got = records(
            "\u{feff}customer.email,event_id,occurred_at,service.satisfaction_score,\
             property_info.pest_issues,services_count,customer.name\n\
             a@example.com,e1,2024-01-01T00:00:00Z,4.5,ants;termites,x7,\n",
        );
        let columns = header(&got[0]).unwrap();
        let body: Value = serde_json::from_str(&row_body(&columns, &got[1]).unwrap()).unwrap();
        assert_eq!(
            body,
            json!({
                "event_id": "e1",
                "event_type": "service.completed",
                "occurred_at": "2024-01-01T00:00:00Z",
                "customer": {"email": "a@example.com"},
                "service": {"satisfaction_score": 4.5},
                "property_info": {"pest_issues": ["ants", "termites"]},
                "services_count": "x7",
            })
        );
    }

    #[test]
    fn headers_name_known_fields_once() {
        let header_of = |text: &str| header(&records(text)[0]);
        assert_eq!(
            header_of("event_id,customer.mail\n"),
            Err(HeaderError::Unknown("customer.mail".to_owned()))
        );
        assert_eq!(
            header_of("event_id,event_id\n"),
            Err(HeaderError::Twice("event_id".to_owned()))
        );
        assert_eq!(
            header_of("event_id,occurred_at\n"),
            Err(HeaderError::Required("customer.email"))
        );
    }
}
