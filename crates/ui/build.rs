//! Builds the dashboard: copies `web/` (TypeScript sources, `index.html`, the npm manifest and its
//! lockfile) into `OUT_DIR`, installs the pinned npm dependencies there with `npm ci` (only when
//! the lockfile changed), type-checks with `tsc`, bundles with esbuild, names each bundle by its
//! content hash and writes `assets.rs`, the table `src/lib.rs` includes. Nothing is written into
//! the source tree, and nothing third-party is committed: npm fetches it from the registry.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

/// The oldest Node.js that esbuild 0.28 and the lockfile format (version 3) support.
const NODE_MAJOR_MIN: u32 = 18;
/// Hex digits of the content hash in a bundle's name and ETag: 64 bits, collisions out of reach
/// for the handful of bundles one build makes.
const HASH_HEX_DIGITS: usize = 16;

fn main() {
    let manifest_dir = PathBuf::from(env("CARGO_MANIFEST_DIR"));
    let web = manifest_dir.join("web");
    let out_dir = PathBuf::from(env("OUT_DIR"));
    // A directory makes cargo watch every file under it; node_modules is never under `src`.
    for watched in [
        "src",
        "index.html",
        "package.json",
        "package-lock.json",
        "tsconfig.json",
    ] {
        println!("cargo:rerun-if-changed={}", web.join(watched).display());
    }

    check_node();
    let work = out_dir.join("web");
    copy_sources(&web, &work);
    install_dependencies(&work);
    run(
        Command::new("node")
            .arg("node_modules/typescript/bin/tsc")
            .args(["--project", "tsconfig.json", "--noEmit"])
            .current_dir(&work),
        "type-checking the dashboard (tsc)",
    );
    let dist = work.join("dist");
    let _ = std::fs::remove_dir_all(&dist);
    run(
        // The native binary when esbuild's install script ran, else its Node launcher: both run
        // as a program.
        Command::new(work.join("node_modules/.bin/esbuild"))
            .args([
                "src/main.ts",
                "--bundle",
                "--minify",
                "--format=esm",
                "--target=es2020",
                "--log-level=warning",
                "--outfile=dist/app.js",
                // ion-hash-js hashes with Node's `crypto`; in the page a synchronous SHA-256
                // stands in for it.
                "--alias:crypto=./src/crypto-shim.ts",
            ])
            .current_dir(&work),
        "bundling the dashboard (esbuild)",
    );
    write_assets(&work, &dist, &out_dir);
}

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("cargo sets {name} for build scripts"))
}

/// Fails the build with what to install when Node.js is missing or too old.
fn check_node() {
    let output = Command::new("node").arg("--version").output();
    let version = match output {
        Ok(output) if output.status.success() => {
            String::from_utf8_lossy(&output.stdout).into_owned()
        }
        _ => panic!(
            "\n\nbuilding the dashboard (crate sluice-ui) needs Node.js {NODE_MAJOR_MIN} or later \
             with npm, and `node` was not found on PATH.\nInstall it (Debian/Ubuntu: \
             `apt-get install nodejs npm`; macOS: `brew install node`; or https://nodejs.org), \
             then build again.\n\n"
        ),
    };
    let major = version
        .trim()
        .trim_start_matches('v')
        .split('.')
        .next()
        .and_then(|major| major.parse::<u32>().ok());
    if major.is_none_or(|major| major < NODE_MAJOR_MIN) {
        panic!(
            "\n\nbuilding the dashboard (crate sluice-ui) needs Node.js {NODE_MAJOR_MIN} or later; \
             `node --version` says {}. Install a newer Node.js (https://nodejs.org).\n\n",
            version.trim()
        );
    }
}

/// Mirrors the sources into the work directory (`dist` and `node_modules` there are kept).
fn copy_sources(web: &Path, work: &Path) {
    let _ = std::fs::remove_dir_all(work.join("src"));
    copy_dir(&web.join("src"), &work.join("src"));
    for file in [
        "index.html",
        "package.json",
        "package-lock.json",
        "tsconfig.json",
    ] {
        std::fs::copy(web.join(file), work.join(file))
            .unwrap_or_else(|error| panic!("copying web/{file}: {error}"));
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to)
        .unwrap_or_else(|error| panic!("creating {}: {error}", to.display()));
    let entries = std::fs::read_dir(from)
        .unwrap_or_else(|error| panic!("reading {}: {error}", from.display()));
    for entry in entries {
        let entry = entry.unwrap_or_else(|error| panic!("reading {}: {error}", from.display()));
        let path = entry.path();
        let target = to.join(entry.file_name());
        if path.is_dir() {
            copy_dir(&path, &target);
        } else {
            std::fs::copy(&path, &target)
                .unwrap_or_else(|error| panic!("copying {}: {error}", path.display()));
        }
    }
}

