//! Property tests of the parser: it never panics on random text or token soups, its errors point
//! inside the input, and printing a tree with `to_sql` then parsing the text gives the same tree.

use proptest::prelude::*;
use sluice_partiql::ast::*;
use sluice_partiql::{ParseError, parse, parse_expr};

/// Checks that an error's line and column point at a character of `input` or just past the end
/// of a line.
fn assert_position_inside(input: &str, error: &ParseError) {
    let lines: Vec<&str> = input.split('\n').collect();
    let line_index = usize::try_from(error.line).unwrap_or(usize::MAX);
    assert!(
        error.line >= 1 && line_index <= lines.len(),
        "line of {error:?} in {input:?}"
    );
    let n_chars = lines
        .get(line_index - 1)
        .map_or(0, |line| line.chars().count());
    let column = usize::try_from(error.column).unwrap_or(usize::MAX);
    assert!(
        column >= 1 && column <= n_chars + 1,
        "column of {error:?} in {input:?}"
    );
    assert!(!error.message.is_empty());
}

/// The S-expression of a tree with parameter numbers erased: printing renumbers parameters in
/// the printed order, which may differ from the tree's (e.g. a trailing WHERE of the FROM form).
fn shape(rendered: &str) -> String {
    let mut out = String::with_capacity(rendered.len());
    let mut after_question = false;
    for c in rendered.chars() {
        if after_question && c.is_ascii_digit() {
            continue;
        }
        after_question = c == '?';
        out.push(c);
    }
    out
}

/// Parses the printed form of `statement` and checks it is the same statement.
fn assert_round_trip(statement: &Statement) {
    let text = statement.to_sql();
    match parse(&text) {
        Ok(reparsed) => assert_eq!(
            shape(&reparsed.to_string()),
            shape(&statement.to_string()),
            "printed as {text}"
        ),
        Err(error) => panic!("printed form does not parse: {error}\n{text}\nof {statement}"),
    }
}

const VOCABULARY: &[&str] = &[
    "SELECT",
    "FROM",
    "WHERE",
    "VALUE",
    "AS",
    "AT",
    "BY",
    "INSERT",
    "INTO",
    "UPDATE",
    "SET",
    "REMOVE",
    "DELETE",
    "CREATE",
    "DROP",
    "UNDROP",
    "TABLE",
    "INDEX",
    "ON",
    "WITH",
    "JOIN",
    "INNER",
    "LEFT",
    "CROSS",
    "OUTER",
    "ORDER",
    "LIMIT",
    "OFFSET",
    "ASC",
    "DESC",
    "AND",
    "OR",
    "NOT",
    "IN",
    "IS",
    "NULL",
    "MISSING",
    "TRUE",
    "LIKE",
    "ESCAPE",
    "BETWEEN",
    "CASE",
    "WHEN",
    "THEN",
    "ELSE",
    "END",
    "CAST",
    "TRIM",
    "LEADING",
    "EXTRACT",
    "SUBSTRING",
    "FOR",
    "COUNT",
    "EXISTS",
    "DISTINCT",
    "history",
    "upper",
    "a",
    "b",
    "T",
    "x",
    "\"Q\"",
    "\"\"",
    "1",
    "0",
    "-2",
    "1.5",
    ".5",
    "2e3",
    "1E-2",
    "'str'",
    "'it''s'",
    "''",
    "`{a: 1}`",
    "`x`",
    "`'`'`",
    "(",
    ")",
    "[",
    "]",
    "{",
    "}",
    "<<",
    ">>",
    ",",
    ".",
    ":",
    ";",
    "?",
    "*",
    "+",
    "-",
    "/",
    "%",
    "||",
    "=",
    "<>",
    "!=",
    "<",
    "<=",
    ">",
    ">=",
    "'",
    "\"",
    "`",
    "/*",
    "*/",
    "--",
    "\n",
    "#",
    "é",
    "!",
    "@",
    "9999999999999999999999",
    "1e",
    "1.2.3",
    "\u{0}",
];

fn token_soup() -> impl Strategy<Value = String> {
    let fragment = (
        prop::sample::select(VOCABULARY),
        prop::sample::select(&[" ", " ", "\n", ""]),
    );
    prop::collection::vec(fragment, 0..40).prop_map(|fragments| {
        fragments
            .into_iter()
            .map(|(token, separator)| format!("{token}{separator}"))
            .collect()
    })
}

// ---- generated trees --------------------------------------------------------------------------

const REGULAR_NAMES: &[&str] = &[
    "a", "b", "T", "Vehicle", "r", "x_1", "$y", "history", "count",
];
const FIELD_WORDS: &[&str] = &["a", "Name", "select", "from", "value", "null", "_1"];

