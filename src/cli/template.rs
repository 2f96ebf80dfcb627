//! `--format`: Go text/template rendering (through `gtmpl`) of a JSON-shaped value, as `docker
//! inspect --format` and `buildx imagetools inspect --format` do: fields are reached with Go's
//! exported names (`{{.MediaType}}`, `{{range .Manifests}}{{.Platform}}{{end}}`), and
//! `{{json .X}}` prints a value as JSON.
//!
//! Level 4 (edge): text in, text out; no I/O.

use std::collections::HashMap;

use gtmpl::{Context, Template};
use gtmpl_value::{FuncError, Number, Value};

/// `mediaType` → `MediaType`, `created_by` → `CreatedBy`: Go's exported field names for our
/// camelCase and the image config's snake_case JSON keys.
fn exported(key: &str) -> String {
    key.split('_')
        .map(|part| {
            let mut c = part.chars();
            match c.next() {
                Some(first) => first.to_uppercase().chain(c).collect::<String>(),
                None => String::new(),
            }
        })
        .collect()
}

/// A JSON value as a template value. Keys of objects are exported (`mediaType` → `MediaType`)
/// except inside maps of free-form keys (`annotations`, `labels`), which keep theirs.
fn to_value(v: &serde_json::Value, free_keys: bool) -> Value {
    match v {
        serde_json::Value::Null => Value::Nil,
        serde_json::Value::Bool(b) => Value::Bool(*b),
        serde_json::Value::Number(n) => match (n.as_u64(), n.as_i64(), n.as_f64()) {
            (Some(u), _, _) => Value::Number(Number::from(u)),
            (_, Some(i), _) => Value::Number(Number::from(i)),
            (_, _, Some(f)) => Value::Number(Number::from(f)),
            _ => Value::Nil,
        },
        serde_json::Value::String(s) => Value::String(s.clone()),
        serde_json::Value::Array(a) => Value::Array(a.iter().map(|x| to_value(x, false)).collect()),
        serde_json::Value::Object(o) => {
            let map: HashMap<String, Value> = o
                .iter()
                .map(|(k, x)| {
                    let free = matches!(k.as_str(), "annotations" | "Labels" | "labels");
                    let key = if free_keys { k.clone() } else { exported(k) };
                    (key, to_value(x, free))
                })
                .collect();
            Value::Object(map)
        }
    }
}

/// A template value back as JSON (for `{{json .X}}`).
fn to_json(v: &Value) -> serde_json::Value {
    match v {
        Value::NoValue | Value::Nil | Value::Function(_) => serde_json::Value::Null,
        Value::Bool(b) => (*b).into(),
        Value::String(s) => s.clone().into(),
        Value::Number(n) => n
            .as_u64()
            .map(serde_json::Value::from)
            .or_else(|| n.as_i64().map(serde_json::Value::from))
            .or_else(|| n.as_f64().map(serde_json::Value::from))
            .unwrap_or(serde_json::Value::Null),
        Value::Array(a) => a.iter().map(to_json).collect(),
        Value::Object(o) | Value::Map(o) => {
            let sorted: std::collections::BTreeMap<&String, serde_json::Value> =
                o.iter().map(|(k, x)| (k, to_json(x))).collect();
            serde_json::to_value(sorted).unwrap_or_default()
        }
    }
}

/// Docker's `json` template function.
fn json(args: &[Value]) -> Result<Value, FuncError> {
    match args {
        [v] => Ok(Value::String(to_json(v).to_string())),
        _ => Err(FuncError::ExactlyXArgs("json".into(), 1)),
    }
}

/// Renders `template` over `data` (a serialisable value's JSON form). A newline is added when
/// the output lacks one, as `docker inspect --format` does.
///
/// Errors: the template's parse or execution error, as text.
pub fn render(template: &str, data: &serde_json::Value) -> Result<String, String> {
    let mut t = Template::default();
    t.add_func("json", json);
    t.parse(template).map_err(|e| e.to_string())?;
    let mut out = t
        .render(&Context::from(to_value(data, false)))
        .map_err(|e| e.to_string())?;
    if !out.ends_with('\n') {
        out.push('\n');
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_ranges_and_json() {
        let data = serde_json::json!({
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "size": 412,
            "manifests": [
                {"platform": "linux/amd64", "digest": "sha256:a"},
                {"platform": "linux/arm64", "digest": "sha256:b"}
            ],
            "annotations": {"org.example.k": "v"}
        });
        assert_eq!(
            render("{{.MediaType}} {{.Size}}", &data).unwrap(),
            "application/vnd.oci.image.index.v1+json 412\n"
        );
        assert_eq!(
            render(
                "{{range .Manifests}}{{.Platform}}={{.Digest}};{{end}}",
                &data
            )
            .unwrap(),
            "linux/amd64=sha256:a;linux/arm64=sha256:b;\n"
        );
        assert_eq!(
            render("{{json .Annotations}}", &data).unwrap(),
            "{\"org.example.k\":\"v\"}\n"
        );
        assert_eq!(render("{{len .Manifests}}", &data).unwrap(), "2\n");
        assert!(render("{{.Nope", &data).is_err());
        let history =
            serde_json::json!({"history": [{"created_by": "RUN x", "empty_layer": true}]});
        assert_eq!(
            render(
                "{{range .History}}{{.CreatedBy}} {{.EmptyLayer}}{{end}}",
                &history
            )
            .unwrap(),
            "RUN x true\n"
        );
    }
}
