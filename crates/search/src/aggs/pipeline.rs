//! Pipeline aggregations: computed from other aggregations' final results, not from documents.
//!
//! Sibling pipelines (`avg_bucket`, `max_bucket`, `stats_bucket`, …) read one value per bucket
//! of a sibling multi-bucket aggregation through `buckets_path` (`sales_per_month>sales`). Parent
//! pipelines (`derivative`, `cumulative_sum`, `moving_fn`, `serial_diff`, `bucket_script`,
//! `bucket_selector`, `bucket_sort`) sit among a multi-bucket aggregation's sub-aggregations and
//! add a value to, filter or reorder its buckets. Scripts are the small arithmetic and
//! comparison language of `params.x` that dashboards send, not Painless.

use std::cmp::Ordering;

use super::result::{AggResult, AggValue, Bucket, BucketKey, ExtendedStats, Stats};
use super::{AggKind, Aggregation, Direction};
use crate::error::{Result, SearchError};

/// A `buckets_path`: aggregation names (`a>b`), then a metric (`.avg`, `.99`), or the special
/// paths `_count` and `_key`.
#[derive(Debug, Clone, PartialEq)]
pub struct BucketsPath {
    pub aggs: Vec<String>,
    pub metric: Option<String>,
}

impl BucketsPath {
    pub fn parse(text: &str) -> Result<BucketsPath> {
        let bad = || SearchError::illegal(format!("Invalid path [{text}]"));
        if text.is_empty() {
            return Err(bad());
        }
        let mut aggs: Vec<String> = text.split('>').map(str::to_string).collect();
        let last = aggs.pop().ok_or_else(bad)?;
        let (name, metric) = if let Some((name, rest)) = last.split_once('[') {
            let key = rest.strip_suffix(']').ok_or_else(bad)?;
            (
                name.to_string(),
                Some(key.trim_matches(['\'', '"']).to_string()),
            )
        } else if let Some((name, metric)) = last.split_once('.') {
            (name.to_string(), Some(metric.to_string()))
        } else {
            (last, None)
        };
        if name.is_empty() || aggs.iter().any(String::is_empty) {
            return Err(bad());
        }
        aggs.push(name);
        Ok(BucketsPath { aggs, metric })
    }

