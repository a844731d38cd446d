//! From what a person typed to a tantivy query.

use tantivy::query::{BooleanQuery, BoostQuery, FuzzyTermQuery, Occur, Query, TermQuery};
use tantivy::schema::{Field, IndexRecordOption};
use tantivy::Term;

use super::{joined_forms, tokens, Fields};
use crate::error::{Error, Result};

/// Longest query accepted, in characters.
pub const MAX_QUERY_CHARS: usize = 200;
/// Most words looked at.
pub const MAX_QUERY_TERMS: usize = 12;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Leniency {
    Normal,
    /// For suggestions: one more edit allowed everywhere, every word a prefix.
    Suggest,
}

fn edits(word: &str, leniency: Leniency) -> u8 {
    let n = word.chars().count();
    let base = match n {
        0..=3 => 0,
        4..=6 => 1,
        _ => 2,
    };
    match leniency {
        Leniency::Normal => base,
        Leniency::Suggest => (base + 1).min(2),
    }
}

fn boosted(q: Box<dyn Query>, boost: f32) -> Box<dyn Query> {
    Box::new(BoostQuery::new(q, boost))
}

fn exact(field: Field, word: &str) -> Box<dyn Query> {
    Box::new(TermQuery::new(
        Term::from_field_text(field, word),
        IndexRecordOption::WithFreqs,
    ))
}

fn fuzzy(field: Field, word: &str, distance: u8, prefix: bool) -> Box<dyn Query> {
    let term = Term::from_field_text(field, word);
    if prefix {
        Box::new(FuzzyTermQuery::new_prefix(term, distance, true))
    } else {
        Box::new(FuzzyTermQuery::new(term, distance, true))
    }
}

/// One word: exact matches weigh most (title first), then typo-tolerant and, for the word being typed, prefix
/// matches on the names people search by.
fn word_query(f: &Fields, word: &str, typing: bool, leniency: Leniency) -> Box<dyn Query> {
    let mut any: Vec<(Occur, Box<dyn Query>)> = vec![
        (Occur::Should, boosted(exact(f.title, word), 4.0)),
        (Occur::Should, boosted(exact(f.original_title, word), 3.0)),
        (Occur::Should, boosted(exact(f.cast, word), 2.0)),
        (Occur::Should, boosted(exact(f.directors, word), 2.0)),
        (Occur::Should, boosted(exact(f.genres, word), 2.0)),
        (Occur::Should, exact(f.description, word)),
    ];
    let distance = edits(word, leniency);
    if distance > 0 {
        // two edits only on titles: on names one is enough, and every distance-2 automaton costs
        for (field, boost, most) in [
            (f.title, 2.0, 2),
            (f.original_title, 1.5, 2),
            (f.cast, 1.0, 1),
            (f.directors, 1.0, 1),
        ] {
            any.push((
                Occur::Should,
                boosted(fuzzy(field, word, distance.min(most), false), boost),
            ));
        }
    }
    if typing && word.chars().count() >= 2 {
        let d = if leniency == Leniency::Suggest { 1 } else { 0 };
        for (field, boost) in [
            (f.title, 5.0),
            (f.original_title, 2.0),
            (f.cast, 1.5),
            (f.directors, 1.5),
        ] {
            any.push((Occur::Should, boosted(fuzzy(field, word, d, true), boost)));
        }
    }
    if let Ok(year) = word.parse::<i64>() {
        if (1870..=2100).contains(&year) {
            any.push((
                Occur::Should,
                boosted(
                    Box::new(TermQuery::new(
                        Term::from_field_i64(f.year, year),
                        IndexRecordOption::Basic,
                    )),
                    3.0,
                ),
            ));
        }
    }
    Box::new(BooleanQuery::new(any))
}

pub(super) fn build(f: &Fields, text: &str, leniency: Leniency) -> Result<Box<dyn Query>> {
    if text.chars().count() > MAX_QUERY_CHARS {
        return Err(Error::InvalidArgument(format!(
            "query is longer than {MAX_QUERY_CHARS} characters"
        )));
    }
    let mut words = tokens(text);
    words.truncate(MAX_QUERY_TERMS);
    if words.is_empty() {
        return Err(Error::InvalidArgument(
            "query has no letters or digits to search for".into(),
        ));
    }
    // the last word is still being typed unless the text ends with a space
    let typing_last = !text.ends_with(char::is_whitespace) || leniency == Leniency::Suggest;
    let n = words.len();
    let mut clauses: Vec<(Occur, Box<dyn Query>)> = words
        .iter()
        .enumerate()
        // a lone letter among other words says little on its own ("spider-m"): it counts in the joined forms
        .filter(|(_, w)| n == 1 || w.chars().count() > 1)
        .map(|(i, w)| {
            let typing = (i + 1 == n && typing_last) || leniency == Leniency::Suggest;
            (Occur::Should, word_query(f, w, typing, leniency))
        })
        .collect();
    // words typed together or apart: "spiderman" and "spider man" meet in the joined forms of the title
    let mut glued = joined_forms(&words);
    if n == 1 {
        glued.push(words[0].clone());
    }
    for form in glued {
        clauses.push((Occur::Should, boosted(exact(f.joined, &form), 6.0)));
        // and the other way round: "god father" is one word in "The Godfather"
        clauses.push((Occur::Should, boosted(exact(f.title, &form), 6.0)));
        if form.chars().count() >= 6 {
            let d = edits(&form, leniency).min(1);
            clauses.push((
                Occur::Should,
                boosted(fuzzy(f.joined, &form, d, false), 3.0),
            ));
        }
        if typing_last {
            clauses.push((Occur::Should, boosted(fuzzy(f.joined, &form, 0, true), 5.0)));
        }
    }
    Ok(Box::new(BooleanQuery::new(clauses)))
}
