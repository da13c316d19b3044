//! The metrics adapter's label-selector parser (`metrics_adapter::selector`), fed the HPA's
//! `labelSelector` query parameter. A selector that parses, written back in the canonical
//! grammar, parses to the same requirements.
#![no_main]

use libfuzzer_sys::fuzz_target;
use metrics_adapter::selector::{Requirement, parse, scaled_object_name};

fn render(requirements: &[Requirement]) -> String {
    requirements
        .iter()
        .map(|r| match r {
            Requirement::Equals(k, v) => format!("{k}={v}"),
            Requirement::NotEquals(k, v) => format!("{k}!={v}"),
            Requirement::In(k, vs) => format!("{k} in ({})", vs.join(",")),
            Requirement::NotIn(k, vs) => format!("{k} notin ({})", vs.join(",")),
            Requirement::Exists(k) => k.clone(),
            Requirement::NotExists(k) => format!("!{k}"),
            Requirement::Compare(k, op, v) => format!("{k}{op}{v}"),
        })
        .collect::<Vec<_>>()
        .join(",")
}

fuzz_target!(|data: &[u8]| {
    let Ok(selector) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(requirements) = parse(selector) else {
        return;
    };
    let _ = scaled_object_name(&requirements);
    let again = render(&requirements);
    assert_eq!(
        parse(&again).as_ref(),
        Ok(&requirements),
        "{selector:?} parsed, but its canonical form {again:?} parses differently"
    );
});
