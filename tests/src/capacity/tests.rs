use base64::Engine;
use serde_json::{Value, json};

use super::*;

fn size(value: Value) -> u64 {
    attribute_size(&value).unwrap()
}

#[test]
fn scalar_sizes_follow_dynamodbs_rules() {
    assert_eq!(size(json!({"S": "Zoë"})), 4);
    assert_eq!(size(json!({"S": ""})), 0);
    assert_eq!(size(json!({"B": "aGVsbG8="})), 5);
    assert_eq!(size(json!({"BOOL": false})), 1);
    assert_eq!(size(json!({"NULL": true})), 1);
    assert_eq!(size(json!({"SS": ["a", "bb"]})), 3);
    assert_eq!(size(json!({"NS": ["1", "123"]})), 2 + 3);
    assert_eq!(size(json!({"BS": ["AA==", "AQID"]})), 4);
    assert_eq!(
        size(json!({"L": [{"S": "a"}, {"N": "7"}]})),
        3 + (1 + 1) + (1 + 2)
    );
    assert_eq!(size(json!({"M": {"k": {"S": "v"}}})), 3 + 1 + 1 + 1);
    assert_eq!(size(json!({"L": []})), 3);
}

#[test]
fn numbers_count_significant_digits_only() {
    let cases = [
        ("0", 2),
        ("-0.000", 2),
        ("7", 2),
        ("100", 2),
        ("0.001", 2),
        ("12", 2),
        ("123", 3),
        ("-012.3400", 3),
        ("1E+5", 2),
        ("1.5e-10", 2),
        ("+42", 2),
        ("1234567890123456789012345678", 15),
    ];
    for (text, expected) in cases {
        assert_eq!(number_size(text), Ok(expected), "{text}");
    }
    // 38 digits is DynamoDB's limit. (Python's Decimal rounds to 28 digits first, so
    // capacity.py undercounts numbers longer than that.)
    assert_eq!(number_size(&"9".repeat(38)), Ok(20));
    for bad in ["", "-", ".", "1e", "abc", "1.2.3", "NaN", &"9".repeat(39)] {
        assert!(number_size(bad).is_err(), "{bad}");
    }
    assert_eq!(
        normal_number("1.50").unwrap(),
        normal_number("15E-1").unwrap()
    );
}

#[test]
fn malformed_values_are_errors() {
    assert_eq!(attribute_size(&json!("x")), Err(SizeError::NotAnAttribute));
    assert_eq!(
        attribute_size(&json!({"S": "x", "N": "1"})),
        Err(SizeError::NotAnAttribute)
    );
    assert_eq!(
        attribute_size(&json!({"X": 1})),
        Err(SizeError::UnknownType("X".into()))
    );
    assert_eq!(
        attribute_size(&json!({"S": 1})),
        Err(SizeError::WrongShape("S"))
    );
    assert_eq!(
        attribute_size(&json!({"B": "***"})),
        Err(SizeError::BadBase64)
    );
    assert_eq!(item_size(&json!([])), Err(SizeError::NotAnItem));
}

#[test]
fn units_round_up_with_a_minimum() {
    assert_eq!(write_units(0, 0), 1);
    assert_eq!(write_units(0, 1024), 1);
    assert_eq!(write_units(1025, 10), 2);
    assert_eq!(read_units(0, false), 0.5);
    assert_eq!(read_units(4097, true), 2.0);
    assert_eq!(read_units(4097, false), 1.0);
}

// The hand-made items and recording that were run through the side-by-side bench kit's capacity.py.
fn item_a() -> Value {
    json!({"pk": {"S": "cust#1"}, "name": {"S": "Zoë Ångström"}, "n1": {"N": "0"},
           "n2": {"N": "-012.3400"}, "n3": {"N": "1E+5"},
           "n4": {"N": "1234567890123456789012345000"}, "b": {"B": "aGVsbG8="},
           "t": {"BOOL": true}, "z": {"NULL": true}, "l": {"L": [{"S": "a"}, {"N": "7"}]},
           "m": {"M": {"k": {"S": "v"}, "kk": {"L": []}}}, "ss": {"SS": ["x", "yy"]},
           "ns": {"NS": ["1", "22.50"]}, "bs": {"BS": ["AA==", "AQID"]}})
}

fn item_b() -> Value {
    json!({"pk": {"S": "cust#1"}, "blob": {"S": "x".repeat(1500)}})
}

