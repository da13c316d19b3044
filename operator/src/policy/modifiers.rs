//! `advanced.scalingModifiers`: the formula that composes the triggers' metrics into one
//! `composite-metric`, and the activation rule that goes with it.
//!
//! # KEDA's rules (`pkg/scaling/modifiers/formula.go`, `apis/keda/v1alpha1/scaledobject_webhook.go`,
//! `pkg/scaling/scale_handler.go`)
//!
//! - The formula is an [expr-lang](https://expr-lang.org) expression over the trigger **names**
//!   (`triggers[].name`); each variable holds the trigger's metric value as a float.
//! - It is wrapped in `float(...)` unless it already starts with `float(`, so every formula yields
//!   a number; a formula that yields a boolean, a string or `nil` is an error.
//! - Validation (admission and reconcile): the formula must compile and must *run* with every
//!   named trigger that is not `cpu`/`memory` set to `-1`. An unknown variable, a syntax error or a
//!   boolean result is caught there. [`compile`] does exactly this.
//! - At evaluation time a trigger whose metric is failing past `fallback.failureThreshold` (with
//!   `fallback.behavior: scalingModifiers`) is `nil`, so `trig ?? 0` can supply a default.
//!   [`Formula::evaluate`] takes `None` for such a trigger.
//! - Activation: the ScaledObject is active iff the composite value is **strictly greater** than
//!   `activationTarget` (default `0`); on any trigger error it is inactive ([`is_active`]).
//! - The composite value becomes a milli-quantity (`int64(value * 1000)`), which
//!   `scaler_core::MetricValue::new` already does.
//!
//! # The language
//!
//! kedge evaluates formulas with the `expr-lang` crate, a Rust implementation of the same language
//! with Go-compatible semantics, so every documented KEDA example works unchanged: arithmetic
//! (`(trig_one + trig_two) / 2`, `**`), comparisons, `&&`/`||`/`!`, the ternary
//! (`trig_one > 2 ? trig_one + trig_two : 1`, nested), nil-coalescing (`trig ?? 0`), `nil`
//! comparisons, `max`/`min`/`abs`/`ceil`/`floor`/`round`/`sum`/`mean`/`median`, and the predicate
//! builtins with closures (`count([a, b, c], {# > 1})`, `all`, `any`, `none`, `one`, `filter`).
//! Only its optional features are off: date/time, JSON, base64 and regex builtins, none of which
//! can produce a number from metric values. (evalexpr was considered: its releases since 12.0
//! are AGPL-3.0, and it has no ternary, no `??` and no closures.)
//!
//! # Where kedge differs from KEDA, and why
//!
//! - **A formula that yields ±infinity or NaN is an error.** KEDA converts it with
//!   `int64(value * 1000)`, which in Go gives an arbitrary huge value (typically the most negative
//!   `int64`), and hands that to the HPA. A division by a zero-valued trigger (`a / b` with
//!   `b == 0`) would then scale the workload on garbage; kedge reports an error instead, which the
//!   decision treats like a failing trigger (it never scales in on it).
//! - **An unknown variable in a branch the `-1` validation run does not take is caught only when
//!   that branch runs.** Go's expr type-checks the whole expression against the trigger names at
//!   compile time; the Rust implementation has no static type checker, so such a formula passes
//!   [`compile`] and fails in [`Formula::evaluate`] (an error, never a wrong number).

use std::collections::BTreeMap;
use std::num::NonZeroUsize;

use expr::{Context, Program, Value};

use crate::crd::ScaleTriggers;

/// Default `scalingModifiers.activationTarget`.
pub const DEFAULT_ACTIVATION_TARGET: f64 = 0.0;

/// Prefix that marks a formula as already cast to float (KEDA then does not wrap it).
const FLOAT_CAST_PREFIX: &str = "float(";

/// The value every named trigger takes in KEDA's validation run.
const VALIDATION_VALUE: f64 = -1.0;

/// The longest formula accepted, in bytes. KEDA's documented formulas are under 200.
pub const MAX_FORMULA_BYTES: usize = 1024;

