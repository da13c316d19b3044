//! The metric value from the query's result: the first column of the first row.
//!
//! The query runs over PostgreSQL's simple protocol, which returns every value as text, so one
//! parser covers every numeric type (`integer`, `bigint`, `numeric`, `real`, `double
//! precision`) and numeric text alike.

/// Why a result cannot be used as a metric.
#[derive(Debug, PartialEq, Eq)]
pub enum ValueError {
    /// The query returned no row.
    NoRows,
    /// The query returned a row with no column.
    NoColumns,
    /// The first column is NULL.
    Null,
    /// The first column is not a finite number.
    NotANumber(String),
}

impl std::fmt::Display for ValueError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            // KEDA (pgx) reports these as "no rows in result set" and "cannot scan NULL into
            // *float64"; these say what to change.
            Self::NoRows => f.write_str("no rows in result set: the query must return one row"),
            Self::NoColumns => f.write_str("the query returned a row without columns"),
            Self::Null => f.write_str(
                "the query returned NULL; return a number instead, e.g. with COALESCE(..., 0)",
            ),
            Self::NotANumber(v) => write!(f, "the query returned {v:?}, which is not a number"),
        }
    }
}

/// Parses the text of the first column (`None` is SQL NULL).
///
/// ```
/// use scalers::postgresql::value::{parse_value, ValueError};
/// assert_eq!(parse_value(Some("42")), Ok(42.0));
/// assert_eq!(parse_value(Some("3.50")), Ok(3.5));
/// assert_eq!(parse_value(None), Err(ValueError::Null));
/// ```
pub fn parse_value(text: Option<&str>) -> Result<f64, ValueError> {
    let text = text.ok_or(ValueError::Null)?;
    match text.trim().parse::<f64>() {
        // NaN and infinities (PostgreSQL prints `NaN`, `Infinity`) would reach the HPA as
        // nonsense; KEDA converts them to garbage quantities, kedge reports them.
        Ok(v) if v.is_finite() => Ok(v),
        _ => Err(ValueError::NotANumber(text.to_owned())),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn every_numeric_text_form() {
        assert_eq!(parse_value(Some("-7")), Ok(-7.0));
        assert_eq!(parse_value(Some("12345678901234")), Ok(12345678901234.0));
        assert_eq!(parse_value(Some("0.000")), Ok(0.0));
        assert_eq!(parse_value(Some("1e3")), Ok(1000.0));
        assert_eq!(parse_value(Some(" 12 ")), Ok(12.0));
    }

    #[test]
    fn unusable_values() {
        for v in ["NaN", "Infinity", "-Infinity", "t", "$1.00", ""] {
            assert_eq!(
                parse_value(Some(v)),
                Err(ValueError::NotANumber(v.to_owned())),
                "{v}"
            );
        }
        assert_eq!(
            ValueError::Null.to_string(),
            "the query returned NULL; return a number instead, e.g. with COALESCE(..., 0)"
        );
    }
}
