//! Kubernetes label selectors (`a=b,c!=d,e in (f,g),!h`), as the HPA sends them in
//! `labelSelector`. The adapter only needs the ScaledObject name, but parses the whole grammar so
//! a selector with other requirements works, and a malformed one is a clear 400, not a crash.

/// The label KEDA's HPAs carry in every external metric's selector.
pub const SCALED_OBJECT_LABEL: &str = "scaledobject.keda.sh/name";

/// One requirement of a selector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Requirement {
    /// `key=value` or `key==value`.
    Equals(String, String),
    /// `key!=value`.
    NotEquals(String, String),
    /// `key in (v1,v2)`.
    In(String, Vec<String>),
    /// `key notin (v1,v2)`.
    NotIn(String, Vec<String>),
    /// `key`.
    Exists(String),
    /// `!key`.
    NotExists(String),
    /// `key>n` / `key<n` (numeric comparisons Kubernetes allows in selectors).
    Compare(String, char, String),
}

/// A syntax error, worded like Kubernetes' `unable to parse requirement`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unable to parse requirement: {0}")]
pub struct SelectorError(String);

/// Parses a selector into its requirements. The empty selector has none.
pub fn parse(selector: &str) -> Result<Vec<Requirement>, SelectorError> {
    let mut out = Vec::new();
    for part in split_top_level(selector)? {
        let part = part.trim();
        if part.is_empty() {
            if selector.trim().is_empty() {
                continue;
            }
            return Err(SelectorError(format!("empty requirement in {selector:?}")));
        }
        out.push(requirement(part)?);
    }
    Ok(out)
}

/// The single ScaledObject name a selector pins (`scaledobject.keda.sh/name=x`, `==x` or
/// `in (x)`), if any.
pub fn scaled_object_name(requirements: &[Requirement]) -> Option<&str> {
    requirements.iter().find_map(|r| match r {
        Requirement::Equals(k, v) if k == SCALED_OBJECT_LABEL && !v.is_empty() => Some(v.as_str()),
        Requirement::In(k, vs)
            if k == SCALED_OBJECT_LABEL && vs.len() == 1 && !vs[0].is_empty() =>
        {
            Some(vs[0].as_str())
        }
        _ => None,
    })
}

/// Splits on commas that are not inside `( … )`.
fn split_top_level(s: &str) -> Result<Vec<&str>, SelectorError> {
    let mut parts = Vec::new();
    let mut depth = 0usize;
    let mut start = 0;
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => {
                depth = depth
                    .checked_sub(1)
                    .ok_or_else(|| SelectorError(format!("unbalanced ')' in {s:?}")))?;
            }
            ',' if depth == 0 => {
                parts.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if depth != 0 {
        return Err(SelectorError(format!("unbalanced '(' in {s:?}")));
    }
    parts.push(&s[start..]);
    Ok(parts)
}

fn is_key_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/')
}

fn valid_value(v: &str) -> bool {
    v.len() <= 63
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

fn key(k: &str, whole: &str) -> Result<String, SelectorError> {
    if k.is_empty() || !k.chars().all(is_key_char) || k.matches('/').count() > 1 {
        return Err(SelectorError(format!(
            "invalid label key {k:?} in {whole:?}"
        )));
    }
    Ok(k.to_owned())
}

fn value(v: &str, whole: &str) -> Result<String, SelectorError> {
    let v = v.trim();
    if !valid_value(v) {
        return Err(SelectorError(format!(
            "invalid label value {v:?} in {whole:?}"
        )));
    }
    Ok(v.to_owned())
}

fn requirement(part: &str) -> Result<Requirement, SelectorError> {
    if let Some(rest) = part.strip_prefix('!') {
        return Ok(Requirement::NotExists(key(rest.trim(), part)?));
    }
    let key_end = part.find(|c: char| !is_key_char(c)).unwrap_or(part.len());
    let k = key(&part[..key_end], part)?;
    let rest = part[key_end..].trim_start();
    if rest.is_empty() {
        return Ok(Requirement::Exists(k));
    }
    if let Some(v) = rest.strip_prefix("==").or_else(|| rest.strip_prefix('=')) {
        return Ok(Requirement::Equals(k, value(v, part)?));
    }
    if let Some(v) = rest.strip_prefix("!=") {
        return Ok(Requirement::NotEquals(k, value(v, part)?));
    }
    for op in ['>', '<'] {
        if let Some(v) = rest.strip_prefix(op) {
            let v = v.trim();
            if v.parse::<i64>().is_err() {
                return Err(SelectorError(format!(
                    "{v:?} is not an integer in {part:?}"
                )));
            }
            return Ok(Requirement::Compare(k, op, v.to_owned()));
        }
    }
    let (negated, list) = if let Some(l) = rest.strip_prefix("notin") {
        (true, l)
    } else if let Some(l) = rest.strip_prefix("in") {
        (false, l)
    } else {
        return Err(SelectorError(format!("unknown operator in {part:?}")));
    };
    let list = list.trim();
    let inner = list
        .strip_prefix('(')
        .and_then(|l| l.strip_suffix(')'))
        .ok_or_else(|| SelectorError(format!("expected '(' … ')' in {part:?}")))?;
    let values = inner
        .split(',')
        .map(|v| value(v, part))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(if negated {
        Requirement::NotIn(k, values)
    } else {
        Requirement::In(k, values)
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn grammar() {
        assert_eq!(parse("").unwrap(), vec![]);
        assert_eq!(
            parse("scaledobject.keda.sh/name=so,app==web, tier != db,env in (a, b),x notin (y),k,!n,r>3")
                .unwrap(),
            vec![
                Requirement::Equals(SCALED_OBJECT_LABEL.into(), "so".into()),
                Requirement::Equals("app".into(), "web".into()),
                Requirement::NotEquals("tier".into(), "db".into()),
                Requirement::In("env".into(), vec!["a".into(), "b".into()]),
                Requirement::NotIn("x".into(), vec!["y".into()]),
                Requirement::Exists("k".into()),
                Requirement::NotExists("n".into()),
                Requirement::Compare("r".into(), '>', "3".into()),
            ]
        );
        for bad in [
            "a=(b", "a in b", "=b", "a=b,,c=d", "a b", "a=b c", "a in (b", "a)", "a>x",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn scaled_object() {
        let name = |s: &str| scaled_object_name(&parse(s).unwrap()).map(str::to_owned);
        assert_eq!(name("scaledobject.keda.sh/name=so"), Some("so".into()));
        assert_eq!(name("a=b,scaledobject.keda.sh/name==so"), Some("so".into()));
        assert_eq!(name("scaledobject.keda.sh/name in (so)"), Some("so".into()));
        assert_eq!(name("scaledobject.keda.sh/name in (a,b)"), None);
        assert_eq!(name("scaledobject.keda.sh/name="), None);
        assert_eq!(name("scaledobject.keda.sh/name!=so"), None);
        assert_eq!(name("other=so"), None);
    }
}
