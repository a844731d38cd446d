//! Catalog search with tantivy: typo-tolerant, prefix-aware (search as you type), joined-word aware
//! ("spider man" and "spiderman" both find "Spider-Man"), filtered like browse, ranked by relevance blended with
//! popularity. The index lives in memory and is fed by the catalog service (rebuilt from the store at start,
//! then kept current write by write).

mod query;

use std::ops::Bound;
use std::sync::Mutex;

use serde::Deserialize;
use tantivy::collector::{Count, TopDocs};
use tantivy::query::{AllQuery, BooleanQuery, Occur, Query, RangeQuery, TermQuery};
use tantivy::schema::{
    Field, IndexRecordOption, Schema, TextFieldIndexing, TextOptions, Value, FAST, INDEXED, STORED,
    STRING,
};
use tantivy::tokenizer::{
    AsciiFoldingFilter, LowerCaser, RemoveLongFilter, SimpleTokenizer, TextAnalyzer,
};
use tantivy::{
    DocAddress, Index, IndexReader, IndexWriter, ReloadPolicy, Score, SegmentReader,
    TantivyDocument, Term,
};

use crate::error::{Error, Result};

pub use query::{MAX_QUERY_CHARS, MAX_QUERY_TERMS};

const TOKENIZER: &str = "marquee";
/// Region term of titles licensed everywhere.
const EVERYWHERE: &str = "*";
const WRITER_HEAP: usize = 50_000_000;
/// Weight of popularity in the ranking: score * (1 + w * ln(1 + popularity)).
const POPULARITY_WEIGHT: f32 = 0.12;

/// One title as the index sees it (JSON from the catalog service).
#[derive(Debug, Clone, Deserialize)]
pub struct TitleDoc {
    pub id: String,
    pub title: String,
    #[serde(default)]
    pub original_title: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub cast: Vec<String>,
    #[serde(default)]
    pub directors: Vec<String>,
    #[serde(default)]
    pub genres: Vec<String>,
    #[serde(default)]
    pub year: i64,
    /// MaturityRating value (1 = all ages ... 6 = adults).
    #[serde(default)]
    pub maturity: u64,
    /// ISO 3166-1 alpha-2 codes; empty means everywhere.
    #[serde(default)]
    pub regions: Vec<String>,
    /// TitleType value.
    #[serde(default)]
    pub kind: u64,
    #[serde(default)]
    pub playable: bool,
    #[serde(default)]
    pub popularity: f64,
}

/// What browse and search both filter on.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Filter {
    #[serde(default)]
    pub genre: Option<String>,
    #[serde(default)]
    pub min_year: Option<i64>,
    #[serde(default)]
    pub max_year: Option<i64>,
    #[serde(default)]
    pub kind: Option<u64>,
    /// Highest maturity value allowed (the profile's limit, possibly lowered by the request).
    #[serde(default)]
    pub max_maturity: Option<u64>,
    #[serde(default)]
    pub region: Option<String>,
    #[serde(default)]
    pub playable_only: bool,
}

#[derive(Debug, Clone, Copy)]
struct Fields {
    id: Field,
    title: Field,
    original_title: Field,
    description: Field,
    cast: Field,
    directors: Field,
    genres: Field,
    genre_key: Field,
    joined: Field,
    year: Field,
    maturity: Field,
    regions: Field,
    kind: Field,
    playable: Field,
    popularity: Field,
}

/// A page of search results: (title id, score) best first, and how many titles matched in all.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchPage {
    pub hits: Vec<(String, f32)>,
    pub total: usize,
}

pub struct TitleIndex {
    reader: IndexReader,
    writer: Mutex<IndexWriter>,
    fields: Fields,
}

fn io(e: impl std::fmt::Display) -> Error {
    Error::Io(format!("search index: {e}"))
}

fn analyzer() -> TextAnalyzer {
    TextAnalyzer::builder(SimpleTokenizer::default())
        .filter(RemoveLongFilter::limit(40))
        .filter(LowerCaser)
        .filter(AsciiFoldingFilter)
        .build()
}

