//! Snapshot tests of the Lucene-syntax (`query_string`) and `simple_query_string` parsers —
//! every accepted shape and every refused one with its reason — through `check`, and the
//! property that a query string and the equivalent `bool` tree find the same documents.
//! Regenerate snapshots with `UPDATE_EXPECT=1 cargo test -p sluice-search --test query_string`.

mod check;

use std::sync::Arc;

use check::{check, check_with};
use proptest::prelude::*;
use serde_json::json;
use sluice_search::query::{
    Bool, FieldPattern, Match, Operator, QUERY_CLAUSES_MAX, QUERY_DEPTH_MAX, Query,
};
use sluice_search::query_string::{self, QueryStringOptions};
use sluice_search::{Index, IndexSettings, Mappings, WriteRequest};

#[test]
fn terms_fields_and_phrases() {
    check(
        "hello",
        r#"
    (fields [] tie=0 (match _ "hello"))
    "#,
    );
    check(
        "message:bye",
        r#"
    (match message "bye")
    "#,
    );
    check(
        "user.name:kimchy",
        r#"
    (match user.name "kimchy")
    "#,
    );
    check(
        "title:\"quick brown\"",
        r#"
    (match_phrase slop=0 title "quick brown")
    "#,
    );
    check(
        "\"quick brown\"~2",
        r#"
    (fields [] tie=0 (match_phrase slop=2 _ "quick brown"))
    "#,
    );
    check(
        "title:(quick OR brown)",
        r#"
    (bool (should (match title "quick") (match title "brown")))
    "#,
    );
    check(
        "user.*:ada",
        r#"
    (fields [user.*] tie=0 lenient (match _ "ada"))
    "#,
    );
    check(
        "message.keyword:hello\\ world",
        r#"
    (match message.keyword "hello world")
    "#,
    );
    check(
        "_exists_:title",
        r#"
    (exists title)
    "#,
    );
    check(
        "title:*",
        r#"
    (exists title)
    "#,
    );
    check(
        "*",
        r#"
    (match_all)
    "#,
    );
    check(
        "*:*",
        r#"
    (match_all)
    "#,
    );
}

#[test]
fn operators_follow_the_classic_parser() {
    check(
        "a AND b",
        r#"
    (bool (must (fields [] tie=0 (match _ "a")) (fields [] tie=0 (match _ "b"))))
    "#,
    );
    check(
        "a OR b",
        r#"
    (bool (should (fields [] tie=0 (match _ "a")) (fields [] tie=0 (match _ "b"))))
    "#,
    );
    check(
        "a AND b OR c",
        r#"
    (bool (must (fields [] tie=0 (match _ "a")) (fields [] tie=0 (match _ "b"))) (should (fields [] tie=0 (match _ "c"))))
    "#,
    );
    check(
        "a b",
        r#"
    (bool (should (fields [] tie=0 (match _ "a")) (fields [] tie=0 (match _ "b"))))
    "#,
    );
    check(
        "+a -b c",
        r#"
    (bool (must (fields [] tie=0 (match _ "a"))) (should (fields [] tie=0 (match _ "c"))) (must_not (fields [] tie=0 (match _ "b"))))
    "#,
    );
    check(
        "NOT a",
        r#"
    (bool (must (match_all)) (must_not (fields [] tie=0 (match _ "a"))))
    "#,
    );
    check(
        "!a && b || c",
        r#"
    (bool (must (fields [] tie=0 (match _ "b"))) (should (fields [] tie=0 (match _ "c"))) (must_not (fields [] tie=0 (match _ "a"))))
    "#,
    );
    check(
        "(a OR b) AND NOT (c d)",
        r#"
    (bool (must (bool (should (fields [] tie=0 (match _ "a")) (fields [] tie=0 (match _ "b"))))) (must_not (bool (should (fields [] tie=0 (match _ "c")) (fields [] tie=0 (match _ "d"))))))
    "#,
    );
    check_with(
        "a b OR c",
        &QueryStringOptions {
            default_operator: Operator::And,
            ..QueryStringOptions::default()
        },
        false,
        r#"
        (bool (must (fields [] tie=0 (match _ "a" and))) (should (fields [] tie=0 (match _ "b" and)) (fields [] tie=0 (match _ "c" and))))
        "#,
    );
}

