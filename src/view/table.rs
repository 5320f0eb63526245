//! The layer list: one row per matched layer, searchable (substring or regex over name and
//! op type), filterable by op type, sortable by any metric.

use crate::model::Variant;
use crate::model::matching::{MatchRow, op_family};
use crate::report::build::row_is_constant;
use crate::report::{LayerReport, LayerVariant};

/// One row of the layer list.
#[derive(Clone, Debug, PartialEq)]
pub struct ListRow {
    /// Index of the match row.
    pub row: usize,
    pub label: String,
    /// Op family (`Conv`, `MatMul`, …).
    pub op: String,
    pub depth: u32,
    /// Variants that have the layer (names).
    pub present: Vec<bool>,
    pub worst_sqnr: Option<f64>,
    pub worst_mse: Option<f64>,
    pub worst_max_abs: Option<f64>,
    /// The `rmse/scale` farthest from 0.289.
    pub worst_rmse_over_scale: Option<f64>,
    pub params: u64,
    /// Every compared tensor of the layer is reproduced exactly (no `worst_sqnr` then).
    pub exact: bool,
    /// The main weight is one scalar (hidden unless constants are shown).
    pub constant: bool,
    /// What keeping the layer in float recovers against the costliest layer (0–1), from
    /// the window's last sensitivity sweep.
    pub cost: Option<f64>,
}

impl ListRow {
    /// A variant lacks the layer.
    #[must_use]
    pub fn differs(&self) -> bool {
        self.present.iter().any(|p| !p)
    }

    /// The SQNR cell: `exact`, a value, or a dash.
    #[must_use]
    pub fn sqnr_text(&self) -> String {
        match self.worst_sqnr {
            Some(s) => format!("{s:.1} dB"),
            None if self.exact => "exact".into(),
            None => "–".into(),
        }
    }
}

/// Sort order of the list.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SortBy {
    #[default]
    Graph,
    Name,
    /// Lowest SQNR first.
    Sqnr,
    /// Highest MSE first.
    Mse,
    /// Highest max-abs error first.
    MaxAbs,
    /// Farthest from 0.289 first.
    RmseOverScale,
    /// Largest weight first.
    Params,
    /// Costliest in the sensitivity sweep first.
    Sensitivity,
}

impl SortBy {
    pub const ALL: [Self; 8] = [
        Self::Graph,
        Self::Name,
        Self::Sqnr,
        Self::Mse,
        Self::MaxAbs,
        Self::RmseOverScale,
        Self::Params,
        Self::Sensitivity,
    ];

    /// Its name in the sort menu.
    #[must_use]
    pub fn label(self) -> &'static str {
        match self {
            Self::Graph => "graph order",
            Self::Name => "name",
            Self::Sqnr => "worst SQNR",
            Self::Mse => "worst MSE",
            Self::MaxAbs => "worst max |err|",
            Self::RmseOverScale => "rmse/scale off 0.289",
            Self::Params => "parameters",
            Self::Sensitivity => "sensitivity (run)",
        }
    }
}

/// The list's search, filter and sort.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LayerQuery {
    pub text: String,
    /// Interpret `text` as a regular expression (case-insensitive).
    pub regex: bool,
    /// Only this op family.
    pub op: Option<String>,
    pub sort: SortBy,
    /// Show layers whose weight is one scalar (hidden by default).
    pub show_constants: bool,
    /// Only layers some variant lacks.
    pub differences_only: bool,
}

