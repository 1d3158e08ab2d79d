//! A connector as a heartbeat reports it: validation that names the offending field, and the
//! hash of its connection list that lets an unchanged report skip the connection rows.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::error::Error;

/// At most this many connections per connector report.
pub const MAX_CONNECTIONS: usize = 64;
/// At most this many features per connector.
pub const MAX_FEATURES: usize = 32;
/// The longest `arch`, `version`, `coloName` or feature name accepted.
pub const MAX_TEXT: usize = 64;

/// A connector as a heartbeat reports it, validated.
#[derive(Clone, Debug, PartialEq)]
pub struct Report {
    pub id: Uuid,
    pub arch: Option<String>,
    pub version: Option<String>,
    pub config_version: Option<i64>,
    pub features: Vec<String>,
    pub run_at: Option<DateTime<Utc>>,
    pub connections: Vec<ReportedConnection>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ReportedConnection {
    pub id: Uuid,
    pub colo_name: Option<String>,
    pub opened_at: Option<DateTime<Utc>>,
}

impl Report {
    /// SHA-256 of the connection list, the only part whose change costs extra row writes.
    pub fn connections_hash(&self) -> Vec<u8> {
        let mut hash = Sha256::new();
        for c in &self.connections {
            hash.update(c.id.as_bytes());
            for part in [
                c.colo_name.as_deref(),
                c.opened_at
                    .map(|t| t.timestamp_micros().to_string())
                    .as_deref(),
            ] {
                // Length-prefixed so that no two different lists hash the same input.
                let bytes = part.map_or(&[][..], str::as_bytes);
                hash.update([u8::from(part.is_some())]);
                hash.update((bytes.len() as u32).to_be_bytes());
                hash.update(bytes);
            }
        }
        hash.finalize().to_vec()
    }
}

impl Report {
    /// SHA-256 of everything the report says, and the caller's address: equal fingerprints
    /// mean nothing but the connector's liveness needs writing, so the heartbeat batch can
    /// carry it (see [`crate::tunnels::batcher`]). Stored as the connector's `report_hash`.
    pub fn fingerprint(&self, origin_ip: Option<&str>) -> Vec<u8> {
        let mut hash = Sha256::new();
        hash.update(self.connections_hash());
        let config_version = self.config_version.map(|v| v.to_string());
        let run_at = self.run_at.map(|t| t.timestamp_micros().to_string());
        let features = self.features.join("\n");
        for part in [
            self.arch.as_deref(),
            self.version.as_deref(),
            config_version.as_deref(),
            run_at.as_deref(),
            Some(features.as_str()),
            origin_ip,
        ] {
            let bytes = part.map_or(&[][..], str::as_bytes);
            hash.update([u8::from(part.is_some())]);
            hash.update((bytes.len() as u32).to_be_bytes());
            hash.update(bytes);
        }
        hash.finalize().to_vec()
    }
}

/// Validates `connector` of a heartbeat body, naming the offending field (`connector.…`).
/// `null` means no connector. Unknown members are ignored, for agents newer than Warren.
pub fn parse_report(value: &Value) -> Result<Option<Report>, Error> {
    if value.is_null() {
        return Ok(None);
    }
    let obj = object(value, "connector")?;
    let connections = match obj.get("connections") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) if items.len() > MAX_CONNECTIONS => {
            return Err(Error::invalid(
                "connector.connections",
                format!(
                    "a connector may report at most {MAX_CONNECTIONS} connections, got {}",
                    items.len()
                ),
            ))
        }
        Some(Value::Array(items)) => {
            let mut parsed: Vec<ReportedConnection> = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                let field = format!("connector.connections[{i}]");
                let conn = object(item, &field)?;
                let id = uuid_field(conn, &format!("{field}.id"), "id")?;
                if parsed.iter().any(|c| c.id == id) {
                    return Err(Error::invalid(
                        format!("{field}.id"),
                        format!("{field}.id repeats connection {id}"),
                    ));
                }
                parsed.push(ReportedConnection {
                    id,
                    colo_name: text(conn, &format!("{field}.coloName"), "coloName")?,
                    opened_at: timestamp(conn, &format!("{field}.openedAt"), "openedAt")?,
                });
            }
            parsed
        }
        Some(_) => {
            return Err(Error::invalid(
                "connector.connections",
                "connector.connections must be an array",
            ))
        }
    };
    Ok(Some(Report {
        id: uuid_field(obj, "connector.id", "id")?,
        arch: text(obj, "connector.arch", "arch")?,
        version: text(obj, "connector.version", "version")?,
        config_version: config_version(obj)?,
        features: features(obj)?,
        run_at: timestamp(obj, "connector.runAt", "runAt")?,
        connections,
    }))
}

