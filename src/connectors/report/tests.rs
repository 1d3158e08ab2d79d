use super::*;
use serde_json::json;

fn field_of(err: Error) -> String {
    match err {
        Error::Invalid { field, .. } => field,
        other => panic!("not a validation error: {other:?}"),
    }
}

#[test]
fn a_full_report_parses_and_null_means_none() {
    let id = Uuid::new_v4();
    let report = parse_report(&json!({
        "id": id, "arch": "linux_amd64", "version": "2026.1.0", "configVersion": 2.0,
        "features": ["ha-origin"], "runAt": "2026-03-05T10:30:00.000Z",
        "connections": [{"id": Uuid::new_v4(), "coloName": "FRA", "openedAt": "2026-03-05T10:30:01+01:00"}]
    }))
    .unwrap()
    .unwrap();
    assert_eq!(report.id, id);
    assert_eq!(report.config_version, Some(2));
    assert_eq!(report.connections.len(), 1);
    assert!(parse_report(&Value::Null).unwrap().is_none());
}

#[test]
fn bad_reports_name_the_field() {
    let id = Uuid::new_v4().to_string();
    let many: Vec<Value> = (0..65).map(|_| json!({"id": Uuid::new_v4()})).collect();
    let cases = [
        (json!([]), "connector"),
        (json!({}), "connector.id"),
        (json!({"id": "nope"}), "connector.id"),
        (json!({"id": id, "arch": 5}), "connector.arch"),
        (
            json!({"id": id, "version": "x".repeat(65)}),
            "connector.version",
        ),
        (
            json!({"id": id, "configVersion": 1.5}),
            "connector.configVersion",
        ),
        (
            json!({"id": id, "configVersion": "1"}),
            "connector.configVersion",
        ),
        (
            json!({"id": id, "configVersion": 12_720_642_838_715_518_i64}),
            "connector.configVersion",
        ),
        (
            json!({"id": id, "features": ["a", 1]}),
            "connector.features[1]",
        ),
        (json!({"id": id, "runAt": "yesterday"}), "connector.runAt"),
        (
            json!({"id": id, "connections": many}),
            "connector.connections",
        ),
        (
            json!({"id": id, "connections": [{"id": 1}]}),
            "connector.connections[0].id",
        ),
        (
            json!({"id": id, "connections": [{"id": id, "coloName": []}]}),
            "connector.connections[0].coloName",
        ),
        (
            json!({"id": id, "connections": [{"id": id}, {"id": id}]}),
            "connector.connections[1].id",
        ),
    ];
    for (value, field) in cases {
        assert_eq!(
            field_of(parse_report(&value).unwrap_err()),
            field,
            "{value}"
        );
    }
}

#[test]
fn the_hash_changes_with_the_connection_list_only() {
    let conn = ReportedConnection {
        id: Uuid::new_v4(),
        colo_name: Some("FRA".into()),
        opened_at: None,
    };
    let a = Report {
        id: Uuid::new_v4(),
        arch: None,
        version: None,
        config_version: None,
        features: vec![],
        run_at: None,
        connections: vec![conn.clone()],
    };
    let b = Report {
        version: Some("2".into()),
        ..a.clone()
    };
    assert_eq!(a.connections_hash(), b.connections_hash());
    let c = Report {
        connections: vec![ReportedConnection {
            colo_name: Some("FR".into()),
            ..conn
        }],
        ..a.clone()
    };
    assert_ne!(a.connections_hash(), c.connections_hash());
    assert_ne!(
        a.connections_hash(),
        Report {
            connections: vec![],
            ..a.clone()
        }
        .connections_hash()
    );
}

#[test]
fn the_fingerprint_changes_with_anything_reported_and_the_address() {
    let a = Report {
        id: Uuid::new_v4(),
        arch: Some("linux_amd64".into()),
        version: Some("1".into()),
        config_version: Some(0),
        features: vec!["ha-origin".into()],
        run_at: None,
        connections: vec![],
    };
    assert_eq!(
        a.fingerprint(Some("10.0.0.1")),
        a.clone().fingerprint(Some("10.0.0.1"))
    );
    assert_ne!(
        a.fingerprint(Some("10.0.0.1")),
        a.fingerprint(Some("10.0.0.2"))
    );
    assert_ne!(a.fingerprint(None), a.fingerprint(Some("")));
    let newer = Report {
        version: Some("2".into()),
        ..a.clone()
    };
    assert_ne!(a.fingerprint(None), newer.fingerprint(None));
    let more = Report {
        features: vec!["ha-origin".into(), "x".into()],
        ..a.clone()
    };
    assert_ne!(a.fingerprint(None), more.fingerprint(None));
}