fn ident() -> impl Strategy<Value = Ident> {
    prop_oneof![
        3 => prop::sample::select(REGULAR_NAMES).prop_map(Ident::regular),
        1 => "[a-zA-Z \"'`]{0,6}".prop_map(Ident::quoted),
    ]
}

fn field_ident() -> impl Strategy<Value = Ident> {
    prop_oneof![
        prop::sample::select(FIELD_WORDS).prop_map(Ident::regular),
        "[a-z \"]{0,4}".prop_map(Ident::quoted),
    ]
}

fn literal() -> impl Strategy<Value = Literal> {
    prop_oneof![
        Just(Literal::Null),
        Just(Literal::Missing),
        any::<bool>().prop_map(Literal::Bool),
        any::<i64>().prop_map(Literal::Int),
        "-?[0-9]{1,3}\\.[0-9]{1,3}".prop_map(Literal::Decimal),
        any::<f64>()
            .prop_filter("finite", |value| value.is_finite())
            .prop_map(Literal::Float),
        "[a-z' ]{0,5}".prop_map(Literal::String),
    ]
}

fn leaf() -> impl Strategy<Value = Expr> {
    prop_oneof![
        literal().prop_map(Expr::Lit),
        prop::sample::select(&["1", "{a: \"x`y\"}", "2019-06-05T00:00:00Z", "'''a'''"][..])
            .prop_map(|text| Expr::Ion(text.to_owned())),
        Just(Expr::Param(0)),
        ident().prop_map(Expr::Var),
        Just(Expr::CountStar),
    ]
}

/// A path the DML and index statements accept: a name, possibly followed by steps.
fn dml_path() -> impl Strategy<Value = Expr> {
    let step = prop_oneof![
        field_ident().prop_map(PathStep::Field),
        any::<u8>().prop_map(|index| PathStep::Index(Expr::Lit(Literal::Int(i64::from(index))))),
    ];
    (ident(), prop::collection::vec(step, 0..3)).prop_map(|(root, steps)| {
        if steps.is_empty() {
            Expr::Var(root)
        } else {
            Expr::Path {
                root: Box::new(Expr::Var(root)),
                steps,
            }
        }
    })
}

fn ends_with_all_fields(expr: &Expr) -> bool {
    matches!(expr, Expr::Path { steps, .. } if steps.last() == Some(&PathStep::AllFields))
}

fn select_from(expr: BoxedStrategy<Expr>) -> impl Strategy<Value = Select> {
    let item = prop_oneof![
        (expr.clone(), prop::option::of(ident()))
            .prop_filter("`x.*` is read as all fields", |(expr, _)| {
                !ends_with_all_fields(expr)
            })
            .prop_map(|(expr, alias)| ProjectItem::Expr { expr, alias }),
        expr.clone().prop_map(ProjectItem::AllFields),
    ];
    let projection = prop_oneof![
        Just(Projection::Star),
        expr.clone().prop_map(Projection::Value),
        prop::collection::vec(item, 1..3).prop_map(Projection::Items),
    ];
    let scan = (
        expr.clone(),
        prop::option::of(ident()),
        prop::option::of(ident()),
        prop::option::of(ident()),
    )
        .prop_map(|(source, alias, at, by)| {
            FromItem::Scan(Scan {
                source,
                alias,
                at,
                by,
            })
        })
        .boxed();
    let join = (
        prop::sample::select(&[JoinKind::Cross, JoinKind::Inner, JoinKind::Left][..]),
        expr.clone(),
    );
    let from =
        (scan.clone(), prop::collection::vec((join, scan), 0..3)).prop_map(|(first, joins)| {
            joins
                .into_iter()
                .fold(first, |left, ((kind, on), right)| FromItem::Join {
                    kind,
                    left: Box::new(left),
                    right: Box::new(right),
                    on: if kind == JoinKind::Cross {
                        None
                    } else {
                        Some(on)
                    },
                })
        });
    let order_key = (expr.clone(), any::<bool>()).prop_map(|(expr, descending)| OrderKey {
        expr,
        direction: if descending {
            OrderDirection::Desc
        } else {
            OrderDirection::Asc
        },
    });
    (
        any::<bool>(),
        projection,
        prop::option::of(from),
        prop::option::of(expr.clone()),
        prop::collection::vec(order_key, 0..2),
        prop::option::of(expr.clone()),
        prop::option::of(expr),
    )
        .prop_map(
            |(distinct, projection, from, condition, order_by, limit, offset)| Select {
                quantifier: if distinct {
                    SetQuantifier::Distinct
                } else {
                    SetQuantifier::All
                },
                projection,
                from,
                condition,
                order_by,
                limit,
                offset,
            },
        )
}

