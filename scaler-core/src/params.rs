//! Typed trigger parameters with KEDA's lookup rules.
//!
//! A scaler declares its parameters once, as a struct deriving [`ScalerParams`]; the derive
//! produces a table of [`ParamSpec`]s and the code that reads them. Lookup follows KEDA's
//! `TypedConfig`:
//!
//! * each parameter is searched in its declared order among the trigger's metadata, its auth
//!   params and the resolved container env (the latter through `<name>FromEnv`, which names the
//!   env var);
//! * values are trimmed and an empty value counts as missing;
//! * a missing parameter takes its default, else is an error unless optional;
//! * enums, numeric ranges and deprecations are checked, and every problem names the parameter.
//!
//! All problems of one trigger are reported together.
//!
//! ```
//! use scaler_core::{ScalerConfig, ScalerParams};
//!
//! #[derive(ScalerParams, Debug)]
//! struct QueueParams {
//!     /// Queue to measure.
//!     #[param(from(metadata, env))]
//!     queue_name: String,
//!     /// Target messages per replica.
//!     #[param(default = 20, min = 1)]
//!     value: f64,
//!     /// How to count.
//!     #[param(default = "QueueLength", one_of("QueueLength", "MessageRate"))]
//!     mode: String,
//!     /// Broker password.
//!     #[param(from(auth))]
//!     password: Option<scaler_core::Secret>,
//! }
//!
//! let cfg = ScalerConfig::new("rabbitmq", 0)
//!     .with_metadata("queueNameFromEnv", "QUEUE")
//!     .with_resolved_env("QUEUE", " jobs ");
//! let p = QueueParams::from_config(&cfg).unwrap();
//! assert_eq!((p.queue_name.as_str(), p.value, p.mode.as_str()), ("jobs", 20.0, "QueueLength"));
//!
//! let bad = ScalerConfig::new("rabbitmq", 1).with_metadata("mode", "Fast").with_metadata("value", "0");
//! assert_eq!(
//!     QueueParams::from_config(&bad).unwrap_err().to_string(),
//!     "triggers[1] (rabbitmq): missing required parameter \"queueName\" in [triggerMetadata resolvedEnv]; \
//!      parameter \"value\" value \"0\" must be at least 1; \
//!      parameter \"mode\" value \"Fast\" must be one of [QueueLength MessageRate]"
//! );
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::Duration;

use crate::{ScalerConfig, ScalerError, Secret};

/// Where a parameter may come from. The names are KEDA's and appear in error messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Source {
    /// `triggers[].metadata`.
    TriggerMetadata,
    /// Parameters resolved from the TriggerAuthentication.
    AuthParams,
    /// The container env var named by metadata `<name>FromEnv`.
    ResolvedEnv,
}

impl Source {
    /// Whether values from here may be secrets (a TriggerAuthentication's Secret, a container's
    /// env): errors then name the parameter and its source, never the value, since they reach
    /// Events and status that more people can read than the Secret.
    pub fn may_hold_secrets(self) -> bool {
        !matches!(self, Self::TriggerMetadata)
    }
}

/// How an error shows a value: quoted when it came from the trigger's metadata, else only
/// where it came from.
struct Shown<'a>(&'a str, Option<Source>);

impl fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.1 {
            Some(source) if source.may_hold_secrets() => {
                write!(f, "(value from {source} not shown)")
            }
            _ => write!(f, "value {:?}", self.0),
        }
    }
}

/// `message` with every double-quoted part (as `{:?}` writes strings) replaced by `"…"`, for
/// parse errors about a value that must not be shown.
fn without_quoted(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut chars = message.chars();
    while let Some(c) = chars.next() {
        out.push(c);
        if c == '"' {
            out.push('…');
            while let Some(q) = chars.next() {
                match q {
                    '\\' => {
                        chars.next();
                    }
                    '"' => {
                        out.push('"');
                        break;
                    }
                    _ => {}
                }
            }
        }
    }
    out
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::TriggerMetadata => "triggerMetadata",
            Self::AuthParams => "authParams",
            Self::ResolvedEnv => "resolvedEnv",
        })
    }
}