#[test]
fn ranges_wildcards_fuzzy_regex_and_boosts() {
    check(
        "age:[10 TO 20]",
        r#"
    (range age gte="10" lte="20")
    "#,
    );
    check(
        "age:{10 TO *}",
        r#"
    (range age gt="10" *)
    "#,
    );
    check(
        "date:[2026-01-01 TO now-1d/d}",
        r#"
    (range date gte="2026-01-01" lt="now-1d/d")
    "#,
    );
    check(
        "age:>=10",
        r#"
    (range age gte="10" *)
    "#,
    );
    check(
        "age:<10",
        r#"
    (range age * lt="10")
    "#,
    );
    check(
        "qu?ck bro*",
        r#"
    (bool (should (fields [] tie=0 (wildcard _ "qu?ck")) (fields [] tie=0 (prefix _ "bro"))))
    "#,
    );
    check(
        "quikc~ brwn~1",
        r#"
    (bool (should (fields [] tie=0 (fuzzy _ "quikc" Auto { low: 3, high: 6 } prefix_length=0 max_expansions=50)) (fields [] tie=0 (fuzzy _ "brwn" Edits(1) prefix_length=0 max_expansions=50))))
    "#,
    );
    check(
        "name:/joh?n(ath[oa]n)/",
        r#"
    (regexp name "joh?n(ath[oa]n)")
    "#,
    );
    check(
        "quick^2 title:fox^0.5",
        r#"
    (bool (should (bool (must (fields [] tie=0 (match _ "quick"))) ^2) (bool (must (match title "fox")) ^0.5)))
    "#,
    );
    check(
        "(a b)^3",
        r#"
    (bool (must (bool (should (fields [] tie=0 (match _ "a")) (fields [] tie=0 (match _ "b"))))) ^3)
    "#,
    );
}

#[test]
fn default_fields() {
    let fields = QueryStringOptions {
        fields: vec![
            FieldPattern::parse("title^2").unwrap(),
            FieldPattern::parse("body").unwrap(),
        ],
        tie_breaker: 0.3,
        ..QueryStringOptions::default()
    };
    check_with(
        "fox",
        &fields,
        false,
        r#"
    (fields [title^2 body] tie=0.3 (match _ "fox"))
    "#,
    );
    let single = QueryStringOptions {
        fields: vec![FieldPattern::parse("message").unwrap()],
        ..QueryStringOptions::default()
    };
    check_with(
        "bye",
        &single,
        false,
        r#"
    (match message "bye")
    "#,
    );
}

#[test]
fn syntax_errors_say_where() {
    check(
        "a AND",
        r#"
    error: Cannot parse 'a AND': a clause was expected at position 5
    "#,
    );
    check(
        "(a b",
        r#"
    error: Cannot parse '(a b': ')' expected at position 4
    "#,
    );
    check(
        "a)",
        r#"
    error: Cannot parse 'a)': unexpected ')' at position 1
    "#,
    );
    check(
        "title:",
        r#"
    error: Cannot parse 'title:': a value was expected after ':' at position 6
    "#,
    );
    check(
        "\"unclosed",
        r#"
    error: Cannot parse '"unclosed': '"' expected to close the phrase at position 9
    "#,
    );
    check(
        "age:[10 20]",
        r#"
    error: Cannot parse 'age:[10 20]': 'TO' expected in a range at position 8
    "#,
    );
    check(
        "OR a",
        r#"
    error: Cannot parse 'OR a': an operator needs a clause before it at position 2
    "#,
    );
    check(
        "a^x",
        r#"
    error: Cannot parse 'a^x': a boost must be a non-negative number at position 2
    "#,
    );
    check(
        "/unclosed",
        r#"
    error: Cannot parse '/unclosed': '/' expected to close the regular expression at position 9
    "#,
    );
    check(
        "a\\",
        r#"
    error: Cannot parse 'a\': a character was expected after '\' at position 1
    "#,
    );
    check_with(
        "*ing",
        &QueryStringOptions {
            allow_leading_wildcard: false,
            ..QueryStringOptions::default()
        },
        false,
        r#"
        error: Cannot parse '*ing': '*' or '?' not allowed as first character in WildcardQuery at position 4
        "#,
    );
    let deep = format!("{}a{}", "(".repeat(100), ")".repeat(100));
    check(
        &deep,
        r#"
    error: Cannot parse '((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((a))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))': parentheses nest deeper than 30 at position 31
    "#,
    );
    let very_deep = format!("{}a", "(".repeat(100_000));
    assert!(query_string::parse(&very_deep, &QueryStringOptions::default()).is_err());
}

#[test]
fn simple_query_string_syntax() {
    let simple = QueryStringOptions::default();
    check_with(
        "quick brown",
        &simple,
        true,
        r#"
    (bool (should (fields [] tie=0 (match _ "quick" lenient)) (fields [] tie=0 (match _ "brown" lenient))))
    "#,
    );
    check_with(
        "quick + brown | fox",
        &simple,
        true,
        r#"
    (bool (should (bool (must (fields [] tie=0 (match _ "quick" lenient)) (fields [] tie=0 (match _ "brown" lenient)))) (fields [] tie=0 (match _ "fox" lenient))))
    "#,
    );
    check_with(
        "fox -dog",
        &simple,
        true,
        r#"
    (bool (should (fields [] tie=0 (match _ "fox" lenient)) (bool (must (match_all)) (must_not (fields [] tie=0 (match _ "dog" lenient))))))
    "#,
    );
    check_with(
        "\"quick fox\"~1 bro*",
        &simple,
        true,
        r#"
    (bool (should (fields [] tie=0 (match_phrase slop=1 _ "quick fox" lenient)) (fields [] tie=0 (prefix _ "bro"))))
    "#,
    );
    check_with(
        "(a | b) + c~1",
        &simple,
        true,
        r#"
    (bool (must (bool (should (fields [] tie=0 (match _ "a" lenient)) (fields [] tie=0 (match _ "b" lenient)))) (fields [] tie=0 (fuzzy _ "c" Edits(1) prefix_length=0 max_expansions=50))))
    "#,
    );
    check_with(
        "unbalanced ) ( \"",
        &simple,
        true,
        r#"
    (bool (should (fields [] tie=0 (match _ "unbalanced" lenient)) (fields [] tie=0 (match_phrase slop=0 _ "" lenient))))
    "#,
    );
    // Syntax never fails a simple query string, but limits do: nothing is silently dropped.
    let deep = format!("{}a", "(".repeat(10_000));
    let error = query_string::parse_simple(&deep, &simple).unwrap_err();
    assert!(error.message.contains("nest deeper than"), "{error}");
    let allowed = format!("{}a", "(".repeat(QUERY_DEPTH_MAX));
    assert!(query_string::parse_simple(&allowed, &simple).is_ok());
    let many = "a ".repeat(QUERY_CLAUSES_MAX + 1);
    let error = query_string::parse_simple(&many, &simple).unwrap_err();
    assert!(error.message.contains("too many clauses"), "{error}");
}

