//! The items a recording has written, as sizes by table and key: what a later read finds
//! and what a later write replaces.

use std::collections::HashMap;

use serde_json::{Map, Value};

use super::{SizeError, normal_number, typed};

/// A put seen before its table's key was known: the attributes a key can be made of.
#[derive(Debug, Clone)]
struct Unkeyed {
    scalars: Map<String, Value>,
    size: u64,
}

#[derive(Debug, Clone, Default)]
pub(super) struct ItemSizes {
    /// table -> canonical key -> item size.
    sizes: HashMap<String, HashMap<String, u64>>,
    /// Sorted key attribute names per table.
    key_names: HashMap<String, Vec<String>>,
    unkeyed: HashMap<String, Vec<Unkeyed>>,
}

impl ItemSizes {
    /// Stores a whole item. Returns the size of the item it replaces (0 when none), or
    /// `None` when the table's key is not known yet: the item is then filed once it is.
    pub fn put(
        &mut self,
        table: &str,
        item: &Map<String, Value>,
        size: u64,
    ) -> Result<Option<u64>, SizeError> {
        let Some(names) = self.key_names.get(table) else {
            let scalars = item.iter().filter(|(_, value)| is_scalar(value));
            let scalars = scalars.map(|(k, v)| (k.clone(), v.clone())).collect();
            let pending = self.unkeyed.entry(table.to_owned()).or_default();
            pending.push(Unkeyed { scalars, size });
            return Ok(None);
        };
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        match canonical_key(&names, item)? {
            Some(key) => Ok(Some(self.set(table, key, size))),
            // The item lacks a key attribute: DynamoDB would refuse it, nothing is stored.
            None => Ok(Some(0)),
        }
    }

    /// The canonical form of a request's `Key`, learning the table's key names from it.
    pub fn key(&mut self, table: &str, key: &Map<String, Value>) -> Result<String, SizeError> {
        self.learn_key(table, key.keys().cloned().collect());
        let names: Vec<&str> = key.keys().map(String::as_str).collect();
        Ok(canonical_key(&names, key)?.unwrap_or_default())
    }

    /// Size of the item under `key`, 0 when absent.
    pub fn size(&self, table: &str, key: &str) -> u64 {
        let items = self.sizes.get(table);
        items.and_then(|items| items.get(key)).copied().unwrap_or(0)
    }

    /// Sets the size under `key`, returning the previous one (0 when absent).
    pub fn set(&mut self, table: &str, key: String, size: u64) -> u64 {
        let items = self.sizes.entry(table.to_owned()).or_default();
        items.insert(key, size).unwrap_or(0)
    }

    /// Removes the item under `key`, returning its size (0 when absent).
    pub fn remove(&mut self, table: &str, key: &str) -> u64 {
        let items = self.sizes.get_mut(table);
        items.and_then(|items| items.remove(key)).unwrap_or(0)
    }

    /// Records a table's key names once, and files the puts made before under their keys.
    pub fn learn_key(&mut self, table: &str, mut names: Vec<String>) {
        if names.is_empty() || self.key_names.contains_key(table) {
            return;
        }
        names.sort();
        let pending = self.unkeyed.remove(table).unwrap_or_default();
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let items = self.sizes.entry(table.to_owned()).or_default();
        for put in pending {
            if let Ok(Some(key)) = canonical_key(&refs, &put.scalars) {
                items.insert(key, put.size);
            }
        }
        self.key_names.insert(table.to_owned(), names);
    }

    /// Forgets a deleted table: one created again under its name starts empty.
    pub fn forget_table(&mut self, table: &str) {
        self.sizes.remove(table);
        self.key_names.remove(table);
        self.unkeyed.remove(table);
    }
}

/// The key attributes of `attributes` in a form where equal keys are equal strings (numbers
/// normalised, so `1` and `1.0` are one key); `None` when one is missing.
fn canonical_key(
    names: &[&str],
    attributes: &Map<String, Value>,
) -> Result<Option<String>, SizeError> {
    let mut sorted = names.to_vec();
    sorted.sort_unstable();
    let mut parts = Vec::with_capacity(sorted.len());
    for name in sorted {
        let Some(value) = attributes.get(name) else {
            return Ok(None);
        };
        let (kind, inner) = typed(value)?;
        let canonical = match (kind, inner.as_str()) {
            ("N", Some(text)) => {
                let number = normal_number(text)?;
                let sign = if number.negative { "-" } else { "" };
                format!("{sign}{}e{}", number.digits, number.exponent)
            }
            (_, Some(text)) => text.to_owned(),
            _ => return Err(SizeError::WrongShape("key")),
        };
        parts.push([name.to_owned(), kind.to_owned(), canonical]);
    }
    // An array of strings always serialises.
    Ok(Some(serde_json::to_string(&parts).unwrap_or_default()))
}

/// Key attributes can only be strings, numbers or binaries.
fn is_scalar(value: &Value) -> bool {
    matches!(typed(value), Ok(("S" | "N" | "B", _)))
}
