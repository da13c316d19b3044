//! [`Quantity`]: metric values and targets as Kubernetes prints them.

use std::fmt;

/// A decimal quantity with milli precision, formatted exactly as Kubernetes' `resource.Quantity`
/// formats a `DecimalSI` value in canonical form.
///
/// KEDA builds every metric value and target with `resource.NewMilliQuantity(int64(v*1000),
/// DecimalSI)`, so values are truncated (not rounded) to thousandths, and the HPA reads them back
/// in that canonical form: `"5"`, `"1500m"`, `"2k"`, `"0"`.
///
/// ```
/// use scaler_core::Quantity;
///
/// assert_eq!(Quantity::from_f64(5.0).to_string(), "5");
/// assert_eq!(Quantity::from_f64(1.5).to_string(), "1500m");
/// assert_eq!(Quantity::from_f64(2000.0).to_string(), "2k");
/// assert_eq!(Quantity::from_f64(0.0005).to_string(), "0");
/// assert_eq!(Quantity::from_milli(1500).as_f64(), 1.5);
/// ```
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Quantity {
    milli: i64,
}

impl Quantity {
    /// Zero.
    pub const ZERO: Quantity = Quantity { milli: 0 };

    /// A quantity of `milli` thousandths.
    pub const fn from_milli(milli: i64) -> Self {
        Self { milli }
    }

    /// A whole-number quantity.
    pub const fn from_i64(value: i64) -> Self {
        Self {
            milli: value.saturating_mul(1000),
        }
    }

    /// A quantity from a float, truncated to milli precision as KEDA does.
    ///
    /// NaN becomes 0 and infinities saturate, so a broken data source can never produce a
    /// value the HPA cannot parse.
    pub fn from_f64(value: f64) -> Self {
        // `as` saturates on overflow and maps NaN to 0, which is the safe behaviour we want.
        Self {
            milli: (value * 1000.0) as i64,
        }
    }

    /// The value in thousandths.
    pub const fn milli(self) -> i64 {
        self.milli
    }

    /// The value as a float.
    pub fn as_f64(self) -> f64 {
        self.milli as f64 / 1000.0
    }
}

impl fmt::Display for Quantity {
    /// Kubernetes' canonical `DecimalSI` form: the mantissa is an integer and the exponent a
    /// multiple of three written as a suffix (`m`, none, `k`, `M`, `G`, `T`, `P`, `E`), using the
    /// largest exponent that keeps the mantissa whole.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.milli == 0 {
            return f.write_str("0");
        }
        let negative = self.milli < 0;
        let mut mantissa = self.milli.unsigned_abs();
        let mut exponent: i32 = -3;
        while mantissa.is_multiple_of(1000) {
            mantissa /= 1000;
            exponent += 3;
        }
        let suffix = match exponent {
            -3 => "m",
            0 => "",
            3 => "k",
            6 => "M",
            9 => "G",
            12 => "T",
            15 => "P",
            _ => "E",
        };
        if exponent > 18 {
            // Unreachable for i64 milli values; keep formatting total anyway.
            mantissa *= 10u64.pow((exponent - 18) as u32);
        }
        if negative {
            f.write_str("-")?;
        }
        write!(f, "{mantissa}{suffix}")
    }
}

impl fmt::Debug for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Quantity({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_like_kubernetes() {
        let cases: &[(i64, &str)] = &[
            (0, "0"),
            (1, "1m"),
            (10, "10m"),
            (999, "999m"),
            (1000, "1"),
            (1500, "1500m"),
            (5000, "5"),
            (10_000, "10"),
            (100_000, "100"),
            (1_500_000, "1500"),
            (2_000_000, "2k"),
            (2_500_000, "2500"),
            (1_000_000_000, "1M"),
            (-1500, "-1500m"),
            (-2000, "-2"),
            (i64::MAX, "9223372036854775807m"),
        ];
        for (milli, want) in cases {
            assert_eq!(
                Quantity::from_milli(*milli).to_string(),
                *want,
                "milli={milli}"
            );
        }
    }

    #[test]
    fn float_conversion_truncates_like_keda() {
        assert_eq!(Quantity::from_f64(1.2345).milli(), 1234);
        assert_eq!(Quantity::from_f64(-1.2345).milli(), -1234);
        assert_eq!(Quantity::from_f64(f64::NAN), Quantity::ZERO);
        assert_eq!(Quantity::from_f64(f64::INFINITY).milli(), i64::MAX);
        assert_eq!(Quantity::from_i64(7).to_string(), "7");
    }
}