/// The parser's budget for one formula, in pest calls. expr-lang's grammar backtracks without
/// bound: some formulas of under 200 bytes take seconds to parse, twice as long with each
/// repetition (`if[x] + if[x] + ...`, `x ? x ?? x ? x ?? ...`; found by `fuzz/`'s `formula`
/// target). 1 KiB formulas written like KEDA's examples need under 50,000; a formula over the
/// budget is rejected within a few milliseconds.
pub const MAX_PARSE_CALLS: usize = 200_000;

/// Identifiers a formula may not use: they build values far larger than the formula itself
/// (`repeat`, `replace`) or bind variables that can double a value at every step (`let`).
const FORBIDDEN_IDENTIFIERS: [&str; 3] = ["let", "repeat", "replace"];

/// Rejects a formula whose evaluation cost is not bounded by its length, before it is compiled.
///
/// A tenant writes the formula and kedge evaluates it at every poll and every HPA read, so its
/// cost must be bounded: at most [`MAX_FORMULA_BYTES`], no ranges (`1..2000000000` allocates
/// the whole range), no statements, none of [`FORBIDDEN_IDENTIFIERS`], and braces (closures
/// such as `{# > 1}`, map literals) at most one level deep, so no closure iterates inside
/// another. What remains (arithmetic, comparisons, `?:`, `??`, the number builtins, predicates
/// over a literal list) runs in time linear in its length, and every formula in KEDA's docs
/// passes.
pub fn check_cost(formula: &str) -> Result<(), String> {
    let problem = |why: String| Err(format!("advanced.scalingModifiers.formula: {why}"));
    if formula.len() > MAX_FORMULA_BYTES {
        return problem(format!(
            "{} bytes long; at most {MAX_FORMULA_BYTES} are allowed",
            formula.len()
        ));
    }
    let mut depth = 0usize;
    let mut chars = formula.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' | '\'' | '`' => {
                // A string literal: skipped, escapes included (backquoted strings have none).
                while let Some((_, q)) = chars.next() {
                    if q == '\\' && c != '`' {
                        chars.next();
                    } else if q == c {
                        break;
                    }
                }
            }
            '.' if chars.peek().is_some_and(|(_, n)| *n == '.') => {
                return problem("ranges (`..`) are not allowed".to_owned());
            }
            ';' => return problem("statements (`;`) are not allowed".to_owned()),
            '{' => {
                depth += 1;
                if depth > 1 {
                    return problem(
                        "closures and maps may not be nested (`{` inside `{`)".to_owned(),
                    );
                }
            }
            '}' => depth = depth.saturating_sub(1),
            c if c.is_alphabetic() || c == '_' => {
                let start = i;
                let mut end = i + c.len_utf8();
                while let Some((j, n)) = chars.peek().copied() {
                    if n.is_alphanumeric() || n == '_' {
                        end = j + n.len_utf8();
                        chars.next();
                    } else {
                        break;
                    }
                }
                let ident = &formula[start..end];
                if FORBIDDEN_IDENTIFIERS.contains(&ident) {
                    return problem(format!("`{ident}` is not allowed"));
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// A compiled, validated `scalingModifiers.formula`.
#[derive(Clone, Debug)]
pub struct Formula {
    /// The expression as evaluated: the user's formula wrapped in `float(...)` if needed.
    expression: String,
    /// The variables the formula was validated with (the named non-cpu/memory triggers).
    trigger_names: Vec<String>,
    program: Program,
}

impl Formula {
    /// The expression as evaluated (wrapped in `float(...)` unless it already started with it).
    pub fn expression(&self) -> &str {
        &self.expression
    }

    /// The trigger names the formula was validated against, in the order given to [`compile`].
    pub fn trigger_names(&self) -> &[String] {
        &self.trigger_names
    }

    /// Evaluate the formula with each trigger's current metric value.
    ///
    /// `None` is a trigger that is failing past the fallback threshold: it is `nil` in the
    /// formula, so `trig ?? 0` yields `0` while `trig + 1` is an error, as in KEDA. A trigger the
    /// formula was compiled with but absent from `values` is `nil` too (Go's expr reads a missing
    /// map key as `nil`). An error is returned when the formula fails at run time or yields no
    /// finite number.
    pub fn evaluate(&self, values: &BTreeMap<String, Option<f64>>) -> Result<f64, String> {
        let mut ctx = Context::default();
        for name in &self.trigger_names {
            ctx.insert(name.clone(), Value::Nil);
        }
        for (name, value) in values {
            ctx.insert(name.clone(), value.map_or(Value::Nil, Value::Float));
        }
        let value = expr::run(&self.program, &ctx)
            .map_err(|e| format!("error trying to run custom formula: {e}"))?;
        let number = as_number(&value)
            .ok_or_else(|| format!("custom formula returned {value:?}, expected a number"))?;
        if !number.is_finite() {
            // KEDA would turn this into an arbitrary int64 milli-quantity; see the module docs.
            return Err(format!(
                "custom formula returned {number}, expected a finite number"
            ));
        }
        Ok(number)
    }
}

/// Compile and validate `formula` as KEDA's webhook does (`ValidateAndCompileScalingModifiers`).
///
/// `trigger_names` are the names of the ScaledObject's named triggers that are not `cpu` or
/// `memory` (see [`formula_trigger_names`]). The formula is wrapped in `float(...)` unless it
/// starts with `float(`, compiled, and run once with every trigger set to `-1`; any failure is an
/// error whose text follows KEDA's.
pub fn compile<S: AsRef<str>>(formula: &str, trigger_names: &[S]) -> Result<Formula, String> {
    if formula.is_empty() {
        return Err("ScalingModifiers.Formula is mandatory".to_owned());
    }
    check_cost(formula)
        .map_err(|e| format!("error validating formula in ScalingModifiers: {e}"))?;
    let expression = cast_to_float_if_necessary(formula);
    // pest's budget is process-wide and read as each parse starts; expr-lang is its only user.
    pest::set_call_limit(NonZeroUsize::new(MAX_PARSE_CALLS));
    let program = expr::compile(&expression).map_err(|e| {
        let e = e.to_string();
        if e.contains("call limit reached") {
            format!(
                "error validating formula in ScalingModifiers: advanced.scalingModifiers.formula: \
                 too costly to parse (more than {MAX_PARSE_CALLS} parser steps); simplify it"
            )
        } else {
            format!("error validating formula in ScalingModifiers: failed to compile formula: {e}")
        }
    })?;
    let formula = Formula {
        expression,
        trigger_names: trigger_names
            .iter()
            .map(|n| n.as_ref().to_owned())
            .collect(),
        program,
    };
    let dummy: BTreeMap<String, Option<f64>> = formula
        .trigger_names
        .iter()
        .map(|n| (n.clone(), Some(VALIDATION_VALUE)))
        .collect();
    formula.evaluate(&dummy).map_err(|e| {
        format!(
            "error validating formula in ScalingModifiers: failed to run formula with dummy values: {e}"
        )
    })?;
    Ok(formula)
}

/// The formula's variables: names of the triggers that have a `name` and are not `cpu`/`memory`,
/// in spec order (KEDA's `validateScalingModifiersFormula`).
pub fn formula_trigger_names(triggers: &[ScaleTriggers]) -> Vec<String> {
    triggers
        .iter()
        .filter(|t| t.type_ != "cpu" && t.type_ != "memory")
        .filter_map(|t| t.name.as_deref())
        .filter(|n| !n.is_empty())
        .map(str::to_owned)
        .collect()
}

/// `scalingModifiers.activationTarget` as a number: empty or absent is `0`, anything else must
/// parse as a float (KEDA's `strconv.ParseFloat`).
pub fn parse_activation_target(activation_target: Option<&str>) -> Result<f64, String> {
    match activation_target {
        None | Some("") => Ok(DEFAULT_ACTIVATION_TARGET),
        Some(s) => s
            .parse::<f64>()
            .map_err(|e| format!("scalingModifiers.ActivationTarget parsing error {e}")),
    }
}

/// `scalingModifiers.target` as a number: it must parse as a float greater than 0.
pub fn parse_target(target: &str) -> Result<f64, String> {
    match target.parse::<f64>() {
        Ok(v) if v > 0.0 => Ok(v),
        Ok(v) => Err(format!(
            "failed to convert target to valid positive float: {v} is not greater than 0"
        )),
        Err(e) => Err(format!(
            "failed to convert target to valid positive float: {e}"
        )),
    }
}

/// KEDA's activation rule for the composite metric: active iff `value > activation_target`.
pub fn is_active(value: f64, activation_target: f64) -> bool {
    value > activation_target
}

fn cast_to_float_if_necessary(formula: &str) -> String {
    if formula.starts_with(FLOAT_CAST_PREFIX) {
        formula.to_owned()
    } else {
        format!("{FLOAT_CAST_PREFIX}{formula})")
    }
}

fn as_number(value: &Value) -> Option<f64> {
    match value {
        Value::Float(f) => Some(*f),
        // Go's expr.AsFloat64() accepts an int result and casts it.
        Value::Integer(i) => Some(*i as f64),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    const TRIGGERS: [&str; 3] = ["trig_one", "trig_two", "trig_three"];

    #[test]
    fn formulas_whose_cost_is_unbounded_are_rejected_before_they_run() {
        let rejected = |f: &str, why: &str| {
            let e = compile(f, &TRIGGERS).unwrap_err();
            assert!(
                e.contains("advanced.scalingModifiers.formula") && e.contains(why),
                "{f}: {e}"
            );
        };
        rejected("count(1..2000000000, {# > 0})", "ranges");
        rejected("trig_one + len(repeat(\"a\", 1000000000))", "`repeat`");
        rejected("len(replace(\"aaaa\", \"a\", \"aaaa\"))", "`replace`");
        rejected("let a = trig_one; a + a", "`let`");
        rejected("trig_one; trig_two", "statements");
        rejected("count([1, 2], {count([1, 2], {# > 0}) > 0})", "nested");
        rejected(&format!("trig_one{}", " + 1".repeat(300)), "at most 1024");
        // What looks forbidden inside a string literal, or as part of a longer name, is fine.
        compile("trig_one + (\"a..b;{{\" == \"x\" ? 1 : 0)", &TRIGGERS).unwrap();
        compile("trig_one", &["trig_one", "replaced_by"]).unwrap();
        compile(
            "count([trig_one, trig_two, trig_three], {# > 1})",
            &TRIGGERS,
        )
        .unwrap();
        compile("trig_one > 2 ? trig_one + trig_two : 1", &TRIGGERS).unwrap();
        compile("trig_one ?? 0", &TRIGGERS).unwrap();
    }

    #[test]
    fn formulas_that_make_the_parser_backtrack_are_rejected_quickly() {
        // Without the parser's budget each of these takes about a second (twice as long with
        // each further repetition); with it, milliseconds.
        for formula in [
            format!("{}trig_one", "if[trig_one] + ".repeat(16)),
            format!("{}trig_one", "trig_one ? trig_two ?? ".repeat(16)),
            format!("{}1{}", "if[t(".repeat(6), ")]".repeat(6)),
        ] {
            let e = compile(&formula, &TRIGGERS).unwrap_err();
            assert!(
                e.contains("advanced.scalingModifiers.formula: too costly to parse"),
                "{formula}: {e}"
            );
        }
        // The longest formulas written like KEDA's examples stay well within the budget.
        let long = format!(
            "{}1",
            "max(abs(trig_one), ceil(trig_two ?? 0), floor(trig_three)) ** 2 - ".repeat(15)
        );
        assert!(long.len() <= MAX_FORMULA_BYTES);
        compile(&long, &TRIGGERS).unwrap();
        let long = format!(
            "{}1",
            "count([trig_one, trig_two, trig_three], {# > 1}) + ".repeat(20)
        );
        compile(&long, &TRIGGERS).unwrap();
    }

    fn values(pairs: &[(&str, Option<f64>)]) -> BTreeMap<String, Option<f64>> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect()
    }

    fn eval(formula: &str, pairs: &[(&str, Option<f64>)]) -> Result<f64, String> {
        compile(formula, &TRIGGERS)?.evaluate(&values(pairs))
    }

    // KEDA docs, "Scaling Modifiers": compose average value.
    #[test]
    fn keda_example_average() {
        let v = eval(
            "(trig_one + trig_two)/2",
            &[("trig_one", Some(3.0)), ("trig_two", Some(5.0))],
        );
        assert_eq!(v, Ok(4.0));
    }

    // KEDA docs: ternary operator.
    #[test]
    fn keda_example_ternary() {
        let f = compile("trig_one > 2 ? trig_one + trig_two : 1", &TRIGGERS).unwrap();
        let hi = values(&[("trig_one", Some(3.0)), ("trig_two", Some(4.0))]);
        let lo = values(&[("trig_one", Some(2.0)), ("trig_two", Some(4.0))]);
        assert_eq!(f.evaluate(&hi), Ok(7.0));
        assert_eq!(f.evaluate(&lo), Ok(1.0));
    }

    // KEDA docs: count function with a closure.
    #[test]
    fn keda_example_count() {
        let f = compile(
            "count([trig_one,trig_two,trig_three],{#>1}) > 1 ? 5 : 0",
            &TRIGGERS,
        )
        .unwrap();
        let two = values(&[
            ("trig_one", Some(2.0)),
            ("trig_two", Some(3.0)),
            ("trig_three", Some(0.0)),
        ]);
        let one = values(&[
            ("trig_one", Some(2.0)),
            ("trig_two", Some(1.0)),
            ("trig_three", Some(0.0)),
        ]);
        assert_eq!(f.evaluate(&two), Ok(5.0));
        assert_eq!(f.evaluate(&one), Ok(0.0));
    }

    // KEDA docs: nested conditions.
    #[test]
    fn keda_example_nested_conditions() {
        let f = compile(
            "trig_one < 2 ? trig_one+trig_two >= 2 ? 5 : 10 : 0",
            &TRIGGERS,
        )
        .unwrap();
        let case =
            |one, two| f.evaluate(&values(&[("trig_one", Some(one)), ("trig_two", Some(two))]));
        assert_eq!(case(1.0, 1.0), Ok(5.0));
        assert_eq!(case(1.0, 0.5), Ok(10.0));
        assert_eq!(case(2.0, 5.0), Ok(0.0));
    }

    #[test]
    fn max_min_and_math_builtins() {
        let p = [("trig_one", Some(1.5)), ("trig_two", Some(4.0))];
        assert_eq!(eval("max(trig_one, trig_two)", &p), Ok(4.0));
        assert_eq!(eval("min(trig_one, trig_two)", &p), Ok(1.5));
        assert_eq!(eval("ceil(trig_one) + floor(trig_two)", &p), Ok(6.0));
        assert_eq!(eval("abs(trig_one - trig_two)", &p), Ok(2.5));
        assert_eq!(eval("trig_two ** 2", &p), Ok(16.0));
    }

    #[test]
    fn integer_results_are_numbers() {
        // `float(...)` makes the literal a float; a formula already starting with `float(` may
        // still produce an int sub-expression elsewhere, which Go's AsFloat64 accepts too.
        assert_eq!(eval("5", &[]), Ok(5.0));
        assert_eq!(as_number(&Value::Integer(3)), Some(3.0));
    }

    #[test]
    fn nil_coalescing_gives_failing_triggers_a_default() {
        let f = compile("(trig_one ?? 0) + (trig_two ?? 10)", &TRIGGERS).unwrap();
        assert_eq!(
            f.evaluate(&values(&[("trig_one", None), ("trig_two", Some(1.0))])),
            Ok(1.0)
        );
        assert_eq!(
            f.evaluate(&values(&[("trig_one", Some(2.0)), ("trig_two", None)])),
            Ok(12.0)
        );
        let chained = compile("trig_one ?? trig_two ?? 3", &TRIGGERS).unwrap();
        assert_eq!(
            chained.evaluate(&values(&[("trig_one", None), ("trig_two", None)])),
            Ok(3.0)
        );
    }

    #[test]
    fn nil_without_default_is_an_error() {
        let err = eval(
            "trig_one + trig_two",
            &[("trig_one", None), ("trig_two", Some(1.0))],
        )
        .unwrap_err();
        assert!(
            err.starts_with("error trying to run custom formula"),
            "{err}"
        );
        // A bare nil result cannot be cast to float.
        assert!(eval("trig_one", &[("trig_one", None)]).is_err());
    }

    #[test]
    fn nil_can_be_tested_in_a_ternary() {
        let f = compile("trig_one == nil ? 0 : trig_one * 2", &TRIGGERS).unwrap();
        assert_eq!(f.evaluate(&values(&[("trig_one", None)])), Ok(0.0));
        assert_eq!(f.evaluate(&values(&[("trig_one", Some(4.0))])), Ok(8.0));
    }

    #[test]
    fn missing_value_is_nil() {
        let f = compile("trig_one ?? 7", &TRIGGERS).unwrap();
        assert_eq!(f.evaluate(&BTreeMap::new()), Ok(7.0));
    }

    #[test]
    fn wraps_in_float_unless_already_cast() {
        let f = compile("trig_one + 1", &TRIGGERS).unwrap();
        assert_eq!(f.expression(), "float(trig_one + 1)");
        let g = compile("float(trig_one) + 1", &TRIGGERS).unwrap();
        assert_eq!(g.expression(), "float(trig_one) + 1");
        assert_eq!(g.trigger_names(), TRIGGERS);
    }

    #[test]
    fn compile_rejects_empty_formula() {
        assert_eq!(
            compile("", &TRIGGERS).unwrap_err(),
            "ScalingModifiers.Formula is mandatory"
        );
    }

    #[test]
    fn compile_rejects_syntax_errors() {
        let err = compile("trig_one + ", &TRIGGERS).unwrap_err();
        assert!(err.contains("failed to compile formula"), "{err}");
    }

    #[test]
    fn compile_rejects_unknown_triggers() {
        // KEDA compiles against the trigger names; an unnamed variable fails validation.
        let err = compile("trig_one + trig_four", &TRIGGERS).unwrap_err();
        assert!(
            err.contains("failed to run formula with dummy values"),
            "{err}"
        );
        assert!(err.contains("trig_four"), "{err}");
    }

    #[test]
    fn compile_rejects_boolean_results() {
        let err = compile("trig_one > 1", &TRIGGERS).unwrap_err();
        assert!(
            err.contains("failed to run formula with dummy values"),
            "{err}"
        );
    }

    #[test]
    fn compile_validates_with_minus_one() {
        // `-1 > 5` is false, so the validation run takes the `0` branch and succeeds.
        let f = compile("trig_one > 5 ? trig_one : 0", &TRIGGERS).unwrap();
        assert_eq!(f.evaluate(&values(&[("trig_one", Some(6.0))])), Ok(6.0));
        // A formula that only fails for negative input fails validation, as in KEDA.
        assert!(compile("trig_one < 0 ? trig_one + nil : 1", &TRIGGERS).is_err());
    }

    #[test]
    fn non_finite_results_are_errors() {
        let err = eval(
            "trig_one / trig_two",
            &[("trig_one", Some(1.0)), ("trig_two", Some(0.0))],
        )
        .unwrap_err();
        assert!(err.contains("finite"), "{err}");
    }

    #[test]
    fn formula_trigger_names_skip_cpu_memory_and_unnamed() {
        let t = |type_: &str, name: Option<&str>| ScaleTriggers {
            type_: type_.to_owned(),
            name: name.map(str::to_owned),
            ..Default::default()
        };
        let triggers = [
            t("kafka", Some("lag")),
            t("cpu", Some("cpu_util")),
            t("memory", Some("mem")),
            t("prometheus", None),
            t("prometheus", Some("")),
            t("rabbitmq", Some("queue")),
        ];
        assert_eq!(formula_trigger_names(&triggers), ["lag", "queue"]);
    }

    #[test]
    fn activation_is_strictly_greater() {
        assert!(!is_active(0.0, DEFAULT_ACTIVATION_TARGET));
        assert!(is_active(0.001, DEFAULT_ACTIVATION_TARGET));
        // KEDA docs: with activationTarget 2, a value <= 2 is not active.
        assert!(!is_active(2.0, 2.0));
        assert!(is_active(2.5, 2.0));
        assert!(!is_active(-1.0, DEFAULT_ACTIVATION_TARGET));
    }

    #[test]
    fn activation_target_parsing() {
        assert_eq!(parse_activation_target(None), Ok(0.0));
        assert_eq!(parse_activation_target(Some("")), Ok(0.0));
        assert_eq!(parse_activation_target(Some("2")), Ok(2.0));
        assert_eq!(parse_activation_target(Some("1.5")), Ok(1.5));
        let err = parse_activation_target(Some("two")).unwrap_err();
        assert!(
            err.starts_with("scalingModifiers.ActivationTarget parsing error"),
            "{err}"
        );
    }

    #[test]
    fn target_parsing() {
        assert_eq!(parse_target("2"), Ok(2.0));
        assert_eq!(parse_target("0.5"), Ok(0.5));
        assert!(parse_target("0").is_err());
        assert!(parse_target("-1").is_err());
        assert!(parse_target("x").is_err());
    }
}
