//! Binding for marquee_core::search: `TitleIndex`, the catalog's in-memory tantivy index.

use marquee_core::search::{Filter, TitleDoc, TitleIndex as CoreIndex};
use marquee_core::Error;
use pyo3::prelude::*;

use crate::errors::to_py;

fn filter(json: Option<&str>) -> PyResult<Filter> {
    match json {
        None => Ok(Filter::default()),
        Some(text) => serde_json::from_str(text)
            .map_err(|e| to_py(Error::InvalidArgument(format!("search filter: {e}")))),
    }
}

/// Titles indexed for search and filtered browse. Every call releases the GIL.
#[pyclass(module = "marquee._native", frozen)]
pub struct TitleIndex {
    inner: CoreIndex,
}

#[pymethods]
impl TitleIndex {
    #[new]
    fn new() -> PyResult<Self> {
        Ok(Self {
            inner: CoreIndex::new().map_err(to_py)?,
        })
    }

    /// Adds or replaces titles from a JSON array of title documents; searchable on return.
    fn upsert(&self, py: Python<'_>, docs_json: &str) -> PyResult<()> {
        let docs: Vec<TitleDoc> = serde_json::from_str(docs_json)
            .map_err(|e| to_py(Error::InvalidArgument(format!("title documents: {e}"))))?;
        py.detach(|| self.inner.upsert(&docs)).map_err(to_py)
    }

    fn delete(&self, py: Python<'_>, ids: Vec<String>) -> PyResult<()> {
        py.detach(|| self.inner.delete(&ids)).map_err(to_py)
    }

    fn clear(&self, py: Python<'_>) -> PyResult<()> {
        py.detach(|| self.inner.clear()).map_err(to_py)
    }

    fn __len__(&self) -> usize {
        usize::try_from(self.inner.len()).unwrap_or(usize::MAX)
    }

    /// (hits as [(title id, score)], total matches) for `query` under `filter_json`.
    #[pyo3(signature = (query, filter_json=None, limit=20, offset=0))]
    fn search(
        &self,
        py: Python<'_>,
        query: &str,
        filter_json: Option<&str>,
        limit: usize,
        offset: usize,
    ) -> PyResult<(Vec<(String, f32)>, usize)> {
        let f = filter(filter_json)?;
        let page = py
            .detach(|| self.inner.search(query, &f, limit, offset))
            .map_err(to_py)?;
        Ok((page.hits, page.total))
    }

    /// How many titles pass `filter_json`.
    #[pyo3(signature = (filter_json=None))]
    fn count(&self, py: Python<'_>, filter_json: Option<&str>) -> PyResult<usize> {
        let f = filter(filter_json)?;
        py.detach(|| self.inner.browse(&f, 1, 0))
            .map(|page| page.total)
            .map_err(to_py)
    }

    /// Title ids a lenient version of `query` finds (did-you-mean).
    #[pyo3(signature = (query, filter_json=None, limit=3))]
    fn suggest(
        &self,
        py: Python<'_>,
        query: &str,
        filter_json: Option<&str>,
        limit: usize,
    ) -> PyResult<Vec<String>> {
        let f = filter(filter_json)?;
        py.detach(|| self.inner.suggest(query, &f, limit))
            .map_err(to_py)
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<TitleIndex>()
}
