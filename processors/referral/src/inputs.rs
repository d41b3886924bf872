//! Reading webhook files: `.json` (a top-level array is a list of events, any other value
//! one event), `.jsonl` / `.ndjson` (one event per line). Text that is not JSON becomes one
//! event that the enricher rejects, and bytes that are not UTF-8 (a line, or a whole `.json`
//! file) one event the run refuses as ingest would, so a bad file never stops the run.

use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use referral_local::pipeline::InputEvent;
use serde_json::value::RawValue;

#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error("cannot read `{path}`: {source}. Check the path exists and is readable.")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("no webhook files (.json, .jsonl, .ndjson) found under {0}")]
    Empty(String),
}

/// Every event of every file under `paths`, directories walked in sorted order.
pub fn read_inputs(paths: &[PathBuf]) -> Result<Vec<InputEvent>, InputError> {
    let mut events = Vec::new();
    for file in input_files(paths, is_webhook_file)? {
        read_file(&file, &mut |event| events.push(event))?;
    }
    Ok(events)
}

/// The files named in `paths`, and those under its directories that `accept` takes, in
/// sorted order; an error when there are none.
pub fn input_files(
    paths: &[PathBuf],
    accept: fn(&Path) -> bool,
) -> Result<Vec<PathBuf>, InputError> {
    let mut files = Vec::new();
    for path in paths {
        collect_files(path, true, accept, &mut files)?;
    }
    if files.is_empty() {
        let named: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
        return Err(InputError::Empty(named.join(", ")));
    }
    Ok(files)
}

/// Hands each event of one webhook file to `each`. Line-delimited files are streamed, so
/// they may be larger than memory; a `.json` document is read whole.
pub fn read_file(file: &Path, each: &mut dyn FnMut(InputEvent)) -> Result<(), InputError> {
    let read_error = |source| InputError::Read {
        path: file.to_owned(),
        source,
    };
    let name = file.display().to_string();
    if is_line_delimited(file) {
        let reader = BufReader::new(fs::File::open(file).map_err(read_error)?);
        for (index, line) in reader.split(b'\n').enumerate() {
            let line = line.map_err(read_error)?;
            if let Some(event) = line_event(&name, index + 1, &line) {
                each(event);
            }
        }
        return Ok(());
    }
    let bytes = fs::read(file).map_err(read_error)?;
    match std::str::from_utf8(&bytes) {
        Ok(text) => read_document(&name, text, each),
        Err(_) => each(InputEvent {
            source: format!("{name}:1"),
            body: String::from_utf8_lossy(&bytes).trim().to_owned(),
            utf8: false,
        }),
    }
    Ok(())
}

fn collect_files(
    path: &Path,
    named: bool,
    accept: fn(&Path) -> bool,
    files: &mut Vec<PathBuf>,
) -> Result<(), InputError> {
    let read_error = |source| InputError::Read {
        path: path.to_owned(),
        source,
    };
    let metadata = fs::metadata(path).map_err(read_error)?;
    if metadata.is_dir() {
        let mut entries = fs::read_dir(path)
            .map_err(read_error)?
            .map(|entry| entry.map(|e| e.path()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(read_error)?;
        entries.sort();
        for entry in entries {
            collect_files(&entry, false, accept, files)?;
        }
    } else if named || accept(path) {
        // A file named on the command line is read whatever its extension.
        files.push(path.to_owned());
    }
    Ok(())
}

pub fn extension(path: &Path) -> String {
    path.extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .unwrap_or_default()
}

pub fn is_webhook_file(path: &Path) -> bool {
    matches!(extension(path).as_str(), "json" | "jsonl" | "ndjson")
}

fn is_line_delimited(path: &Path) -> bool {
    matches!(extension(path).as_str(), "jsonl" | "ndjson")
}

/// One line on its own: one that is not UTF-8 is refused alone, the others stand. Blank
/// lines are no event.
fn line_event(name: &str, number: usize, line: &[u8]) -> Option<InputEvent> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let (body, utf8) = match std::str::from_utf8(line) {
        Ok(text) => (text.to_owned(), true),
        Err(_) => (String::from_utf8_lossy(line).into_owned(), false),
    };
    if body.trim().is_empty() {
        return None;
    }
    Some(InputEvent {
        source: format!("{name}:{number}"),
        body,
        utf8,
    })
}

fn read_document(name: &str, text: &str, each: &mut dyn FnMut(InputEvent)) {
    let start_line = |offset: usize| text[..offset].matches('\n').count() + 1;
    let first_value = text.len() - text.trim_start().len();
    // Array elements are kept as their raw text, so each event reaches the queue exactly as
    // written and keeps the line it starts on.
    if let Ok(elements) = serde_json::from_str::<Vec<&RawValue>>(text) {
        for element in elements {
            let raw = element.get();
            let offset = raw.as_ptr() as usize - text.as_ptr() as usize;
            each(InputEvent {
                source: format!("{name}:{}", start_line(offset)),
                body: raw.to_owned(),
                utf8: true,
            });
        }
        return;
    }
    each(InputEvent {
        source: format!("{name}:{}", start_line(first_value)),
        body: text.trim().to_owned(),
        utf8: true,
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn array_elements_keep_their_text_and_line() {
        let mut events = Vec::new();
        read_document(
            "f.json",
            "[\n  {\"a\": 1},\n  {\"b\":\n 2}\n]\n",
            &mut |event| events.push(event),
        );
        let got: Vec<(&str, &str)> = events
            .iter()
            .map(|e| (e.source.as_str(), e.body.as_str()))
            .collect();
        assert_eq!(
            got,
            vec![("f.json:2", "{\"a\": 1}"), ("f.json:3", "{\"b\":\n 2}")]
        );
    }

    #[test]
    fn anything_else_is_one_event() {
        let mut events = Vec::new();
        read_document("f.json", "\n\n{\"event_id\": ", &mut |event| {
            events.push(event)
        });
        read_document("g.json", "42", &mut |event| events.push(event));
        assert_eq!(events.len(), 2);
        assert_eq!(events[0].source, "f.json:3");
        assert_eq!(events[1].body, "42");
    }

    #[test]
    fn blank_lines_are_skipped_and_lines_numbered() {
        let events: Vec<InputEvent> = b"{}\n\nnot json\n"
            .split(|&byte| byte == b'\n')
            .enumerate()
            .filter_map(|(index, line)| line_event("f.jsonl", index + 1, line))
            .collect();
        let sources: Vec<&str> = events.iter().map(|e| e.source.as_str()).collect();
        assert_eq!(sources, vec!["f.jsonl:1", "f.jsonl:3"]);
    }
}
