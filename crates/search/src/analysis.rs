//! Text analysis as Elasticsearch's built-in analyzers do it: `standard`, `simple`, `whitespace`,
//! `keyword`, `stop` and `english`, used both to index `text` fields and to analyze query text,
//! and shown by `_analyze`.
//!
//! Each analyzer turns a string into tokens with positions (a removed stop word leaves a gap, as
//! Lucene's position increments do), byte offsets and Lucene's token type. Indexing goes through
//! one tantivy tokenizer, [`SluiceTokenizer`], registered under [`TOKENIZER_NAME`]: the text
//! handed to tantivy starts with one marker character that names the analyzer and says whether
//! the value continues a multi-valued field. That way every text field can have its own analyzer
//! although a tantivy schema's tokenizers are fixed, and no token is allocated twice.

use std::borrow::Cow;

use tantivy::tokenizer::{Token, TokenStream, Tokenizer};
use unicode_segmentation::UnicodeSegmentation;

/// The name the index registers [`SluiceTokenizer`] under.
pub const TOKENIZER_NAME: &str = "sluice";
/// Longest token of the `standard`, `simple` and `whitespace` tokenizers, in characters; longer
/// runs are split at this length (Lucene's `max_token_length` default).
pub const TOKEN_CHARS_MAX: usize = 255;
/// Positions between the values of a multi-valued text field, so that a phrase never matches
/// across two values (Elasticsearch's `position_increment_gap`).
pub const POSITION_INCREMENT_GAP: usize = 100;
/// Lucene's English stop words (`EnglishAnalyzer.ENGLISH_STOP_WORDS_SET`), used by the `english`
/// and `stop` analyzers.
pub const ENGLISH_STOP_WORDS: &[&str] = &[
    "a", "an", "and", "are", "as", "at", "be", "but", "by", "for", "if", "in", "into", "is", "it",
    "no", "not", "of", "on", "or", "such", "that", "the", "their", "then", "there", "these",
    "they", "this", "to", "was", "will", "with",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Analyzer {
    /// Unicode word segmentation (UAX #29), lowercased.
    Standard,
    /// Runs of letters, lowercased.
    Simple,
    /// Runs of non-whitespace, as written.
    Whitespace,
    /// The whole value as one token.
    Keyword,
    /// `simple` without English stop words.
    Stop,
    /// `standard`, without possessives and English stop words, Porter-stemmed.
    English,
}

/// Every analyzer, in the order of their marker characters.
const ANALYZERS: [Analyzer; 6] = [
    Analyzer::Standard,
    Analyzer::Simple,
    Analyzer::Whitespace,
    Analyzer::Keyword,
    Analyzer::Stop,
    Analyzer::English,
];
/// Marker of a field's first value: `FIRST_VALUE_MARKER + analyzer index`.
const FIRST_VALUE_MARKER: u32 = 0x01;
/// Marker of a later value of the same field: its positions start after the gap.
const NEXT_VALUE_MARKER: u32 = 0x11;

/// One token as `_analyze` shows it and queries use it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnalyzedToken {
    pub text: String,
    /// Byte offsets into the analyzed text.
    pub start: usize,
    pub end: usize,
    pub position: usize,
    /// Lucene's token type (`<ALPHANUM>`, `<NUM>`, `word`, …).
    pub kind: &'static str,
}

impl Analyzer {
    pub fn from_name(name: &str) -> Option<Analyzer> {
        ANALYZERS.into_iter().find(|a| a.name() == name)
    }

