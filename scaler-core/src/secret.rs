//! [`Secret`]: a string that never prints itself.

use std::fmt;

/// A sensitive string, such as a password or token resolved from a TriggerAuthentication.
///
/// `Debug` and `Display` print `<redacted>`, so a secret that ends up in a log line, an Event, a
/// status message or an error never shows its value. Read it with [`Secret::expose`] at the one
/// place that needs it (building a client).
///
/// ```
/// use scaler_core::Secret;
///
/// let password = Secret::new("hunter2");
/// assert_eq!(format!("{password:?} / {password}"), "<redacted> / <redacted>");
/// assert_eq!(password.expose(), "hunter2");
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The value itself. Call this only where the value is handed to a client library.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Consumes the wrapper and returns the value.
    pub fn into_inner(self) -> String {
        self.0
    }

    /// True when the value is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Self(value)
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Self(value.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_of_containing_struct_hides_value() {
        #[derive(Debug)]
        #[allow(dead_code)]
        struct Creds {
            user: String,
            password: Secret,
        }
        let c = Creds {
            user: "guest".into(),
            password: Secret::new("s3cr3t"),
        };
        let printed = format!("{c:?} {c:#?}");
        assert!(!printed.contains("s3cr3t"), "{printed}");
        assert!(printed.contains("guest"));
    }
}
