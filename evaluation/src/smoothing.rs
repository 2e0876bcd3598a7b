//! BLEU's smoothing methods (Chen & Cherry, 2014), as sacreBLEU names them: what a BLEU
//! computation ([`crate::bleu`]) applies and its signature ([`crate::signature`]) records.
//! A module of its own so that those two import it rather than each other.

use std::fmt;
use std::str::FromStr;

use crate::error::EvalError;

/// How zero n-gram matches are smoothed (Chen & Cherry, 2014).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum Smoothing {
    /// `exp`: each order with no match gets precision `1 / (2^k * total)`, k
    /// counting such orders (NIST's mteval-v13a method; sacreBLEU's default).
    #[default]
    Exp,
    /// `floor`: an order with no match gets `value / total` (sacreBLEU default 0.1).
    Floor(f64),
    /// `add-k`: `value` is added to matches and totals of orders 2 and up
    /// (sacreBLEU default 1).
    AddK(f64),
    /// `none`: no smoothing; any order without a match makes BLEU 0.
    None,
}

impl Smoothing {
    /// sacreBLEU's default value for `floor`.
    pub const FLOOR_DEFAULT: f64 = 0.1;
    /// sacreBLEU's default value for `add-k`.
    pub const ADD_K_DEFAULT: f64 = 1.0;

    /// Builds a method from its sacreBLEU name (`exp`, `floor`, `add-k`, `none`)
    /// and an optional value; `floor` and `add-k` fall back to sacreBLEU's
    /// defaults, and a value given to `exp` or `none` is an error rather than
    /// being silently ignored.
    pub fn from_name(name: &str, value: Option<f64>) -> Result<Self, EvalError> {
        let method = match name {
            "exp" => Smoothing::Exp,
            "none" => Smoothing::None,
            "floor" => Smoothing::Floor(value.unwrap_or(Self::FLOOR_DEFAULT)),
            "add-k" => Smoothing::AddK(value.unwrap_or(Self::ADD_K_DEFAULT)),
            other => return Err(EvalError::UnknownSmoothing(other.to_owned())),
        };
        if value.is_some() && matches!(method, Smoothing::Exp | Smoothing::None) {
            return Err(EvalError::InvalidOption {
                name: "smooth-value",
                message: format!("smoothing method {name} takes no value; only floor and add-k do"),
            });
        }
        method.validate()?;
        Ok(method)
    }

    /// The sacreBLEU name of the method.
    pub fn name(self) -> &'static str {
        match self {
            Smoothing::Exp => "exp",
            Smoothing::Floor(_) => "floor",
            Smoothing::AddK(_) => "add-k",
            Smoothing::None => "none",
        }
    }

    /// The method as the signature writes it: `exp`, `none`, `floor[0.10]`, `add-k[1.00]`.
    pub fn signature_str(self) -> String {
        match self {
            Smoothing::Floor(v) | Smoothing::AddK(v) => format!("{}[{v:.2}]", self.name()),
            Smoothing::Exp | Smoothing::None => self.name().to_owned(),
        }
    }

    /// Rejects values that would make precisions negative or undefined.
    pub fn validate(self) -> Result<(), EvalError> {
        match self {
            Smoothing::Floor(v) | Smoothing::AddK(v) if !(v.is_finite() && v >= 0.0) => {
                Err(EvalError::InvalidOption {
                    name: "smooth-value",
                    message: format!("{v} is not a finite number >= 0"),
                })
            }
            _ => Ok(()),
        }
    }
}

impl FromStr for Smoothing {
    type Err = EvalError;

    /// Parses a method name with its default value.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Smoothing::from_name(s, None)
    }
}

impl fmt::Display for Smoothing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.signature_str())
    }
}