    pub fn name(self) -> &'static str {
        match self {
            Analyzer::Standard => "standard",
            Analyzer::Simple => "simple",
            Analyzer::Whitespace => "whitespace",
            Analyzer::Keyword => "keyword",
            Analyzer::Stop => "stop",
            Analyzer::English => "english",
        }
    }

    /// Whether the analyzer lowercases, and so whether wildcard, prefix and fuzzy terms searching
    /// its fields are lowercased too (Elasticsearch normalizes such terms for text fields).
    pub fn lowercases(self) -> bool {
        !matches!(self, Analyzer::Whitespace | Analyzer::Keyword)
    }

    /// Names of the analyzers a mapping may choose, for error messages.
    pub fn names() -> Vec<&'static str> {
        ANALYZERS.iter().map(|a| a.name()).collect()
    }

    fn index(self) -> u32 {
        ANALYZERS.iter().position(|a| *a == self).unwrap_or(0) as u32
    }

    /// The tokens of `text`.
    pub fn analyze(self, text: &str) -> Vec<AnalyzedToken> {
        let mut tokens = Vec::new();
        self.for_each_token(text, &mut |token, start, end, position, kind| {
            tokens.push(AnalyzedToken {
                text: token.to_string(),
                start,
                end,
                position,
                kind,
            })
        });
        tokens
    }

    /// The analyzed terms of `text`, in order.
    pub fn terms(self, text: &str) -> Vec<String> {
        let mut terms = Vec::new();
        self.for_each_token(text, &mut |token, _, _, _, _| terms.push(token.to_string()));
        terms
    }

    /// Calls `sink(token, start, end, position, kind)` for each token of `text`.
    pub fn for_each_token(
        self,
        text: &str,
        sink: &mut dyn FnMut(&str, usize, usize, usize, &'static str),
    ) {
        let mut position = 0usize;
        let mut lowered = String::new();
        match self {
            Analyzer::Standard => standard_words(text, &mut |word, start, kind| {
                lowercase_into(word, &mut lowered);
                sink(&lowered, start, start + word.len(), position, kind);
                position += 1;
            }),
            Analyzer::English => {
                let stemmer = frostem::Stemmer::new(frostem::Algorithm::Porter);
                standard_words(text, &mut |word, start, kind| {
                    let without_possessive = strip_possessive(word);
                    lowercase_into(without_possessive, &mut lowered);
                    if !ENGLISH_STOP_WORDS.contains(&lowered.as_str()) {
                        let stem: Cow<str> = if kind == ALPHANUM {
                            stemmer.stem(&lowered)
                        } else {
                            Cow::Borrowed(&lowered)
                        };
                        sink(&stem, start, start + word.len(), position, kind);
                    }
                    position += 1;
                })
            }
            Analyzer::Simple | Analyzer::Stop => {
                runs(text, char::is_alphabetic, &mut |word, start| {
                    lowercase_into(word, &mut lowered);
                    if self == Analyzer::Simple || !ENGLISH_STOP_WORDS.contains(&lowered.as_str()) {
                        sink(&lowered, start, start + word.len(), position, WORD);
                    }
                    position += 1;
                })
            }
            Analyzer::Whitespace => runs(text, |c| !c.is_whitespace(), &mut |word, start| {
                sink(word, start, start + word.len(), position, WORD);
                position += 1;
            }),
            Analyzer::Keyword => {
                if !text.is_empty() {
                    sink(text, 0, text.len(), 0, WORD);
                }
            }
        }
    }

    /// The text to hand tantivy for one value of a field analyzed by `self`: a marker naming
    /// the analyzer (and whether the value follows another one of the same field), then the
    /// value.
    pub fn marked(self, value: &str, first_value: bool) -> String {
        let base = if first_value {
            FIRST_VALUE_MARKER
        } else {
            NEXT_VALUE_MARKER
        };
        let marker = char::from_u32(base + self.index()).unwrap_or('\u{1}');
        let mut text = String::with_capacity(value.len() + 1);
        text.push(marker);
        text.push_str(value);
        text
    }
}

const ALPHANUM: &str = "<ALPHANUM>";
const NUM: &str = "<NUM>";
const WORD: &str = "word";

/// Lowercases as Lucene's `LowerCaseFilter` does: code point by code point.
fn lowercase_into(word: &str, out: &mut String) {
    out.clear();
    if word.is_ascii() {
        // The common case, a byte at a time (a fifth of the analysis time while bulk loading).
        out.push_str(word);
        out.make_ascii_lowercase();
        return;
    }
    for c in word.chars() {
        out.extend(c.to_lowercase());
    }
}

/// Lucene's `EnglishPossessiveFilter`: a trailing `'s` (or `’s`) goes.
fn strip_possessive(word: &str) -> &str {
    for suffix in [
        "'s",
        "'S",
        "\u{2019}s",
        "\u{2019}S",
        "\u{FF07}s",
        "\u{FF07}S",
    ] {
        if let Some(stripped) = word.strip_suffix(suffix) {
            return stripped;
        }
    }
    word
}

/// Lucene's type of a standard token.
fn standard_kind(word: &str) -> &'static str {
    let mut chars = word.chars();
    let Some(first) = chars.next() else {
        return ALPHANUM;
    };
    let script = |c: char| match c as u32 {
        0x3040..=0x309F => Some("<HIRAGANA>"),
        0x30A0..=0x30FF | 0x31F0..=0x31FF | 0xFF66..=0xFF9F => Some("<KATAKANA>"),
        0xAC00..=0xD7AF | 0x1100..=0x11FF | 0x3130..=0x318F => Some("<HANGUL>"),
        0x4E00..=0x9FFF | 0x3400..=0x4DBF | 0x20000..=0x2A6DF | 0xF900..=0xFAFF => {
            Some("<IDEOGRAPHIC>")
        }
        _ => None,
    };
    if let Some(kind) = script(first) {
        return kind;
    }
    if word.chars().any(|c| c.is_numeric())
        && word
            .chars()
            .all(|c| c.is_numeric() || matches!(c, '.' | ',' | '\'' | '_'))
    {
        return NUM;
    }
    ALPHANUM
}