    fn is_special(&self) -> bool {
        self.metric.is_none()
            && self.aggs.len() == 1
            && matches!(
                self.aggs.first().map(String::as_str),
                Some("_count" | "_key" | "_bucket_count")
            )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GapPolicy {
    Skip,
    InsertZeros,
    KeepValues,
}

/// `MovingFunctions.*` that `moving_fn` scripts call.
#[derive(Debug, Clone, PartialEq)]
pub enum MovingFunction {
    Max,
    Min,
    Sum,
    UnweightedAvg,
    LinearWeightedAvg,
    StdDev,
    Ewma { alpha: f64 },
    Holt { alpha: f64, beta: f64 },
}

impl MovingFunction {
    /// Reads `MovingFunctions.unweightedAvg(values)` and friends.
    pub fn parse(script: &str) -> Result<MovingFunction> {
        let text: String = script.chars().filter(|c| !c.is_whitespace()).collect();
        let text = text.trim_start_matches("return").trim_end_matches(';');
        let unsupported = || {
            SearchError::illegal(format!(
                "moving_fn script [{script}] is not supported by Sluice: use one of MovingFunctions.max, min, sum, unweightedAvg, linearWeightedAvg, stdDev, ewma, holt over values"
            ))
        };
        let inner = text
            .strip_prefix("MovingFunctions.")
            .ok_or_else(unsupported)?;
        let (name, args) = inner.split_once('(').ok_or_else(unsupported)?;
        let args = args.strip_suffix(')').ok_or_else(unsupported)?;
        let mut parts = args.splitn(2, ',');
        if parts.next() != Some("values") {
            return Err(unsupported());
        }
        let rest: Vec<f64> = parts
            .next()
            .map(|r| {
                r.split(',')
                    .filter(|p| !p.starts_with("MovingFunctions"))
                    .filter_map(|p| p.trim_end_matches(')').parse().ok())
                    .collect()
            })
            .unwrap_or_default();
        Ok(match name {
            "max" => MovingFunction::Max,
            "min" => MovingFunction::Min,
            "sum" => MovingFunction::Sum,
            "unweightedAvg" => MovingFunction::UnweightedAvg,
            "linearWeightedAvg" => MovingFunction::LinearWeightedAvg,
            "stdDev" => MovingFunction::StdDev,
            "ewma" => MovingFunction::Ewma {
                alpha: rest.first().copied().unwrap_or(0.3),
            },
            "holt" => MovingFunction::Holt {
                alpha: rest.first().copied().unwrap_or(0.3),
                beta: rest.get(1).copied().unwrap_or(0.1),
            },
            _ => return Err(unsupported()),
        })
    }

    fn apply(&self, values: &[f64]) -> f64 {
        let n = values.len() as f64;
        let avg = || values.iter().sum::<f64>() / n;
        match self {
            _ if values.is_empty() && *self != MovingFunction::Sum => f64::NAN,
            MovingFunction::Max => values.iter().copied().fold(f64::NEG_INFINITY, f64::max),
            MovingFunction::Min => values.iter().copied().fold(f64::INFINITY, f64::min),
            MovingFunction::Sum => values.iter().sum(),
            MovingFunction::UnweightedAvg => avg(),
            MovingFunction::LinearWeightedAvg => {
                let mut weighted = 0.0;
                let mut total = 0.0;
                for (i, v) in values.iter().enumerate() {
                    let weight = (i + 1) as f64;
                    weighted += v * weight;
                    total += weight;
                }
                weighted / total
            }
            MovingFunction::StdDev => {
                let mean = avg();
                (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n).sqrt()
            }
            MovingFunction::Ewma { alpha } => {
                let mut average = f64::NAN;
                for &v in values {
                    average = if average.is_nan() {
                        v
                    } else {
                        v * alpha + average * (1.0 - alpha)
                    };
                }
                average
            }
            MovingFunction::Holt { alpha, beta } => {
                let (mut level, mut trend) = (0.0, 0.0);
                for (i, &v) in values.iter().enumerate() {
                    if i == 0 {
                        level = v;
                        trend = 0.0;
                    } else {
                        let last_level = level;
                        level = alpha * v + (1.0 - alpha) * (level + trend);
                        trend = beta * (level - last_level) + (1.0 - beta) * trend;
                    }
                }
                level + trend
            }
        }
    }
}

/// A parsed `bucket_script`/`bucket_selector` script over `params.<var>`.
#[derive(Debug, Clone, PartialEq)]
pub enum ScriptExpr {
    Number(f64),
    Param(String),
    Neg(Box<ScriptExpr>),
    Not(Box<ScriptExpr>),
    Binary(Box<ScriptExpr>, String, Box<ScriptExpr>),
    Call(String, Vec<ScriptExpr>),
    Conditional(Box<ScriptExpr>, Box<ScriptExpr>, Box<ScriptExpr>),
}

/// Script text longest accepted; a longer one is refused rather than parsed.
const SCRIPT_BYTES_MAX: usize = 4096;
/// Nesting of parentheses and operators a script may have.
const SCRIPT_DEPTH_MAX: usize = 64;

impl ScriptExpr {
    pub fn parse(source: &str) -> Result<ScriptExpr> {
        if source.len() > SCRIPT_BYTES_MAX {
            return Err(SearchError::illegal(format!(
                "script is longer than [{SCRIPT_BYTES_MAX}] bytes"
            )));
        }
        let text = source
            .trim()
            .trim_start_matches("return ")
            .trim_end_matches(';');
        let tokens = tokenize(text).ok_or_else(|| script_error(source))?;
        let mut parser = Parser {
            tokens,
            position: 0,
            depth: 0,
        };
        let expr = parser.ternary().ok_or_else(|| script_error(source))?;
        if parser.position != parser.tokens.len() {
            return Err(script_error(source));
        }
        Ok(expr)
    }

    fn eval(&self, params: &dyn Fn(&str) -> Option<f64>) -> Option<f64> {
        Some(match self {
            ScriptExpr::Number(v) => *v,
            ScriptExpr::Param(name) => params(name)?,
            ScriptExpr::Neg(inner) => -inner.eval(params)?,
            ScriptExpr::Not(inner) => truth(!is_true(inner.eval(params)?)),
            ScriptExpr::Conditional(condition, yes, no) => {
                if is_true(condition.eval(params)?) {
                    yes.eval(params)?
                } else {
                    no.eval(params)?
                }
            }
            ScriptExpr::Binary(left, op, right) => {
                let (a, b) = (left.eval(params)?, right.eval(params)?);
                match op.as_str() {
                    "+" => a + b,
                    "-" => a - b,
                    "*" => a * b,
                    "/" => a / b,
                    "%" => a % b,
                    "<" => truth(a < b),
                    "<=" => truth(a <= b),
                    ">" => truth(a > b),
                    ">=" => truth(a >= b),
                    "==" => truth(a == b),
                    "!=" => truth(a != b),
                    "&&" => truth(is_true(a) && is_true(b)),
                    "||" => truth(is_true(a) || is_true(b)),
                    _ => return None,
                }
            }
            ScriptExpr::Call(name, args) => {
                let values: Option<Vec<f64>> = args.iter().map(|a| a.eval(params)).collect();
                let values = values?;
                let first = values.first().copied().unwrap_or(f64::NAN);
                let second = values.get(1).copied().unwrap_or(f64::NAN);
                match name.as_str() {
                    "Math.abs" => first.abs(),
                    "Math.max" => first.max(second),
                    "Math.min" => first.min(second),
                    "Math.pow" => first.powf(second),
                    "Math.sqrt" => first.sqrt(),
                    "Math.log" => first.ln(),
                    "Math.log10" => first.log10(),
                    "Math.exp" => first.exp(),
                    "Math.floor" => first.floor(),
                    "Math.ceil" => first.ceil(),
                    "Math.round" => first.round(),
                    _ => return None,
                }
            }
        })
    }

    /// The script with the numbers of its `params` in place of the names they give (a name
    /// `buckets_path` also defines stays a variable: the bucket's value wins, as in
    /// Elasticsearch, which binds the paths over the script's params).
    pub fn with_constants(self, constants: &dyn Fn(&str) -> Option<f64>) -> ScriptExpr {
        let bind = |inner: Box<ScriptExpr>| Box::new(inner.with_constants(constants));
        match self {
            ScriptExpr::Param(name) => match constants(&name) {
                Some(value) => ScriptExpr::Number(value),
                None => ScriptExpr::Param(name),
            },
            ScriptExpr::Number(v) => ScriptExpr::Number(v),
            ScriptExpr::Neg(inner) => ScriptExpr::Neg(bind(inner)),
            ScriptExpr::Not(inner) => ScriptExpr::Not(bind(inner)),
            ScriptExpr::Binary(left, op, right) => ScriptExpr::Binary(bind(left), op, bind(right)),
            ScriptExpr::Conditional(a, b, c) => ScriptExpr::Conditional(bind(a), bind(b), bind(c)),
            ScriptExpr::Call(name, args) => ScriptExpr::Call(
                name,
                args.into_iter()
                    .map(|a| a.with_constants(constants))
                    .collect(),
            ),
        }
    }

    fn params(&self, out: &mut Vec<String>) {
        match self {
            ScriptExpr::Param(name) => out.push(name.clone()),
            ScriptExpr::Neg(inner) | ScriptExpr::Not(inner) => inner.params(out),
            ScriptExpr::Binary(left, _, right) => {
                left.params(out);
                right.params(out);
            }
            ScriptExpr::Conditional(a, b, c) => {
                a.params(out);
                b.params(out);
                c.params(out);
            }
            ScriptExpr::Call(_, args) => args.iter().for_each(|a| a.params(out)),
            ScriptExpr::Number(_) => {}
        }
    }
}

fn truth(b: bool) -> f64 {
    if b { 1.0 } else { 0.0 }
}

fn is_true(v: f64) -> bool {
    v != 0.0 && !v.is_nan()
}

fn script_error(source: &str) -> SearchError {
    SearchError::illegal(format!(
        "script [{source}] is not supported by Sluice: bucket scripts may use params.<name>, numbers, + - * / %, comparisons, && || !, ?: and Math functions"
    ))
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Number(f64),
    Name(String),
    Op(String),
}

fn tokenize(text: &str) -> Option<Vec<Token>> {
    let chars: Vec<char> = text.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while let Some(&c) = chars.get(i) {
        if c.is_whitespace() {
            i += 1;
        } else if c.is_ascii_digit()
            || (c == '.' && chars.get(i + 1).is_some_and(char::is_ascii_digit))
        {
            let start = i;
            while chars
                .get(i)
                .is_some_and(|c| c.is_ascii_digit() || *c == '.')
            {
                i += 1;
            }
            let number: String = chars.get(start..i)?.iter().collect();
            tokens.push(Token::Number(number.parse().ok()?));
        } else if c.is_alphabetic() || c == '_' {
            let start = i;
            while chars
                .get(i)
                .is_some_and(|c| c.is_alphanumeric() || *c == '_' || *c == '.')
            {
                i += 1;
            }
            tokens.push(Token::Name(chars.get(start..i)?.iter().collect()));
        } else {
            let two: String = chars
                .get(i..i + 2)
                .map(|s| s.iter().collect())
                .unwrap_or_default();
            if ["<=", ">=", "==", "!=", "&&", "||"].contains(&two.as_str()) {
                tokens.push(Token::Op(two));
                i += 2;
            } else if "+-*/%<>()!?:,".contains(c) {
                tokens.push(Token::Op(c.to_string()));
                i += 1;
            } else {
                return None;
            }
        }
    }
    Some(tokens)
}

struct Parser {
    tokens: Vec<Token>,
    position: usize,
    depth: usize,
}

impl Parser {
    fn peek_op(&self) -> Option<&str> {
        match self.tokens.get(self.position) {
            Some(Token::Op(op)) => Some(op),
            _ => None,
        }
    }

    fn eat(&mut self, op: &str) -> bool {
        if self.peek_op() == Some(op) {
            self.position += 1;
            true
        } else {
            false
        }
    }

    fn ternary(&mut self) -> Option<ScriptExpr> {
        self.depth += 1;
        if self.depth > SCRIPT_DEPTH_MAX {
            return None;
        }
        let condition = self.binary(0)?;
        let result = if self.eat("?") {
            let yes = self.ternary()?;
            if !self.eat(":") {
                return None;
            }
            let no = self.ternary()?;
            ScriptExpr::Conditional(Box::new(condition), Box::new(yes), Box::new(no))
        } else {
            condition
        };
        self.depth -= 1;
        Some(result)
    }

    fn binary(&mut self, level: usize) -> Option<ScriptExpr> {
        const LEVELS: [&[&str]; 6] = [
            &["||"],
            &["&&"],
            &["==", "!="],
            &["<", "<=", ">", ">="],
            &["+", "-"],
            &["*", "/", "%"],
        ];
        let Some(ops) = LEVELS.get(level) else {
            return self.unary();
        };
        let mut left = self.binary(level + 1)?;
        while let Some(op) = self
            .peek_op()
            .filter(|op| ops.contains(op))
            .map(str::to_string)
        {
            self.position += 1;
            let right = self.binary(level + 1)?;
            left = ScriptExpr::Binary(Box::new(left), op, Box::new(right));
        }
        Some(left)
    }

    fn unary(&mut self) -> Option<ScriptExpr> {
        if self.eat("-") {
            return Some(ScriptExpr::Neg(Box::new(self.unary()?)));
        }
        if self.eat("!") {
            return Some(ScriptExpr::Not(Box::new(self.unary()?)));
        }
        match self.tokens.get(self.position).cloned()? {
            Token::Number(v) => {
                self.position += 1;
                Some(ScriptExpr::Number(v))
            }
            Token::Name(name) => {
                self.position += 1;
                if self.eat("(") {
                    let mut args = Vec::new();
                    if !self.eat(")") {
                        loop {
                            args.push(self.ternary()?);
                            if self.eat(")") {
                                break;
                            }
                            if !self.eat(",") {
                                return None;
                            }
                        }
                    }
                    return Some(ScriptExpr::Call(name, args));
                }
                let param = name
                    .strip_prefix("params.")
                    .map(str::to_string)
                    .or_else(|| name.strip_prefix("params._").map(|n| format!("_{n}")))?;
                Some(ScriptExpr::Param(param))
            }
            Token::Op(op) if op == "(" => {
                self.position += 1;
                let inner = self.ternary()?;
                self.eat(")").then_some(inner)
            }
            Token::Op(_) => None,
        }
    }
}

#[derive(Debug, Clone)]
pub enum PipelineKind {
    AvgBucket,
    MaxBucket,
    MinBucket,
    SumBucket,
    StatsBucket,
    ExtendedStatsBucket {
        sigma: f64,
    },
    PercentilesBucket {
        percents: Vec<f64>,
        keyed: bool,
    },
    Derivative {
        unit_ms: Option<i64>,
    },
    CumulativeSum,
    MovingFn {
        window: usize,
        shift: i64,
        function: MovingFunction,
    },
    SerialDiff {
        lag: usize,
    },
    BucketScript {
        vars: Vec<(String, BucketsPath)>,
        script: ScriptExpr,
    },
    BucketSelector {
        vars: Vec<(String, BucketsPath)>,
        script: ScriptExpr,
    },
    BucketSort {
        sort: Vec<(BucketsPath, Direction)>,
        from: usize,
        size: Option<usize>,
    },
}

impl PipelineKind {
    pub fn type_name(&self) -> &'static str {
        match self {
            PipelineKind::AvgBucket => "avg_bucket",
            PipelineKind::MaxBucket => "max_bucket",
            PipelineKind::MinBucket => "min_bucket",
            PipelineKind::SumBucket => "sum_bucket",
            PipelineKind::StatsBucket => "stats_bucket",
            PipelineKind::ExtendedStatsBucket { .. } => "extended_stats_bucket",
            PipelineKind::PercentilesBucket { .. } => "percentiles_bucket",
            PipelineKind::Derivative { .. } => "derivative",
            PipelineKind::CumulativeSum => "cumulative_sum",
            PipelineKind::MovingFn { .. } => "moving_fn",
            PipelineKind::SerialDiff { .. } => "serial_diff",
            PipelineKind::BucketScript { .. } => "bucket_script",
            PipelineKind::BucketSelector { .. } => "bucket_selector",
            PipelineKind::BucketSort { .. } => "bucket_sort",
        }
    }

    fn is_parent(&self) -> bool {
        matches!(
            self,
            PipelineKind::Derivative { .. }
                | PipelineKind::CumulativeSum
                | PipelineKind::MovingFn { .. }
                | PipelineKind::SerialDiff { .. }
                | PipelineKind::BucketScript { .. }
                | PipelineKind::BucketSelector { .. }
                | PipelineKind::BucketSort { .. }
        )
    }
}

#[derive(Debug, Clone)]
pub struct Pipeline {
    pub kind: PipelineKind,
    /// The one path of sibling and most parent pipelines (unused by scripts and `bucket_sort`).
    pub buckets_path: Option<BucketsPath>,
    pub gap_policy: GapPolicy,
    /// `format` of `value_as_string`.
    pub format: Option<super::format::DecimalFormat>,
}

pub(crate) fn validate(
    agg: &Aggregation,
    pipeline: &Pipeline,
    siblings: &[Aggregation],
    parent: Option<&AggKind>,
) -> Result<()> {
    let type_name = pipeline.kind.type_name();
    if pipeline.kind.is_parent() {
        let histogram_like = matches!(
            parent,
            Some(AggKind::Histogram(_) | AggKind::DateHistogram(_) | AggKind::AutoDateHistogram(_))
        );
        let multi_bucket = parent.is_some_and(AggKind::is_multi_bucket);
        let needs_histogram = matches!(
            pipeline.kind,
            PipelineKind::Derivative { .. }
                | PipelineKind::CumulativeSum
                | PipelineKind::MovingFn { .. }
                | PipelineKind::SerialDiff { .. }
        );
        if (needs_histogram && !histogram_like) || !multi_bucket {
            return Err(SearchError::illegal(format!(
                "{type_name} aggregation [{}] must have a histogram, date_histogram or auto_date_histogram as parent",
                agg.name
            )));
        }
        return Ok(());
    }
    let Some(path) = &pipeline.buckets_path else {
        return Err(SearchError::illegal(format!(
            "[buckets_path] must be set for aggregation [{}]",
            agg.name
        )));
    };
    let first = path.aggs.first().cloned().unwrap_or_default();
    let target = siblings.iter().find(|s| s.name == first);
    match target {
        Some(sibling) if sibling.kind.is_multi_bucket() => Ok(()),
        Some(_) => Err(SearchError::AggregationExecution {
            reason: format!(
                "buckets_path must reference either a number value or a single value numeric metric aggregation, got: [{first}] for aggregation [{}]",
                agg.name
            ),
        }),
        None => Err(SearchError::AggregationExecution {
            reason: format!(
                "No aggregation found for path [{}] of [{type_name}] aggregation [{}]",
                path.aggs.join(">"),
                agg.name
            ),
        }),
    }
}

/// The value a metric result offers to a path: its value, a named value, or a percentile.
fn result_value(value: &AggValue, metric: Option<&str>) -> Option<f64> {
    match (value, metric) {
        (AggValue::Value { value, .. } | AggValue::BucketValue { value, .. }, _) => *value,
        (AggValue::Count(count), _) => Some(*count as f64),
        (AggValue::Stats(stats), Some(name)) => stats_value(stats, name),
        (AggValue::ExtendedStats(extended), Some(name)) => match name {
            "sum_of_squares" => extended.sum_of_squares,
            "variance" => extended.variance,
            "std_deviation" => extended.std_deviation,
            other => stats_value(&extended.stats, other),
        },
        (AggValue::Percentiles { values, .. }, Some(name)) => {
            let wanted: f64 = name.parse().ok()?;
            values
                .iter()
                .find(|(key, _, _)| *key == wanted)
                .and_then(|(_, v, _)| *v)
        }
        (AggValue::SingleBucket { doc_count, .. }, None) => Some(*doc_count as f64),
        _ => None,
    }
}

fn stats_value(stats: &Stats, name: &str) -> Option<f64> {
    match name {
        "count" => Some(stats.count as f64),
        "min" => stats.min,
        "max" => stats.max,
        "avg" => stats.avg,
        "sum" => Some(stats.sum),
        _ => None,
    }
}

/// Follows a path from a bucket: `_count`, `_key`, or sub-aggregations down to a metric.
fn bucket_value(bucket: &Bucket, path: &BucketsPath) -> Option<f64> {
    if path.is_special() {
        return match path.aggs.first().map(String::as_str) {
            Some("_count") => Some(bucket.doc_count as f64),
            Some("_key") => match &bucket.key {
                BucketKey::Long(v) => Some(*v as f64),
                BucketKey::Double(v) => Some(*v),
                _ => None,
            },
            _ => None,
        };
    }
    let mut results = &bucket.subs;
    let mut names = path.aggs.iter().peekable();
    while let Some(name) = names.next() {
        let found = results.iter().find(|r| &r.name == name)?;
        if names.peek().is_none() {
            if path.metric.as_deref() == Some("_count")
                && let AggValue::SingleBucket { doc_count, .. } = found.value
            {
                return Some(doc_count as f64);
            }
            return result_value(&found.value, path.metric.as_deref());
        }
        match &found.value {
            AggValue::SingleBucket { subs, .. } => results = subs,
            _ => return None,
        }
    }
    None
}

fn apply_gap(value: Option<f64>, policy: GapPolicy) -> Option<f64> {
    match (value.filter(|v| !v.is_nan()), policy) {
        (Some(v), _) => Some(v),
        (None, GapPolicy::InsertZeros) => Some(0.0),
        (None, _) => None,
    }
}

fn printed(value: Option<f64>, pipeline: &Pipeline) -> AggValue {
    AggValue::Value {
        value,
        as_string: value.and_then(|v| pipeline.format.as_ref().map(|f| f.format(v))),
    }
}

fn bucket_key_text(bucket: &Bucket) -> String {
    bucket
        .key_as_string
        .clone()
        .unwrap_or_else(|| bucket.key.as_text())
}

/// Computes the sibling pipelines of one level from their siblings' results.
pub(crate) fn apply_siblings(aggs: &[Aggregation], results: &mut [AggResult]) -> Result<()> {
    for (position, agg) in aggs.iter().enumerate() {
        let AggKind::Pipeline(pipeline) = &agg.kind else {
            continue;
        };
        if pipeline.kind.is_parent() {
            continue;
        }
        let Some(path) = &pipeline.buckets_path else {
            continue;
        };
        let Some((first, rest)) = path.aggs.split_first() else {
            continue;
        };
        let inner = BucketsPath {
            aggs: if rest.is_empty() {
                vec!["_count".to_string()]
            } else {
                rest.to_vec()
            },
            metric: if rest.is_empty() && path.metric.is_none() {
                None
            } else {
                path.metric.clone()
            },
        };
        let inner = if rest.is_empty() && path.metric.is_some() {
            // `hist.metric` is not a path into buckets; Elasticsearch reads `_count` only.
            BucketsPath {
                aggs: vec![path.metric.clone().unwrap_or_default()],
                metric: None,
            }
        } else {
            inner
        };
        let Some(sibling) = results.iter().find(|r| &r.name == first) else {
            continue;
        };
        let AggValue::Buckets(buckets) = &sibling.value else {
            continue;
        };
        let values: Vec<(String, f64)> = buckets
            .buckets
            .iter()
            .filter_map(|b| {
                apply_gap(bucket_value(b, &inner), pipeline.gap_policy)
                    .map(|v| (bucket_key_text(b), v))
            })
            .collect();
        let numbers: Vec<f64> = values.iter().map(|(_, v)| *v).collect();
        let count = numbers.len();
        let sum: f64 = numbers.iter().sum();
        let computed = match &pipeline.kind {
            PipelineKind::AvgBucket => printed((count > 0).then(|| sum / count as f64), pipeline),
            PipelineKind::SumBucket => printed(Some(sum), pipeline),
            PipelineKind::MaxBucket | PipelineKind::MinBucket => {
                let max = matches!(pipeline.kind, PipelineKind::MaxBucket);
                let best = numbers
                    .iter()
                    .copied()
                    .reduce(|a, b| if max { a.max(b) } else { a.min(b) });
                AggValue::BucketValue {
                    value: best,
                    as_string: best.and_then(|v| pipeline.format.as_ref().map(|f| f.format(v))),
                    keys: values
                        .iter()
                        .filter(|(_, v)| Some(*v) == best)
                        .map(|(k, _)| k.clone())
                        .collect(),
                }
            }
            PipelineKind::StatsBucket | PipelineKind::ExtendedStatsBucket { .. } => {
                let empty = count == 0;
                let stats = Stats {
                    count: count as u64,
                    min: numbers.iter().copied().reduce(f64::min),
                    max: numbers.iter().copied().reduce(f64::max),
                    avg: (!empty).then(|| sum / count as f64),
                    sum,
                    as_strings: None,
                };
                match &pipeline.kind {
                    PipelineKind::ExtendedStatsBucket { sigma } => {
                        let squares: f64 = numbers.iter().map(|v| v * v).sum();
                        let n = count as f64;
                        let variance = (!empty).then(|| (squares - sum * sum / n) / n);
                        let sampling = (count > 1).then(|| (squares - sum * sum / n) / (n - 1.0));
                        let std = variance.map(f64::sqrt);
                        let std_sampling = sampling.map(f64::sqrt);
                        let avg = stats.avg;
                        let bound = |s: Option<f64>, sign: f64| Some(avg? + sign * sigma * s?);
                        AggValue::ExtendedStats(Box::new(ExtendedStats {
                            stats,
                            sum_of_squares: (!empty).then_some(squares),
                            variance,
                            variance_population: variance,
                            variance_sampling: sampling,
                            std_deviation: std,
                            std_deviation_population: std,
                            std_deviation_sampling: std_sampling,
                            bounds: [
                                bound(std, 1.0),
                                bound(std, -1.0),
                                bound(std, 1.0),
                                bound(std, -1.0),
                                bound(std_sampling, 1.0),
                                bound(std_sampling, -1.0),
                            ],
                        }))
                    }
                    _ => AggValue::Stats(stats),
                }
            }
            PipelineKind::PercentilesBucket { percents, keyed } => {
                let mut sorted = numbers.clone();
                sorted.sort_by(f64::total_cmp);
                AggValue::Percentiles {
                    keyed: *keyed,
                    values: percents
                        .iter()
                        .map(|&p| {
                            let value = if sorted.is_empty() {
                                None
                            } else {
                                let index =
                                    ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
                                sorted.get(index.min(sorted.len() - 1)).copied()
                            };
                            (p, value, None)
                        })
                        .collect(),
                }
            }
            _ => continue,
        };
        if let Some(result) = results.get_mut(position) {
            result.value = computed;
        }
    }
    Ok(())
}

/// Sets, removes or reorders the buckets of a multi-bucket aggregation by its parent pipelines.
pub(crate) fn apply_parents(agg: &Aggregation, buckets: &mut Vec<Bucket>) -> Result<()> {
    for sub in &agg.subs {
        let AggKind::Pipeline(pipeline) = &sub.kind else {
            continue;
        };
        if !pipeline.kind.is_parent() {
            continue;
        }
        let name = sub.name.as_str();
        let path_values = |buckets: &[Bucket]| -> Vec<Option<f64>> {
            buckets
                .iter()
                .map(|b| {
                    pipeline
                        .buckets_path
                        .as_ref()
                        .and_then(|p| apply_gap(bucket_value(b, p), pipeline.gap_policy))
                })
                .collect()
        };
        match &pipeline.kind {
            PipelineKind::Derivative { unit_ms } => {
                let values = path_values(buckets);
                let mut last: Option<(f64, f64)> = None;
                for (bucket, value) in buckets.iter_mut().zip(values) {
                    let x = match &bucket.key {
                        BucketKey::Long(v) => *v as f64,
                        BucketKey::Double(v) => *v,
                        _ => 0.0,
                    };
                    let derived = match (last, value) {
                        (Some((last_x, last_value)), Some(v)) => Some((v - last_value, x - last_x)),
                        _ => None,
                    };
                    match derived {
                        Some((gradient, x_diff)) => {
                            let normalized = unit_ms.map(|unit| gradient / (x_diff / unit as f64));
                            set_sub(
                                bucket,
                                name,
                                match normalized {
                                    Some(normalized_value) => AggValue::Derivative {
                                        value: gradient,
                                        normalized_value,
                                    },
                                    None => printed(Some(gradient), pipeline),
                                },
                            );
                        }
                        None => remove_sub(bucket, name),
                    }
                    // A skipped bucket leaves the previous value in place.
                    if let Some(v) = value {
                        last = Some((x, v));
                    }
                }
            }
            PipelineKind::CumulativeSum => {
                let values = path_values(buckets);
                let mut sum = 0.0;
                for (bucket, value) in buckets.iter_mut().zip(values) {
                    sum += value.unwrap_or(0.0);
                    set_sub(bucket, name, printed(Some(sum), pipeline));
                }
            }
            PipelineKind::MovingFn {
                window,
                shift,
                function,
            } => {
                let values = path_values(buckets);
                for (i, bucket) in buckets.iter_mut().enumerate() {
                    let end = (i as i64 + shift).clamp(0, values.len() as i64) as usize;
                    let start = (end as i64 - *window as i64).max(0) as usize;
                    let window_values: Vec<f64> = values
                        .get(start..end)
                        .unwrap_or(&[])
                        .iter()
                        .flatten()
                        .copied()
                        .collect();
                    let result = function.apply(&window_values);
                    set_sub(
                        bucket,
                        name,
                        printed(result.is_finite().then_some(result), pipeline),
                    );
                }
            }
            PipelineKind::SerialDiff { lag } => {
                let values = path_values(buckets);
                for (i, bucket) in buckets.iter_mut().enumerate() {
                    let earlier = i
                        .checked_sub(*lag)
                        .and_then(|j| values.get(j).copied().flatten());
                    match (values.get(i).copied().flatten(), earlier) {
                        (Some(now), Some(then)) => {
                            set_sub(bucket, name, printed(Some(now - then), pipeline))
                        }
                        _ => remove_sub(bucket, name),
                    }
                }
            }
            PipelineKind::BucketScript { vars, script } => {
                for bucket in buckets.iter_mut() {
                    let bound: Vec<(String, Option<f64>)> = vars
                        .iter()
                        .map(|(var, path)| {
                            (
                                var.clone(),
                                apply_gap(bucket_value(bucket, path), pipeline.gap_policy),
                            )
                        })
                        .collect();
                    let lookup = |n: &str| bound.iter().find(|(v, _)| v == n).and_then(|(_, x)| *x);
                    match script.eval(&lookup) {
                        Some(v) => {
                            set_sub(bucket, name, printed(v.is_finite().then_some(v), pipeline))
                        }
                        None => remove_sub(bucket, name),
                    }
                }
            }
            PipelineKind::BucketSelector { vars, script } => {
                buckets.retain(|bucket| {
                    let bound: Vec<(String, Option<f64>)> = vars
                        .iter()
                        .map(|(var, path)| {
                            (
                                var.clone(),
                                apply_gap(bucket_value(bucket, path), pipeline.gap_policy),
                            )
                        })
                        .collect();
                    let lookup = |n: &str| bound.iter().find(|(v, _)| v == n).and_then(|(_, x)| *x);
                    script.eval(&lookup).is_none_or(is_true)
                });
                for bucket in buckets.iter_mut() {
                    remove_sub(bucket, name);
                }
            }
            PipelineKind::BucketSort { sort, from, size } => {
                if !sort.is_empty() {
                    let mut keyed: Vec<(Vec<Option<f64>>, Bucket)> = buckets
                        .drain(..)
                        .map(|b| (sort.iter().map(|(p, _)| bucket_value(&b, p)).collect(), b))
                        .collect();
                    keyed.sort_by(|a, b| {
                        for ((x, y), (_, direction)) in a.0.iter().zip(&b.0).zip(sort) {
                            let ordering = match (x, y) {
                                (Some(x), Some(y)) => x.total_cmp(y),
                                (Some(_), None) => Ordering::Less,
                                (None, Some(_)) => Ordering::Greater,
                                (None, None) => Ordering::Equal,
                            };
                            let ordering = match (direction, x.is_some() && y.is_some()) {
                                (Direction::Desc, true) => ordering.reverse(),
                                _ => ordering,
                            };
                            if ordering != Ordering::Equal {
                                return ordering;
                            }
                        }
                        Ordering::Equal
                    });
                    buckets.extend(keyed.into_iter().map(|(_, b)| b));
                }
                let end = size.map_or(buckets.len(), |s| (from + s).min(buckets.len()));
                let start = (*from).min(end);
                let kept: Vec<Bucket> = buckets.drain(start..end).collect();
                *buckets = kept;
                for bucket in buckets.iter_mut() {
                    remove_sub(bucket, name);
                }
            }
            _ => {}
        }
    }
    Ok(())
}

fn set_sub(bucket: &mut Bucket, name: &str, value: AggValue) {
    match bucket.subs.iter_mut().find(|r| r.name == name) {
        Some(result) => result.value = value,
        None => bucket.subs.push(AggResult {
            name: name.to_string(),
            value,
        }),
    }
}

fn remove_sub(bucket: &mut Bucket, name: &str) {
    bucket.subs.retain(|r| r.name != name);
}

/// The variables a script uses, for checking them against `buckets_path`.
pub fn script_params(script: &ScriptExpr) -> Vec<String> {
    let mut out = Vec::new();
    script.params(&mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        assert_eq!(
            BucketsPath::parse("sales_per_month>sales").unwrap(),
            BucketsPath {
                aggs: vec!["sales_per_month".into(), "sales".into()],
                metric: None
            }
        );
        assert_eq!(
            BucketsPath::parse("load.99.9").unwrap().metric.as_deref(),
            Some("99.9")
        );
        assert_eq!(
            BucketsPath::parse("p['99.9']").unwrap().metric.as_deref(),
            Some("99.9")
        );
        assert!(BucketsPath::parse("a>>b").is_err());
    }

    #[test]
    fn scripts() {
        let script = ScriptExpr::parse("params.total / params.count * 100").unwrap();
        let params = |n: &str| match n {
            "total" => Some(50.0),
            "count" => Some(200.0),
            _ => None,
        };
        assert_eq!(script.eval(&params), Some(25.0));
        let selector = ScriptExpr::parse("params.total > 10 && !(params.count < 100)").unwrap();
        assert_eq!(selector.eval(&params), Some(1.0));
        assert_eq!(
            ScriptExpr::parse("Math.max(params.total, 60)")
                .unwrap()
                .eval(&params),
            Some(60.0)
        );
        assert!(ScriptExpr::parse("doc['x'].value").is_err());
        assert_eq!(
            MovingFunction::parse("MovingFunctions.unweightedAvg(values)").unwrap(),
            MovingFunction::UnweightedAvg
        );
        assert_eq!(MovingFunction::UnweightedAvg.apply(&[1.0, 2.0, 6.0]), 3.0);
        assert!(MovingFunction::parse("return values[0]").is_err());
    }
}
