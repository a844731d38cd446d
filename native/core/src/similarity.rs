//! Similarity scoring: fused dot-product (or cosine) scoring and top-k selection over float32 embeddings, with
//! exclusions, on several threads. One pass over the items serves a whole batch of queries, and only the k best
//! per query are kept (no n x b score matrix is ever written), which is what beats "matmul then argpartition".

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use crate::error::{Error, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    Dot,
    Cosine,
}

/// Items (rows of `dim` floats), normalised once when the metric is cosine.
#[derive(Debug, Clone)]
pub struct Items {
    data: Vec<f32>,
    dim: usize,
    metric: Metric,
}

/// Items scored per block: the block stays in L1 while every query of the batch passes over it.
const BLOCK: usize = 64;
/// Most items and largest dimension accepted.
pub const MAX_ITEMS: usize = 50_000_000;
pub const MAX_DIM: usize = 4096;

fn normalise(v: &mut [f32]) {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
}

impl Items {
    pub fn new(mut data: Vec<f32>, dim: usize, metric: Metric) -> Result<Self> {
        if dim == 0 || dim > MAX_DIM {
            return Err(Error::InvalidArgument(format!(
                "dimension must be 1..={MAX_DIM}"
            )));
        }
        if !data.len().is_multiple_of(dim) || data.len() / dim > MAX_ITEMS {
            return Err(Error::InvalidArgument(format!(
                "items must be a whole number of {dim}-float rows, at most {MAX_ITEMS}"
            )));
        }
        if data.iter().any(|x| !x.is_finite()) {
            return Err(Error::InvalidArgument(
                "items contain NaN or infinity".into(),
            ));
        }
        if metric == Metric::Cosine {
            data.chunks_exact_mut(dim).for_each(normalise);
        }
        Ok(Self { data, dim, metric })
    }

    pub fn len(&self) -> usize {
        self.data.len() / self.dim
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    pub fn dim(&self) -> usize {
        self.dim
    }
}

#[derive(Debug, Clone, Copy)]
struct Hit {
    score: f32,
    item: u32,
}

// A min-heap on score (ties: the higher item id is "smaller", so lower ids win ties deterministically).
impl Ord for Hit {
    fn cmp(&self, other: &Self) -> Ordering {
        other
            .score
            .total_cmp(&self.score)
            .then(self.item.cmp(&other.item))
    }
}
impl PartialOrd for Hit {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl PartialEq for Hit {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Hit {}

struct TopK {
    k: usize,
    heap: BinaryHeap<Hit>,
    floor: f32,
}

impl TopK {
    fn new(k: usize) -> Self {
        Self {
            k,
            heap: BinaryHeap::with_capacity(k + 1),
            floor: f32::NEG_INFINITY,
        }
    }

