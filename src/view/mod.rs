//! View models: what the panels show, computed from the pure layers and free of egui and
//! Bevy so that filtering, sorting and formatting are unit-tested directly.

pub mod inspector;
pub mod recent;
pub mod run;
pub mod table;

pub use inspector::{
    ActivationView, InspectorModel, Member, MemberView, ParamView, QuantView, ScaleEdit, TensorView, inspector,
    quant_summary,
};
pub use table::{LayerQuery, ListRow, SortBy, list_rows, query_rows};

/// `0.0123` → `"0.0123"`, tiny and huge values in scientific notation.
#[must_use]
pub fn fmt_num(v: f64) -> String {
    if v.is_nan() {
        "–".into()
    } else if v == 0.0 {
        "0".into()
    } else if v.abs() < 1e-3 || v.abs() >= 1e5 {
        format!("{v:.3e}")
    } else {
        format!("{v:.4}")
    }
}

#[cfg(test)]
mod tests {
    use super::fmt_num;

    #[test]
    fn numbers_read_well() {
        assert_eq!(fmt_num(0.012_34), "0.0123");
        assert_eq!(fmt_num(2.5e-6), "2.500e-6");
        assert_eq!(fmt_num(0.0), "0");
        assert_eq!(fmt_num(f64::NAN), "–");
    }
}