/// The analyzer's tokens of `text` (lowercase, accents folded, split on non-alphanumerics).
pub fn tokens(text: &str) -> Vec<String> {
    let mut a = analyzer();
    let mut stream = a.token_stream(text);
    let mut out = Vec::new();
    while let Some(t) = stream.next() {
        out.push(t.text.clone());
    }
    out
}

/// Words glued together as people type them without spaces: every adjacent pair, and the whole text.
fn joined_forms(words: &[String]) -> Vec<String> {
    let mut out: Vec<String> = words
        .windows(2)
        .map(|w| format!("{}{}", w[0], w[1]))
        .collect();
    if words.len() > 2 {
        out.push(words.concat());
    }
    out
}

impl TitleIndex {
    pub fn new() -> Result<Self> {
        let mut sb = Schema::builder();
        let text = TextOptions::default().set_indexing_options(
            TextFieldIndexing::default()
                .set_tokenizer(TOKENIZER)
                .set_index_option(IndexRecordOption::WithFreqsAndPositions),
        );
        let fields = Fields {
            id: sb.add_text_field("id", STRING | STORED),
            title: sb.add_text_field("title", text.clone()),
            original_title: sb.add_text_field("original_title", text.clone()),
            description: sb.add_text_field("description", text.clone()),
            cast: sb.add_text_field("cast", text.clone()),
            directors: sb.add_text_field("directors", text.clone()),
            genres: sb.add_text_field("genres", text),
            genre_key: sb.add_text_field("genre_key", STRING),
            joined: sb.add_text_field("joined", STRING),
            year: sb.add_i64_field("year", INDEXED | FAST),
            maturity: sb.add_u64_field("maturity", INDEXED | FAST),
            regions: sb.add_text_field("regions", STRING),
            kind: sb.add_u64_field("kind", INDEXED),
            playable: sb.add_u64_field("playable", INDEXED),
            popularity: sb.add_f64_field("popularity", FAST),
        };
        let index = Index::create_in_ram(sb.build());
        index.tokenizers().register(TOKENIZER, analyzer());
        let writer = index.writer_with_num_threads(1, WRITER_HEAP).map_err(io)?;
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()
            .map_err(io)?;
        Ok(Self {
            reader,
            writer: Mutex::new(writer),
            fields,
        })
    }

    fn document(&self, t: &TitleDoc) -> TantivyDocument {
        let f = &self.fields;
        let mut doc = TantivyDocument::default();
        doc.add_text(f.id, &t.id);
        doc.add_text(f.title, &t.title);
        doc.add_text(f.original_title, &t.original_title);
        doc.add_text(f.description, &t.description);
        for person in &t.cast {
            doc.add_text(f.cast, person);
        }
        for person in &t.directors {
            doc.add_text(f.directors, person);
        }
        for genre in &t.genres {
            doc.add_text(f.genres, genre);
            doc.add_text(f.genre_key, genre.to_lowercase());
        }
        for name in [&t.title, &t.original_title] {
            let words = tokens(name);
            for form in joined_forms(&words) {
                doc.add_text(f.joined, form);
            }
        }
        doc.add_i64(f.year, t.year);
        doc.add_u64(f.maturity, t.maturity);
        if t.regions.is_empty() {
            doc.add_text(f.regions, EVERYWHERE);
        }
        for region in &t.regions {
            doc.add_text(f.regions, region.to_uppercase());
        }
        doc.add_u64(f.kind, t.kind);
        doc.add_u64(f.playable, u64::from(t.playable));
        doc.add_f64(f.popularity, t.popularity);
        doc
    }

    /// Adds or replaces titles (by id) and makes them searchable before returning.
    pub fn upsert(&self, docs: &[TitleDoc]) -> Result<()> {
        let mut writer = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        for t in docs {
            if t.id.is_empty() {
                return Err(Error::InvalidArgument(
                    "a title document needs an id".into(),
                ));
            }
            writer.delete_term(Term::from_field_text(self.fields.id, &t.id));
            writer.add_document(self.document(t)).map_err(io)?;
        }
        writer.commit().map_err(io)?;
        self.reader.reload().map_err(io)
    }