/// The declaration of one parameter. The [`ScalerParams`] derive builds these; they are public
/// so tools (such as `kedge check`) can list a scaler's parameters.
#[derive(Clone, Copy, Debug)]
pub struct ParamSpec {
    /// The accepted names, first one preferred (aliases follow).
    pub names: &'static [&'static str],
    /// Where to look, in order.
    pub order: &'static [Source],
    /// Absent is fine (the field keeps `None` or its type's default).
    pub optional: bool,
    /// Value used when absent, parsed like a written value.
    pub default: Option<&'static str>,
    /// Allowed values; empty means any.
    pub one_of: &'static [&'static str],
    /// Separator of list and map values (default `,`).
    pub separator: Option<&'static str>,
    /// Smallest allowed number, for numeric parameters.
    pub min: Option<f64>,
    /// Largest allowed number, for numeric parameters.
    pub max: Option<f64>,
    /// If set, the parameter is no longer supported and using it is an error with this message.
    pub deprecated: Option<&'static str>,
    /// The field's doc comment.
    pub doc: &'static str,
}

impl ParamSpec {
    /// A required metadata parameter called `name`; the other fields are meant to be set with
    /// struct update syntax. The derive is the usual way to build these.
    pub const fn new(name: &'static [&'static str]) -> Self {
        Self {
            names: name,
            order: &[Source::TriggerMetadata],
            optional: false,
            default: None,
            one_of: &[],
            separator: None,
            min: None,
            max: None,
            deprecated: None,
            doc: "",
        }
    }

    /// The names joined by `,`, as KEDA prints them.
    pub fn display_name(&self) -> String {
        self.names.join(",")
    }

    fn separator(&self) -> &'static str {
        self.separator.unwrap_or(",")
    }

    fn order_display(&self) -> String {
        let parts: Vec<String> = self.order.iter().map(ToString::to_string).collect();
        format!("[{}]", parts.join(" "))
    }
}

impl ScalerConfig {
    /// Looks a parameter up by KEDA's rules: the first non-empty, trimmed value in the declared
    /// order, with the source it came from.
    pub fn lookup(&self, spec: &ParamSpec) -> Option<(&str, Source)> {
        for &source in spec.order {
            for name in spec.names {
                let value = match source {
                    Source::TriggerMetadata => self.metadata.get(*name).map(String::as_str),
                    Source::AuthParams => self.auth_params.get(*name).map(Secret::expose),
                    Source::ResolvedEnv => self
                        .metadata
                        .get(&format!("{name}FromEnv"))
                        .and_then(|var| self.resolved_env.get(var.trim()))
                        .map(Secret::expose),
                };
                if let Some(v) = value.map(str::trim).filter(|v| !v.is_empty()) {
                    return Some((v, source));
                }
            }
        }
        None
    }
}

/// A type a parameter can be parsed into.
///
/// Implemented for strings, [`Secret`], `bool` (Go's `ParseBool` spellings), integers, floats,
/// [`Duration`] (Go duration like `30s` or a number of milliseconds, as KEDA), lists
/// (`Vec<T>`, split on the separator) and maps (`BTreeMap<String, String>`, `k=v` pairs).
/// Implement it for your own types to use them as parameters.
pub trait FromParam: Sized {
    /// Parses a trimmed, non-empty value. The error says what was expected, e.g.
    /// `expected an integer`; the caller adds the parameter name and value.
    fn from_param(value: &str, spec: &ParamSpec) -> Result<Self, String>;

    /// The value as a number, for `min`/`max` checks. `None` for non-numeric types.
    fn as_number(&self) -> Option<f64> {
        None
    }
}

impl FromParam for String {
    fn from_param(value: &str, _: &ParamSpec) -> Result<Self, String> {
        Ok(value.to_owned())
    }
}

impl FromParam for Secret {
    fn from_param(value: &str, _: &ParamSpec) -> Result<Self, String> {
        Ok(Secret::new(value))
    }
}

impl FromParam for bool {
    fn from_param(value: &str, _: &ParamSpec) -> Result<Self, String> {
        parse_bool(value).ok_or_else(|| "expected a boolean (true or false)".to_owned())
    }
}

