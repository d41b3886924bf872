//! Capacity accounting over recorded DynamoDB requests.
//!
//! A recording holds requests, not responses, so every write is charged as if it ran: that
//! is right for conditional writes, which DynamoDB charges even when the condition fails,
//! but it also means a failed write's item is taken as stored. Item sizes are tracked from
//! the writes seen, so a read costs the size of the item it finds (0 when none).
//!
//! Where this differs from `capacity.py`: a table's key is learnt from `CreateTable` too
//! (and `set_key_schema`), and a put made before the key is known is re-keyed once it is,
//! instead of guessing the item's first attribute (JSON object order is the sender's);
//! batch operations and transactional deletes, updates and gets are priced (capacity.py
//! prices none of them, and updates in a transaction flat at 2); a transaction's units go to
//! the tables it touches rather than a `transact` row; the largest item counts updated
//! items too (capacity.py sizes it from puts only); totals agree otherwise.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value};

use super::items::ItemSizes;
use super::recording::{RecordedRequest, parse_recording};
use super::report::{CapacityError, CapacityReport, TableUsage};
use super::{SizeError, attribute_size, item_map_size, read_units, typed, write_units};

/// Data-plane operations whose cost depends on what they read, which requests do not show.
const UNPRICED: &[&str] = &[
    "Query",
    "Scan",
    "ExecuteStatement",
    "BatchExecuteStatement",
    "ExecuteTransaction",
];

/// Accumulates the capacity of DynamoDB requests, in the order they were made.
#[derive(Debug, Clone, Default)]
pub struct CapacityLedger {
    items: ItemSizes,
    tables: BTreeMap<String, TableUsage>,
    ops: BTreeMap<String, u64>,
    requests: u64,
}

/// Where the current request is, for error messages.
struct At<'a> {
    request: u64,
    operation: &'a str,
}

impl At<'_> {
    fn missing(&self, field: &'static str) -> CapacityError {
        CapacityError::Missing {
            request: self.request,
            operation: self.operation.to_owned(),
            field,
        }
    }

    fn size(&self, table: &str, source: SizeError) -> CapacityError {
        CapacityError::Size {
            request: self.request,
            operation: self.operation.to_owned(),
            table: table.to_owned(),
            source,
        }
    }
}

/// Parses a recording and accounts every DynamoDB request in it.
pub fn account_recording(text: &str, applied_events: u64) -> Result<CapacityReport, CapacityError> {
    let mut ledger = CapacityLedger::new();
    for request in parse_recording(text)? {
        ledger.record(&request)?;
    }
    Ok(ledger.report(applied_events))
}

impl CapacityLedger {
    pub fn new() -> Self {
        CapacityLedger::default()
    }

    /// Declares a table's key attributes, for recordings that start after `CreateTable`.
    pub fn set_key_schema(&mut self, table: &str, names: &[&str]) {
        let names = names.iter().map(|name| (*name).to_owned()).collect();
        self.items.learn_key(table, names);
    }

    /// Accounts one recorded request; requests to other services are ignored.
    pub fn record(&mut self, request: &RecordedRequest) -> Result<(), CapacityError> {
        let Some(operation) = request.dynamodb_operation() else {
            return Ok(());
        };
        let body: Value = if request.body.is_empty() {
            Value::Object(Map::new())
        } else {
            serde_json::from_slice(&request.body).map_err(|source| CapacityError::Body {
                request: self.requests + 1,
                operation: operation.to_owned(),
                source,
            })?
        };
        self.apply(operation, &body)
    }

