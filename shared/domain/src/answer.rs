//! What the model must answer, and the checks an answer passes before a customer reads it.
//! The prompt asks for one JSON object, `{"recommended_service": "<catalogue id>", "message":
//! "<text>"}`; anything else is unusable, and the caller falls back to the template.
//! A refusal's reason never quotes the answer, which may repeat customer data and ends up
//! in logs.

use serde::Deserialize;

use crate::catalogue::{CATALOGUE, REFERRAL_CREDIT_DOLLARS};
use crate::message_screen::{Finding, screen};
use crate::prompt::{DATA_CLOSE, DATA_OPEN};

/// Longest message body accepted, in characters after trimming. The prompt asks for at
/// most 80 words, and English prose runs to about six characters a word with its space and
/// punctuation: 80 words is about 480 characters. More is an answer that ignored the prompt,
/// or one padded to smuggle something past the screen, and the template is the better
/// message then.
pub const MAX_MESSAGE_CHARS: usize = 480;
/// Most words accepted: the prompt's 80 and a quarter more, since models overshoot a word
/// limit a little. It catches what the character cap cannot: many short words ("a a a").
pub const MAX_MESSAGE_WORDS: usize = 100;

/// An answer that passed every check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub recommended_service: &'static str,
    pub message: String,
}

/// Why an answer is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AnswerError {
    #[error("the model stopped early ({reason})")]
    StoppedEarly { reason: String },
    #[error("the answer has no text")]
    NoText,
    #[error(
        "the answer is not the expected JSON object ({category} error at line {line} column {column})"
    )]
    NotTheObject {
        category: &'static str,
        line: usize,
        column: usize,
    },
    #[error("recommended_service is not a catalogue id ({chars} characters)")]
    NotInCatalogue { chars: usize },
    #[error("the message is empty")]
    EmptyMessage,
    #[error("the message has {chars} characters, more than {MAX_MESSAGE_CHARS}")]
    TooLong { chars: usize },
    #[error("the message has {words} words, more than {MAX_MESSAGE_WORDS}")]
    TooManyWords { words: usize },
    #[error("the message echoes the customer-data delimiters")]
    EchoesDelimiters,
    #[error(
        "the message carries invisible characters (bidi, zero-width, tag, private-use or \
         blank characters, line separators)"
    )]
    InvisibleCharacters,
    #[error("the message carries an e-mail address")]
    HasEmail,
    #[error("the message carries a web address")]
    HasUrl,
    #[error("the message carries a phone number")]
    HasPhoneNumber,
    #[error(
        "the message names an amount other than the ${REFERRAL_CREDIT_DOLLARS} referral credit"
    )]
    OtherAmount,
    #[error(
        "the message makes an offer other than the ${REFERRAL_CREDIT_DOLLARS} referral credit \
         (something free, a coupon, a deal)"
    )]
    OtherOffer,
    #[error("the message asks for a password, an account, a card or an identity number")]
    AsksForCredentials,
    #[error("the message echoes the model's instructions or a chat role")]
    EchoesInstructions,
    #[error("the message carries markup (Markdown or HTML)")]
    HasMarkup,
    #[error(
        "the message carries letters outside the Latin alphabet (look-alikes or another script)"
    )]
    OtherScript,
    #[error("the message is not plain prose (a symbol, an emoji, stray combining marks or a code)")]
    NotPlainProse,
}

impl From<Finding> for AnswerError {
    fn from(finding: Finding) -> Self {
        match finding {
            Finding::Invisible => AnswerError::InvisibleCharacters,
            Finding::Email => AnswerError::HasEmail,
            Finding::Url => AnswerError::HasUrl,
            Finding::PhoneNumber => AnswerError::HasPhoneNumber,
            Finding::OtherAmount => AnswerError::OtherAmount,
            Finding::OtherOffer => AnswerError::OtherOffer,
            Finding::Credentials => AnswerError::AsksForCredentials,
            Finding::Instructions => AnswerError::EchoesInstructions,
            Finding::Markup => AnswerError::HasMarkup,
            Finding::Script => AnswerError::OtherScript,
            Finding::NotProse => AnswerError::NotPlainProse,
        }
    }
}

/// The answer as the prompt asks for it.
#[derive(Debug, Deserialize)]
struct RawAnswer {
    recommended_service: String,
    message: String,
}

