//! Turning Prometheus' answer to an instant query into one number, as KEDA does.
//!
//! The query must return one element: a vector with one series, or a scalar. An empty result
//! (and an element without a value) is 0 with `ignoreNullValues` (the default) and an error
//! without it; several series are an error; `±Inf` (and `NaN`, which KEDA lets through as a
//! nonsense quantity) are 0 with `ignoreNullValues` and an error without it.

use serde_json::Value;

/// How much of an error response is quoted in the message.
const QUOTED_BODY: usize = 512;

/// The value of the query's single element.
///
/// `status` and `body` are the HTTP response; `query` is only used in messages.
pub fn interpret(
    status: u16,
    body: &[u8],
    query: &str,
    ignore_null_values: bool,
) -> Result<f64, String> {
    if !(200..=299).contains(&status) {
        let text = String::from_utf8_lossy(body);
        let quoted: String = text.chars().take(QUOTED_BODY).collect();
        let more = if text.chars().count() > QUOTED_BODY {
            "…"
        } else {
            ""
        };
        return Err(format!(
            "prometheus query api returned error. status: {status} response: {}{more}",
            quoted.trim_end()
        ));
    }
    let doc: Value = serde_json::from_slice(body)
        .map_err(|e| format!("prometheus query api returned invalid JSON: {e}"))?;
    if doc.get("status").and_then(Value::as_str) == Some("error") {
        let kind = doc
            .get("errorType")
            .and_then(Value::as_str)
            .unwrap_or("error");
        let error = doc.get("error").and_then(Value::as_str).unwrap_or_default();
        return Err(format!("prometheus query {query} failed: {kind}: {error}"));
    }
    let data = doc.get("data");
    let result_type = data
        .and_then(|d| d.get("resultType"))
        .and_then(Value::as_str)
        .unwrap_or_default();
    let result = data.and_then(|d| d.get("result"));
    let empty = || {
        if ignore_null_values {
            Ok(0.0)
        } else {
            Err(
                "prometheus metrics 'prometheus' target may be lost, the result is empty"
                    .to_owned(),
            )
        }
    };
    let values: &[Value] = match result {
        None | Some(Value::Null) => return empty(),
        // A scalar (or string) result is the `[timestamp, "value"]` pair itself. KEDA fails to
        // decode it although its documentation promises scalars work; kedge reads it.
        Some(Value::Array(pair))
            if result_type == "scalar" || pair.first().is_some_and(|first| !first.is_object()) =>
        {
            pair
        }
        Some(Value::Array(series)) => match series.as_slice() {
            [] => return empty(),
            [one] => match one.get("value") {
                Some(Value::Array(pair)) => pair,
                _ => &[],
            },
            _ => {
                return Err(format!(
                    "prometheus query {query} returned multiple elements"
                ));
            }
        },
        Some(other) => return Err(format!("prometheus query {query} returned {other}")),
    };
    match values {
        [] => {
            return if ignore_null_values {
                Ok(0.0)
            } else {
                Err(
                    "prometheus metrics 'prometheus' target may be lost, the value list is empty"
                        .to_owned(),
                )
            };
        }
        [_] => {
            return Err(format!(
                "prometheus query {query} didn't return enough values"
            ));
        }
        _ => {}
    }
    let value = match &values[1] {
        Value::String(s) => s
            .parse::<f64>()
            .map_err(|_| format!("prometheus query {query} returned {s:?}, not a number"))?,
        other => {
            return Err(format!(
                "prometheus query {query} returned {other}, not a number"
            ));
        }
    };
    if value.is_finite() {
        Ok(value)
    } else if ignore_null_values {
        Ok(0.0)
    } else {
        Err(format!("prometheus query returns {}", go_float(value)))
    }
}

