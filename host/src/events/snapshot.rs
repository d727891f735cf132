//! `smtpcell status --json`: the metrics as JSON, made from their
//! OpenMetrics exposition, so that the two carry the same figures by
//! construction.

use serde_json::{Map, Value, json};

use super::Metrics;

/// Every sample of `metrics` as `{"name": ..., "labels": {...}, "value":
/// ...}`, in exposition order (`_total`, `_bucket`, `_sum`, `_count`
/// samples as they are exposed).
pub fn snapshot(metrics: &Metrics) -> Value {
    Value::Array(metrics.encode().lines().filter_map(sample).collect())
}

/// One exposition line: `name{key="value",...} value`, or `name value`.
fn sample(line: &str) -> Option<Value> {
    if line.starts_with('#') || line.is_empty() {
        return None;
    }
    let (series, value) = line.rsplit_once(' ')?;
    let value: f64 = value.parse().ok()?;
    let (name, labels) = match series.split_once('{') {
        Some((name, rest)) => (name, labels(rest.strip_suffix('}')?)?),
        None => (series, Map::new()),
    };
    Some(json!({ "name": name, "labels": labels, "value": value }))
}

/// `key="value",...`, the values with `\\`, `\"` and `\n` escapes.
fn labels(mut text: &str) -> Option<Map<String, Value>> {
    let mut map = Map::new();
    while !text.is_empty() {
        let (key, rest) = text.split_once("=\"")?;
        let mut value = String::new();
        let mut chars = rest.char_indices();
        let end = loop {
            match chars.next()? {
                (i, '"') => break i,
                (_, '\\') => match chars.next()?.1 {
                    'n' => value.push('\n'),
                    other => value.push(other),
                },
                (_, c) => value.push(c),
            }
        };
        map.insert(key.to_string(), Value::String(value));
        text = rest[end + 1..].strip_prefix(',').unwrap_or(&rest[end + 1..]);
    }
    Some(map)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_keep_names_labels_and_values() {
        let line = r#"smtpcell_refusals_total{listener="mx",component="a \"b\" c\\d",stage="rcpt"} 3"#;
        let value = sample(line).unwrap();
        assert_eq!(value["name"], "smtpcell_refusals_total");
        assert_eq!(value["labels"]["component"], "a \"b\" c\\d");
        assert_eq!(value["labels"]["stage"], "rcpt");
        assert_eq!(value["value"], 3.0);
        assert_eq!(sample("smtpcell_component_swaps_total 0").unwrap()["value"], 0.0);
        assert!(sample("# TYPE x counter").is_none());
    }
}