/// Go's `strconv.ParseBool`, which KEDA uses for boolean parameters and annotations.
///
/// ```
/// assert_eq!(scaler_core::params::parse_bool("True"), Some(true));
/// assert_eq!(scaler_core::params::parse_bool("0"), Some(false));
/// assert_eq!(scaler_core::params::parse_bool("yes"), None);
/// ```
pub fn parse_bool(value: &str) -> Option<bool> {
    match value {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        _ => None,
    }
}

macro_rules! from_param_int {
    ($($t:ty),*) => {$(
        impl FromParam for $t {
            fn from_param(value: &str, _: &ParamSpec) -> Result<Self, String> {
                value.parse().map_err(|_| {
                    format!("expected an integer between {} and {}", <$t>::MIN, <$t>::MAX)
                })
            }
            fn as_number(&self) -> Option<f64> {
                Some(*self as f64)
            }
        }
    )*};
}
from_param_int!(i32, i64, u16, u32, u64, usize);

impl FromParam for f64 {
    fn from_param(value: &str, _: &ParamSpec) -> Result<Self, String> {
        match value.parse::<f64>() {
            Ok(v) if v.is_finite() => Ok(v),
            _ => Err("expected a number".to_owned()),
        }
    }
    fn as_number(&self) -> Option<f64> {
        Some(*self)
    }
}

impl FromParam for Duration {
    /// A Go duration (`1m30s`, `500ms`) or a plain number of milliseconds, as KEDA accepts.
    fn from_param(value: &str, _: &ParamSpec) -> Result<Self, String> {
        if let Ok(ms) = value.parse::<u64>() {
            return Ok(Duration::from_millis(ms));
        }
        parse_go_duration(value).ok_or_else(|| {
            "expected a duration such as 30s or 5m, or a number of milliseconds".to_owned()
        })
    }
    fn as_number(&self) -> Option<f64> {
        Some(self.as_secs_f64())
    }
}

/// Parses a non-negative Go duration string (`300ms`, `1.5h`, `2h45m`).
fn parse_go_duration(s: &str) -> Option<Duration> {
    if s == "0" {
        return Some(Duration::ZERO);
    }
    let mut rest = s;
    let mut total = 0f64;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let number: f64 = rest[..num_len].parse().ok()?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let seconds = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" | "μs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total += number * seconds;
    }
    Duration::try_from_secs_f64(total).ok()
}

impl<T: FromParam> FromParam for Vec<T> {
    fn from_param(value: &str, spec: &ParamSpec) -> Result<Self, String> {
        value
            .split(spec.separator())
            .map(str::trim)
            .enumerate()
            .map(|(i, item)| T::from_param(item, spec).map_err(|e| format!("element {i}: {e}")))
            .collect()
    }
}

impl FromParam for BTreeMap<String, String> {
    fn from_param(value: &str, spec: &ParamSpec) -> Result<Self, String> {
        value
            .split(spec.separator())
            .map(str::trim)
            .filter(|pair| !pair.is_empty())
            .map(|pair| match pair.split_once('=') {
                Some((k, v)) if !v.contains('=') => Ok((k.trim().to_owned(), v.trim().to_owned())),
                _ => Err(format!("expected format key=value, got {pair:?}")),
            })
            .collect()
    }
}

/// Collects the values and problems while a [`ScalerParams`] struct is read. Used by the code
/// the derive generates.
pub struct ParamReader<'a> {
    cfg: &'a ScalerConfig,
    problems: Vec<String>,
}

impl<'a> ParamReader<'a> {
    /// A reader over `cfg`.
    pub fn new(cfg: &'a ScalerConfig) -> Self {
        Self {
            cfg,
            problems: Vec::new(),
        }
    }

    /// The raw value (or default) and where it came from (`None`: the default), after the
    /// deprecation and enum checks. `Ok(None)` when absent.
    fn raw(&mut self, spec: &ParamSpec) -> Result<Option<(&'a str, Option<Source>)>, ()> {
        let found = self.cfg.lookup(spec);
        let source = found.map(|(_, s)| s);
        let found = found.map(|(v, _)| v);
        if let (Some(_), Some(msg)) = (found, spec.deprecated) {
            self.problems.push(format!(
                "scaler {} info: {msg}",
                self.cfg.trigger.trigger_type
            ));
            return Err(());
        }
        let Some(value) = found.or(spec.default) else {
            return Ok(None);
        };
        if !spec.one_of.is_empty()
            && value
                .split(spec.separator())
                .any(|item| !spec.one_of.contains(&item.trim()))
        {
            self.problems.push(format!(
                "parameter {:?} {} must be one of [{}]",
                spec.display_name(),
                Shown(value, source),
                spec.one_of.join(" ")
            ));
            return Err(());
        }
        Ok(Some((value, source)))
    }