fn expr() -> BoxedStrategy<Expr> {
    leaf()
        .prop_recursive(4, 48, 3, |inner| {
            let boxed = || inner.clone().prop_map(Box::new);
            let step = prop_oneof![
                field_ident().prop_map(PathStep::Field),
                inner.clone().prop_map(PathStep::Index),
                Just(PathStep::AllElements),
                Just(PathStep::AllFields),
            ];
            let key = inner.clone().prop_map(|key| match key {
                Expr::Var(ident) => Expr::Lit(Literal::String(ident.name)),
                key => key,
            });
            let unary = prop::sample::select(&[UnaryOp::Not, UnaryOp::Neg, UnaryOp::Plus][..]);
            let binary = prop::sample::select(
                &[
                    BinaryOp::Or,
                    BinaryOp::And,
                    BinaryOp::Eq,
                    BinaryOp::NotEq,
                    BinaryOp::Lt,
                    BinaryOp::LtEq,
                    BinaryOp::Gt,
                    BinaryOp::GtEq,
                    BinaryOp::Concat,
                    BinaryOp::Add,
                    BinaryOp::Sub,
                    BinaryOp::Mul,
                    BinaryOp::Div,
                    BinaryOp::Mod,
                ][..],
            );
            let collection = prop_oneof![
                prop::collection::vec(inner.clone(), 0..3).prop_map(Expr::List),
                Just(Expr::Param(0)),
                ident().prop_map(Expr::Var),
                inner
                    .clone()
                    .prop_map(|expr| Expr::Subquery(Box::new(Select {
                        quantifier: SetQuantifier::All,
                        projection: Projection::Value(expr),
                        from: None,
                        condition: None,
                        order_by: Vec::new(),
                        limit: None,
                        offset: None,
                    }))),
            ];
            let call_name = prop::sample::select(
                &[
                    "upper",
                    "f",
                    "size",
                    "exists",
                    "coalesce",
                    "history",
                    "count",
                    "substring",
                ][..],
            );
            let type_name =
                prop::sample::select(&["int", "decimal", "character varying", "string"][..]);
            let trim_spec =
                prop::sample::select(&[TrimSpec::Both, TrimSpec::Leading, TrimSpec::Trailing][..]);
            prop_oneof![
                (inner.clone(), prop::collection::vec(step, 1..3)).prop_map(|(root, steps)| {
                    Expr::Path {
                        root: Box::new(root),
                        steps,
                    }
                }),
                prop::collection::vec((key, inner.clone()), 0..3).prop_map(Expr::Struct),
                prop::collection::vec(inner.clone(), 0..3).prop_map(Expr::List),
                prop::collection::vec(inner.clone(), 0..3).prop_map(Expr::Bag),
                (unary, boxed()).prop_map(|(op, operand)| Expr::Unary { op, operand }),
                (binary, boxed(), boxed()).prop_map(|(op, left, right)| Expr::Binary {
                    op,
                    left,
                    right
                }),
                (boxed(), boxed(), prop::option::of(boxed()), any::<bool>()).prop_map(
                    |(value, pattern, escape, negated)| Expr::Like {
                        value,
                        pattern,
                        escape,
                        negated
                    }
                ),
                (boxed(), boxed(), boxed(), any::<bool>()).prop_map(
                    |(value, low, high, negated)| {
                        Expr::Between {
                            value,
                            low,
                            high,
                            negated,
                        }
                    }
                ),
                (boxed(), collection, any::<bool>()).prop_map(|(value, collection, negated)| {
                    Expr::In {
                        value,
                        collection: Box::new(collection),
                        negated,
                    }
                }),
                (boxed(), any::<bool>(), any::<bool>()).prop_map(|(value, missing, negated)| {
                    let test = if missing {
                        IsTest::Missing
                    } else {
                        IsTest::Null
                    };
                    Expr::Is {
                        value,
                        test,
                        negated,
                    }
                }),
                (call_name, prop::collection::vec(inner.clone(), 0..3)).prop_map(|(name, args)| {
                    Expr::Call {
                        name: name.to_owned(),
                        args,
                    }
                }),
                (prop::sample::select(REGULAR_NAMES), inner.clone()).prop_map(|(part, value)| {
                    Expr::Call {
                        name: "extract".to_owned(),
                        args: vec![Expr::Var(Ident::regular(part)), value],
                    }
                }),
                (boxed(), type_name, prop::collection::vec(0_u32..100, 0..2)).prop_map(
                    |(value, name, params)| Expr::Cast {
                        value,
                        to: TypeName {
                            name: name.to_owned(),
                            params
                        }
                    }
                ),
                (trim_spec, prop::option::of(boxed()), boxed())
                    .prop_map(|(spec, chars, value)| Expr::Trim { spec, chars, value }),
                (
                    prop::option::of(boxed()),
                    prop::collection::vec((inner.clone(), inner.clone()), 1..3),
                    prop::option::of(boxed())
                )
                    .prop_map(|(operand, branches, otherwise)| Expr::Case {
                        operand,
                        branches,
                        otherwise
                    }),
                select_from(inner.clone()).prop_map(|select| Expr::Subquery(Box::new(select))),
            ]
        })
        .boxed()
}