    #[inline]
    fn offer(&mut self, hit: Hit) {
        if self.heap.len() < self.k {
            self.heap.push(hit);
            if self.heap.len() == self.k {
                self.floor = self.heap.peek().map_or(f32::NEG_INFINITY, |h| h.score);
            }
        } else if hit.score > self.floor {
            self.heap.pop();
            self.heap.push(hit);
            self.floor = self.heap.peek().map_or(f32::NEG_INFINITY, |h| h.score);
        }
    }
}

/// Dot products of one query with a block of items, eight lanes at a time (vectorised by the compiler).
#[inline(always)]
fn dots(query: &[f32], block: &[f32], dim: usize, out: &mut [f32]) {
    for (row, o) in block.chunks_exact(dim).zip(out.iter_mut()) {
        let mut acc = [0.0f32; 8];
        let (qa, qt) = query.split_at(dim - dim % 8);
        let (ra, rt) = row.split_at(dim - dim % 8);
        for (q8, r8) in qa.chunks_exact(8).zip(ra.chunks_exact(8)) {
            for i in 0..8 {
                acc[i] += q8[i] * r8[i];
            }
        }
        let mut s: f32 = acc.iter().sum();
        for (q, r) in qt.iter().zip(rt) {
            s += q * r;
        }
        *o = s;
    }
}

/// What to leave out: items no query may get (`allowed[i] == false`) and, per query, sorted item ids.
pub struct Exclusions<'a> {
    pub allowed: Option<&'a [bool]>,
    pub per_query: &'a [Vec<u32>],
}

fn scan(
    items: &Items,
    queries: &[f32],
    k: usize,
    ex: &Exclusions<'_>,
    range: std::ops::Range<usize>,
) -> Vec<TopK> {
    let dim = items.dim;
    let nq = queries.len() / dim;
    let mut tops: Vec<TopK> = (0..nq).map(|_| TopK::new(k)).collect();
    let mut scores = [0.0f32; BLOCK];
    let mut start = range.start;
    while start < range.end {
        let end = (start + BLOCK).min(range.end);
        let block = &items.data[start * dim..end * dim];
        for (q, top) in tops.iter_mut().enumerate() {
            let query = &queries[q * dim..(q + 1) * dim];
            let out = &mut scores[..end - start];
            dots(query, block, dim, out);
            let excluded = ex.per_query.get(q).map_or(&[][..], |v| v.as_slice());
            for (offset, &score) in out.iter().enumerate() {
                if score <= top.floor {
                    continue;
                }
                let item = start + offset;
                if ex.allowed.is_some_and(|a| !a[item]) {
                    continue;
                }
                let id = u32::try_from(item).unwrap_or(u32::MAX);
                if excluded.binary_search(&id).is_ok() {
                    continue;
                }
                top.offer(Hit { score, item: id });
            }
        }
        start = end;
    }
    tops
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn scan_avx2(
    items: &Items,
    queries: &[f32],
    k: usize,
    ex: &Exclusions<'_>,
    range: std::ops::Range<usize>,
) -> Vec<TopK> {
    // the same code, compiled for AVX2 and FMA: the eight-lane loop becomes one fused multiply-add per step
    scan(items, queries, k, ex, range)
}

fn scan_best(
    items: &Items,
    queries: &[f32],
    k: usize,
    ex: &Exclusions<'_>,
    range: std::ops::Range<usize>,
) -> Vec<TopK> {
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
            // SAFETY: the CPU was just checked for the target features the function is compiled with.
            return unsafe { scan_avx2(items, queries, k, ex, range) };
        }
    }
    scan(items, queries, k, ex, range)
}

/// The `k` best items for each of the queries (rows of `dim` floats), best first, as (item ids, scores) per
/// query; fewer than `k` when fewer items are allowed.
pub fn top_k(
    items: &Items,
    queries: &[f32],
    k: usize,
    ex: &Exclusions<'_>,
    threads: usize,
) -> Result<Vec<Vec<(u32, f32)>>> {
    let dim = items.dim;
    if queries.is_empty() || !queries.len().is_multiple_of(dim) {
        return Err(Error::InvalidArgument(format!(
            "queries must be rows of {dim} floats"
        )));
    }
    if queries.iter().any(|x| !x.is_finite()) {
        return Err(Error::InvalidArgument(
            "queries contain NaN or infinity".into(),
        ));
    }
    if k == 0 || k > 10_000 {
        return Err(Error::InvalidArgument("k must be 1..=10000".into()));
    }
    if ex.allowed.is_some_and(|a| a.len() != items.len()) {
        return Err(Error::InvalidArgument(
            "the allowed mask must have one entry per item".into(),
        ));
    }
    let nq = queries.len() / dim;
    if !ex.per_query.is_empty() && ex.per_query.len() != nq {
        return Err(Error::InvalidArgument(
            "exclusions must be given for every query or none".into(),
        ));
    }
    if ex
        .per_query
        .iter()
        .any(|v| v.windows(2).any(|w| w[0] > w[1]))
    {
        return Err(Error::InvalidArgument(
            "each exclusion list must be sorted".into(),
        ));
    }
    let mut normalised;
    let queries = if items.metric == Metric::Cosine {
        normalised = queries.to_vec();
        normalised.chunks_exact_mut(dim).for_each(normalise);
        &normalised[..]
    } else {
        queries
    };
    let n = items.len();
    let threads = threads.clamp(1, 64).min(n.div_ceil(BLOCK).max(1));
    let per = n.div_ceil(threads);
    let range = |t: usize| (t * per).min(n)..((t + 1) * per).min(n);
    let parts: Vec<Vec<TopK>> = std::thread::scope(|s| {
        // the calling thread takes the first share: one thread fewer to start per call
        let handles: Vec<_> = (1..threads)
            .map(|t| {
                let r = range(t);
                s.spawn(move || scan_best(items, queries, k, ex, r))
            })
            .collect();
        let mut parts = vec![scan_best(items, queries, k, ex, range(0))];
        parts.extend(handles.into_iter().filter_map(|h| h.join().ok()));
        parts
    });
    if parts.len() != threads {
        return Err(Error::Io("a scoring thread failed".into()));
    }
    let mut out = Vec::with_capacity(nq);
    for q in 0..nq {
        let mut merged = TopK::new(k);
        for part in &parts {
            for hit in part[q].heap.iter() {
                merged.offer(*hit);
            }
        }
        let mut hits: Vec<Hit> = merged.heap.into_vec();
        hits.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.item.cmp(&b.item)));
        out.push(hits.into_iter().map(|h| (h.item, h.score)).collect());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn brute(data: &[f32], dim: usize, q: &[f32], k: usize, skip: &[u32]) -> Vec<u32> {
        let mut all: Vec<(f32, u32)> = data
            .chunks_exact(dim)
            .enumerate()
            .filter(|(i, _)| !skip.contains(&(*i as u32)))
            .map(|(i, row)| (row.iter().zip(q).map(|(a, b)| a * b).sum::<f32>(), i as u32))
            .collect();
        all.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        all.into_iter().take(k).map(|(_, i)| i).collect()
    }

