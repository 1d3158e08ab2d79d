//! A Helm chart rendered without Helm: its templates through a Go-template engine (gtmpl)
//! with the few Sprig/Helm functions the chart uses, and with `values.yaml` (plus overrides)
//! as `.Values`, as `helm template` would. Helm is not installable on the machines this
//! project runs on; the chart's README names the subset of the template language it keeps to,
//! which is what this renderer implements:
//!
//! - Go's `text/template` (actions, pipelines, `if`/`with`/`range`, `define`, comments,
//!   `{{-`/`-}}`), with its built-ins (`printf`, `eq`, `not`, `and`, `or`, …);
//! - Helm's `include`, and Sprig's `toYaml`, `indent`, `nindent`, `quote`, `default`,
//!   `required`, `sha256sum`, `trunc`, `trimSuffix`;
//! - `.Values`, `.Chart.Name/Version/AppVersion`, `.Release.Name/Namespace/Service`.

use std::cell::RefCell;
use std::path::{Path, PathBuf};

use gtmpl::{Context, Func, FuncError, Template, Value};
use gtmpl_value::Number;
use serde_json::Value as Json;
use sha2::{Digest, Sha256};

/// One object of the rendered manifests, with the template file it came from.
#[derive(Debug, Clone)]
pub struct Object {
    pub template: String,
    pub value: Json,
}

impl Object {
    pub fn kind(&self) -> &str {
        self.value["kind"].as_str().unwrap_or_default()
    }
}

/// The chart in `dir`, rendered as release `release` with `values.yaml` merged with
/// `overrides` (a JSON object, merged key by key as `--set` would). An error is what
/// `helm template` would fail with (a `required` value missing, a template that does not parse).
pub fn render(dir: &Path, release: &str, overrides: &Json) -> Result<Vec<Object>, String> {
    let chart: Json = yaml(&dir.join("Chart.yaml"))?;
    let mut values: Json = yaml(&dir.join("values.yaml"))?;
    merge(&mut values, overrides);
    let context = serde_json::json!({
        "Values": values,
        "Chart": {
            "Name": chart["name"],
            "Version": chart["version"],
            "AppVersion": chart["appVersion"],
        },
        "Release": {
            "Name": release,
            "Namespace": "default",
            "Service": "Helm",
            "IsInstall": true,
        },
    });
    let templates = dir.join("templates");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&templates)
        .map_err(|e| format!("{}: {e}", templates.display()))?
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let mut helpers = String::new();
    for file in files.iter().filter(|f| name_of(f).starts_with('_')) {
        helpers.push_str(&text(file)?);
        helpers.push('\n');
    }
    HELPERS.with(|h| *h.borrow_mut() = helpers);
    let mut objects = Vec::new();
    for file in files.iter().filter(|f| name_of(f).ends_with(".yaml")) {
        let name = name_of(file);
        let rendered = execute(&text(file)?, to_gtmpl(&context))
            .map_err(|e| format!("templates/{name}: {e}"))?;
        for document in rendered.split("\n---") {
            let value: Json = serde_norway::from_str(document)
                .map_err(|e| format!("templates/{name} is not YAML ({e}):\n{rendered}"))?;
            if !value.is_null() {
                objects.push(Object {
                    template: name.clone(),
                    value,
                });
            }
        }
    }
    Ok(objects)
}

thread_local! {
    /// The `define`s of the chart's `_*.tpl` files, for `include`.
    static HELPERS: RefCell<String> = const { RefCell::new(String::new()) };
}

fn name_of(path: &Path) -> String {
    path.file_name().unwrap().to_string_lossy().into_owned()
}

fn text(path: &Path) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))
}

fn yaml(path: &Path) -> Result<Json, String> {
    serde_norway::from_str(&text(path)?).map_err(|e| format!("{}: {e}", path.display()))
}

/// `overrides` into `base`, objects key by key, anything else replaced.
fn merge(base: &mut Json, overrides: &Json) {
    match (base, overrides) {
        (Json::Object(base), Json::Object(overrides)) => {
            for (key, value) in overrides {
                merge(base.entry(key.clone()).or_insert(Json::Null), value);
            }
        }
        (base, value) => *base = value.clone(),
    }
}

/// Runs template `source` (with the chart's helpers defined) on `data`.
fn execute(source: &str, data: Value) -> Result<String, String> {
    let mut template = Template::default();
    template.add_funcs(FUNCTIONS);
    let helpers = HELPERS.with(|h| h.borrow().clone());
    template
        .add_template("_helpers", helpers)
        .map_err(|e| e.to_string())?;
    template.parse(source).map_err(|e| e.to_string())?;
    template
        .render(&Context::from(data))
        .map_err(|e| e.to_string())
}

const FUNCTIONS: &[(&str, Func)] = &[
    ("include", include),
    ("toYaml", to_yaml),
    ("indent", indent),
    ("nindent", nindent),
    ("quote", quote),
    ("default", default),
    ("required", required),
    ("sha256sum", sha256sum),
    ("trunc", trunc),
    ("trimSuffix", trim_suffix),
];

