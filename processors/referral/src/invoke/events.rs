//! The events of one invocation run: a JSON file, a JSONL file, or stdin.

use std::io::Read;
use std::path::Path;

use super::InvokeCommandError;
use referral_lambda_emulator::MAX_PAYLOAD_BYTES;

/// The events of a JSON document (one event, even an array) or of JSONL (one per line).
pub fn read(path: &Path) -> Result<Vec<Vec<u8>>, InvokeCommandError> {
    let stdin = path == Path::new("-");
    let source_name = if stdin {
        "stdin".to_owned()
    } else {
        path.display().to_string()
    };
    let mut bytes = Vec::new();
    let read = if stdin {
        std::io::stdin().read_to_end(&mut bytes).map(|_| ())
    } else {
        std::fs::read(path).map(|read| bytes = read)
    };
    read.map_err(|error| InvokeCommandError::ReadEvents {
        source_name: source_name.clone(),
        error,
    })?;
    let mut events = Vec::new();
    let stream =
        serde_json::Deserializer::from_slice(&bytes).into_iter::<&serde_json::value::RawValue>();
    for (index, event) in stream.enumerate() {
        let event = event.map_err(|error| InvokeCommandError::BadEvents {
            source_name: source_name.clone(),
            error,
        })?;
        let event = event.get().as_bytes();
        if event.len() > MAX_PAYLOAD_BYTES {
            return Err(InvokeCommandError::EventTooLarge {
                source_name,
                number: index + 1,
                size: event.len(),
            });
        }
        events.push(event.to_vec());
    }
    if events.is_empty() {
        return Err(InvokeCommandError::NoEvents { source_name });
    }
    Ok(events)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events_of(text: &str) -> Result<Vec<String>, InvokeCommandError> {
        let path = std::env::temp_dir().join(format!(
            "referral-invoke-events-{}-{}",
            std::process::id(),
            fastrand::u64(..)
        ));
        std::fs::write(&path, text).unwrap();
        let events = read(&path);
        let _ = std::fs::remove_file(&path);
        Ok(events?
            .into_iter()
            .map(|event| String::from_utf8(event).unwrap())
            .collect())
    }

    #[test]
    fn one_json_document_is_one_event_and_jsonl_one_per_line() {
        assert_eq!(
            events_of("{\n  \"a\": [1,\n 2]\n}\n").unwrap(),
            ["{\n  \"a\": [1,\n 2]\n}"]
        );
        assert_eq!(events_of("[1, 2]").unwrap(), ["[1, 2]"]);
        assert_eq!(
            events_of("{\"n\":1}\n\n{\"n\":2}\n").unwrap(),
            ["{\"n\":1}", "{\"n\":2}"]
        );
        assert!(matches!(
            events_of("  \n"),
            Err(InvokeCommandError::NoEvents { .. })
        ));
        let error = events_of("{\"n\":1}\n{\"n\":\n").unwrap_err();
        assert!(
            matches!(error, InvokeCommandError::BadEvents { .. }),
            "{error}"
        );
        assert!(error.to_string().contains("line 3"), "{error}");
    }
}
