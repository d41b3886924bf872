//! What a model-written message must never carry to a customer, whatever the prompt said:
//! a way to reach someone (a web address, an e-mail address, a phone number), an amount
//! other than the referral offer, or characters a reader cannot see. A prompt injection
//! that gets past the data block shows up here as one of these, and the message is then
//! the template's instead.

use crate::catalogue::REFERRAL_CREDIT_DOLLARS;
use crate::redact::mask_emails;
use crate::shapes::is_invisible;

/// What was found; never the text itself (it may repeat customer data).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finding {
    Invisible,
    Email,
    Url,
    PhoneNumber,
    OtherAmount,
}

/// The first thing in `text` a customer must not be sent, if any.
pub fn screen(text: &str) -> Option<Finding> {
    if text.chars().any(is_invisible) {
        return Some(Finding::Invisible);
    }
    // Before web addresses: an address's domain would read as one.
    if mask_emails(text) != text {
        return Some(Finding::Email);
    }
    if has_url(text) {
        return Some(Finding::Url);
    }
    if has_phone_number(text) {
        return Some(Finding::PhoneNumber);
    }
    if has_other_amount(text) {
        return Some(Finding::OtherAmount);
    }
    None
}

/// Top-level domains that make `word.tld` a web address in running text. A list, not a
/// pattern: a sentence whose full stop lacks its space ("Austin.Thanks") must not count.
const TLDS: &[&str] = &[
    "com", "net", "org", "edu", "gov", "io", "co", "us", "uk", "ca", "info", "biz", "me", "ly",
    "app", "dev", "ai", "xyz", "site", "online", "shop", "link", "gg", "tv", "to", "cc", "ws",
    "club", "top", "click", "page", "live", "store",
];

/// A scheme (`https://`), `www.`, or a dotted host ending in a known top-level domain.
fn has_url(text: &str) -> bool {
    let lower = text.to_ascii_lowercase();
    if lower.contains("://") || lower.contains("www.") {
        return true;
    }
    lower
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '.' || c == '-'))
        .any(|token| {
            let token = token.trim_matches('.');
            let mut labels = token.split('.');
            let Some(tld) = labels.next_back() else {
                return false;
            };
            let mut rest = labels.peekable();
            rest.peek().is_some() && rest.all(|label| !label.is_empty()) && TLDS.contains(&tld)
        })
}

/// Seven or more digits in one run of phone-number punctuation: `555-123-4567`,
/// `(555) 123 4567`, `+1 555.123.4567`. A space joins groups only after a group of at most
/// three digits, so listed years ("2024 2025") are not a number.
fn has_phone_number(text: &str) -> bool {
    let mut digits = 0;
    let mut group = 0;
    let mut separators = 0;
    for c in text.chars().chain(std::iter::once('x')) {
        if c.is_ascii_digit() {
            digits += 1;
            group += 1;
            separators = 0;
            continue;
        }
        let joins = match c {
            '-' | '.' | '(' | ')' | '+' | '/' => true,
            ' ' => group <= 3,
            _ => false,
        };
        if joins && separators < 2 {
            separators += 1;
            group = 0;
            continue;
        }
        if digits >= 7 {
            return true;
        }
        digits = 0;
        group = 0;
        separators = usize::from(joins);
    }
    false
}

/// Any amount of money or discount but the referral credit: `$10`, `€5`, `15 dollars`,
/// `USD 40`, `20%`, `30 percent`.
fn has_other_amount(text: &str) -> bool {
    let lower = text.to_lowercase();
    let chars: Vec<char> = lower.chars().collect();
    let mut index = 0;
    while index < chars.len() {
        let c = chars[index];
        let starts_word = index == 0 || !is_word_char(chars.get(index - 1));
        let currency_before = matches!(c, '$' | '€' | '£' | '¥')
            || (starts_word
                && lower_starts_with(&chars, index, "usd")
                && !is_word_char(chars.get(index + 3)));
        if currency_before {
            let skip = if c.is_ascii_alphabetic() { 3 } else { 1 };
            let mut at = index + skip;
            while chars.get(at) == Some(&' ') {
                at += 1;
            }
            if let Some((value, end)) = number_at(&chars, at) {
                // Dollars only: the offer is in dollars.
                if !(matches!(c, '$' | 'u') && is_the_offer(value)) {
                    return true;
                }
                index = end;
                continue;
            }
        }
        if c.is_ascii_digit() && starts_word {
            if let Some((value, end)) = number_at(&chars, index) {
                let mut after = end;
                while chars.get(after) == Some(&' ') {
                    after += 1;
                }
                if chars.get(after) == Some(&'%') || lower_starts_with(&chars, after, "percent") {
                    return true;
                }
                let in_dollars = ["dollar", "usd", "buck"]
                    .iter()
                    .any(|unit| lower_starts_with(&chars, after, unit));
                if in_dollars && !is_the_offer(value) {
                    return true;
                }
                index = end;
                continue;
            }
        }
        index += 1;
    }
    false
}

