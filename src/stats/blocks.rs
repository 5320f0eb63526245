//! Block-level views of blocked (4-bit) weights: where each block's parameters sit in a
//! `rows × blocks` grid, and that grid pooled into a heatmap of bounded size (a weight of
//! a 7B model has ~10⁵ blocks: summaries, never one widget per block).

use serde::Serialize;

use crate::model::quant::QuantParams;

/// How blocked parameters are laid out: shaped like the weight with the blocked axis in
/// blocks, i.e. `[outer, blocks, inner]`; parameter `(o · blocks + b) · inner + j` is
/// block `b` of row `o · inner + j`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockLayout {
    pub outer: usize,
    pub blocks: usize,
    pub inner: usize,
}

impl BlockLayout {
    /// The layout of blocked `params` on a weight of `shape`; `None` when not blocked.
    #[must_use]
    pub fn of(shape: &[u64], params: &QuantParams) -> Option<Self> {
        let (axis, block) = (params.axis?, params.block?);
        let size = |v: u64| usize::try_from(v).ok();
        let outer = size(shape.iter().take(axis).product::<u64>())?;
        let inner = size(shape.iter().skip(axis + 1).product::<u64>())?;
        let blocks = size(shape.get(axis).copied()?)?.div_ceil(block.max(1));
        (outer * blocks * inner == params.scale.len()).then_some(Self { outer, blocks, inner })
    }

    /// Rows of the grid (every index but the blocked axis).
    #[must_use]
    pub fn rows(&self) -> usize {
        self.outer * self.inner
    }

    /// `(row, block)` of parameter `i`.
    #[must_use]
    pub fn cell(&self, i: usize) -> (usize, usize) {
        let inner = self.inner.max(1);
        let (ob, j) = (i / inner, i % inner);
        let (o, b) = (ob / self.blocks.max(1), ob % self.blocks.max(1));
        (o * inner + j, b)
    }

    /// Parameter index of `(row, block)`.
    #[must_use]
    pub fn index(&self, row: usize, block: usize) -> usize {
        let inner = self.inner.max(1);
        ((row / inner) * self.blocks + block) * inner + row % inner
    }
}

/// `|scale|` of blocked `params` on a weight of `shape`, mean-pooled to at most
/// `max_side²` cells; `None` when not blocked.
#[must_use]
pub fn scale_heatmap(shape: &[u64], params: &QuantParams, max_side: usize) -> Option<Heatmap> {
    let layout = BlockLayout::of(shape, params)?;
    Some(Heatmap::pooled(layout, max_side, Pool::Mean, |i| params.scale.get(i).map_or(f32::NAN, |s| s.abs())))
}

/// How cells pool the blocks they cover.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pool {
    Mean,
    Max,
}

/// A grid of at most `max_side × max_side` cells over a `rows × blocks` grid of values:
/// cell `(r, c)` pools rows `r · row_step ..` and blocks `c · col_step ..`; NaN: no
/// finite value there.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Heatmap {
    pub rows: usize,
    pub cols: usize,
    pub row_step: usize,
    pub col_step: usize,
    /// Row-major, `rows × cols`.
    pub cells: Vec<f32>,
}

impl Heatmap {
    /// Pools `value(i)` (parameter `i` of `layout`) into at most `max_side²` cells,
    /// skipping non-finite values.
    #[must_use]
    pub fn pooled(layout: BlockLayout, max_side: usize, pool: Pool, value: impl Fn(usize) -> f32) -> Self {
        let max_side = max_side.max(1);
        let (src_rows, src_cols) = (layout.rows(), layout.blocks);
        let (row_step, col_step) = (src_rows.div_ceil(max_side).max(1), src_cols.div_ceil(max_side).max(1));
        let (rows, cols) = (src_rows.div_ceil(row_step), src_cols.div_ceil(col_step));
        let mut acc = vec![(0f64, 0u32, f32::NEG_INFINITY); rows * cols];
        for r in 0..src_rows {
            for b in 0..src_cols {
                let v = value(layout.index(r, b));
                if !v.is_finite() {
                    continue;
                }
                if let Some(a) = acc.get_mut((r / row_step) * cols + b / col_step) {
                    a.0 += f64::from(v);
                    a.1 += 1;
                    a.2 = a.2.max(v);
                }
            }
        }
        #[allow(clippy::cast_possible_truncation)]
        let cells = acc
            .into_iter()
            .map(|(sum, n, max)| match (n, pool) {
                (0, _) => f32::NAN,
                (_, Pool::Max) => max,
                (_, Pool::Mean) => (sum / f64::from(n)) as f32,
            })
            .collect();
        Self { rows, cols, row_step, col_step, cells }
    }