/// The words of `text` by Unicode word boundaries, keeping those with a letter or digit, each
/// cut into pieces of at most [`TOKEN_CHARS_MAX`] characters.
fn standard_words(text: &str, sink: &mut dyn FnMut(&str, usize, &'static str)) {
    for (start, word) in text.unicode_word_indices() {
        let kind = standard_kind(word);
        split_long(word, start, &mut |piece, start| sink(piece, start, kind));
    }
}

/// Maximal runs of characters for which `keep` holds, each cut to [`TOKEN_CHARS_MAX`].
fn runs(text: &str, keep: fn(char) -> bool, sink: &mut dyn FnMut(&str, usize)) {
    let mut start = None;
    for (offset, c) in text.char_indices() {
        match (keep(c), start) {
            (true, None) => start = Some(offset),
            (false, Some(begin)) => {
                split_long(text.get(begin..offset).unwrap_or_default(), begin, sink);
                start = None;
            }
            _ => {}
        }
    }
    if let Some(begin) = start {
        split_long(text.get(begin..).unwrap_or_default(), begin, sink);
    }
}

fn split_long(word: &str, start: usize, sink: &mut dyn FnMut(&str, usize)) {
    let mut piece_start = 0;
    let mut chars = 0;
    for (offset, _) in word.char_indices() {
        if chars == TOKEN_CHARS_MAX {
            sink(
                word.get(piece_start..offset).unwrap_or_default(),
                start + piece_start,
            );
            piece_start = offset;
            chars = 0;
        }
        chars += 1;
    }
    if piece_start < word.len() {
        sink(
            word.get(piece_start..).unwrap_or_default(),
            start + piece_start,
        );
    }
}

/// The tantivy tokenizer of every text field: it reads the marker of [`Analyzer::marked`] and
/// runs that analyzer. Unmarked text (never written by Sluice) is analyzed as `standard`.
#[derive(Clone, Default)]
pub struct SluiceTokenizer {
    tokens: Vec<Token>,
}

pub struct SluiceTokenStream<'a> {
    tokens: &'a mut [Token],
    next: usize,
    /// What `token` shows before the first `advance` and after the last token.
    empty: Token,
}

impl Tokenizer for SluiceTokenizer {
    type TokenStream<'a> = SluiceTokenStream<'a>;

    fn token_stream<'a>(&'a mut self, text: &'a str) -> SluiceTokenStream<'a> {
        let (analyzer, first_offset, body) = read_marker(text);
        let mut used = 0;
        let tokens = &mut self.tokens;
        analyzer.for_each_token(body, &mut |token, start, end, position, _| {
            if tokens.len() == used {
                tokens.push(Token::default());
            }
            if let Some(slot) = tokens.get_mut(used) {
                slot.text.clear();
                slot.text.push_str(token);
                slot.offset_from = start;
                slot.offset_to = end;
                slot.position = position + first_offset;
                slot.position_length = 1;
                used += 1;
            }
        });
        SluiceTokenStream {
            tokens: self.tokens.get_mut(..used).unwrap_or_default(),
            next: 0,
            empty: Token::default(),
        }
    }
}

/// The analyzer a marked text names, the position its first token takes, and the value.
fn read_marker(text: &str) -> (Analyzer, usize, &str) {
    let mut chars = text.chars();
    let Some(marker) = chars.next() else {
        return (Analyzer::Standard, 0, text);
    };
    let code = marker as u32;
    let (base, offset) = if (FIRST_VALUE_MARKER..NEXT_VALUE_MARKER).contains(&code) {
        (FIRST_VALUE_MARKER, 0)
    } else if (NEXT_VALUE_MARKER..NEXT_VALUE_MARKER + 0x10).contains(&code) {
        // tantivy itself leaves one position between values.
        (NEXT_VALUE_MARKER, POSITION_INCREMENT_GAP - 1)
    } else {
        return (Analyzer::Standard, 0, text);
    };
    match ANALYZERS.get((code - base) as usize) {
        Some(analyzer) => (*analyzer, offset, chars.as_str()),
        None => (Analyzer::Standard, 0, text),
    }
}