/// Go's `%f` spelling of non-finite numbers, as in KEDA's message.
fn go_float(v: f64) -> &'static str {
    if v.is_nan() {
        "NaN"
    } else if v > 0.0 {
        "+Inf"
    } else {
        "-Inf"
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    /// (name, body, status, ignoreNullValues, result)
    type Case = (&'static str, &'static str, u16, bool, Result<f64, ()>);

    /// KEDA's testPromQueryResult, case by case.
    #[test]
    fn keda_query_result_cases() {
        let cases: &[Case] = &[
            ("no results", "{}", 200, true, Ok(0.0)),
            ("no values", r#"{"data":{"result":[]}}"#, 200, true, Ok(0.0)),
            (
                "no values but shouldn't ignore",
                r#"{"data":{"result":[]}}"#,
                200,
                false,
                Err(()),
            ),
            (
                "value is empty list",
                r#"{"data":{"result":[{"value": []}]}}"#,
                200,
                true,
                Ok(0.0),
            ),
            (
                "value is empty list but shouldn't ignore",
                r#"{"data":{"result":[{"value": []}]}}"#,
                200,
                false,
                Err(()),
            ),
            (
                "valid value",
                r#"{"data":{"result":[{"value": ["1", "2"]}]}}"#,
                200,
                true,
                Ok(2.0),
            ),
            (
                "not enough values",
                r#"{"data":{"result":[{"value": ["1"]}]}}"#,
                200,
                true,
                Err(()),
            ),
            (
                "multiple results",
                r#"{"data":{"result":[{},{}]}}"#,
                200,
                true,
                Err(()),
            ),
            ("error status response", "{}", 400, true, Err(())),
            (
                "+Inf",
                r#"{"data":{"result":[{"value": ["1", "+Inf"]}]}}"#,
                200,
                true,
                Ok(0.0),
            ),
            (
                "+Inf but shouldn't ignore",
                r#"{"data":{"result":[{"value": ["1", "+Inf"]}]}}"#,
                200,
                false,
                Err(()),
            ),
            (
                "-Inf",
                r#"{"data":{"result":[{"value": ["1", "-Inf"]}]}}"#,
                200,
                true,
                Ok(0.0),
            ),
            (
                "-Inf but shouldn't ignore",
                r#"{"data":{"result":[{"value": ["1", "-Inf"]}]}}"#,
                200,
                false,
                Err(()),
            ),
        ];
        for (name, body, status, ignore, expected) in cases {
            let got = interpret(*status, body.as_bytes(), "up", *ignore);
            assert_eq!(got.map_err(|_| ()), *expected, "{name}");
        }
    }

    #[test]
    fn messages_are_keda_s() {
        let err = |body: &str, ignore| interpret(200, body.as_bytes(), "up", ignore).unwrap_err();
        assert_eq!(
            err(r#"{"data":{"result":[]}}"#, false),
            "prometheus metrics 'prometheus' target may be lost, the result is empty"
        );
        assert_eq!(
            err(r#"{"data":{"result":[{},{}]}}"#, true),
            "prometheus query up returned multiple elements"
        );
        assert_eq!(
            err(r#"{"data":{"result":[{"value": ["1", "+Inf"]}]}}"#, false),
            "prometheus query returns +Inf"
        );
        let bad = interpret(
            400,
            br#"{"status":"error","errorType":"bad_data","error":"invalid parameter \"query\": 1:7: parse error: unclosed left parenthesis"}"#,
            "sum(x",
            true,
        )
        .unwrap_err();
        assert!(
            bad.starts_with(
                "prometheus query api returned error. status: 400 response: {\"status\":\"error\""
            ),
            "{bad}"
        );
        assert!(bad.contains("unclosed left parenthesis"), "{bad}");
    }

    #[test]
    fn real_prometheus_shapes() {
        let vector = r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{"__name__":"queue_depth","queue":"jobs"},"value":[1795805616.813,"42"]}]}}"#;
        assert_eq!(interpret(200, vector.as_bytes(), "q", false), Ok(42.0));
        let scalar = r#"{"status":"success","data":{"resultType":"scalar","result":[1795805617.870,"43.5"]}}"#;
        assert_eq!(interpret(200, scalar.as_bytes(), "q", false), Ok(43.5));
        let nan = r#"{"status":"success","data":{"resultType":"scalar","result":[1795805617.870,"NaN"]}}"#;
        assert_eq!(interpret(200, nan.as_bytes(), "q", true), Ok(0.0));
        assert_eq!(
            interpret(200, nan.as_bytes(), "q", false),
            Err("prometheus query returns NaN".to_owned())
        );
        let matrix = r#"{"status":"success","data":{"resultType":"matrix","result":[{"metric":{},"values":[[1,"1"],[2,"2"]]}]}}"#;
        assert_eq!(interpret(200, matrix.as_bytes(), "q", true), Ok(0.0));
        assert!(
            interpret(200, b"<html>", "q", true)
                .unwrap_err()
                .contains("invalid JSON")
        );
    }
}