/// Builds the rows; `reports[i]` is the report of match row `i` once computed.
#[must_use]
pub fn list_rows(
    variants: &[Variant],
    reference: usize,
    rows: &[MatchRow],
    reports: &[Option<&LayerReport>],
) -> Vec<ListRow> {
    rows.iter()
        .enumerate()
        .map(|(ri, row)| {
            let mut label = String::new();
            let mut op = String::new();
            let mut depth = 0;
            let mut params = 0;
            for (vi, m) in row.members.iter().enumerate() {
                let Some((li, _)) = m else { continue };
                let Some(v) = variants.get(vi) else { continue };
                let g = &v.model.graph;
                let Some(layer) = v.layers.get(*li) else { continue };
                let Some(node) = g.node(layer.node) else { continue };
                if label.is_empty() {
                    label = node.label(layer.node);
                    op = op_family(&node.op_type).to_string();
                    depth = node.depth;
                    params = g
                        .tensor(layer.weight.tensor())
                        .and_then(|t| t.data.as_ref())
                        .map_or(0, crate::model::TensorData::len);
                }
            }
            let report = reports.get(ri).copied().flatten();
            // every tensor of every variant; exact tensors are lossless, not 0 or 300 dB
            let compared = || report.into_iter().flat_map(|r| &r.variants).flat_map(LayerVariant::compared);
            let inexact = || compared().filter(|m| !m.exact);
            let rmse = inexact()
                .filter_map(|m| m.rmse_over_scale)
                .max_by(|a, b| rmse_distance(*a).total_cmp(&rmse_distance(*b)));
            ListRow {
                row: ri,
                label,
                op,
                depth,
                present: row.members.iter().map(Option::is_some).collect(),
                worst_sqnr: inexact().map(|m| m.sqnr_db).min_by(f64::total_cmp),
                worst_mse: inexact().map(|m| m.mse).max_by(f64::total_cmp),
                worst_max_abs: inexact().map(|m| m.max_abs).max_by(f64::total_cmp),
                worst_rmse_over_scale: rmse,
                exact: compared().next().is_some() && inexact().next().is_none(),
                constant: report.map_or_else(|| row_is_constant(variants, reference, row), |r| r.constant),
                params,
                cost: None,
            }
        })
        .collect()
}

pub use crate::stats::metrics::rmse_distance;