    /// The finite range of the cells.
    #[must_use]
    pub fn range(&self) -> Option<(f32, f32)> {
        let finite = self.cells.iter().copied().filter(|v| v.is_finite());
        let (lo, hi) = finite.fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), v| (lo.min(v), hi.max(v)));
        (lo <= hi).then_some((lo, hi))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::DType;

    fn blocked(scale: Vec<f32>, axis: usize, block: usize) -> QuantParams {
        QuantParams {
            zero_point: vec![0; scale.len()],
            scale,
            axis: Some(axis),
            block: Some(block),
            dtype: DType::Int4,
            zero_point_dtype: None,
            scale_tensor: None,
            zero_point_tensor: None,
            float_zero_point: None,
            groups: None,
        }
    }

    #[test]
    fn layout_maps_parameters_to_rows_and_blocks() {
        // a [K = 10, N = 3] weight in blocks of 4 along axis 0: 3 blocks (the last short)
        let p = blocked((0..9).map(|i| i as f32).collect(), 0, 4);
        let l = BlockLayout::of(&[10, 3], &p).unwrap();
        assert_eq!((l.outer, l.blocks, l.inner, l.rows()), (1, 3, 3, 3));
        // parameter (b · 3 + n): block b of column n
        assert_eq!((l.cell(5), l.index(2, 1)), ((2, 1), 5));
        for i in 0..9 {
            let (r, b) = l.cell(i);
            assert_eq!(l.index(r, b), i);
        }
        // along the last axis of [3, 8] in blocks of 4: rows are the 3 outer rows
        let l = BlockLayout::of(&[3, 8], &blocked(vec![1.0; 6], 1, 4)).unwrap();
        assert_eq!((l.outer, l.blocks, l.inner), (3, 2, 1));
        assert_eq!(l.cell(3), (1, 1));
        // parameters that do not fit the shape: no layout
        assert_eq!(BlockLayout::of(&[3, 8], &blocked(vec![1.0; 5], 1, 4)), None);
    }

    #[test]
    fn heatmaps_pool_within_bounds() {
        // 300 rows × 5 blocks, value = row + 1000 · block, pooled to ≤ 100 per side
        let l = BlockLayout { outer: 1, blocks: 5, inner: 300 };
        let value = |i: usize| {
            let (r, b) = l.cell(i);
            (r + 1000 * b) as f32
        };
        let h = Heatmap::pooled(l, 100, Pool::Max, value);
        assert_eq!((h.rows, h.cols, h.row_step, h.col_step), (100, 5, 3, 1));
        // cell (0, 0): rows 0..3 of block 0 → max 2; cell (99, 4): rows 297..300 → 4299
        assert_eq!((h.cells[0], h.cells[99 * 5 + 4]), (2.0, 4299.0));
        let m = Heatmap::pooled(l, 100, Pool::Mean, value);
        assert_eq!(m.cells[0], 1.0);
        assert_eq!(m.range(), Some((1.0, 4298.0)));
        // non-finite values are skipped; a cell with none is NaN
        let h = Heatmap::pooled(l, 1000, Pool::Max, |i| if l.cell(i).1 == 2 { f32::NAN } else { 1.0 });
        assert!(h.cells[2].is_nan() && h.cells[0] == 1.0);
    }
}