fn object<'a>(value: &'a Value, field: &str) -> Result<&'a Map<String, Value>, Error> {
    value
        .as_object()
        .ok_or_else(|| Error::invalid(field, format!("{field} must be an object")))
}

fn uuid_field(obj: &Map<String, Value>, field: &str, key: &str) -> Result<Uuid, Error> {
    let bad = || Error::invalid(field, format!("{field} must be a UUID string"));
    match obj.get(key) {
        None | Some(Value::Null) => Err(Error::invalid(field, format!("{field} is required"))),
        Some(Value::String(s)) if s.len() <= 36 => Uuid::try_parse(s).map_err(|_| bad()),
        Some(_) => Err(bad()),
    }
}

fn text(obj: &Map<String, Value>, field: &str, key: &str) -> Result<Option<String>, Error> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => checked_text(s, field).map(Some),
        Some(_) => Err(Error::invalid(field, format!("{field} must be a string"))),
    }
}

fn checked_text(s: &str, field: &str) -> Result<String, Error> {
    if s.chars().count() > MAX_TEXT {
        return Err(Error::invalid(
            field,
            format!("{field} must be at most {MAX_TEXT} characters"),
        ));
    }
    if s.chars().any(char::is_control) {
        return Err(Error::invalid(
            field,
            format!("{field} must not contain control characters"),
        ));
    }
    Ok(s.to_owned())
}

fn timestamp(
    obj: &Map<String, Value>,
    field: &str,
    key: &str,
) -> Result<Option<DateTime<Utc>>, Error> {
    let bad = || Error::invalid(field, format!("{field} must be an RFC 3339 timestamp"));
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.len() <= 64 => DateTime::parse_from_rfc3339(s)
            .map(|t| Some(t.with_timezone(&Utc)))
            .map_err(|_| bad()),
        Some(_) => Err(bad()),
    }
}

/// The largest `configVersion`: exact in a JSON number read as a double, as the document says.
pub const MAX_CONFIG_VERSION: i64 = 9_000_000_000_000_000;

/// A whole number from 0 to [`MAX_CONFIG_VERSION`]; a whole-valued decimal (`1.0`) is accepted.
fn config_version(obj: &Map<String, Value>) -> Result<Option<i64>, Error> {
    let field = "connector.configVersion";
    let bad = || {
        Error::invalid(
            field,
            format!("{field} must be a whole number from 0 to {MAX_CONFIG_VERSION}"),
        )
    };
    match obj.get("configVersion") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => match (n.as_i64(), n.as_f64()) {
            (Some(v), _) if (0..=MAX_CONFIG_VERSION).contains(&v) => Ok(Some(v)),
            (None, Some(f)) if f.fract() == 0.0 && (0.0..=9.0e15).contains(&f) => {
                Ok(Some(f as i64))
            }
            _ => Err(bad()),
        },
        Some(_) => Err(bad()),
    }
}

fn features(obj: &Map<String, Value>) -> Result<Vec<String>, Error> {
    let field = "connector.features";
    match obj.get("features") {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) if items.len() > MAX_FEATURES => Err(Error::invalid(
            field,
            format!("{field} may list at most {MAX_FEATURES} features"),
        )),
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, item)| match item {
                Value::String(s) => checked_text(s, &format!("{field}[{i}]")),
                _ => Err(Error::invalid(
                    format!("{field}[{i}]"),
                    format!("{field}[{i}] must be a string"),
                )),
            })
            .collect(),
        Some(_) => Err(Error::invalid(
            field,
            format!("{field} must be an array of strings"),
        )),
    }
}

#[cfg(test)]
mod tests;