// --- property: a query string finds what the equivalent bool tree finds ---

const WORDS: [&str; 4] = ["red", "green", "blue", "gold"];
const FIELDS: [&str; 2] = ["f", "g"];

/// An expression with explicit operators, rendered both ways.
#[derive(Debug, Clone)]
enum Expr {
    Term(usize, usize),
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Not(Box<Expr>),
}

fn expr() -> impl Strategy<Value = Expr> {
    let leaf = (0..FIELDS.len(), 0..WORDS.len()).prop_map(|(f, w)| Expr::Term(f, w));
    leaf.prop_recursive(4, 24, 2, |inner| {
        prop_oneof![
            (inner.clone(), inner.clone()).prop_map(|(a, b)| Expr::And(Box::new(a), Box::new(b))),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| Expr::Or(Box::new(a), Box::new(b))),
            inner.prop_map(|a| Expr::Not(Box::new(a))),
        ]
    })
}

impl Expr {
    fn to_query_string(&self) -> String {
        match self {
            Expr::Term(f, w) => format!("{}:{}", FIELDS[*f], WORDS[*w]),
            Expr::And(a, b) => format!("({} AND {})", a.to_query_string(), b.to_query_string()),
            Expr::Or(a, b) => format!("({} OR {})", a.to_query_string(), b.to_query_string()),
            Expr::Not(a) => format!("(NOT {})", a.to_query_string()),
        }
    }

    fn to_bool(&self) -> Query {
        let mut bool_query = Bool {
            boost: 1.0,
            ..Bool::default()
        };
        match self {
            Expr::Term(f, w) => return Query::Match(Box::new(Match::new(FIELDS[*f], WORDS[*w]))),
            Expr::And(a, b) => bool_query.must = vec![a.to_bool(), b.to_bool()],
            Expr::Or(a, b) => bool_query.should = vec![a.to_bool(), b.to_bool()],
            Expr::Not(a) => bool_query.must_not = vec![a.to_bool()],
        }
        Query::Bool(Box::new(bool_query))
    }
}

/// Every combination of words in the two fields, one document each.
fn corpus() -> (tempfile::TempDir, Index) {
    let dir = tempfile::tempdir().unwrap();
    let index = Index::create(
        &dir.path().join("p"),
        "p",
        IndexSettings::default(),
        Mappings::default(),
    )
    .unwrap();
    let mut requests = Vec::new();
    for mask in 0u32..256 {
        let words = |offset: u32| -> String {
            (0..4)
                .filter(|i| mask >> (offset + i) & 1 == 1)
                .map(|i| WORDS[i as usize])
                .collect::<Vec<_>>()
                .join(" ")
        };
        let document = json!({"f": words(0), "g": words(4)});
        requests.push(WriteRequest::Index {
            id: Some(mask.to_string()),
            source: Arc::from(document.to_string().as_bytes()),
            document,
            condition: Default::default(),
        });
    }
    for outcome in index.write(requests) {
        outcome.unwrap();
    }
    index.refresh().unwrap();
    (dir, index)
}

fn ids(index: &Index, query: &Query) -> Vec<String> {
    let mut ids: Vec<String> = index
        .search(query, 0, 300)
        .unwrap()
        .hits
        .into_iter()
        .map(|hit| hit.id)
        .collect();
    ids.sort();
    ids
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn query_string_and_bool_tree_find_the_same_documents(expression in expr()) {
        thread_local! {
            static CORPUS: (tempfile::TempDir, Index) = corpus();
        }
        let text = expression.to_query_string();
        let parsed = query_string::parse(&text, &QueryStringOptions::default()).unwrap();
        CORPUS.with(|(_, index)| {
            let from_string = ids(index, &parsed);
            let from_bool = ids(index, &expression.to_bool());
            prop_assert_eq!(from_string, from_bool, "{}", text);
            Ok(())
        })?;
    }
}