    /// Accounts one DynamoDB request given as its operation and JSON body.
    pub fn apply(&mut self, operation: &str, body: &Value) -> Result<(), CapacityError> {
        self.requests += 1;
        *self.ops.entry(operation.to_owned()).or_default() += 1;
        let at = At {
            request: self.requests,
            operation,
        };
        let mut touched = BTreeSet::new();
        if let Some(table) = body.get("TableName").and_then(Value::as_str) {
            touched.insert(table.to_owned());
        }
        match operation {
            "PutItem" => self.put(&at, table(&at, body)?, field(&at, body, "Item")?, 1)?,
            "GetItem" => {
                let consistent = body.get("ConsistentRead").and_then(Value::as_bool) == Some(true);
                self.get(
                    &at,
                    table(&at, body)?,
                    field(&at, body, "Key")?,
                    consistent,
                    1,
                )?;
            }
            "UpdateItem" => self.update(&at, table(&at, body)?, body, 1)?,
            "DeleteItem" => self.delete(&at, table(&at, body)?, field(&at, body, "Key")?, 1)?,
            "BatchWriteItem" | "BatchGetItem" => {
                for (name, spec) in object(&at, body, "RequestItems")? {
                    touched.insert(name.clone());
                    self.batch(&at, operation, name, spec)?;
                }
            }
            "TransactWriteItems" | "TransactGetItems" => {
                let items = body.get("TransactItems").and_then(Value::as_array);
                for entry in items.ok_or_else(|| at.missing("TransactItems"))? {
                    let (action, spec) = typed(entry).map_err(|_| at.missing("TransactItems"))?;
                    let name = table(&at, spec)?;
                    touched.insert(name.to_owned());
                    self.transact(&at, action, name, spec)?;
                }
            }
            "CreateTable" => {
                let schema = body.get("KeySchema").and_then(Value::as_array);
                let names = schema.into_iter().flatten();
                let names = names.filter_map(|key| key.get("AttributeName")?.as_str());
                let names = names.map(str::to_owned).collect();
                self.items.learn_key(table(&at, body)?, names);
            }
            "DeleteTable" => {
                self.items.forget_table(table(&at, body)?);
            }
            other if UNPRICED.contains(&other) => {
                for name in &touched {
                    self.usage(name).unpriced_requests += 1;
                }
            }
            _ => {}
        }
        for name in touched {
            let usage = self.usage(&name);
            usage.requests += 1;
            *usage.ops.entry(operation.to_owned()).or_default() += 1;
        }
        Ok(())
    }

    pub fn report(&self, applied_events: u64) -> CapacityReport {
        let tables = self.tables.values();
        CapacityReport {
            applied_events,
            requests: self.requests,
            ops: self.ops.clone(),
            write_units: tables.clone().map(|t| t.write_units).sum(),
            read_units: tables.clone().map(|t| t.read_units).sum(),
            largest_item_bytes: tables.map(|t| t.largest_item_bytes).max().unwrap_or(0),
            by_table: self.tables.clone(),
        }
    }

    fn batch(
        &mut self,
        at: &At<'_>,
        operation: &str,
        table: &str,
        spec: &Value,
    ) -> Result<(), CapacityError> {
        if operation == "BatchGetItem" {
            let consistent = spec.get("ConsistentRead").and_then(Value::as_bool) == Some(true);
            let keys = spec.get("Keys").and_then(Value::as_array);
            for key in keys.ok_or_else(|| at.missing("Keys"))? {
                self.get(at, table, key, consistent, 1)?;
            }
            return Ok(());
        }
        for request in spec.as_array().ok_or_else(|| at.missing("RequestItems"))? {
            if let Some(item) = request.pointer("/PutRequest/Item") {
                self.put(at, table, item, 1)?;
            } else if let Some(key) = request.pointer("/DeleteRequest/Key") {
                self.delete(at, table, key, 1)?;
            }
        }
        Ok(())
    }

    /// Every transactional action costs twice its plain counterpart.
    fn transact(
        &mut self,
        at: &At<'_>,
        action: &str,
        table: &str,
        spec: &Value,
    ) -> Result<(), CapacityError> {
        match action {
            "Put" => self.put(at, table, field(at, spec, "Item")?, 2),
            "Update" => self.update(at, table, spec, 2),
            "Delete" => self.delete(at, table, field(at, spec, "Key")?, 2),
            "Get" => self.get(at, table, field(at, spec, "Key")?, true, 2),
            // Flat, as capacity.py has it: the check reads the item, whose size may be unknown.
            "ConditionCheck" => {
                self.usage(table).read_units += 2.0;
                Ok(())
            }
            _ => Ok(()),
        }
    }

