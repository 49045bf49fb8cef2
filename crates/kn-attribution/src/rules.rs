//! Integration rules for integrated gradients: the points `alpha` in [0, 1] at which the
//! gradient is taken and the weight of each (weights sum to 1, so that attribution =
//! activation x weighted mean gradient).

use crate::error::{AttributionError, Result};
use serde::{Deserialize, Serialize};

/// How the path integral from the zero baseline to the activation is approximated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum IntegrationRule {
    /// alpha = k/m for k = 0..m-1 (the paper's rule). Default.
    #[default]
    Left,
    /// alpha = k/m for k = 1..m.
    Right,
    /// alpha = (k + 1/2)/m for k = 0..m-1.
    Midpoint,
    /// alpha = k/(m-1) for k = 0..m-1, end points weighted 1/2 (needs m >= 2).
    Trapezoid,
    /// m-point Gauss-Legendre quadrature on [0, 1] (exact for polynomials of degree < 2m).
    GaussLegendre,
}

impl IntegrationRule {
    /// All rules, for listings and tests.
    pub const ALL: [IntegrationRule; 5] = [
        Self::Left,
        Self::Right,
        Self::Midpoint,
        Self::Trapezoid,
        Self::GaussLegendre,
    ];

    /// The rule's name as used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Self::Left => "left",
            Self::Right => "right",
            Self::Midpoint => "midpoint",
            Self::Trapezoid => "trapezoid",
            Self::GaussLegendre => "gauss-legendre",
        }
    }

    /// Parses a rule name (`left`, `right`, `midpoint`, `trapezoid`, `gauss-legendre`).
    pub fn parse(name: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|rule| rule.name() == name)
            .ok_or_else(|| AttributionError::InvalidConfig(format!(
                "unknown integration rule {name:?}: use left, right, midpoint, trapezoid or gauss-legendre"
            )))
    }

    /// The `(alpha, weight)` pairs of an `m`-point rule; weights sum to 1.
    pub fn points(self, m: usize) -> Result<Vec<(f64, f64)>> {
        if m == 0 {
            return Err(AttributionError::InvalidConfig(
                "the number of integration steps must be at least 1".into(),
            ));
        }
        let mf = m as f64;
        let points = match self {
            Self::Left => (0..m).map(|k| (k as f64 / mf, 1.0 / mf)).collect(),
            Self::Right => (1..=m).map(|k| (k as f64 / mf, 1.0 / mf)).collect(),
            Self::Midpoint => (0..m).map(|k| ((k as f64 + 0.5) / mf, 1.0 / mf)).collect(),
            Self::Trapezoid => {
                if m < 2 {
                    return Err(AttributionError::InvalidConfig(
                        "the trapezoid rule needs at least 2 steps".into(),
                    ));
                }
                let h = 1.0 / (mf - 1.0);
                (0..m)
                    .map(|k| (k as f64 * h, if k == 0 || k == m - 1 { h / 2.0 } else { h }))
                    .collect()
            }
            Self::GaussLegendre => gauss_legendre(m),
        };
        Ok(points)
    }
}

/// Gauss-Legendre nodes and weights mapped to [0, 1] (Newton iteration on P_m).
fn gauss_legendre(m: usize) -> Vec<(f64, f64)> {
    let mut points = Vec::with_capacity(m);
    let mf = m as f64;
    for i in 0..m {
        // Initial guess (Tricomi), then Newton on the Legendre polynomial.
        let mut x = (std::f64::consts::PI * (i as f64 + 0.75) / (mf + 0.5)).cos();
        let mut derivative = 1.0;
        for _ in 0..100 {
            let (mut p0, mut p1) = (1.0, x);
            for k in 2..=m {
                let kf = k as f64;
                let p2 = ((2.0 * kf - 1.0) * x * p1 - (kf - 1.0) * p0) / kf;
                p0 = p1;
                p1 = p2;
            }
            let pm = if m == 1 { x } else { p1 };
            let pm_minus = if m == 1 { 1.0 } else { p0 };
            derivative = mf * (x * pm - pm_minus) / (x * x - 1.0);
            let step = pm / derivative;
            x -= step;
            if step.abs() < 1e-15 {
                break;
            }
        }
        let weight = 2.0 / ((1.0 - x * x) * derivative * derivative);
        // Map [-1, 1] to [0, 1]: alpha = (1 - x)/2 keeps alphas increasing; weights halve.
        points.push(((1.0 - x) / 2.0, weight / 2.0));
    }
    points
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn left_rule_is_the_papers() {
        let points = IntegrationRule::Left.points(4).unwrap();
        assert_eq!(
            points,
            vec![(0.0, 0.25), (0.25, 0.25), (0.5, 0.25), (0.75, 0.25)]
        );
    }

    #[test]
    fn zero_steps_is_an_error() {
        for rule in IntegrationRule::ALL {
            assert!(rule.points(0).is_err());
        }
        assert!(IntegrationRule::Trapezoid.points(1).is_err());
    }

    #[test]
    fn names_round_trip() {
        for rule in IntegrationRule::ALL {
            assert_eq!(IntegrationRule::parse(rule.name()).unwrap(), rule);
        }
        assert!(IntegrationRule::parse("simpson").is_err());
    }

    proptest! {
        #[test]
        fn weights_sum_to_one_and_alphas_lie_in_the_unit_interval(m in 2usize..80, r in 0usize..5) {
            let points = IntegrationRule::ALL[r].points(m).unwrap();
            prop_assert_eq!(points.len(), m);
            let total: f64 = points.iter().map(|p| p.1).sum();
            prop_assert!((total - 1.0).abs() < 1e-9);
            prop_assert!(points.iter().all(|&(a, w)| (0.0..=1.0).contains(&a) && w > 0.0));
        }

        #[test]
        fn gauss_legendre_is_exact_for_low_degree_polynomials(m in 1usize..30, degree in 0usize..8) {
            prop_assume!(degree < 2 * m);
            let points = IntegrationRule::GaussLegendre.points(m).unwrap();
            let integral: f64 = points.iter().map(|&(a, w)| w * a.powi(degree as i32)).sum();
            prop_assert!((integral - 1.0 / (degree as f64 + 1.0)).abs() < 1e-10);
        }

        #[test]
        fn every_rule_converges_on_a_smooth_integrand(r in 0usize..5) {
            // The integral of exp(alpha) over [0, 1] is e - 1; error shrinks as m grows.
            let rule = IntegrationRule::ALL[r];
            let error = |m: usize| {
                let sum: f64 = rule.points(m).unwrap().iter().map(|&(a, w)| w * a.exp()).sum();
                (sum - (std::f64::consts::E - 1.0)).abs()
            };
            prop_assert!(error(64) < error(8));
        }
    }
}