    fn parse<T: FromParam>(
        &mut self,
        spec: &ParamSpec,
        (value, source): (&str, Option<Source>),
    ) -> Option<T> {
        let name = spec.display_name();
        let shown = Shown(value, source);
        let parsed = match T::from_param(value, spec) {
            Ok(v) => v,
            Err(e) => {
                let e = match source {
                    Some(s) if s.may_hold_secrets() => without_quoted(&e),
                    _ => e,
                };
                self.problems
                    .push(format!("unable to set param {name:?} {shown}: {e}"));
                return None;
            }
        };
        if let Some(n) = parsed.as_number() {
            if let Some(min) = spec.min.filter(|min| n < *min) {
                self.problems
                    .push(format!("parameter {name:?} {shown} must be at least {min}"));
                return None;
            }
            if let Some(max) = spec.max.filter(|max| n > *max) {
                self.problems
                    .push(format!("parameter {name:?} {shown} must be at most {max}"));
                return None;
            }
        }
        Some(parsed)
    }

    /// Reads a required parameter. `None` means a problem was recorded.
    pub fn required<T: FromParam>(&mut self, spec: &ParamSpec) -> Option<T> {
        match self.raw(spec) {
            Ok(Some(value)) => self.parse(spec, value),
            Ok(None) if spec.deprecated.is_some() || spec.optional => None,
            Ok(None) => {
                self.problems.push(format!(
                    "missing required parameter {:?} in {}",
                    spec.display_name(),
                    spec.order_display()
                ));
                None
            }
            Err(()) => None,
        }
    }

    /// Reads an optional parameter into an `Option`. The outer `None` means a problem was recorded.
    pub fn optional<T: FromParam>(&mut self, spec: &ParamSpec) -> Option<Option<T>> {
        match self.raw(spec) {
            Ok(Some(value)) => self.parse(spec, value).map(Some),
            Ok(None) => Some(None),
            Err(()) => None,
        }
    }

    /// Reads an optional parameter that falls back to its type's default.
    pub fn or_default<T: FromParam + Default>(&mut self, spec: &ParamSpec) -> Option<T> {
        self.optional(spec).map(Option::unwrap_or_default)
    }

    /// True while no problem has been recorded.
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty()
    }

    /// Adds a problem found by a cross-field check.
    pub fn problem(&mut self, message: impl Into<String>) {
        self.problems.push(message.into());
    }

    /// The recorded problems as one error.
    pub fn into_error(self) -> ScalerError {
        let problems = if self.problems.is_empty() {
            vec!["invalid parameters".to_owned()]
        } else {
            self.problems
        };
        ScalerError::InvalidConfig {
            trigger: self.cfg.trigger.clone(),
            problems,
        }
    }
}

/// A struct of trigger parameters, read from a [`ScalerConfig`] by KEDA's rules.
///
/// Derive it; see the [module documentation](self) for an example. Field attributes, all
/// optional, inside `#[param(...)]`:
///
/// | attribute | meaning |
/// |---|---|
/// | `name = "queueName"` | the parameter name (default: the field name in camelCase) |
/// | `alias = "queue"` | another accepted name (repeatable) |
/// | `from(metadata, auth, env)` | where to look, in order (default: `metadata`); `env` reads the var named by `<name>FromEnv` |
/// | `optional` | absent is fine; implied by `Option<T>` fields, other types take `Default` |
/// | `default = 10` | value used when absent (a literal, parsed like a written value) |
/// | `one_of("a", "b")` | allowed values |
/// | `min = 1`, `max = 100` | numeric bounds, inclusive |
/// | `separator = ";"` | separator of list and map values (default `,`) |
/// | `deprecated = "use x instead"` | using the parameter is an error with this message |
/// | `skip` | not a parameter: the field takes its `Default` |
///
/// Cross-field checks go in an optional `fn validate(&self) -> Result<(), String>` named by
/// `#[params(validate = "Self::validate")]` on the struct.
pub trait ScalerParams: Sized {
    /// The declared parameters, in field order.
    const PARAMS: &'static [ParamSpec];

