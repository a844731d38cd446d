//! Binding for marquee_core::similarity: `SimilarityIndex` over a float32 numpy matrix of item embeddings.

use marquee_core::similarity::{top_k, Exclusions, Items, Metric};
use marquee_core::Error;
use numpy::ndarray::Array2;
use numpy::{IntoPyArray, PyArray2, PyReadonlyArray1, PyReadonlyArray2, PyUntypedArrayMethods};
use pyo3::prelude::*;

use crate::errors::to_py;

fn bad(msg: &str) -> PyErr {
    to_py(Error::InvalidArgument(msg.to_owned()))
}

/// Item embeddings (float32, one row per item) for fused scoring and top-k selection without the GIL.
#[pyclass(module = "marquee._native", frozen)]
pub struct SimilarityIndex {
    items: Items,
}

type TopKArrays<'py> = (Bound<'py, PyArray2<i64>>, Bound<'py, PyArray2<f32>>);

#[pymethods]
impl SimilarityIndex {
    /// `metric` is "dot" or "cosine" (rows are normalised once).
    #[new]
    #[pyo3(signature = (items, metric="dot"))]
    fn new(items: PyReadonlyArray2<'_, f32>, metric: &str) -> PyResult<Self> {
        let metric = match metric {
            "dot" => Metric::Dot,
            "cosine" => Metric::Cosine,
            other => return Err(bad(&format!("unknown metric {other:?} (dot, cosine)"))),
        };
        let dim = items.shape()[1];
        let data = items.as_array().iter().copied().collect::<Vec<f32>>();
        Ok(Self {
            items: Items::new(data, dim, metric).map_err(to_py)?,
        })
    }

    fn __len__(&self) -> usize {
        self.items.len()
    }

    #[getter]
    fn dim(&self) -> usize {
        self.items.dim()
    }

    /// The `k` best items per query row: (ids int64 (b, k), scores float32 (b, k)), best first, padded with -1
    /// and -inf when fewer items are allowed. `allowed` (bool per item) and `exclude` (item ids per query) leave
    /// items out.
    #[pyo3(signature = (queries, k, *, allowed=None, exclude=None, threads=0))]
    fn top_k<'py>(
        &self,
        py: Python<'py>,
        queries: PyReadonlyArray2<'py, f32>,
        k: usize,
        allowed: Option<PyReadonlyArray1<'py, bool>>,
        exclude: Option<Vec<Vec<u32>>>,
        threads: usize,
    ) -> PyResult<TopKArrays<'py>> {
        if queries.shape()[1] != self.items.dim() {
            return Err(bad("queries must have the items' dimension"));
        }
        let q: Vec<f32> = queries.as_array().iter().copied().collect();
        let mask: Option<Vec<bool>> = allowed.map(|a| a.as_array().iter().copied().collect());
        let mut per_query = exclude.unwrap_or_default();
        per_query.iter_mut().for_each(|v| {
            v.sort_unstable();
            v.dedup();
        });
        let threads = if threads == 0 {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        } else {
            threads
        };
        let hits = py
            .detach(|| {
                let ex = Exclusions {
                    allowed: mask.as_deref(),
                    per_query: &per_query,
                };
                top_k(&self.items, &q, k, &ex, threads)
            })
            .map_err(to_py)?;
        let b = hits.len();
        let mut ids = Array2::<i64>::from_elem((b, k), -1);
        let mut scores = Array2::<f32>::from_elem((b, k), f32::NEG_INFINITY);
        for (row, found) in hits.iter().enumerate() {
            for (col, (id, score)) in found.iter().enumerate() {
                ids[[row, col]] = i64::from(*id);
                scores[[row, col]] = *score;
            }
        }
        Ok((ids.into_pyarray(py), scores.into_pyarray(py)))
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<SimilarityIndex>()
}
