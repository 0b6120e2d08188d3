//! The dashboard's assets, built from `web/` by `build.rs` (npm, tsc, esbuild) and embedded into
//! the binary: a static table of path → bytes, content type and ETag. The server that serves them
//! is `sluice_api::ui`; this crate knows nothing of HTTP.

/// One file of the dashboard.
#[derive(Debug)]
pub struct Asset {
    /// The URL path it is served at (`/index.html`, `/assets/app.<hash>.js`).
    pub path: &'static str,
    pub content_type: &'static str,
    /// A strong ETag from the content's hash, quotes included.
    pub etag: &'static str,
    /// Whether the path names the content (a hashed bundle), so it may be cached for good.
    pub immutable: bool,
    pub bytes: &'static [u8],
}

include!(concat!(env!("OUT_DIR"), "/assets.rs"));

/// The asset served at `path`, if any.
pub fn asset(path: &str) -> Option<&'static Asset> {
    ASSETS.iter().find(|asset| asset.path == path)
}

/// The page every view of the single-page app starts from.
pub fn index() -> &'static Asset {
    // The build script always writes `/index.html` into the table (it fails otherwise).
    #[allow(clippy::expect_used)]
    asset("/index.html").expect("build.rs embeds /index.html")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_points_at_the_hashed_bundles_it_embeds() {
        let html = std::str::from_utf8(index().bytes).unwrap();
        let bundles: Vec<&Asset> = ASSETS.iter().filter(|asset| asset.immutable).collect();
        assert_eq!(bundles.len(), 2);
        for bundle in bundles {
            assert!(
                html.contains(bundle.path),
                "{} not in index.html",
                bundle.path
            );
            assert!(!bundle.bytes.is_empty());
        }
        assert!(!html.contains("{{"));
    }
}
