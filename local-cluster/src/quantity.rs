//! Kubernetes resource quantities ("5", "1500m", "2k", "1Gi", "1e3"), as milli-units the way the
//! HPA controller uses them (`Quantity.MilliValue()`, which rounds up).

/// Parse a quantity string into milli-units, rounding up like `MilliValue()`.
pub fn parse_milli(s: &str) -> Option<i128> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    let (negative, s) = match s.as_bytes()[0] {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    let num_end = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (number, suffix) = s.split_at(num_end);
    if number.is_empty() || number == "." {
        return None;
    }
    let (int_part, frac_part) = number.split_once('.').unwrap_or((number, ""));
    if frac_part.contains('.') {
        return None;
    }
    // Value = digits × 10^exp10 × 2^exp2.
    let digits: String = format!("{int_part}{frac_part}");
    let mantissa: i128 = digits.parse().ok()?;
    let mut exp10: i32 = -(frac_part.len() as i32);
    let mut exp2: u32 = 0;
    match suffix {
        "" => {}
        "n" => exp10 -= 9,
        "u" => exp10 -= 6,
        "m" => exp10 -= 3,
        "k" => exp10 += 3,
        "M" => exp10 += 6,
        "G" => exp10 += 9,
        "T" => exp10 += 12,
        "P" => exp10 += 15,
        "E" => exp10 += 18,
        "Ki" => exp2 = 10,
        "Mi" => exp2 = 20,
        "Gi" => exp2 = 30,
        "Ti" => exp2 = 40,
        "Pi" => exp2 = 50,
        "Ei" => exp2 = 60,
        other => {
            let exp = other
                .strip_prefix('e')
                .or_else(|| other.strip_prefix('E'))?;
            exp10 = exp10.checked_add(exp.parse::<i32>().ok()?)?;
        }
    }
    // To milli-units.
    exp10 = exp10.checked_add(3)?;
    let mut value = mantissa.checked_mul(1i128.checked_shl(exp2)?)?;
    if exp10 >= 0 {
        value = value.checked_mul(10i128.checked_pow(exp10 as u32)?)?;
    } else {
        let div = 10i128.checked_pow(exp10.checked_neg()?.unsigned_abs())?;
        // Round away from zero, as MilliValue does for positive values.
        value = value.checked_add(div - 1)? / div;
    }
    Some(if negative { -value } else { value })
}

/// Format milli-units the way Kubernetes serialises them: plain integers when whole, else `m`.
pub fn format_milli(milli: i128) -> String {
    if milli % 1000 == 0 {
        (milli / 1000).to_string()
    } else {
        format!("{milli}m")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_kubernetes_quantities() {
        for (s, want) in [
            ("5", 5000),
            ("1500m", 1500),
            ("2k", 2_000_000),
            ("1Ki", 1_024_000),
            ("0.5", 500),
            ("1e3", 1_000_000),
            ("-2", -2000),
            ("1n", 1),
            ("100u", 1),
            ("3M", 3_000_000_000),
        ] {
            assert_eq!(parse_milli(s), Some(want), "{s}");
        }
        for bad in [
            "",
            "abc",
            "1.2.3",
            "5x",
            ".",
            "1e2147483647",
            "1e-2147483648",
            "9Ei9",
        ] {
            assert_eq!(parse_milli(bad), None, "{bad}");
        }
    }

    #[test]
    fn formats() {
        assert_eq!(format_milli(5000), "5");
        assert_eq!(format_milli(1500), "1500m");
    }
}
