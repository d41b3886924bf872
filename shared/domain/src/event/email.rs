//! The canonical form of a customer's e-mail address, which is the key of their features and
//! messages: two spellings of one mailbox must give one key, and two mailboxes must never
//! give the same key.
//!
//! The rule, in order:
//! 1. surrounding ASCII white space is dropped (form fields carry it);
//! 2. the address is put in Unicode NFC, so a decomposed `é` and a composed one are one;
//! 3. refused outright: invisible characters (controls, format and bidi characters,
//!    default-ignorables such as zero-width spaces, blanks), private-use and unassigned code
//!    points, compatibility look-alikes (fullwidth letters, ligatures, the Kelvin sign and
//!    the other singletons NFC would silently turn into a plain letter), and a label that
//!    mixes scripts (`pаypal` with a Cyrillic `а`);
//! 4. the domain goes through IDNA (UTS 46) to its ASCII form, so `bücher.de` and
//!    `xn--bcher-kva.de` are one domain, and must then be a valid host name;
//! 5. only ASCII letters are lower-cased. Unicode case folding would merge distinct
//!    mailboxes: `K` (Kelvin) folds to `k`, `ſ` to `s`.
//!
//! What cannot be made canonical safely is refused with an error naming `customer.email`,
//! never guessed at.

use std::borrow::Cow;

use icu_normalizer::{ComposingNormalizerBorrowed, DecomposingNormalizerBorrowed};
use icu_properties::CodePointMapData;
use icu_properties::props::Script;

use super::{EventError, MAX_EMAIL_LEN};
use crate::shapes::is_hidden_or_not_text;

const FIELD: &str = "customer.email";

fn invalid(problem: &'static str) -> EventError {
    EventError::Invalid {
        field: FIELD,
        problem,
    }
}

/// The canonical key of an address, or why it has none.
pub fn normalise_email(raw: &str) -> Result<String, EventError> {
    let trimmed = raw.trim_matches(|c: char| c.is_ascii_whitespace());
    if trimmed.is_empty() {
        return Err(invalid("must not be empty"));
    }
    // Checked again on the canonical form; this bounds the work on absurd input.
    if trimmed.len() > 4 * MAX_EMAIL_LEN {
        return Err(invalid("is longer than 254 bytes"));
    }
    if trimmed.chars().any(char::is_whitespace) {
        return Err(invalid("must not contain spaces"));
    }
    refuse_invisible_and_look_alikes(trimmed)?;
    let nfc = ComposingNormalizerBorrowed::new_nfc().normalize(trimmed);
    let mut parts = nfc.split('@');
    let (Some(local), Some(domain), None) = (parts.next(), parts.next(), parts.next()) else {
        return Err(invalid("must contain exactly one `@`"));
    };
    let local = canonical_local_part(local)?;
    let domain = canonical_domain(domain)?;
    let email = format!("{local}@{domain}");
    if email.len() > MAX_EMAIL_LEN {
        return Err(invalid("is longer than 254 bytes"));
    }
    Ok(email)
}

/// Characters that show as nothing, or as another character, are refused: they are how one
/// person is made to look like another, or one mailbox is split into two keys.
fn refuse_invisible_and_look_alikes(text: &str) -> Result<(), EventError> {
    let nfd = DecomposingNormalizerBorrowed::new_nfd();
    let nfkc = ComposingNormalizerBorrowed::new_nfkc();
    let mut one = [0u8; 4];
    for c in text.chars() {
        if is_hidden_or_not_text(c) {
            return Err(invalid(
                "must not contain invisible, control, bidi or private-use characters",
            ));
        }
        if c.is_ascii() {
            continue;
        }
        let alone: &str = c.encode_utf8(&mut one);
        // A canonical singleton (the Kelvin sign, the ohm sign, CJK compatibility
        // ideographs) decomposes to one other character: NFC would quietly replace it.
        let canonical = nfd.normalize(alone);
        let singleton = canonical.chars().count() == 1 && canonical != alone;
        // Compatibility characters (fullwidth, ligatures, superscripts) stand for others.
        let compatibility = nfkc.normalize(alone) != alone;
        if singleton || compatibility {
            return Err(invalid(
                "must not contain look-alike characters (fullwidth, compatibility forms, the Kelvin sign)",
            ));
        }
    }
    Ok(())
}

/// RFC 5322 `dot-atom` text in ASCII; any other character only beyond ASCII (RFC 6531).
/// Quoted local parts are refused: they have no safe canonical form.
fn canonical_local_part(local: &str) -> Result<String, EventError> {
    const ATEXT_SYMBOLS: &str = "!#$%&'*+-/=?^_`{|}~";
    if local.is_empty() {
        return Err(invalid("must look like name@domain.tld"));
    }
    if local.starts_with('.') || local.ends_with('.') || local.contains("..") {
        return Err(invalid(
            "must not start or end its name with a dot, nor have two in a row",
        ));
    }
    let usable = |c: char| {
        !c.is_ascii() || c.is_ascii_alphanumeric() || c == '.' || ATEXT_SYMBOLS.contains(c)
    };
    if !local.chars().all(usable) {
        return Err(invalid(
            "must not contain quotes, brackets, commas or other such characters in its name",
        ));
    }
    single_script(local)?;
    Ok(ascii_lowercase(local).into_owned())
}

fn canonical_domain(domain: &str) -> Result<String, EventError> {
    let well_formed = domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains("..");
    if !well_formed {
        return Err(invalid("must look like name@domain.tld"));
    }
    for label in domain.split('.') {
        single_script(label)?;
    }
    let ascii = idna::domain_to_ascii_strict(domain)
        .map_err(|_| invalid("must have a valid domain name"))?;
    // IDNA accepts `a.b.1`; a mailbox's domain ends in a name, not a number.
    let tld_is_name = ascii
        .rsplit('.')
        .next()
        .is_some_and(|tld| tld.chars().any(|c| c.is_ascii_alphabetic()));
    if !tld_is_name {
        return Err(invalid("must look like name@domain.tld"));
    }
    Ok(ascii)
}

/// One script per label, or one of the combinations Japanese, Chinese and Korean writing
/// use with Latin: UTS 39's "highly restrictive" level. Digits and marks (Common,
/// Inherited) go with any.
fn single_script(label: &str) -> Result<(), EventError> {
    const COMBINATIONS: [&[Script]; 3] = [
        &[
            Script::Latin,
            Script::Han,
            Script::Hiragana,
            Script::Katakana,
        ],
        &[Script::Latin, Script::Han, Script::Bopomofo],
        &[Script::Latin, Script::Han, Script::Hangul],
    ];
    let scripts = CodePointMapData::<Script>::new();
    let mut seen: Vec<Script> = Vec::new();
    for c in label.chars() {
        let script = if c.is_ascii_alphabetic() {
            Script::Latin
        } else {
            scripts.get(c)
        };
        if script != Script::Common && script != Script::Inherited && !seen.contains(&script) {
            seen.push(script);
        }
    }
    let allowed = seen.len() <= 1
        || COMBINATIONS
            .iter()
            .any(|combination| seen.iter().all(|script| combination.contains(script)));
    if allowed {
        Ok(())
    } else {
        Err(invalid(
            "must not mix scripts within its name or a domain label",
        ))
    }
}

fn ascii_lowercase(text: &str) -> Cow<'_, str> {
    if text.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(text.to_ascii_lowercase())
    } else {
        Cow::Borrowed(text)
    }
}
