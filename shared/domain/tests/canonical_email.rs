//! The e-mail address is the customer's key: one mailbox in any spelling gives one key, two
//! mailboxes never give the same key, and what cannot be made canonical safely is refused,
//! naming `customer.email`.
// Helpers outside #[test] functions abort the test on a broken fixture, which is the point.
#![allow(clippy::panic, clippy::expect_used, clippy::unwrap_used)]

use proptest::prelude::*;
use referral_domain::event::{EventError, normalise_email};

fn key(raw: &str) -> String {
    normalise_email(raw).unwrap_or_else(|e| panic!("{raw:?} refused: {e}"))
}

fn refused(raw: &str) -> bool {
    matches!(
        normalise_email(raw),
        Err(EventError::Invalid {
            field: "customer.email",
            ..
        })
    )
}

#[test]
fn one_mailbox_in_any_spelling_is_one_key() {
    assert_eq!(key("  Kate@Example.COM "), "kate@example.com");
    // NFD against NFC.
    assert_eq!(key("jose\u{301}@example.com"), key("jos\u{e9}@example.com"));
    // An IDN domain against its punycode, and its upper-case form.
    assert_eq!(key("anna@bücher.de"), "anna@xn--bcher-kva.de");
    assert_eq!(key("anna@BÜCHER.de"), key("anna@xn--bcher-kva.de"));
    let chinese = key("用户@例子.广告");
    assert!(chinese.starts_with("用户@xn--"), "{chinese}");
    assert_eq!(key(&chinese), chinese);
}

#[test]
fn distinct_mailboxes_never_merge() {
    // Only ASCII is lower-cased: Unicode case folding merges `K` (Kelvin) with `k` and `ſ`
    // with `s`, and a mailbox's local part is the receiving server's to interpret.
    assert_ne!(key("\u{c9}mile@example.com"), key("\u{e9}mile@example.com"));
    assert_ne!(key("stra\u{df}e@example.com"), key("strasse@example.com"));
    assert_ne!(key("kate@example.com"), key("kate@example.co"));
}

#[test]
fn look_alikes_and_invisible_characters_are_refused_not_merged() {
    for raw in [
        // The Kelvin sign, which lower-cases to `k`.
        "\u{212a}ate@example.com",
        // Fullwidth letters, in the name and the domain.
        "\u{ff4b}ate@example.com",
        "kate@\u{ff45}xample.com",
        // Zero-width space and joiner, soft hyphen, word joiner, BOM.
        "ka\u{200b}te@example.com",
        "kate\u{200d}@example.com",
        "ka\u{ad}te@example.com",
        "kate@exam\u{2060}ple.com",
        "\u{feff}kate@example.com",
        // Bidi overrides and marks.
        "\u{202e}etak@example.com",
        "kate\u{200f}@example.com",
        // Separators, blanks, controls, private use, unassigned.
        "kate\u{2028}@example.com",
        "kate\u{2800}@example.com",
        "kate\u{3164}@example.com",
        "ka\u{7}te@example.com",
        "kate\u{e000}@example.com",
        "kate\u{50000}@example.com",
        // A Cyrillic `а` among Latin letters, in the name and in the domain.
        "k\u{430}te@example.com",
        "kate@ex\u{430}mple.com",
        // Ligatures and the ohm sign.
        "\u{fb01}nn@example.com",
        "\u{2126}mega@example.com",
    ] {
        assert!(refused(raw), "{raw:?} gave {:?}", normalise_email(raw));
    }
}

#[test]
fn malformed_addresses_are_refused_naming_the_field() {
    for raw in [
        "",
        "   ",
        "kate",
        "kate@",
        "@example.com",
        "kate@@example.com",
        "ka te@example.com",
        "kate@example",
        "kate@example..com",
        ".kate@example.com",
        "ka..te@example.com",
        "\"kate\"@example.com",
        "kate,bob@example.com",
        "kate@exa_mple.com",
        "kate@-example.com",
        "kate@example.123",
    ] {
        assert!(refused(raw), "{raw:?} gave {:?}", normalise_email(raw));
    }
    let long = format!("{}@example.com", "a".repeat(250));
    assert!(refused(&long));
}

/// An ASCII address; the generator keeps to what the form may hold.
fn ascii_address() -> impl Strategy<Value = String> {
    "[A-Za-z0-9][A-Za-z0-9_%+-]{0,15}@[A-Za-z0-9]{1,10}\\.[A-Za-z]{2,5}"
}

fn unicode_address() -> impl Strategy<Value = String> {
    (
        prop::sample::select(vec![
            "zoë",
            "José",
            "Łukasz",
            "Ærø",
            "用户",
            "пользователь",
            "δοκιμή",
        ]),
        prop::sample::select(vec!["example.com", "bücher.de", "例子.广告", "пример.рф"]),
    )
        .prop_map(|(local, domain)| format!("{local}@{domain}"))
}

fn address() -> impl Strategy<Value = String> {
    prop_oneof![ascii_address(), unicode_address()]
}

/// Characters that must never be dropped or mapped into a key.
fn hostile_char() -> impl Strategy<Value = char> {
    prop::sample::select(vec![
        '\u{200b}', '\u{200c}', '\u{200d}', '\u{2060}', '\u{feff}', '\u{ad}', '\u{202a}',
        '\u{202e}', '\u{2066}', '\u{200e}', '\u{061c}', '\u{2028}', '\u{2800}', '\u{3164}',
        '\u{e000}', '\u{1}', '\u{7f}',
    ])
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1_000))]

    #[test]
    fn the_key_is_canonical(raw in address()) {
        let once = key(&raw);
        // A key is its own key, and survives the spellings that name the same mailbox.
        prop_assert_eq!(&key(&once), &once);
        prop_assert_eq!(&key(&format!(" {} ", raw.to_ascii_uppercase())), &once);
        prop_assert!(once.is_ascii() || !raw.split('@').next().unwrap_or_default().is_ascii());
        let domain = once.split('@').nth(1).unwrap_or_default();
        prop_assert!(domain.is_ascii(), "{}", once);
    }

    #[test]
    fn an_invisible_character_anywhere_is_refused(
        raw in address(),
        hostile in hostile_char(),
        at in 0usize..64,
    ) {
        let boundaries: Vec<usize> = raw.char_indices().map(|(i, _)| i).skip(1).collect();
        let Some(&cut) = boundaries.get(at % boundaries.len().max(1)) else {
            return Ok(());
        };
        let spoiled = format!("{}{hostile}{}", &raw[..cut], &raw[cut..]);
        prop_assert!(refused(&spoiled), "{:?} gave {:?}", spoiled, normalise_email(&spoiled));
    }

    #[test]
    fn a_fullwidth_letter_is_refused_never_merged(raw in ascii_address(), at in 0usize..64) {
        let letters: Vec<usize> = raw
            .char_indices()
            .filter(|(_, c)| c.is_ascii_alphanumeric())
            .map(|(i, _)| i)
            .collect();
        let i = letters[at % letters.len()];
        let c = raw.as_bytes()[i] as u32;
        let fullwidth = char::from_u32(c - 0x21 + 0xff01).unwrap();
        let spoiled = format!("{}{fullwidth}{}", &raw[..i], &raw[i + 1..]);
        prop_assert!(refused(&spoiled), "{:?} gave {:?}", spoiled, normalise_email(&spoiled));
    }
}