    /// Reads and validates the parameters, reporting every problem at once.
    fn from_config(cfg: &ScalerConfig) -> Result<Self, ScalerError>;

    /// Metadata keys that no declared parameter uses (KEDA's
    /// `KEDA_CHECK_UNEXPECTED_SCALERS_PARAMS` check): likely typos.
    fn unknown_metadata_keys(cfg: &ScalerConfig) -> Vec<String> {
        unknown_metadata_keys(Self::PARAMS, cfg)
    }
}

/// Metadata keys of `cfg` that none of `params` reads (`<name>FromEnv` counts as `<name>`).
pub fn unknown_metadata_keys(params: &[ParamSpec], cfg: &ScalerConfig) -> Vec<String> {
    let known: BTreeSet<&str> = params
        .iter()
        .flat_map(|p| p.names.iter().copied())
        .collect();
    cfg.metadata
        .keys()
        .filter(|k| !known.contains(k.strip_suffix("FromEnv").unwrap_or(k)))
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const NAME: &[&str] = &["queueName"];

    fn spec(order: &'static [Source]) -> ParamSpec {
        ParamSpec {
            order,
            ..ParamSpec::new(NAME)
        }
    }

    #[test]
    fn lookup_follows_declared_order_and_trims() {
        let cfg = ScalerConfig::new("t", 0)
            .with_metadata("queueName", "  ")
            .with_auth_param("queueName", " from-auth ")
            .with_metadata("queueNameFromEnv", "Q")
            .with_resolved_env("Q", "from-env");
        let both = spec(&[
            Source::TriggerMetadata,
            Source::ResolvedEnv,
            Source::AuthParams,
        ]);
        // metadata is empty after trimming, so it counts as missing
        assert_eq!(cfg.lookup(&both), Some(("from-env", Source::ResolvedEnv)));
        let auth_first = spec(&[Source::AuthParams, Source::ResolvedEnv]);
        assert_eq!(
            cfg.lookup(&auth_first),
            Some(("from-auth", Source::AuthParams))
        );
        let meta_only = spec(&[Source::TriggerMetadata]);
        assert_eq!(cfg.lookup(&meta_only), None);
    }

    #[test]
    fn from_env_naming_a_missing_var_is_missing() {
        let cfg = ScalerConfig::new("t", 0).with_metadata("queueNameFromEnv", "NOPE");
        assert_eq!(cfg.lookup(&spec(&[Source::ResolvedEnv])), None);
    }

    #[test]
    fn aliases_are_tried_in_order() {
        const NAMES: &[&str] = &["value", "queueLength"];
        let cfg = ScalerConfig::new("t", 0).with_metadata("queueLength", "5");
        let s = ParamSpec::new(NAMES);
        assert_eq!(cfg.lookup(&s), Some(("5", Source::TriggerMetadata)));
        let mut r = ParamReader::new(&cfg);
        let missing = ScalerConfig::new("t", 0);
        let mut r2 = ParamReader::new(&missing);
        assert_eq!(r.required::<i64>(&s), Some(5));
        assert_eq!(r2.required::<i64>(&s), None);
        assert_eq!(
            r2.into_error().to_string(),
            "triggers[0] (t): missing required parameter \"value,queueLength\" in [triggerMetadata]"
        );
    }

    #[test]
    fn scalar_parsers() {
        let s = ParamSpec::new(NAME);
        assert_eq!(bool::from_param("TRUE", &s), Ok(true));
        assert!(bool::from_param("yes", &s).is_err());
        assert_eq!(i32::from_param("-4", &s), Ok(-4));
        assert!(u32::from_param("-4", &s).is_err());
        assert_eq!(f64::from_param("1.5", &s), Ok(1.5));
        assert!(f64::from_param("NaN", &s).is_err());
        assert_eq!(
            Duration::from_param("1500", &s),
            Ok(Duration::from_millis(1500))
        );
        assert_eq!(
            Duration::from_param("1m30s", &s),
            Ok(Duration::from_secs(90))
        );
        assert_eq!(
            Duration::from_param("250ms", &s),
            Ok(Duration::from_millis(250))
        );
        assert!(Duration::from_param("-1s", &s).is_err());
        assert!(Duration::from_param("5 parsecs", &s).is_err());
    }

    #[test]
    fn lists_and_maps() {
        let s = ParamSpec::new(NAME);
        assert_eq!(Vec::<i32>::from_param("1, 2,3", &s), Ok(vec![1, 2, 3]));
        assert_eq!(
            Vec::<i32>::from_param("1,x", &s),
            Err("element 1: expected an integer between -2147483648 and 2147483647".to_owned())
        );
        let semi = ParamSpec {
            separator: Some(";"),
            ..s
        };
        assert_eq!(
            Vec::<String>::from_param("a;b", &semi),
            Ok(vec!["a".to_owned(), "b".to_owned()])
        );
        let m = BTreeMap::<String, String>::from_param("X-Tenant=a, Y = b", &s).unwrap_or_default();
        assert_eq!(m.get("Y").map(String::as_str), Some("b"));
        assert!(BTreeMap::<String, String>::from_param("novalue", &s).is_err());
    }

    #[test]
    fn deprecated_parameter_is_an_error_when_used() {
        let s = ParamSpec {
            deprecated: Some("metricName is deprecated and no longer used"),
            ..ParamSpec::new(&["metricName"])
        };
        let cfg = ScalerConfig::new("rabbitmq", 0).with_metadata("metricName", "x");
        let mut r = ParamReader::new(&cfg);
        assert_eq!(r.optional::<String>(&s), None);
        assert_eq!(
            r.into_error().to_string(),
            "triggers[0] (rabbitmq): scaler rabbitmq info: metricName is deprecated and no longer used"
        );
        let absent = ScalerConfig::new("rabbitmq", 0);
        let mut r = ParamReader::new(&absent);
        assert_eq!(r.optional::<String>(&s), Some(None));
        assert!(r.is_ok());
    }

    #[test]
    fn values_that_may_be_secrets_are_never_echoed() {
        const ORDER: &[Source] = &[Source::TriggerMetadata, Source::AuthParams];
        let number = ParamSpec {
            order: ORDER,
            max: Some(10.0),
            ..ParamSpec::new(&["port"])
        };
        let map = ParamSpec {
            order: ORDER,
            ..ParamSpec::new(&["headers"])
        };
        let one_of = ParamSpec {
            order: ORDER,
            one_of: &["a", "b"],
            ..ParamSpec::new(&["mode"])
        };
        let from_auth = ScalerConfig::new("t", 0)
            .with_auth_param("port", "hunter2")
            .with_auth_param("headers", "k=v,s3cr3t")
            .with_auth_param("mode", "p4ss");
        let mut r = ParamReader::new(&from_auth);
        assert_eq!(r.optional::<i64>(&number), None);
        assert_eq!(r.optional::<BTreeMap<String, String>>(&map), None);
        assert_eq!(r.optional::<String>(&one_of), None);
        let message = r.into_error().to_string();
        for secret in ["hunter2", "s3cr3t", "p4ss"] {
            assert!(!message.contains(secret), "{message}");
        }
        assert!(
            message.contains("unable to set param \"port\" (value from authParams not shown)"),
            "{message}"
        );
        assert!(message.contains("got \"…\""), "{message}");
        let too_big = ScalerConfig::new("t", 0).with_auth_param("port", "11");
        let mut r = ParamReader::new(&too_big);
        assert_eq!(r.optional::<i64>(&number), None);
        assert_eq!(
            r.into_error().to_string(),
            "triggers[0] (t): parameter \"port\" (value from authParams not shown) must be at most 10"
        );
        // The trigger's own metadata is the manifest: its values are shown.
        let from_metadata = ScalerConfig::new("t", 0).with_metadata("port", "11");
        let mut r = ParamReader::new(&from_metadata);
        assert_eq!(r.optional::<i64>(&number), None);
        assert!(
            r.into_error()
                .to_string()
                .contains("value \"11\" must be at most 10")
        );
    }
}
