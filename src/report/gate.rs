//! The CI gate: every quantized tensor of every layer checked against thresholds
//! (`quantlens check`). Exact tensors pass. A tensor whose float counterpart exists but
//! that could not be compared (unusable quantization parameters, unreadable data, another
//! layout) fails: the gate cannot vouch for it. A variant with nothing compared at all is
//! an error of its own.

use super::build::Report;

/// What a tensor must reach.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Thresholds {
    /// Lowest acceptable SQNR in dB.
    pub min_sqnr_db: Option<f64>,
    /// Highest acceptable `rmse/scale` (0.289 is rounding alone).
    pub max_rmse_over_scale: Option<f64>,
    /// Highest acceptable `rmse/scale` of any one channel or block (one bad block of a
    /// 4-bit weight hides in the tensor's figure).
    pub max_block_rmse_over_scale: Option<f64>,
    /// Only this variant (default: every quantized one).
    pub variant: Option<String>,
}

impl Thresholds {
    /// Refuses thresholds that check nothing.
    ///
    /// # Errors
    /// When neither threshold is given.
    pub fn validate(&self) -> Result<(), String> {
        if self.min_sqnr_db.is_none() && self.max_rmse_over_scale.is_none() && self.max_block_rmse_over_scale.is_none()
        {
            return Err("give a threshold: --min-sqnr DB, --max-rmse-scale X and/or --max-block-rmse-scale X".into());
        }
        Ok(())
    }
}

/// One tensor that falls short.
#[derive(Clone, Debug, PartialEq)]
pub struct Failure {
    pub layer: String,
    pub variant: String,
    pub tensor: String,
    pub role: &'static str,
    pub metric: &'static str,
    pub value: f64,
    pub threshold: f64,
    /// Why the tensor could not be compared (`metric` is then `not_compared`).
    pub reason: Option<String>,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(reason) = &self.reason {
            return write!(
                f,
                "FAIL {} [{}] {} ({}): not compared: {reason}",
                self.layer, self.variant, self.tensor, self.role
            );
        }
        let op = if self.metric == "sqnr_db" { "<" } else { ">" };
        write!(
            f,
            "FAIL {} [{}] {} ({}): {} {:.4} {op} {}",
            self.layer, self.variant, self.tensor, self.role, self.metric, self.value, self.threshold
        )
    }
}

/// What the gate found.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Verdict {
    pub failures: Vec<Failure>,
    /// Tensors compared against their float counterpart.
    pub checked: usize,
    /// Variants checked.
    pub variants: Vec<String>,
}

/// Checks `report` against `t`.
///
/// # Errors
/// When no threshold is given, `t.variant` names no quantized variant, or a checked
/// variant has no tensor compared with float (nothing to vouch for).
pub fn check(report: &Report, t: &Thresholds) -> Result<Verdict, String> {
    t.validate()?;
    let quantized: Vec<&str> =
        report.variants.iter().map(|v| v.name.as_str()).filter(|n| *n != report.reference).collect();
    let names: Vec<String> = match &t.variant {
        Some(v) if quantized.contains(&v.as_str()) => vec![v.clone()],
        Some(v) => {
            return Err(format!(
                "no quantized variant named `{v}` (have: {}; `{}` is the reference)",
                quantized.join(", "),
                report.reference
            ));
        }
        None => quantized.iter().map(ToString::to_string).collect(),
    };
    if names.is_empty() {
        return Err("only one variant: nothing to compare with float".into());
    }
    let mut verdict = Verdict { variants: names.clone(), ..Verdict::default() };
    for name in &names {
        let mut compared = 0;
        for l in &report.layers {
            let reference = l.variants.iter().find(|v| v.variant == report.reference);
            for v in l.variants.iter().filter(|v| &v.variant == name) {
                for init in &v.initializers {
                    let fail = |metric, value, threshold, reason| Failure {
                        layer: l.layer.clone(),
                        variant: name.clone(),
                        tensor: init.name.clone(),
                        role: init.role.name(),
                        metric,
                        value,
                        threshold,
                        reason,
                    };
                    let Some(m) = &init.metrics else {
                        let counterpart = reference.is_some_and(|r| r.initializers.iter().any(|i| i.key == init.key));
                        if counterpart {
                            let reason = init.problems.first().cloned().unwrap_or_else(|| "no metrics".into());
                            verdict.failures.push(fail("not_compared", f64::NAN, f64::NAN, Some(reason)));
                        }
                        continue;
                    };
                    compared += 1;
                    if m.exact {
                        continue;
                    }
                    if let Some(min) = t.min_sqnr_db
                        && m.sqnr_db.partial_cmp(&min).is_none_or(std::cmp::Ordering::is_lt)
                    {
                        verdict.failures.push(fail("sqnr_db", m.sqnr_db, min, None));
                    }
                    if let (Some(max), Some(r)) = (t.max_rmse_over_scale, m.rmse_over_scale)
                        && r.partial_cmp(&max).is_none_or(std::cmp::Ordering::is_gt)
                    {
                        verdict.failures.push(fail("rmse_over_scale", r, max, None));
                    }
                    let worst = m.channels.as_ref().and_then(|c| c.worst.first());
                    if let (Some(max), Some(w)) = (t.max_block_rmse_over_scale, worst)
                        && w.rmse_over_scale.partial_cmp(&max).is_none_or(std::cmp::Ordering::is_gt)
                    {
                        let mut f = fail("block_rmse_over_scale", w.rmse_over_scale, max, None);
                        f.tensor = match (w.row, w.block) {
                            (Some(r), Some(b)) => format!("{} row {r} block {b}", init.name),
                            _ => format!("{} channel {}", init.name, w.index),
                        };
                        verdict.failures.push(f);
                    }
                }
            }
        }
        if compared == 0 {
            return Err(format!("variant `{name}` has no tensor compared with float: nothing to check"));
        }
        verdict.checked += compared;
    }
    Ok(verdict)
}
