//! The addresses of the services `scripts/services.sh start` runs, from the environment
//! (`.kedge/services.env`).
//!
//! A test whose service is not configured is skipped: it says so and passes. With
//! `KEDGE_REQUIRE_SERVICES=1` (CI, `scripts/test.sh` with services) a missing service is a
//! failure instead, so a broken setup cannot pass as a run of skipped tests.

/// The variable that turns a missing service from a skip into a failure when it is `1`.
pub const REQUIRE_SERVICES: &str = "KEDGE_REQUIRE_SERVICES";

/// Whether missing services fail the test (`KEDGE_REQUIRE_SERVICES=1`) rather than skip it.
pub fn services_required() -> bool {
    std::env::var(REQUIRE_SERVICES).as_deref() == Ok("1")
}

/// The value of the environment variable `name`, or `None`, after saying why on stderr, when
/// it is unset or empty: the caller skips its test.
///
/// # Panics
///
/// When `name` is unset or empty and [`services_required`]; the panic points at the caller.
#[track_caller]
pub fn service_env(name: &str) -> Option<String> {
    match std::env::var(name).ok().filter(|v| !v.is_empty()) {
        Some(v) => Some(v),
        None if services_required() => {
            panic!(
                "{name} not set: run `bash scripts/services.sh start` and source .kedge/services.env"
            )
        }
        None => {
            eprintln!("skipping: {name} not set (run scripts/services.sh start)");
            None
        }
    }
}

/// The values of all of `names`, or `None` when any is missing: as [`service_env`], each
/// missing one is reported (or, when [`services_required`], the first one fails the test).
#[track_caller]
pub fn service_envs<const N: usize>(names: [&str; N]) -> Option<[String; N]> {
    let mut values = Vec::with_capacity(N);
    for name in names {
        values.push(service_env(name));
    }
    values
        .into_iter()
        .collect::<Option<Vec<_>>>()?
        .try_into()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    // Edition 2024 makes `set_var` unsafe (and unsafe code is forbidden here): these read
    // `PATH`, which every test process has, and a variable nothing sets.
    const MISSING: &str = "KEDGE_TEST_SUPPORT_NEVER_SET";

    #[test]
    fn a_set_variable_is_returned() {
        assert_eq!(service_env("PATH"), std::env::var("PATH").ok());
        assert_eq!(
            service_envs(["PATH", "PATH"]),
            std::env::var("PATH").ok().map(|p| [p.clone(), p])
        );
    }

    #[test]
    fn a_missing_variable_skips_unless_services_are_required() {
        if services_required() {
            assert!(std::panic::catch_unwind(|| service_env(MISSING)).is_err());
            assert!(std::panic::catch_unwind(|| service_envs(["PATH", MISSING])).is_err());
        } else {
            assert_eq!(service_env(MISSING), None);
            assert_eq!(service_envs(["PATH", MISSING]), None);
        }
    }
}