/// Parses and checks the answer text (surrounding white space and a Markdown code fence are
/// tolerated: models add them despite being told not to).
pub fn parse_answer(text: &str) -> Result<Answer, AnswerError> {
    let json = strip_fence(text.trim());
    if json.is_empty() {
        return Err(AnswerError::NoText);
    }
    let raw: RawAnswer = serde_json::from_str(json).map_err(|error| {
        // Only the category and position: serde's message can quote the input.
        AnswerError::NotTheObject {
            category: match error.classify() {
                serde_json::error::Category::Io => "io",
                serde_json::error::Category::Syntax => "syntax",
                serde_json::error::Category::Data => "data",
                serde_json::error::Category::Eof => "eof",
            },
            line: error.line(),
            column: error.column(),
        }
    })?;
    let service = raw.recommended_service.trim();
    let recommended_service = CATALOGUE
        .iter()
        .find(|candidate| candidate.id == service)
        .map(|candidate| candidate.id)
        .ok_or(AnswerError::NotInCatalogue {
            chars: service.chars().count(),
        })?;
    let message = raw.message.trim();
    if message.is_empty() {
        return Err(AnswerError::EmptyMessage);
    }
    let chars = message.chars().count();
    if chars > MAX_MESSAGE_CHARS {
        return Err(AnswerError::TooLong { chars });
    }
    let words = message.split_whitespace().count();
    if words > MAX_MESSAGE_WORDS {
        return Err(AnswerError::TooManyWords { words });
    }
    let lower = message.to_lowercase();
    if lower.contains(DATA_OPEN) || lower.contains(DATA_CLOSE) {
        return Err(AnswerError::EchoesDelimiters);
    }
    if let Some(finding) = screen(message) {
        return Err(finding.into());
    }
    Ok(Answer {
        recommended_service,
        message: message.to_owned(),
    })
}

/// The inside of a ```` ```json ```` (or bare ```` ``` ````) fence, or `text` unchanged.
fn strip_fence(text: &str) -> &str {
    let Some(rest) = text.strip_prefix("```") else {
        return text;
    };
    let Some(inner) = rest.strip_suffix("```") else {
        return text;
    };
    // The info string, if any, runs to the end of the opening line.
    let inner = match inner.split_once('\n') {
        Some((info, body)) if info.trim().chars().all(|c| c.is_ascii_alphanumeric()) => body,
        _ => inner,
    };
    inner.trim()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plain_or_fenced_answer_parses() {
        let plain = r#"  {"recommended_service": "lawn_care", "message": " Hi Jane! "}  "#;
        let fenced =
            "```json\n{\"recommended_service\": \"lawn_care\", \"message\": \"Hi Jane!\"}\n```";
        let bare_fence =
            "```\n{\"recommended_service\": \"lawn_care\", \"message\": \"Hi Jane!\"}\n```";
        for text in [plain, fenced, bare_fence] {
            assert_eq!(
                parse_answer(text),
                Ok(Answer {
                    recommended_service: "lawn_care",
                    message: "Hi Jane!".to_owned(),
                }),
                "{text}"
            );
        }
    }

    #[test]
    fn unusable_answers_are_refused_without_quoting_them() {
        let long = format!(
            r#"{{"recommended_service": "lawn_care", "message": "{}"}}"#,
            "a".repeat(MAX_MESSAGE_CHARS + 1)
        );
        let cases = [
            "",
            "Sure! Here is your message: Hi Jane",
            r#"{"recommended_service": "roof_repair", "message": "Hi Jane"}"#,
            r#"{"recommended_service": "lawn_care", "message": "   "}"#,
            r#"{"recommended_service": "lawn_care"}"#,
            r#"{"recommended_service": "lawn_care", "message": "Hi Jane </customer_data> bye"}"#,
            r#"{"recommended_service": "lawn_care", "message": "<CUSTOMER_DATA>Hi Jane"}"#,
            long.as_str(),
        ];
        for text in cases {
            match parse_answer(text) {
                Err(reason) => assert!(!reason.to_string().contains("Jane"), "{reason}"),
                Ok(answer) => panic!("{text:?} accepted as {answer:?}"),
            }
        }
        let at_limit = format!(
            r#"{{"recommended_service": "lawn_care", "message": "{}"}}"#,
            "a".repeat(MAX_MESSAGE_CHARS)
        );
        assert!(parse_answer(&at_limit).is_ok());
    }

    #[test]
    fn contact_details_other_amounts_and_invisible_text_are_refused_without_quoting_them() {
        let answer = |message: &str| {
            serde_json::json!({"recommended_service": "lawn_care", "message": message}).to_string()
        };
        let cases = [
            (
                "Hi Jane! Book at https://jane-deals.example/x",
                AnswerError::HasUrl,
            ),
            ("Hi Jane! See janedeals.com", AnswerError::HasUrl),
            (
                "Hi Jane! Mail jane.offers@example.com",
                AnswerError::HasEmail,
            ),
            ("Hi Jane! Call 512-555-0142", AnswerError::HasPhoneNumber),
            ("Hi Jane! Free service, $0 today", AnswerError::OtherAmount),
            ("Hi Jane! Take 50% off", AnswerError::OtherAmount),
            ("Hi Jane!\u{202E}", AnswerError::InvisibleCharacters),
            (
                "Hi Jane!\u{E0041}\u{E0042}",
                AnswerError::InvisibleCharacters,
            ),
        ];
        for (message, expected) in cases {
            let refused = parse_answer(&answer(message));
            assert_eq!(refused, Err(expected.clone()), "{message:?}");
            let reason = expected.to_string();
            assert!(
                !reason.contains("Jane") && !reason.contains("512") && !reason.contains("jane"),
                "{reason}"
            );
        }
        let offer = answer("Hi Jane! Refer a friend and you both get $25 off.");
        assert!(parse_answer(&offer).is_ok());
    }
}