    #[test]
    fn matches_brute_force_with_exclusions() {
        let dim = 19; // not a multiple of eight: the tail path too
        let mut x = 12345u64;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % 2000) as f32 / 1000.0 - 1.0
        };
        let data: Vec<f32> = (0..1000 * dim).map(|_| next()).collect();
        let queries: Vec<f32> = (0..3 * dim).map(|_| next()).collect();
        let items = Items::new(data.clone(), dim, Metric::Dot).unwrap();
        let skip = vec![vec![], vec![5, 17, 400], vec![]];
        let mut allowed = vec![true; 1000];
        allowed[3] = false;
        for threads in [1, 3] {
            let got = top_k(
                &items,
                &queries,
                7,
                &Exclusions {
                    allowed: Some(&allowed),
                    per_query: &skip,
                },
                threads,
            )
            .unwrap();
            for (q, hits) in got.iter().enumerate() {
                let mut s = skip[q].clone();
                s.push(3);
                let want = brute(&data, dim, &queries[q * dim..(q + 1) * dim], 7, &s);
                assert_eq!(hits.iter().map(|h| h.0).collect::<Vec<_>>(), want);
            }
        }
        assert!(top_k(
            &items,
            &queries[..5],
            3,
            &Exclusions {
                allowed: None,
                per_query: &[]
            },
            1
        )
        .is_err());
        assert!(Items::new(vec![f32::NAN; dim], dim, Metric::Dot).is_err());
        let small = top_k(
            &items,
            &queries[..dim],
            5,
            &Exclusions {
                allowed: Some(&vec![false; 1000]),
                per_query: &[],
            },
            2,
        )
        .unwrap();
        assert!(small[0].is_empty());
    }
}