/// `npm ci` from the lockfile, skipped when `node_modules` was installed from the same lockfile.
fn install_dependencies(work: &Path) {
    let lockfile = std::fs::read(work.join("package-lock.json"))
        .unwrap_or_else(|error| panic!("reading web/package-lock.json: {error}"));
    let marker = work.join("node_modules").join(".sluice-lockfile");
    if std::fs::read(&marker).is_ok_and(|installed| installed == lockfile) {
        return;
    }
    let npm = Command::new("npm").arg("--version").output();
    if !npm.is_ok_and(|output| output.status.success()) {
        panic!(
            "\n\nbuilding the dashboard (crate sluice-ui) needs npm (it comes with Node.js \
             {NODE_MAJOR_MIN}+; Debian/Ubuntu: `apt-get install npm`), and `npm` was not found on \
             PATH.\n\n"
        );
    }
    run(
        Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
            .current_dir(work),
        "installing the dashboard's npm dependencies (npm ci)",
    );
    std::fs::write(&marker, &lockfile)
        .unwrap_or_else(|error| panic!("writing {}: {error}", marker.display()));
}

fn run(command: &mut Command, what: &str) {
    let status = command
        .status()
        .unwrap_or_else(|error| panic!("{what}: could not run {command:?}: {error}"));
    assert!(
        status.success(),
        "{what} failed ({status}); see the output above"
    );
}

/// Names each bundle by its hash, points `index.html` at them and writes `assets.rs`.
fn write_assets(work: &Path, dist: &Path, out_dir: &Path) {
    let mut table = String::from("/// Generated by build.rs: every file the dashboard serves.\n");
    table.push_str("pub static ASSETS: &[Asset] = &[\n");
    let mut index = std::fs::read_to_string(work.join("index.html"))
        .unwrap_or_else(|error| panic!("reading web/index.html: {error}"));
    for (file, content_type) in [
        ("app.js", "text/javascript; charset=utf-8"),
        ("app.css", "text/css; charset=utf-8"),
    ] {
        let path = dist.join(file);
        let bytes = std::fs::read(&path)
            .unwrap_or_else(|error| panic!("reading {}: {error}", path.display()));
        let hash = hex_hash(&bytes);
        let (stem, extension) = file.split_once('.').unwrap_or((file, ""));
        let hashed = format!("{stem}.{hash}.{extension}");
        let hashed_path = dist.join(&hashed);
        std::fs::write(&hashed_path, &bytes)
            .unwrap_or_else(|error| panic!("writing {}: {error}", hashed_path.display()));
        index = index.replace(&format!("{{{{{file}}}}}"), &format!("/assets/{hashed}"));
        push_asset(
            &mut table,
            &format!("/assets/{hashed}"),
            content_type,
            &hash,
            true,
            &hashed_path,
        );
    }
    assert!(
        !index.contains("{{"),
        "web/index.html names a bundle the build does not make"
    );
    let index_path = dist.join("index.html");
    std::fs::write(&index_path, &index)
        .unwrap_or_else(|error| panic!("writing {}: {error}", index_path.display()));
    let hash = hex_hash(index.as_bytes());
    push_asset(
        &mut table,
        "/index.html",
        "text/html; charset=utf-8",
        &hash,
        false,
        &index_path,
    );
    table.push_str("];\n");
    let assets = out_dir.join("assets.rs");
    std::fs::write(&assets, table)
        .unwrap_or_else(|error| panic!("writing {}: {error}", assets.display()));
}

fn push_asset(
    table: &mut String,
    path: &str,
    content_type: &str,
    hash: &str,
    immutable: bool,
    file: &Path,
) {
    let _ = writeln!(
        table,
        "    Asset {{ path: {path:?}, content_type: {content_type:?}, etag: \"\\\"{hash}\\\"\", \
         immutable: {immutable}, bytes: include_bytes!({:?}) }},",
        file.display().to_string()
    );
}

fn hex_hash(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    let mut hex = String::new();
    for byte in digest {
        let _ = write!(hex, "{byte:02x}");
    }
    hex.truncate(HASH_HEX_DIGITS);
    hex
}