fn to_gtmpl(value: &Json) -> Value {
    match value {
        Json::Null => Value::Nil,
        Json::Bool(b) => Value::Bool(*b),
        Json::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => Value::from(i),
            (None, Some(f)) => Value::from(f),
            _ => Value::Nil,
        },
        Json::String(s) => Value::String(s.clone()),
        Json::Array(items) => Value::Array(items.iter().map(to_gtmpl).collect()),
        Json::Object(map) => {
            Value::Map(map.iter().map(|(k, v)| (k.clone(), to_gtmpl(v))).collect())
        }
    }
}

fn to_json(value: &Value) -> Json {
    match value {
        Value::NoValue | Value::Nil | Value::Function(_) => Json::Null,
        Value::Bool(b) => Json::Bool(*b),
        Value::String(s) => Json::String(s.clone()),
        Value::Number(n) => number_json(n),
        Value::Array(items) => Json::Array(items.iter().map(to_json).collect()),
        Value::Map(map) | Value::Object(map) => {
            Json::Object(map.iter().map(|(k, v)| (k.clone(), to_json(v))).collect())
        }
    }
}

fn number_json(n: &Number) -> Json {
    match (n.as_i64(), n.as_f64()) {
        (Some(i), _) => Json::from(i),
        (None, Some(f)) => Json::from(f),
        _ => Json::Null,
    }
}

/// Go's `%v` of a value, as Sprig's `strval` gives it.
fn string_of(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::NoValue | Value::Nil => String::new(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => number_json(n).to_string(),
        other => to_json(other).to_string(),
    }
}

fn is_empty(value: &Value) -> bool {
    match value {
        Value::NoValue | Value::Nil => true,
        Value::Bool(b) => !b,
        Value::String(s) => s.is_empty(),
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::Array(items) => items.is_empty(),
        Value::Map(map) | Value::Object(map) => map.is_empty(),
        Value::Function(_) => false,
    }
}

fn arg<'a>(name: &str, args: &'a [Value], i: usize) -> Result<&'a Value, FuncError> {
    args.get(i)
        .ok_or_else(|| FuncError::ExactlyXArgs(name.to_owned(), i + 1))
}

fn int_arg(name: &str, args: &[Value], i: usize) -> Result<usize, FuncError> {
    match arg(name, args, i)? {
        Value::Number(n) => n.as_u64().map(|n| n as usize),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
    .ok_or_else(|| FuncError::Generic(format!("{name}: argument {i} is not a count")))
}

/// `include NAME DATA`: the named template's output, as a string for a pipeline.
fn include(args: &[Value]) -> Result<Value, FuncError> {
    let Value::String(name) = arg("include", args, 0)? else {
        return Err(FuncError::Generic(
            "include: the name is not a string".into(),
        ));
    };
    let data = arg("include", args, 1)?.clone();
    execute(&format!("{{{{ template \"{name}\" . }}}}"), data)
        .map(Value::String)
        .map_err(|e| FuncError::Generic(format!("include {name}: {e}")))
}

/// `toYaml VALUE`: YAML without the trailing newline, as Helm's.
fn to_yaml(args: &[Value]) -> Result<Value, FuncError> {
    let json = to_json(arg("toYaml", args, 0)?);
    let text = serde_norway::to_string(&json).map_err(|e| FuncError::Generic(e.to_string()))?;
    Ok(Value::String(text.trim_end_matches('\n').to_owned()))
}

fn indented(name: &str, args: &[Value]) -> Result<String, FuncError> {
    let pad = " ".repeat(int_arg(name, args, 0)?);
    let text = string_of(arg(name, args, 1)?);
    Ok(format!("{pad}{}", text.replace('\n', &format!("\n{pad}"))))
}

fn indent(args: &[Value]) -> Result<Value, FuncError> {
    indented("indent", args).map(Value::String)
}

fn nindent(args: &[Value]) -> Result<Value, FuncError> {
    indented("nindent", args).map(|s| Value::String(format!("\n{s}")))
}

fn quote(args: &[Value]) -> Result<Value, FuncError> {
    let text = string_of(arg("quote", args, 0)?);
    Ok(Value::String(Json::String(text).to_string()))
}

/// `default FALLBACK VALUE`: VALUE unless it is empty.
fn default(args: &[Value]) -> Result<Value, FuncError> {
    let fallback = arg("default", args, 0)?;
    match args.get(1) {
        Some(given) if !is_empty(given) => Ok(given.clone()),
        _ => Ok(fallback.clone()),
    }
}

fn required(args: &[Value]) -> Result<Value, FuncError> {
    let message = string_of(arg("required", args, 0)?);
    match args.get(1) {
        Some(given) if !is_empty(given) => Ok(given.clone()),
        _ => Err(FuncError::Generic(message)),
    }
}

fn sha256sum(args: &[Value]) -> Result<Value, FuncError> {
    let text = string_of(arg("sha256sum", args, 0)?);
    Ok(Value::String(hex::encode(Sha256::digest(text.as_bytes()))))
}

fn trunc(args: &[Value]) -> Result<Value, FuncError> {
    let n = int_arg("trunc", args, 0)?;
    let text = string_of(arg("trunc", args, 1)?);
    Ok(Value::String(text.chars().take(n).collect()))
}

fn trim_suffix(args: &[Value]) -> Result<Value, FuncError> {
    let suffix = string_of(arg("trimSuffix", args, 0)?);
    let text = string_of(arg("trimSuffix", args, 1)?);
    Ok(Value::String(
        text.strip_suffix(&suffix).unwrap_or(&text).to_owned(),
    ))
}