fn with_options() -> impl Strategy<Value = Vec<WithOption>> {
    prop::collection::vec((ident(), expr()), 0..2).prop_map(|options| {
        options
            .into_iter()
            .map(|(name, value)| WithOption { name, value })
            .collect()
    })
}

fn dml_target() -> impl Strategy<Value = DmlTarget> {
    (
        ident(),
        prop::option::of(ident()),
        prop::option::of(ident()),
        prop::option::of(ident()),
    )
        .prop_map(|(table, alias, at, by)| DmlTarget {
            table,
            alias,
            at,
            by,
        })
}

fn dml_op() -> impl Strategy<Value = DmlOp> {
    prop_oneof![
        (dml_path(), expr()).prop_map(|(path, value)| DmlOp::Set { path, value }),
        dml_path().prop_map(|path| DmlOp::Remove { path }),
        (dml_path(), expr(), prop::option::of(expr())).prop_map(|(path, value, position)| {
            DmlOp::InsertInto {
                path,
                value,
                position,
            }
        }),
    ]
}

fn statement() -> impl Strategy<Value = Statement> {
    prop_oneof![
        (ident(), with_options())
            .prop_map(|(table, options)| Statement::CreateTable(CreateTable { table, options })),
        ident().prop_map(|table| Statement::DropTable(DropTable { table })),
        ident().prop_map(|table_id| Statement::UndropTable(UndropTable { table_id })),
        (ident(), dml_path())
            .prop_map(|(table, field)| Statement::CreateIndex(CreateIndex { table, field })),
        (ident(), ident(), with_options()).prop_map(|(index_id, table, options)| {
            Statement::DropIndex(DropIndex {
                index_id,
                table,
                options,
            })
        }),
        (ident(), expr(), any::<bool>()).prop_map(|(table, expr, one)| {
            let source = if one {
                InsertSource::Value(expr)
            } else {
                InsertSource::Collection(expr)
            };
            Statement::Insert(Insert { table, source })
        }),
        (
            dml_target(),
            prop::collection::vec(dml_op(), 1..3),
            prop::option::of(expr()),
            any::<bool>()
        )
            .prop_map(|(target, ops, condition, from_first)| {
                let form = if from_first {
                    UpdateForm::FromFirst
                } else {
                    UpdateForm::Update
                };
                Statement::Update(Update {
                    target,
                    ops,
                    condition,
                    form,
                })
            }),
        (dml_target(), prop::option::of(expr()))
            .prop_map(|(target, condition)| Statement::Delete(Delete { target, condition })),
        select_from(expr()).prop_map(|select| Statement::Select(Box::new(select))),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 2000,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn random_text_never_panics(input in "\\PC{0,80}|[ -~\\n]{0,80}") {
        if let Err(error) = parse(&input) {
            assert_position_inside(&input, &error);
        }
        if let Err(error) = parse_expr(&input) {
            assert_position_inside(&input, &error);
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        let input = String::from_utf8_lossy(&bytes);
        if let Err(error) = parse(&input) {
            assert_position_inside(&input, &error);
        }
    }

    /// Long runs of brackets, ten times deeper than the nesting limit at most: an error or a
    /// tree on this ordinary test thread's stack, never an overflow.
    #[test]
    fn deep_bracket_soup_never_overflows(
        brackets in "[(\\[{<]{0,2560}",
        middle in "[ 1a,':]{0,8}",
        closing in "[)\\]}>]{0,2560}",
    ) {
        for input in [
            format!("SELECT {brackets}{middle}{closing} FROM T"),
            format!("{brackets}{middle}{closing}"),
        ] {
            if let Err(error) = parse(&input) {
                assert_position_inside(&input, &error);
            }
        }
    }

    #[test]
    fn token_soup_never_panics_and_parses_back(input in token_soup()) {
        match parse(&input) {
            Ok(statement) => assert_round_trip(&statement),
            Err(error) => assert_position_inside(&input, &error),
        }
        for prefix in ["SELECT ", "SELECT * FROM T WHERE "] {
            let input = format!("{prefix}{input}");
            match parse(&input) {
                Ok(statement) => assert_round_trip(&statement),
                Err(error) => assert_position_inside(&input, &error),
            }
        }
    }

    #[test]
    fn printed_statements_parse_back(statement in statement()) {
        assert_round_trip(&statement);
    }

    #[test]
    fn parameter_count_counts_question_marks(n_parameters in 0_usize..20) {
        let values = vec!["?"; n_parameters].join(", ");
        let statement = parse(&format!("SELECT [{values}] FROM T WHERE a IN ?")).expect("parses");
        prop_assert_eq!(statement.parameter_count(), n_parameters + 1);
    }
}
