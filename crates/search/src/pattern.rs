//! Elasticsearch's simple patterns (`Regex.simpleMatch`): `*` matches any run of characters,
//! every other character itself. Index expressions, alias names and template patterns use them.

/// Whether `text` matches `pattern`, where `*` matches any run of characters.
pub fn simple_match(pattern: &str, text: &str) -> bool {
    let mut parts = pattern.split('*');
    let Some(first) = parts.next() else {
        return true;
    };
    let Some(mut rest) = text.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    for (i, part) in parts.iter().enumerate() {
        if i + 1 == parts.len() {
            return rest.ends_with(part);
        }
        match rest.find(part) {
            Some(position) => rest = rest.get(position + part.len()..).unwrap_or_default(),
            None => return false,
        }
    }
    rest.is_empty()
}

/// Whether an expression holds a wildcard.
pub fn is_pattern(text: &str) -> bool {
    text.contains('*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stars_match_any_run() {
        assert!(simple_match("logs-*", "logs-2016"));
        assert!(simple_match("*", "x"));
        assert!(simple_match("*", ""));
        assert!(simple_match("a*c*e", "abcde"));
        assert!(simple_match("*-2026-*", "example-2026-12-01-13"));
        assert!(!simple_match("a*c", "abd"));
        assert!(!simple_match("a*a", "a"));
        assert!(simple_match("abc", "abc"));
        assert!(!simple_match("abc", "abcd"));
    }
}