    fn put(
        &mut self,
        at: &At<'_>,
        table: &str,
        item: &Value,
        factor: u64,
    ) -> Result<(), CapacityError> {
        let item = item.as_object().ok_or_else(|| at.missing("Item"))?;
        let size = item_map_size(item).map_err(|e| at.size(table, e))?;
        let old = self.items.put(table, item, size);
        let old = old.map_err(|e| at.size(table, e))?;
        let usage = self.usage(table);
        usage.unkeyed_writes += u64::from(old.is_none());
        usage.write_units += factor * write_units(old.unwrap_or(0), size);
        usage.largest_item_bytes = usage.largest_item_bytes.max(size);
        Ok(())
    }

    fn get(
        &mut self,
        at: &At<'_>,
        table: &str,
        key: &Value,
        consistent: bool,
        factor: u64,
    ) -> Result<(), CapacityError> {
        let key = self.key(at, table, key)?;
        let size = self.items.size(table, &key);
        self.usage(table).read_units += factor as f64 * read_units(size, consistent);
        Ok(())
    }

    /// The new item is not in the request: like capacity.py, take the larger of the old
    /// item and the key plus every value the expression sets. An `ADD` to a set grows the
    /// item by what it adds (an upper bound: values already in the set add nothing).
    fn update(
        &mut self,
        at: &At<'_>,
        table: &str,
        spec: &Value,
        factor: u64,
    ) -> Result<(), CapacityError> {
        let key_value = field(at, spec, "Key")?;
        let key = self.key(at, table, key_value)?;
        let key_size = super::item_size(key_value).map_err(|e| at.size(table, e))?;
        let values = spec
            .get("ExpressionAttributeValues")
            .and_then(Value::as_object);
        let values = values.into_iter().flatten().map(|(_, v)| attribute_size(v));
        let values: u64 = values
            .sum::<Result<u64, _>>()
            .map_err(|e| at.size(table, e))?;
        let old = self.items.size(table, &key);
        let adds = spec
            .get("UpdateExpression")
            .and_then(Value::as_str)
            .is_some_and(|expression| expression.trim_start().starts_with("ADD"));
        let size = match adds {
            true if old > 0 => old + values,
            _ => old.max(key_size + values),
        };
        self.items.set(table, key, size);
        let usage = self.usage(table);
        usage.write_units += factor * write_units(old, size);
        usage.largest_item_bytes = usage.largest_item_bytes.max(size);
        Ok(())
    }

    fn delete(
        &mut self,
        at: &At<'_>,
        table: &str,
        key: &Value,
        factor: u64,
    ) -> Result<(), CapacityError> {
        let key = self.key(at, table, key)?;
        let old = self.items.remove(table, &key);
        self.usage(table).write_units += factor * write_units(old, 0);
        Ok(())
    }

    fn key(&mut self, at: &At<'_>, table: &str, key: &Value) -> Result<String, CapacityError> {
        let key = key.as_object().ok_or_else(|| at.missing("Key"))?;
        self.items.key(table, key).map_err(|e| at.size(table, e))
    }

    fn usage(&mut self, table: &str) -> &mut TableUsage {
        self.tables.entry(table.to_owned()).or_default()
    }
}

fn table<'a>(at: &At<'_>, body: &'a Value) -> Result<&'a str, CapacityError> {
    body.get("TableName")
        .and_then(Value::as_str)
        .ok_or_else(|| at.missing("TableName"))
}

fn field<'a>(at: &At<'_>, body: &'a Value, name: &'static str) -> Result<&'a Value, CapacityError> {
    body.get(name).ok_or_else(|| at.missing(name))
}

fn object<'a>(
    at: &At<'_>,
    body: &'a Value,
    name: &'static str,
) -> Result<&'a Map<String, Value>, CapacityError> {
    body.get(name)
        .and_then(Value::as_object)
        .ok_or_else(|| at.missing(name))
}
