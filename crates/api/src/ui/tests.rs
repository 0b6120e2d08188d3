//! The dashboard's server: assets, the single-page fallback, headers, and saved objects that
//! survive a reopen.

use std::collections::HashMap;

use hyper::header::HeaderValue;

use super::*;

fn options() -> UiOptions {
    UiOptions {
        search_port: 9200,
        aws_port: 4566,
        default_host: "127.0.0.1".to_owned(),
        tls: false,
    }
}

fn api(directory: &std::path::Path) -> UiApi {
    UiApi::new(options(), Arc::new(SavedObjects::open(directory).unwrap()))
}

fn request(method: Method, target: &str, headers: &[(&'static str, &str)], body: &str) -> Request {
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let mut map = HeaderMap::new();
    map.insert("host", HeaderValue::from_static("127.0.0.1:5601"));
    if method == Method::POST || method == Method::PUT {
        let media_type = if path.ends_with("_import") {
            "application/x-ndjson"
        } else {
            "application/json"
        };
        map.insert("content-type", HeaderValue::from_static(media_type));
    }
    for (name, value) in headers {
        map.insert(*name, HeaderValue::from_str(value).unwrap());
    }
    Request {
        method,
        segments: path
            .split('/')
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect(),
        raw_path: path.to_owned(),
        raw_query: query.to_owned(),
        query: query
            .split('&')
            .filter_map(|pair| pair.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect::<HashMap<_, _>>(),
        headers: map,
        body: Bytes::from(body.to_owned()),
        grants: None,
    }
}

async fn get(api: &UiApi, target: &str) -> Response {
    api.handle(request(Method::GET, target, &[], "")).await
}

fn header<'a>(response: &'a Response, name: &str) -> Option<&'a str> {
    response
        .headers
        .iter()
        .find(|(key, _)| key.eq_ignore_ascii_case(name))
        .map(|(_, value)| value.as_str())
}

fn json_of(response: &Response) -> Value {
    serde_json::from_slice(&response.body).unwrap()
}

#[tokio::test]
async fn the_root_and_deep_links_serve_the_page_uncached() {
    let directory = tempfile::tempdir().unwrap();
    let api = api(directory.path());
    for path in ["/", "/index.html", "/console", "/dashboards/a/b?x=1"] {
        let response = get(&api, path).await;
        assert_eq!(response.status, StatusCode::OK, "{path}");
        assert_eq!(response.content_type, "text/html; charset=utf-8", "{path}");
        assert_eq!(response.body, sluice_ui::index().bytes, "{path}");
        assert_eq!(
            header(&response, "cache-control"),
            Some("no-store"),
            "{path}"
        );
    }
}

#[tokio::test]
async fn hashed_bundles_are_served_with_their_type_and_cached_for_good() {
    let directory = tempfile::tempdir().unwrap();
    let api = api(directory.path());
    let bundles: Vec<_> = sluice_ui::ASSETS.iter().filter(|a| a.immutable).collect();
    assert!(
        bundles
            .iter()
            .any(|a| a.content_type.starts_with("text/javascript"))
    );
    assert!(
        bundles
            .iter()
            .any(|a| a.content_type.starts_with("text/css"))
    );
    for asset in bundles {
        let response = get(&api, asset.path).await;
        assert_eq!(response.status, StatusCode::OK);
        assert_eq!(response.content_type, asset.content_type);
        assert_eq!(response.body, asset.bytes);
        assert_eq!(header(&response, "cache-control"), Some(CACHE_IMMUTABLE));
        assert_eq!(header(&response, "etag"), Some(asset.etag));
        let again = api
            .handle(request(
                Method::GET,
                asset.path,
                &[("if-none-match", asset.etag)],
                "",
            ))
            .await;
        assert_eq!(again.status, StatusCode::NOT_MODIFIED);
        assert!(again.body.is_empty());
    }
    let missing = get(&api, "/assets/app.0000000000000000.js").await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(json_of(&missing)["statusCode"], 404);
}

#[tokio::test]
async fn every_answer_carries_the_security_headers() {
    let directory = tempfile::tempdir().unwrap();
    let api = api(directory.path());
    for path in ["/", "/api/config", "/api/nothing", "/assets/none.js"] {
        let response = get(&api, path).await;
        let csp = header(&response, "content-security-policy").unwrap();
        assert!(csp.contains("script-src 'self'"), "{path}: {csp}");
        assert!(!csp.contains("unsafe-inline"), "{path}: {csp}");
        assert!(
            csp.contains("connect-src 'self' http://127.0.0.1:9200 http://127.0.0.1:4566"),
            "{csp}"
        );
        assert!(csp.contains("frame-ancestors 'none'"));
        assert_eq!(header(&response, "x-content-type-options"), Some("nosniff"));
        assert_eq!(header(&response, "x-frame-options"), Some("DENY"));
    }
    let refused = api.refuse(Refusal::Panicked, &HeaderMap::new());
    assert_eq!(refused.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(header(&refused, "content-security-policy").is_some());
}

#[tokio::test]
async fn the_csp_names_the_host_the_page_was_loaded_from_and_nothing_odd() {
    let directory = tempfile::tempdir().unwrap();
    let api = api(directory.path());
    let csp_for = |host: &str| {
        let response = api.secure(
            Response::new(StatusCode::OK, "text/plain", Bytes::new()),
            &request(Method::GET, "/", &[("host", host)], "").headers,
        );
        header(&response, "content-security-policy")
            .unwrap()
            .to_owned()
    };
    assert!(csp_for("localhost:5601").contains("http://localhost:9200 http://localhost:4566"));
    assert!(csp_for("[::1]:5601").contains("http://[::1]:9200"));
    // A host header that would add sources falls back to the listener's address.
    let odd = csp_for("a.example; script-src *");
    assert!(odd.contains("http://127.0.0.1:9200"), "{odd}");
    assert!(!odd.contains("script-src *"), "{odd}");
}

#[tokio::test]
async fn config_tells_the_page_where_the_apis_are() {
    let directory = tempfile::tempdir().unwrap();
    let response = get(&api(directory.path()), "/api/config").await;
    assert_eq!(response.status, StatusCode::OK);
    let config = json_of(&response);
    assert_eq!(config["search_port"], 9200);
    assert_eq!(config["aws_port"], 4566);
    assert_eq!(config["version"], env!("CARGO_PKG_VERSION"));
    let posted = api(directory.path())
        .handle(request(Method::POST, "/", &[], ""))
        .await;
    assert_eq!(posted.status, StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn saved_objects_are_created_replaced_deleted_and_survive_a_reopen() {
    let directory = tempfile::tempdir().unwrap();
    let api1 = api(directory.path());
    let created = api1
        .handle(request(
            Method::PUT,
            "/api/saved_objects/index-pattern/example",
            &[],
            r#"{"attributes":{"title":"example-*","timeFieldName":"@timestamp"}}"#,
        ))
        .await;
    assert_eq!(created.status, StatusCode::OK, "{:?}", created.body);
    assert_eq!(json_of(&created)["version"], 1);
    let generated = api1
        .handle(request(
            Method::POST,
            "/api/saved_objects/search",
            &[],
            r#"{"attributes":{"query":"message:bye"}}"#,
        ))
        .await;
    let search_id = json_of(&generated)["id"].as_str().unwrap().to_owned();
    let conflict = api1
        .handle(request(
            Method::POST,
            "/api/saved_objects/index-pattern/example",
            &[],
            r#"{"attributes":{}}"#,
        ))
        .await;
    assert_eq!(conflict.status, StatusCode::CONFLICT);
    let replaced = api1
        .handle(request(
            Method::PUT,
            "/api/saved_objects/index-pattern/example",
            &[],
            r#"{"attributes":{"title":"example-*","timeFieldName":"time"}}"#,
        ))
        .await;
    assert_eq!(json_of(&replaced)["version"], 2);
    drop(api1);

    let api2 = api(directory.path());
    let read = get(&api2, "/api/saved_objects/index-pattern/example").await;
    assert_eq!(json_of(&read)["attributes"]["timeFieldName"], "time");
    let searches = json_of(&get(&api2, "/api/saved_objects?type=search").await);
    assert_eq!(searches["total"], 1);
    assert_eq!(searches["saved_objects"][0]["id"], search_id.as_str());
    let deleted = api2
        .handle(request(
            Method::DELETE,
            &format!("/api/saved_objects/search/{search_id}"),
            &[],
            "",
        ))
        .await;
    assert_eq!(deleted.status, StatusCode::OK);
    drop(api2);
    let api3 = api(directory.path());
    assert_eq!(json_of(&get(&api3, "/api/saved_objects").await)["total"], 1);
    let file: Value = serde_json::from_slice(
        &std::fs::read(directory.path().join("saved_objects.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(file["format_version"], 1);
    assert!(!directory.path().join("saved_objects.json.tmp").exists());
}

#[tokio::test]
async fn bad_saved_objects_are_refused_in_the_apis_shape() {
    let directory = tempfile::tempdir().unwrap();
    let api = api(directory.path());
    for (method, target, body) in [
        (
            Method::PUT,
            "/api/saved_objects/widget/a",
            r#"{"attributes":{}}"#,
        ),
        (
            Method::PUT,
            "/api/saved_objects/search/a%20b",
            r#"{"attributes":{}}"#,
        ),
        (
            Method::PUT,
            "/api/saved_objects/search/a",
            r#"{"attributes":[]}"#,
        ),
        (
            Method::PUT,
            "/api/saved_objects/search/a",
            r#"{"attributes":"#,
        ),
        (
            Method::POST,
            "/api/saved_objects/_import",
            "{\"type\":\"widget\",\"id\":\"a\",\"attributes\":{}}\n",
        ),
        (Method::POST, "/api/saved_objects/_import", "not json\n"),
    ] {
        let response = api.handle(request(method, target, &[], body)).await;
        assert_eq!(response.status, StatusCode::BAD_REQUEST, "{target} {body}");
        let error = json_of(&response);
        assert_eq!(error["statusCode"], 400);
        assert!(error["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    let huge = format!(
        r#"{{"attributes":{{"text":"{}"}}}}"#,
        "x".repeat(SAVED_OBJECT_BYTES_MAX_FOR_TESTS)
    );
    let response = api
        .handle(request(
            Method::PUT,
            "/api/saved_objects/search/big",
            &[],
            &huge,
        ))
        .await;
    assert_eq!(response.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        json_of(&get(&api, "/api/saved_objects").await)["total"],
        0,
        "nothing half-saved"
    );
}

const SAVED_OBJECT_BYTES_MAX_FOR_TESTS: usize = saved_objects::SAVED_OBJECT_BYTES_MAX + 1;

#[tokio::test]
async fn export_and_import_round_trip_as_ndjson() {
    let source = tempfile::tempdir().unwrap();
    let api1 = api(source.path());
    for (kind, id) in [
        ("index-pattern", "p"),
        ("visualization", "v"),
        ("dashboard", "d"),
    ] {
        let body = format!(r#"{{"attributes":{{"title":"{id}"}}}}"#);
        let response = api1
            .handle(request(
                Method::PUT,
                &format!("/api/saved_objects/{kind}/{id}"),
                &[],
                &body,
            ))
            .await;
        assert_eq!(response.status, StatusCode::OK);
    }
    let export = get(&api1, "/api/saved_objects/_export").await;
    assert_eq!(export.content_type, "application/x-ndjson");
    let text = std::str::from_utf8(&export.body).unwrap().to_owned();
    assert_eq!(text.lines().count(), 3);

    let target = tempfile::tempdir().unwrap();
    let api2 = api(target.path());
    let imported = api2
        .handle(request(
            Method::POST,
            "/api/saved_objects/_import",
            &[],
            &text,
        ))
        .await;
    assert_eq!(json_of(&imported)["successCount"], 3);
    assert_eq!(json_of(&imported)["success"], true);
    let again = api2
        .handle(request(
            Method::POST,
            "/api/saved_objects/_import",
            &[],
            &text,
        ))
        .await;
    assert_eq!(json_of(&again)["success"], false);
    assert_eq!(json_of(&again)["errors"].as_array().unwrap().len(), 3);
    let overwritten = api2
        .handle(request(
            Method::POST,
            "/api/saved_objects/_import?overwrite=true",
            &[],
            &text,
        ))
        .await;
    assert_eq!(json_of(&overwritten)["successCount"], 3);
    assert_eq!(
        json_of(&get(&api2, "/api/saved_objects/dashboard/d").await)["version"],
        2
    );
}

#[test]
fn a_damaged_or_newer_file_is_refused_at_open_not_overwritten() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("saved_objects.json");
    std::fs::write(&path, "{not json").unwrap();
    assert!(matches!(
        SavedObjects::open(directory.path()),
        Err(SavedObjectsError::Corrupt { .. })
    ));
    std::fs::write(&path, r#"{"format_version": 2, "objects": []}"#).unwrap();
    assert!(matches!(
        SavedObjects::open(directory.path()),
        Err(SavedObjectsError::NewerFormat { found: 2, .. })
    ));
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        r#"{"format_version": 2, "objects": []}"#
    );
}

#[tokio::test]
async fn declared_objects_are_added_once_and_never_overwrite() {
    let directory = tempfile::tempdir().unwrap();
    let store = SavedObjects::open(directory.path()).unwrap();
    let declared = vec![
        json!({"type": "index-pattern", "id": "example", "attributes": {"title": "example-*"}}),
        json!({"type": "dashboard", "id": "hello", "attributes": {"title": "hello"}}),
    ];
    assert_eq!(store.declare(&declared).unwrap(), 2);
    let api = UiApi::new(options(), Arc::new(store));
    let changed = api
        .handle(request(
            Method::PUT,
            "/api/saved_objects/dashboard/hello",
            &[],
            r#"{"attributes":{"title":"mine"}}"#,
        ))
        .await;
    assert_eq!(changed.status, StatusCode::OK);
    drop(api);
    let reopened = SavedObjects::open(directory.path()).unwrap();
    assert_eq!(
        reopened.declare(&declared).unwrap(),
        0,
        "a restart adds nothing"
    );
    assert_eq!(
        reopened.get("dashboard", "hello").unwrap().attributes["title"],
        "mine"
    );
    for bad in [
        json!({"type": "widget", "id": "a", "attributes": {}}),
        json!({"type": "search", "id": "a b", "attributes": {}}),
        json!({"type": "search", "id": "a"}),
    ] {
        assert!(matches!(
            reopened.declare(&[bad]),
            Err(SavedObjectsError::Declared { index: 0, .. })
        ));
    }
}

#[tokio::test]
async fn attributes_nested_beyond_the_json_limit_are_refused() {
    let directory = tempfile::tempdir().unwrap();
    let api = api(directory.path());
    let depth = crate::json::JSON_DEPTH_MAX * 10;
    let body = format!(
        r#"{{"attributes":{}1{}}}"#,
        "[".repeat(depth),
        "]".repeat(depth)
    );
    let response = api
        .handle(request(
            Method::PUT,
            "/api/saved_objects/search/deep",
            &[],
            &body,
        ))
        .await;
    assert_eq!(response.status, StatusCode::BAD_REQUEST);
    let import = format!(
        "{{\"type\":\"search\",\"id\":\"d\",\"attributes\":{{\"a\":{}1{}}}}}\n",
        "[".repeat(depth),
        "]".repeat(depth)
    );
    let response = api
        .handle(request(
            Method::POST,
            "/api/saved_objects/_import",
            &[],
            &import,
        ))
        .await;
    assert_eq!(response.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn writes_without_a_json_content_type_are_refused_so_other_sites_cannot_post_forms() {
    let directory = tempfile::tempdir().unwrap();
    let api = api(directory.path());
    for content_type in [
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
    ] {
        for (method, target, body) in [
            (
                Method::POST,
                "/api/saved_objects/search",
                r#"{"attributes":{}}"#,
            ),
            (
                Method::POST,
                "/api/saved_objects/_import",
                "{\"type\":\"search\",\"id\":\"a\",\"attributes\":{}}\n",
            ),
        ] {
            let response = api
                .handle(request(
                    method,
                    target,
                    &[("content-type", content_type)],
                    body,
                ))
                .await;
            assert_eq!(
                response.status,
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "{target} {content_type}"
            );
        }
    }
    assert_eq!(json_of(&get(&api, "/api/saved_objects").await)["total"], 0);
    let json = api
        .handle(request(
            Method::POST,
            "/api/saved_objects/search",
            &[("content-type", "application/json; charset=utf-8")],
            r#"{"attributes":{}}"#,
        ))
        .await;
    assert_eq!(json.status, StatusCode::OK);
}

#[tokio::test]
async fn with_security_on_the_api_needs_a_user_and_writes_a_role_that_may_write() {
    use crate::identities::IdentityStore;
    use crate::security::Authenticator;
    use base64::Engine as _;
    let directory = tempfile::tempdir().unwrap();
    let store = IdentityStore::new(directory.path());
    store
        .put_user(
            "admin",
            "admin-secret",
            vec!["all_access".to_owned()],
            false,
        )
        .unwrap();
    store
        .put_user("reader", "reader-secret", vec!["readall".to_owned()], false)
        .unwrap();
    let authenticator = Authenticator::new(store.load().unwrap());
    let api = api(directory.path()).with_authenticator(authenticator);
    let basic = |user: &str, password: &str| {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
        )
    };
    // The page itself loads without credentials; its data does not.
    assert_eq!(get(&api, "/").await.status, StatusCode::OK);
    let anonymous = get(&api, "/api/saved_objects/_find").await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    assert!(header(&anonymous, "www-authenticate").is_some_and(|v| v.starts_with("Basic")));
    let wrong = basic("admin", "nope");
    let refused = api
        .handle(request(
            Method::GET,
            "/api/config",
            &[("authorization", &wrong)],
            "",
        ))
        .await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    let reader = basic("reader", "reader-secret");
    let read = api
        .handle(request(
            Method::GET,
            "/api/config",
            &[("authorization", &reader)],
            "",
        ))
        .await;
    assert_eq!(read.status, StatusCode::OK);
    let body = r#"{"attributes":{"title":"example-*"}}"#;
    let path = "/api/saved_objects/index-pattern/example";
    let forbidden = api
        .handle(request(
            Method::PUT,
            path,
            &[("authorization", &reader)],
            body,
        ))
        .await;
    assert_eq!(forbidden.status, StatusCode::FORBIDDEN);
    let admin = basic("admin", "admin-secret");
    let written = api
        .handle(request(
            Method::PUT,
            path,
            &[("authorization", &admin)],
            body,
        ))
        .await;
    assert_eq!(written.status, StatusCode::OK, "{:?}", written.body);
}

#[tokio::test]
async fn a_login_hands_out_a_temporary_key_that_signs_requests_until_logout() {
    use crate::identities::IdentityStore;
    use crate::security::Authenticator;
    let directory = tempfile::tempdir().unwrap();
    let store = IdentityStore::new(directory.path());
    store
        .put_user(
            "admin",
            "admin-secret",
            vec!["all_access".to_owned()],
            false,
        )
        .unwrap();
    let authenticator = Authenticator::new(store.load().unwrap());
    let api = api(directory.path()).with_authenticator(authenticator.clone());

    // A wrong password: 401, and no browser prompt for the page's own requests.
    let wrong = api
        .handle(request(
            Method::POST,
            "/api/login",
            &[("sec-fetch-mode", "cors")],
            r#"{"username":"admin","password":"nope"}"#,
        ))
        .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    let anonymous = api
        .handle(request(
            Method::GET,
            "/api/config",
            &[("sec-fetch-mode", "cors")],
            "",
        ))
        .await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    assert_eq!(header(&anonymous, "www-authenticate"), None);
    let login = api
        .handle(request(
            Method::POST,
            "/api/login",
            &[],
            r#"{"username":"admin","password":"admin-secret"}"#,
        ))
        .await;
    assert_eq!(login.status, StatusCode::OK);
    let session = json_of(&login);
    let credentials = sluice_cluster::sigv4::Credentials {
        access_key_id: session["access_key_id"].as_str().unwrap().to_owned(),
        secret_access_key: session["secret_access_key"].as_str().unwrap().to_owned(),
        session_token: None,
    };
    assert!(credentials.access_key_id.starts_with("ASIA"));
    let signed = |method: Method, path: &str| {
        let headers = sluice_cluster::sigv4::sign(
            method.as_str(),
            "127.0.0.1:5601",
            path,
            "",
            &[],
            b"",
            ("us-east-1", "execute-api"),
            &credentials,
            time::OffsetDateTime::now_utc(),
        );
        let headers: Vec<(&'static str, String)> = headers;
        let borrowed: Vec<(&'static str, &str)> = headers
            .iter()
            .map(|(name, value)| (*name, value.as_str()))
            .collect();
        request(method, path, &borrowed, "")
    };
    let config = api.handle(signed(Method::GET, "/api/config")).await;
    assert_eq!(config.status, StatusCode::OK, "{:?}", config.body);
    // The same key signs for the other ports: the authenticator knows it as the user.
    let (_, principal) = authenticator
        .access_key(&credentials.access_key_id)
        .unwrap();
    assert_eq!(principal.name, "admin");
    let logout = api.handle(signed(Method::POST, "/api/logout")).await;
    assert_eq!(logout.status, StatusCode::OK);
    let after = api.handle(signed(Method::GET, "/api/config")).await;
    assert_eq!(after.status, StatusCode::UNAUTHORIZED);
    assert!(
        authenticator
            .access_key(&credentials.access_key_id)
            .is_none()
    );
}
