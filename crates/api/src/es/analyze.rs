//! `_analyze`: the tokens an analyzer (or a mapped field's analyzer) makes of text, in
//! Elasticsearch's response shape. Offsets are in UTF-16 code units, as Java strings count them.

use serde::Deserialize;
use serde_json::{Value, json};
use sluice_search::Analyzer;

use super::{EsApi, EsError, EsResult, ok, parse_json_body};
use crate::http::Request;

/// Texts one `_analyze` request may hold, and their total bytes; beyond either, 400
/// (Elasticsearch bounds the tokens with `index.analyze.max_token_count`).
pub const ANALYZE_TEXTS_MAX: usize = 1024;
/// Tokens one `_analyze` answer may hold (`index.analyze.max_token_count`).
pub const ANALYZE_TOKENS_MAX: usize = 10_000;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AnalyzeBody {
    text: Option<Texts>,
    analyzer: Option<String>,
    field: Option<String>,
    tokenizer: Option<Value>,
    filter: Option<Value>,
    char_filter: Option<Value>,
    normalizer: Option<String>,
    explain: Option<bool>,
    attributes: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Texts {
    One(String),
    Many(Vec<String>),
}

pub(super) fn analyze(api: &EsApi, request: &Request, index: Option<&str>) -> EsResult {
    let body: AnalyzeBody = if request.body.is_empty() {
        AnalyzeBody {
            text: request.param("text").map(|t| Texts::One(t.to_string())),
            analyzer: request.param("analyzer").map(str::to_string),
            field: request.param("field").map(str::to_string),
            tokenizer: None,
            filter: None,
            char_filter: None,
            normalizer: None,
            explain: None,
            attributes: None,
        }
    } else {
        let value = parse_json_body(&request.body, "x_content_parse_exception")?;
        serde_json::from_value(value).map_err(|error| {
            let message = error.to_string();
            match message.strip_prefix("unknown field `") {
                Some(rest) => EsError::bad_request(
                    "x_content_parse_exception",
                    format!(
                        "[analyze_request] unknown field [{}]",
                        rest.split('`').next().unwrap_or_default()
                    ),
                ),
                None => EsError::bad_request(
                    "x_content_parse_exception",
                    format!("[analyze_request] failed to parse: {message}"),
                ),
            }
        })?
    };
    for (name, present) in [
        ("tokenizer", body.tokenizer.is_some()),
        ("filter", body.filter.is_some()),
        ("char_filter", body.char_filter.is_some()),
        ("normalizer", body.normalizer.is_some()),
        ("explain", body.explain == Some(true)),
        ("attributes", body.attributes.is_some()),
    ] {
        if present {
            return Err(EsError::illegal_argument(format!(
                "[{name}] in _analyze is not supported by Sluice; use [analyzer] or [field]"
            )));
        }
    }
    let texts = match body.text {
        Some(Texts::One(text)) => vec![text],
        Some(Texts::Many(texts)) => texts,
        None => {
            return Err(EsError::validation("text is missing"));
        }
    };
    if texts.len() > ANALYZE_TEXTS_MAX {
        return Err(EsError::illegal_argument(format!(
            "an _analyze request may hold at most {ANALYZE_TEXTS_MAX} texts"
        )));
    }
    let (analyzer, position_gap) = match (&body.analyzer, &body.field, index) {
        (Some(name), _, _) => (
            Analyzer::from_name(name).ok_or_else(|| {
                EsError::illegal_argument(format!("failed to find global analyzer [{name}]"))
            })?,
            0,
        ),
        (None, Some(field), Some(index)) => {
            let index = api.node.indices().get(index)?;
            (
                index.field_analyzer(field).unwrap_or(Analyzer::Standard),
                sluice_search::analysis::POSITION_INCREMENT_GAP,
            )
        }
        (None, Some(_), None) => {
            return Err(EsError::illegal_argument(
                "analysis by [field] needs an index: use /{index}/_analyze",
            ));
        }
        (None, None, _) => (Analyzer::Standard, 0),
    };
    if let Some(index) = index
        && body.field.is_none()
    {
        api.node.indices().get(index)?;
    }
    let mut tokens = Vec::new();
    let mut position_base = 0usize;
    let mut offset_base = 0usize;
    for (i, text) in texts.iter().enumerate() {
        if i > 0 {
            position_base += position_gap;
        }
        let mut last_position = None;
        for token in analyzer.analyze(text) {
            if tokens.len() >= ANALYZE_TOKENS_MAX {
                return Err(EsError::illegal_argument(format!(
                    "The number of tokens produced by calling _analyze has exceeded the allowed maximum of [{ANALYZE_TOKENS_MAX}]. This limit can be set by changing the [index.analyze.max_token_count] index level setting."
                )));
            }
            let position = position_base + token.position;
            last_position = Some(position);
            tokens.push(json!({
                "token": token.text,
                "start_offset": offset_base + utf16_len(text, token.start),
                "end_offset": offset_base + utf16_len(text, token.end),
                "type": token.kind,
                "position": position,
            }));
        }
        if let Some(last) = last_position {
            position_base = last + 1;
        }
        offset_base += utf16_len(text, text.len()) + 1;
    }
    ok(request, json!({ "tokens": tokens }))
}

/// UTF-16 code units in `text[..byte_offset]`.
fn utf16_len(text: &str, byte_offset: usize) -> usize {
    text.get(..byte_offset)
        .map_or(0, |prefix| prefix.chars().map(char::len_utf16).sum())
}
