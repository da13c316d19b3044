//! The `scalingModifiers` formula compiler and evaluator (`kedge::policy::modifiers`), whose
//! input a tenant writes and kedge runs at every poll and every HPA read.
//!
//! The input is the formula, over the triggers `trig_one`, `trig_two` and `trig_three`. A
//! formula that compiles is then evaluated with a few value sets (zeros, huge, negative,
//! NaN, a failing trigger); every result must be a finite number or an error.
#![no_main]

use std::collections::BTreeMap;

use kedge::policy::modifiers::{check_cost, compile};
use libfuzzer_sys::fuzz_target;

const TRIGGERS: [&str; 3] = ["trig_one", "trig_two", "trig_three"];

fuzz_target!(|data: &[u8]| {
    let Ok(formula) = std::str::from_utf8(data) else {
        return;
    };
    let _ = check_cost(formula);
    let Ok(compiled) = compile(formula, &TRIGGERS) else {
        return;
    };
    let sets: [[Option<f64>; 3]; 5] = [
        [Some(0.0), Some(0.0), Some(0.0)],
        [Some(1e308), Some(-1e308), Some(f64::MIN_POSITIVE)],
        [Some(-3.5), Some(2.0), Some(9e15)],
        [Some(f64::NAN), Some(1.0), Some(f64::INFINITY)],
        [None, Some(5.0), None],
    ];
    for set in sets {
        let values: BTreeMap<String, Option<f64>> = TRIGGERS
            .iter()
            .zip(set)
            .map(|(name, value)| ((*name).to_owned(), value))
            .collect();
        if let Ok(value) = compiled.evaluate(&values) {
            assert!(value.is_finite(), "{formula:?} evaluated to {value}");
        }
    }
});