impl TokenStream for SluiceTokenStream<'_> {
    fn advance(&mut self) -> bool {
        if self.next < self.tokens.len() {
            self.next += 1;
            true
        } else {
            false
        }
    }

    fn token(&self) -> &Token {
        match self.next.checked_sub(1) {
            Some(current) => self.tokens.get(current).unwrap_or(&self.empty),
            None => &self.empty,
        }
    }

    fn token_mut(&mut self) -> &mut Token {
        match self.next.checked_sub(1) {
            Some(current) => self.tokens.get_mut(current).unwrap_or(&mut self.empty),
            None => &mut self.empty,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn terms(analyzer: Analyzer, text: &str) -> Vec<String> {
        analyzer.terms(text)
    }

    #[test]
    fn standard_splits_on_unicode_word_boundaries_and_lowercases() {
        assert_eq!(
            terms(
                Analyzer::Standard,
                "The 2 QUICK Brown-Foxes jumped over the lazy dog's bone."
            ),
            [
                "the", "2", "quick", "brown", "foxes", "jumped", "over", "the", "lazy", "dog's",
                "bone"
            ]
        );
        assert_eq!(
            terms(
                Analyzer::Standard,
                "mail user@example.com, pay 1,000.50 now"
            ),
            ["mail", "user", "example.com", "pay", "1,000.50", "now"]
        );
        assert_eq!(terms(Analyzer::Standard, "SW1A 1AA"), ["sw1a", "1aa"]);
        assert_eq!(
            terms(Analyzer::Standard, "东京 ΣΊΣΥΦΟΣ"),
            ["东", "京", "σίσυφοσ"]
        );
        assert!(terms(Analyzer::Standard, " -- ").is_empty());
        let tokens = Analyzer::Standard.analyze("Hello 42");
        assert_eq!(
            tokens[1],
            AnalyzedToken {
                text: "42".into(),
                start: 6,
                end: 8,
                position: 1,
                kind: "<NUM>"
            }
        );
    }

    #[test]
    fn long_tokens_are_split_at_the_maximum_length() {
        let long = "a".repeat(TOKEN_CHARS_MAX * 2 + 3);
        let pieces = terms(Analyzer::Standard, &long);
        assert_eq!(
            pieces.iter().map(String::len).collect::<Vec<_>>(),
            [TOKEN_CHARS_MAX, TOKEN_CHARS_MAX, 3]
        );
    }

    #[test]
    fn simple_whitespace_keyword_and_stop() {
        assert_eq!(
            terms(Analyzer::Simple, "It's 2 FAST-cars"),
            ["it", "s", "fast", "cars"]
        );
        assert_eq!(
            terms(Analyzer::Whitespace, "It's 2 FAST-cars"),
            ["It's", "2", "FAST-cars"]
        );
        assert_eq!(terms(Analyzer::Keyword, "New York"), ["New York"]);
        assert!(terms(Analyzer::Keyword, "").is_empty());
        let stop = Analyzer::Stop.analyze("the quick and the dead");
        assert_eq!(
            stop.iter()
                .map(|t| (t.text.as_str(), t.position))
                .collect::<Vec<_>>(),
            [("quick", 1), ("dead", 4)]
        );
    }

    #[test]
    fn english_removes_possessives_and_stop_words_and_stems() {
        let tokens = Analyzer::English.analyze("The runner's shoes are running quickly");
        assert_eq!(
            tokens
                .iter()
                .map(|t| (t.text.as_str(), t.position))
                .collect::<Vec<_>>(),
            [("runner", 1), ("shoe", 2), ("run", 4), ("quickli", 5)]
        );
    }

    #[test]
    fn the_tokenizer_follows_the_marker() {
        let mut tokenizer = SluiceTokenizer::default();
        let collect = |tokenizer: &mut SluiceTokenizer, text: &str| {
            let mut stream = tokenizer.token_stream(text);
            let mut out = Vec::new();
            while let Some(token) = stream.next() {
                out.push((token.text.clone(), token.position));
            }
            out
        };
        assert_eq!(
            collect(&mut tokenizer, &Analyzer::English.marked("the Runs", true)),
            [("run".to_string(), 1)]
        );
        assert_eq!(
            collect(&mut tokenizer, &Analyzer::Whitespace.marked("A b", false)),
            [("A".to_string(), 99), ("b".to_string(), 100)]
        );
        assert_eq!(
            collect(&mut tokenizer, "Plain Text"),
            [("plain".to_string(), 0), ("text".to_string(), 1)]
        );
    }
}