fn item_c() -> Value {
    json!({"pk": {"S": "cust#2"}, "blob": {"S": "é".repeat(2100)}})
}

fn line(operation: &str, body: &Value, encoded: bool) -> String {
    let raw = body.to_string();
    let body = if encoded {
        base64::engine::general_purpose::STANDARD.encode(raw)
    } else {
        raw
    };
    json!({"headers": {"Host": "127.0.0.1:5000",
                       "X-Amz-Target": format!("DynamoDB_20120810.{operation}")},
           "method": "POST", "url": "http://127.0.0.1:5000/",
           "body": body, "body_encoded": encoded})
    .to_string()
}

fn python_checked_recording() -> String {
    let (k1, k2) = (
        json!({"pk": {"S": "cust#1"}}),
        json!({"pk": {"S": "cust#2"}}),
    );
    let lines = [
        line("GetItem", &json!({"TableName": "T1", "Key": k1}), true),
        line(
            "PutItem",
            &json!({"TableName": "T1", "Item": item_a()}),
            true,
        ),
        line(
            "PutItem",
            &json!({"TableName": "T1", "Item": item_b(),
                    "ConditionExpression": "attribute_not_exists(pk)"}),
            false,
        ),
        line(
            "GetItem",
            &json!({"TableName": "T1", "Key": k1, "ConsistentRead": true}),
            true,
        ),
        line("GetItem", &json!({"TableName": "T1", "Key": k1}), true),
        line(
            "GetItem",
            &json!({"TableName": "T1", "Key": k2, "ConsistentRead": true}),
            true,
        ),
        line(
            "TransactWriteItems",
            &json!({"TransactItems": [
                {"Put": {"TableName": "T1", "Item": item_c()}},
                {"ConditionCheck": {"TableName": "T1", "Key": k1,
                                    "ConditionExpression": "attribute_exists(pk)"}}]}),
            true,
        ),
        line("GetItem", &json!({"TableName": "T1", "Key": k2}), true),
        line(
            "UpdateItem",
            &json!({"TableName": "T1", "Key": k2, "UpdateExpression": "SET v = :v",
                    "ExpressionAttributeValues": {":v": {"S": "y".repeat(5000)}}}),
            true,
        ),
        line("DeleteItem", &json!({"TableName": "T1", "Key": k1}), true),
        json!({"headers": {"X-Amz-Target": "AmazonSQS.SendMessage"}, "method": "POST",
               "url": "x", "body": "", "body_encoded": false})
        .to_string(),
    ];
    lines.join("\n")
}

#[test]
fn agrees_with_capacity_py() {
    // Expected figures from capacity.py itself: the same items and recording written by a
    // Python script, then `python3 capacity.py rec.jsonl 4` (the bench kit's) printed
    // {"ops": {"GetItem": 5, "PutItem": 2, "TransactWriteItems": 1, "UpdateItem": 1,
    //  "DeleteItem": 1}, "wcu": 20.0, "rcu": 6.0, "largest_item_bytes": 4212,
    //  "by_table": {"T1": {"wcu": 10.0, "rcu": 4.0, "requests": 9},
    //               "transact": {"wcu": 10.0, "rcu": 2.0, "requests": 1}},
    //  "usd_per_million_events": 3.312}, and its item_size() gave 106 for item A.
    assert_eq!(item_size(&item_a()), Ok(106));
    assert_eq!(item_size(&item_b()), Ok(1512));
    assert_eq!(item_size(&item_c()), Ok(4212));

    let report = account_recording(&python_checked_recording(), 4).unwrap();
    let ops: Vec<(&str, u64)> = report.ops.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    assert_eq!(
        ops,
        [
            ("DeleteItem", 1),
            ("GetItem", 5),
            ("PutItem", 2),
            ("TransactWriteItems", 1),
            ("UpdateItem", 1)
        ]
    );
    assert_eq!((report.write_units, report.read_units), (20, 6.0));
    // capacity.py sizes the largest item from puts only (4,212); the update's estimated
    // 5,008-byte item is larger.
    assert_eq!(report.largest_item_bytes, 5008);
    assert_eq!(report.requests, 10);
    assert_eq!(report.write_units_per_event(), Some(5.0));
    assert_eq!(report.read_units_per_event(), Some(1.5));
    assert_eq!(report.usd_per_million_events(), Some(3.3125));
    // One row per real table: capacity.py's `transact` row is folded into T1.
    let t1 = report.table("T1").unwrap();
    assert_eq!((t1.write_units, t1.read_units, t1.requests), (20, 6.0, 10));
    assert_eq!(report.by_table.len(), 1);
}