/// The indices into `rows` that pass `q`, in `q.sort` order. An invalid regex matches
/// nothing and is reported as the error.
///
/// # Errors
/// When `q.regex` is set and `q.text` is not a valid regular expression.
pub fn query_rows(rows: &[ListRow], q: &LayerQuery) -> Result<Vec<usize>, String> {
    let re = if q.regex && !q.text.is_empty() {
        Some(
            regex::RegexBuilder::new(&q.text)
                .case_insensitive(true)
                .size_limit(1 << 20)
                .build()
                .map_err(|e| e.to_string())?,
        )
    } else {
        None
    };
    let needle = q.text.to_lowercase();
    let mut out: Vec<usize> = rows
        .iter()
        .enumerate()
        .filter(|(_, r)| q.op.as_ref().is_none_or(|op| &r.op == op))
        .filter(|(_, r)| q.show_constants || !r.constant)
        .filter(|(_, r)| !q.differences_only || r.differs())
        .filter(|(_, r)| match &re {
            Some(re) => re.is_match(&r.label) || re.is_match(&r.op),
            None => {
                needle.is_empty() || r.label.to_lowercase().contains(&needle) || r.op.to_lowercase().contains(&needle)
            }
        })
        .map(|(i, _)| i)
        .collect();
    // missing values sort last
    let key = |v: Option<f64>, descending: bool| match v {
        Some(x) if descending => -x,
        Some(x) => x,
        None => f64::INFINITY,
    };
    let get = |i: &usize| rows.get(*i);
    // constants (when shown) after the rest in every metric order
    let constant = |i: &usize| get(i).is_some_and(|r| r.constant);
    match q.sort {
        SortBy::Graph => out.sort_by_key(|i| get(i).map(|r| (r.depth, r.row))),
        SortBy::Name => out.sort_by(|a, b| get(a).map(|r| &r.label).cmp(&get(b).map(|r| &r.label))),
        SortBy::Sqnr => {
            out.sort_by(|a, b| {
                constant(a).cmp(&constant(b)).then_with(|| {
                    key(get(a).and_then(|r| r.worst_sqnr), false)
                        .total_cmp(&key(get(b).and_then(|r| r.worst_sqnr), false))
                })
            });
        }
        SortBy::Mse => out.sort_by(|a, b| {
            constant(a).cmp(&constant(b)).then_with(|| {
                key(get(a).and_then(|r| r.worst_mse), true).total_cmp(&key(get(b).and_then(|r| r.worst_mse), true))
            })
        }),
        SortBy::MaxAbs => out.sort_by(|a, b| {
            constant(a).cmp(&constant(b)).then_with(|| {
                key(get(a).and_then(|r| r.worst_max_abs), true)
                    .total_cmp(&key(get(b).and_then(|r| r.worst_max_abs), true))
            })
        }),
        SortBy::RmseOverScale => out.sort_by(|a, b| {
            let d = |i: &usize| key(get(i).and_then(|r| r.worst_rmse_over_scale.map(rmse_distance)), true);
            constant(a).cmp(&constant(b)).then_with(|| d(a).total_cmp(&d(b)))
        }),
        SortBy::Params => out.sort_by_key(|i| std::cmp::Reverse(get(i).map_or(0, |r| r.params))),
        SortBy::Sensitivity => out
            .sort_by(|a, b| key(get(a).and_then(|r| r.cost), true).total_cmp(&key(get(b).and_then(|r| r.cost), true))),
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(row: usize, label: &str, op: &str, sqnr: Option<f64>) -> ListRow {
        ListRow {
            row,
            label: label.into(),
            op: op.into(),
            depth: row as u32,
            present: vec![true],
            worst_sqnr: sqnr,
            worst_mse: sqnr.map(|s| 1.0 / s),
            worst_max_abs: None,
            worst_rmse_over_scale: None,
            params: row as u64,
            exact: false,
            constant: false,
            cost: None,
        }
    }

    fn rows() -> Vec<ListRow> {
        vec![
            row(0, "stem_conv", "Conv", Some(40.0)),
            row(1, "s1_conv1", "Conv", Some(20.0)),
            row(2, "fc", "MatMul", None),
            row(3, "s2_proj", "Conv", Some(30.0)),
        ]
    }

    #[test]
    fn substring_search_narrows_the_list() {
        let q = LayerQuery { text: "CONV".into(), ..Default::default() };
        assert_eq!(query_rows(&rows(), &q).unwrap(), [0, 1, 3], "case-insensitive, op type too");
        let q = LayerQuery { text: "s1".into(), ..Default::default() };
        assert_eq!(query_rows(&rows(), &q).unwrap(), [1]);
        let q = LayerQuery { op: Some("MatMul".into()), ..Default::default() };
        assert_eq!(query_rows(&rows(), &q).unwrap(), [2]);
    }

    #[test]
    fn regex_search_and_bad_regex() {
        let q = LayerQuery { text: r"^s\d_".into(), regex: true, ..Default::default() };
        assert_eq!(query_rows(&rows(), &q).unwrap(), [1, 3]);
        let q = LayerQuery { text: "(".into(), regex: true, ..Default::default() };
        assert!(query_rows(&rows(), &q).is_err());
    }

    #[test]
    fn constants_are_hidden_until_asked_and_sort_after_the_rest() {
        let mut rs = rows();
        rs.push(ListRow { constant: true, worst_sqnr: Some(1.0), ..row(4, "mul_scalar", "Mul", Some(1.0)) });
        rs.push(ListRow { exact: true, worst_sqnr: None, ..row(5, "clip_bound", "Clip", None) });
        let q = LayerQuery { sort: SortBy::Sqnr, ..Default::default() };
        assert_eq!(query_rows(&rs, &q).unwrap(), [1, 3, 0, 2, 5], "hidden by default; exact sorts with the missing");
        let q = LayerQuery { sort: SortBy::Sqnr, show_constants: true, ..Default::default() };
        assert_eq!(query_rows(&rs, &q).unwrap(), [1, 3, 0, 2, 5, 4], "shown on demand, after the rest");
        // in every metric order (the constant has the largest MSE and max |err| here)
        rs[4].worst_max_abs = Some(1e9);
        for sort in [SortBy::Mse, SortBy::MaxAbs, SortBy::RmseOverScale] {
            let q = LayerQuery { sort, show_constants: true, ..Default::default() };
            assert_eq!(query_rows(&rs, &q).unwrap().last(), Some(&4), "{sort:?}");
        }
        assert_eq!(rs[5].sqnr_text(), "exact");
        let mut missing = row(6, "only_float", "Relu", None);
        missing.present = vec![true, false];
        rs.push(missing);
        let q = LayerQuery { differences_only: true, ..Default::default() };
        assert_eq!(query_rows(&rs, &q).unwrap(), [6]);
    }

    #[test]
    fn sorting_puts_the_worst_first_and_missing_last() {
        let q = LayerQuery { sort: SortBy::Sqnr, ..Default::default() };
        assert_eq!(query_rows(&rows(), &q).unwrap(), [1, 3, 0, 2]);
        let q = LayerQuery { sort: SortBy::Mse, ..Default::default() };
        assert_eq!(query_rows(&rows(), &q).unwrap(), [1, 3, 0, 2]);
        let q = LayerQuery { sort: SortBy::Name, ..Default::default() };
        assert_eq!(query_rows(&rows(), &q).unwrap(), [2, 1, 3, 0]);
        let q = LayerQuery { sort: SortBy::Params, ..Default::default() };
        assert_eq!(query_rows(&rows(), &q).unwrap(), [3, 2, 1, 0]);
    }
}