    /// Removes titles by id.
    pub fn delete(&self, ids: &[String]) -> Result<()> {
        let mut writer = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        for id in ids {
            writer.delete_term(Term::from_field_text(self.fields.id, id));
        }
        writer.commit().map_err(io)?;
        self.reader.reload().map_err(io)
    }

    /// Removes every title (before a rebuild).
    pub fn clear(&self) -> Result<()> {
        let mut writer = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        writer.delete_all_documents().map_err(io)?;
        writer.commit().map_err(io)?;
        self.reader.reload().map_err(io)
    }

    pub fn len(&self) -> u64 {
        self.reader.searcher().num_docs()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn filter_clauses(&self, filter: &Filter) -> Vec<(Occur, Box<dyn Query>)> {
        let f = &self.fields;
        let term = |field: Field, text: &str| -> Box<dyn Query> {
            Box::new(TermQuery::new(
                Term::from_field_text(field, text),
                IndexRecordOption::Basic,
            ))
        };
        let mut must: Vec<(Occur, Box<dyn Query>)> = Vec::new();
        if let Some(genre) = &filter.genre {
            must.push((Occur::Must, term(f.genre_key, &genre.to_lowercase())));
        }
        if filter.min_year.is_some() || filter.max_year.is_some() {
            let lo = filter.min_year.map_or(Bound::Unbounded, |y| {
                Bound::Included(Term::from_field_i64(f.year, y))
            });
            let hi = filter.max_year.map_or(Bound::Unbounded, |y| {
                Bound::Included(Term::from_field_i64(f.year, y))
            });
            must.push((Occur::Must, Box::new(RangeQuery::new(lo, hi))));
        }
        if let Some(kind) = filter.kind {
            must.push((
                Occur::Must,
                Box::new(TermQuery::new(
                    Term::from_field_u64(f.kind, kind),
                    IndexRecordOption::Basic,
                )),
            ));
        }
        if let Some(max) = filter.max_maturity {
            let hi = Bound::Included(Term::from_field_u64(f.maturity, max));
            must.push((Occur::Must, Box::new(RangeQuery::new(Bound::Unbounded, hi))));
        }
        if let Some(region) = &filter.region {
            let either: Vec<(Occur, Box<dyn Query>)> = vec![
                (Occur::Should, term(f.regions, &region.to_uppercase())),
                (Occur::Should, term(f.regions, EVERYWHERE)),
            ];
            must.push((Occur::Must, Box::new(BooleanQuery::new(either))));
        }
        if filter.playable_only {
            must.push((
                Occur::Must,
                Box::new(TermQuery::new(
                    Term::from_field_u64(f.playable, 1),
                    IndexRecordOption::Basic,
                )),
            ));
        }
        must
    }

    fn run(
        &self,
        relevance: Box<dyn Query>,
        filter: &Filter,
        limit: usize,
        offset: usize,
    ) -> Result<SearchPage> {
        let mut clauses = self.filter_clauses(filter);
        clauses.push((Occur::Must, relevance));
        let query = BooleanQuery::new(clauses);
        let searcher = self.reader.searcher();
        let collector = TopDocs::with_limit(limit.max(1))
            .and_offset(offset)
            .tweak_score(move |segment: &SegmentReader| {
                let popularity = segment
                    .fast_fields()
                    .f64("popularity")
                    .ok()
                    .map(|c| c.first_or_default_col(0.0));
                move |doc: tantivy::DocId, score: Score| {
                    let p = popularity.as_ref().map_or(0.0, |c| c.get_val(doc)) as f32;
                    score * (1.0 + POPULARITY_WEIGHT * p.max(0.0).ln_1p())
                }
            });
        let (top, total) = searcher.search(&query, &(collector, Count)).map_err(io)?;
        let hits = top
            .into_iter()
            .filter_map(|(score, addr): (Score, DocAddress)| {
                let doc: TantivyDocument = searcher.doc(addr).ok()?;
                let id = doc.get_first(self.fields.id)?.as_str()?.to_owned();
                Some((id, score))
            })
            .take(limit)
            .collect();
        Ok(SearchPage { hits, total })
    }

    /// Titles matching `text` (typos, prefixes of the last word, joined words), filtered, best first.
    pub fn search(
        &self,
        text: &str,
        filter: &Filter,
        limit: usize,
        offset: usize,
    ) -> Result<SearchPage> {
        let relevance = query::build(&self.fields, text, query::Leniency::Normal)?;
        self.run(relevance, filter, limit, offset)
    }

    /// Did-you-mean candidates: the same search with every word fuzzier and a prefix, best first.
    pub fn suggest(&self, text: &str, filter: &Filter, limit: usize) -> Result<Vec<String>> {
        let relevance = query::build(&self.fields, text, query::Leniency::Suggest)?;
        Ok(self
            .run(relevance, filter, limit, 0)?
            .hits
            .into_iter()
            .map(|(id, _)| id)
            .collect())
    }

    /// Every title passing `filter`, most popular first (browse without a query).
    pub fn browse(&self, filter: &Filter, limit: usize, offset: usize) -> Result<SearchPage> {
        self.run(Box::new(AllQuery), filter, limit, offset)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn doc(
        id: &str,
        title: &str,
        year: i64,
        genres: &[&str],
        maturity: u64,
        popularity: f64,
    ) -> TitleDoc {
        TitleDoc {
            id: id.into(),
            title: title.into(),
            original_title: String::new(),
            description: String::new(),
            cast: vec![],
            directors: vec![],
            genres: genres.iter().map(|g| (*g).to_owned()).collect(),
            year,
            maturity,
            regions: vec![],
            kind: 1,
            playable: true,
            popularity,
        }
    }

    fn top(index: &TitleIndex, q: &str, filter: &Filter) -> Vec<String> {
        index
            .search(q, filter, 3, 0)
            .unwrap()
            .hits
            .into_iter()
            .map(|(id, _)| id)
            .collect()
    }

    #[test]
    fn typos_prefixes_joined_words_and_filters() {
        let index = TitleIndex::new().unwrap();
        index
            .upsert(&[
                doc("spider-man-2002", "Spider-Man", 2002, &["Action"], 4, 500.0),
                doc(
                    "the-godfather-1972",
                    "Godfather, The",
                    1972,
                    &["Crime", "Drama"],
                    6,
                    400.0,
                ),
                doc("star-wars-1977", "Star Wars", 1977, &["Sci-Fi"], 3, 580.0),
                doc(
                    "star-trek-1979",
                    "Star Trek: The Motion Picture",
                    1979,
                    &["Sci-Fi"],
                    3,
                    100.0,
                ),
                doc(
                    "toy-story-1995",
                    "Toy Story",
                    1995,
                    &["Animation", "Children's"],
                    1,
                    450.0,
                ),
            ])
            .unwrap();
        let any = Filter::default();
        for q in ["spider man", "spiderman", "Spider-Man", "spidr man"] {
            assert_eq!(top(&index, q, &any)[0], "spider-man-2002", "{q}");
        }
        assert_eq!(top(&index, "godfathr", &any)[0], "the-godfather-1972");
        assert_eq!(top(&index, "star w", &any)[0], "star-wars-1977");
        assert_eq!(top(&index, "toy stor", &any)[0], "toy-story-1995");
        let kids = Filter {
            max_maturity: Some(1),
            ..Filter::default()
        };
        assert!(
            top(&index, "godfather", &kids).is_empty(),
            "a kids profile never sees adult titles"
        );
        let seventies = Filter {
            min_year: Some(1970),
            max_year: Some(1979),
            genre: Some("sci-fi".into()),
            ..Filter::default()
        };
        assert_eq!(index.browse(&seventies, 10, 0).unwrap().total, 2);
        index.delete(&["star-wars-1977".into()]).unwrap();
        assert_eq!(top(&index, "star w", &any)[0], "star-trek-1979");
        assert!(index.search("   ", &any, 3, 0).is_err());
        assert!(index.search(&"x".repeat(201), &any, 3, 0).is_err());
        assert_eq!(
            index.suggest("godfahter", &any, 3).unwrap()[0],
            "the-godfather-1972"
        );
    }
}