#[test]
fn a_put_before_the_key_is_known_is_filed_once_it_is() {
    let mut ledger = CapacityLedger::new();
    let big = json!({"id": {"N": "1.0"}, "data": {"S": "z".repeat(5000)}});
    ledger
        .apply("PutItem", &json!({"TableName": "t", "Item": big}))
        .unwrap();
    // `1` and `1.0` are the same number, so the same key.
    let get = json!({"TableName": "t", "Key": {"id": {"N": "1"}}, "ConsistentRead": true});
    ledger.apply("GetItem", &get).unwrap();
    let usage = ledger.report(1).by_table["t"].clone();
    assert_eq!(
        (usage.write_units, usage.read_units, usage.unkeyed_writes),
        (5, 2.0, 1)
    );
}

#[test]
fn batches_tables_and_unpriced_reads_are_accounted() {
    let mut ledger = CapacityLedger::new();
    let create = json!({"TableName": "t", "KeySchema": [
        {"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}]});
    ledger.apply("CreateTable", &create).unwrap();
    let item = |sk: &str| json!({"pk": {"S": "a"}, "sk": {"S": sk}, "v": {"S": "x".repeat(2000)}});
    let write = json!({"RequestItems": {"t": [
        {"PutRequest": {"Item": item("1")}}, {"PutRequest": {"Item": item("2")}},
        {"DeleteRequest": {"Key": {"pk": {"S": "a"}, "sk": {"S": "1"}}}}]}});
    ledger.apply("BatchWriteItem", &write).unwrap();
    let read = json!({"RequestItems": {"t": {"Keys": [
        {"pk": {"S": "a"}, "sk": {"S": "1"}}, {"pk": {"S": "a"}, "sk": {"S": "2"}}]}}});
    ledger.apply("BatchGetItem", &read).unwrap();
    ledger.apply("Query", &json!({"TableName": "t"})).unwrap();
    let report = ledger.report(0);
    let t = report.table("t").unwrap();
    // Two 2 KB puts (2 + 2) and the delete of one (2); the deleted item reads as absent.
    assert_eq!(t.write_units, 6);
    assert_eq!(t.read_units, 0.5 + 0.5);
    assert_eq!(
        (t.requests, t.unpriced_requests, t.unkeyed_writes),
        (4, 1, 0)
    );
    assert_eq!(report.usd_per_million_events(), None);
}

#[test]
fn bad_requests_name_their_position_and_field() {
    let mut ledger = CapacityLedger::new();
    ledger.apply("ListTables", &json!({})).unwrap();
    let error = ledger
        .apply("PutItem", &json!({"TableName": "t"}))
        .unwrap_err();
    assert!(matches!(
        error,
        CapacityError::Missing {
            request: 2,
            field: "Item",
            ..
        }
    ));
    let bad = json!({"TableName": "t", "Item": {"a": {"Q": "1"}}});
    assert!(matches!(
        ledger.apply("PutItem", &bad).unwrap_err(),
        CapacityError::Size {
            source: SizeError::UnknownType(_),
            ..
        }
    ));
}

#[test]
fn an_add_to_a_set_grows_the_item_by_what_it_adds() {
    let key = json!({"pk": {"S": "a"}, "b": {"N": "1"}});
    let add = |bytes: usize| {
        let blob = base64::engine::general_purpose::STANDARD.encode(vec![7u8; bytes]);
        line(
            "UpdateItem",
            &json!({"TableName": "T", "Key": key, "UpdateExpression": "ADD #e :e",
                    "ExpressionAttributeValues": {":e": {"BS": [blob]}}}),
            true,
        )
    };
    let create = line(
        "CreateTable",
        &json!({"TableName": "T", "KeySchema": [{"AttributeName": "pk"}, {"AttributeName": "b"}]}),
        true,
    );
    // Three adds of 600 bytes: 1, 2 then 2 write units (the item passes 1 KB at the second).
    let recording = [create, add(600), add(600), add(600)].join("\n");
    let report = account_recording(&recording, 1).unwrap();
    assert_eq!(report.write_units, 5);
    assert!(
        report.largest_item_bytes >= 1800,
        "{}",
        report.largest_item_bytes
    );
}