/// The number starting at `at` (digits, `,` between digit groups, an optional fraction) in
/// hundredths, and where it ends.
fn number_at(chars: &[char], at: usize) -> Option<(u64, usize)> {
    let mut whole: u64 = 0;
    let mut end = at;
    while let Some(&c) = chars.get(end) {
        if let Some(digit) = c.to_digit(10) {
            whole = whole.saturating_mul(10).saturating_add(u64::from(digit));
        } else if !(c == ',' && chars.get(end + 1).is_some_and(char::is_ascii_digit) && end > at) {
            break;
        }
        end += 1;
    }
    if end == at {
        return None;
    }
    let mut hundredths = whole.saturating_mul(100);
    if chars.get(end) == Some(&'.') && chars.get(end + 1).is_some_and(char::is_ascii_digit) {
        let mut scale = 10;
        end += 1;
        while let Some(digit) = chars.get(end).and_then(|c| c.to_digit(10)) {
            hundredths = hundredths.saturating_add(u64::from(digit) * scale);
            scale /= 10;
            end += 1;
        }
    }
    Some((hundredths, end))
}

fn is_the_offer(hundredths: u64) -> bool {
    hundredths == REFERRAL_CREDIT_DOLLARS * 100
}

fn lower_starts_with(chars: &[char], at: usize, word: &str) -> bool {
    let mut rest = chars.get(at..).unwrap_or_default().iter();
    word.chars().all(|expected| rest.next() == Some(&expected))
}

fn is_word_char(c: Option<&char>) -> bool {
    c.is_some_and(|c| c.is_alphanumeric())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ordinary_referral_message_passes() {
        for text in [
            "Hi Jane! Thank you for trusting us with 8 services since 2019. Know a neighbour in \
             St. Louis who could use our home protection plan? Refer them and you both get $25 off.",
            "Your 2,500 sq ft home built in 1998 deserves care. Refer a friend: $25.00 off for both!",
            "Feel free to share: 25 dollars off each. Visits in 2024 2025 and 2026 were great.",
            "Hi there!Thanks for 3 visits.",
        ] {
            assert_eq!(screen(text), None, "{text}");
        }
    }

    #[test]
    fn contact_details_amounts_and_invisible_characters_are_found() {
        let cases = [
            ("Visit https://evil.example now", Finding::Url),
            ("Go to www.deals.test today", Finding::Url),
            ("Book at cheap-pest.com for less", Finding::Url),
            ("Sign up on bit.ly/x", Finding::Url),
            ("Write to deals@example.com", Finding::Email),
            ("Call 555-123-4567 today", Finding::PhoneNumber),
            ("Call (555) 123 4567", Finding::PhoneNumber),
            ("Call +1 555.123.4567", Finding::PhoneNumber),
            ("Text 5551234567", Finding::PhoneNumber),
            ("Get $10 off", Finding::OtherAmount),
            ("Get $250 off", Finding::OtherAmount),
            ("Get $25 off, or $1,000 in credit", Finding::OtherAmount),
            ("Save €25 now", Finding::OtherAmount),
            ("Save 50% today", Finding::OtherAmount),
            ("Save 30 percent", Finding::OtherAmount),
            ("Get 100 dollars", Finding::OtherAmount),
            ("Pay USD 40 only", Finding::OtherAmount),
            ("Hi Jane\u{202E}", Finding::Invisible),
            ("Hi\u{200B}Jane", Finding::Invisible),
            ("Hi Jane\u{E0049}\u{E0067}", Finding::Invisible),
        ];
        for (text, expected) in cases {
            assert_eq!(screen(text), Some(expected), "{text:?}");
        }
    }
}
