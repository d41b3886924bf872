//! Settings read from a process's environment, the one way every binary reads them: blank
//! counts as unset (templates often pass an empty parameter), values are trimmed, and a bad
//! value is refused at start-up with an error naming the variable and what it must be.

use std::str::FromStr;

/// A variable that is missing or cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvError {
    #[error("environment variable {name} is required: set it to {meaning}")]
    Missing {
        name: &'static str,
        meaning: &'static str,
    },
    #[error("environment variable {name} must be {expected}, got {value:?}")]
    Invalid {
        name: &'static str,
        expected: &'static str,
        value: String,
    },
}

/// The environment seen through a lookup (a variable's name to its value), so that tests
/// need not touch the process's environment.
#[derive(Debug, Clone, Copy)]
pub struct Vars<F>(F);

impl Vars<fn(&str) -> Option<String>> {
    /// The process's environment. A value that is not UTF-8 is kept (lossily) so that it is
    /// reported as invalid, not as missing.
    pub fn process() -> Self {
        Vars(|name| std::env::var_os(name).map(|value| value.to_string_lossy().into_owned()))
    }
}

impl Vars<fn(&str) -> Option<String>> {
    /// Fixed `(name, value)` settings instead of the process's environment, as tests and
    /// tools give a function its configuration.
    pub fn fixed(pairs: &[(&str, &str)]) -> Vars<impl Fn(&str) -> Option<String> + use<>> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
            .collect();
        Vars(move |name: &str| {
            pairs
                .iter()
                .find(|(key, _)| key == name)
                .map(|(_, value)| value.clone())
        })
    }
}

impl<F: Fn(&str) -> Option<String>> Vars<F> {
    pub fn new(lookup: F) -> Self {
        Vars(lookup)
    }

    /// The trimmed value, or `None` when unset or blank.
    pub fn get(&self, name: &str) -> Option<String> {
        (self.0)(name)
            .map(|value| value.trim().to_owned())
            .filter(|value| !value.is_empty())
    }

    /// A variable without a default; `meaning` tells the operator what to set it to.
    pub fn required(&self, name: &'static str, meaning: &'static str) -> Result<String, EnvError> {
        self.get(name).ok_or(EnvError::Missing { name, meaning })
    }

    /// A value parsed as `T` and accepted by `valid`, or `default` when unset.
    pub fn parsed<T: FromStr>(
        &self,
        name: &'static str,
        default: T,
        expected: &'static str,
        valid: impl Fn(&T) -> bool,
    ) -> Result<T, EnvError> {
        match self.get(name) {
            None => Ok(default),
            Some(value) => match value.parse::<T>() {
                Ok(parsed) if valid(&parsed) => Ok(parsed),
                _ => Err(EnvError::Invalid {
                    name,
                    expected,
                    value,
                }),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> Vars<impl Fn(&str) -> Option<String>> {
        Vars::fixed(pairs)
    }

    #[test]
    fn blank_is_unset_and_values_are_trimmed() {
        let vars = vars(&[("TABLE", "  T1 "), ("BLANK", "  ")]);
        assert_eq!(vars.required("TABLE", "a table"), Ok("T1".to_owned()));
        assert_eq!(
            vars.required("BLANK", "a table"),
            Err(EnvError::Missing {
                name: "BLANK",
                meaning: "a table"
            })
        );
        assert_eq!(vars.parsed("BLANK", 7u32, "a number", |_| true), Ok(7));
    }

    #[test]
    fn a_value_out_of_range_or_of_the_wrong_type_is_named() {
        let vars = vars(&[("ZERO", "0"), ("WORD", "many")]);
        let positive = |value: &u32| *value >= 1;
        let error = vars
            .parsed("ZERO", 8u32, "a whole number of at least 1", positive)
            .unwrap_err();
        assert_eq!(
            error.to_string(),
            "environment variable ZERO must be a whole number of at least 1, got \"0\""
        );
        assert!(matches!(
            vars.parsed("WORD", 8u32, "a number", positive),
            Err(EnvError::Invalid { name: "WORD", .. })
        ));
    }
}
