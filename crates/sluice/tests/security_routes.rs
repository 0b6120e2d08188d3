//! With `--security`, every endpoint of both ports refuses a request without credentials, in its
//! client's shape. The cases come from the routers' own route lists
//! (`sluice_api::es::routes::ROUTES`, `sluice_api::aws::CATALOG`), so an endpoint added later is
//! covered without touching this test.

mod util;

use sluice_api::aws::{CATALOG, ServiceRoutes};
use sluice_api::es::routes::{ROUTES, Segment};
use util::*;

fn es_path(path: &[Segment]) -> String {
    let segments: Vec<&str> = path
        .iter()
        .map(|segment| match segment {
            Segment::Literal(text) => text,
            Segment::Any => "any",
            Segment::Name => "name",
        })
        .collect();
    format!("/{}", segments.join("/"))
}

#[test]
fn every_route_of_both_ports_answers_401_or_its_aws_error_without_credentials() {
    let data_dir = tempfile::tempdir().expect("tempdir");
    let mut server = Server::start_with(data_dir.path(), &["--security"]);
    let mut cases = 0;
    for route in ROUTES {
        let path = es_path(route.path);
        for method in route.methods {
            let reply = server.es(
                method,
                &path,
                &[("content-type", "application/json")],
                b"{}",
            );
            let case = format!("{method} {path}");
            assert_eq!(reply.status, 401, "{case}: {}", reply.text());
            if *method != "HEAD" {
                let body = reply.json();
                assert_eq!(body["error"]["type"], "security_exception", "{case}");
                assert_eq!(body["status"], 401, "{case}");
            }
            cases += 1;
        }
    }
    assert!(cases >= ROUTES.len());

    for service in CATALOG {
        match service {
            ServiceRoutes::Json {
                target_prefix,
                operations,
            } => {
                for operation in *operations {
                    let target = format!("{target_prefix}.{}", operation.name);
                    let reply = server.aws(
                        "POST",
                        "/",
                        &[
                            ("x-amz-target", &target),
                            ("content-type", "application/x-amz-json-1.1"),
                        ],
                        b"{}",
                    );
                    assert_eq!(reply.status, 400, "{target}: {}", reply.text());
                    assert_eq!(
                        reply.json()["__type"],
                        "MissingAuthenticationTokenException",
                        "{target}"
                    );
                }
            }
            ServiceRoutes::Rest { routes } => {
                for route in *routes {
                    let path: Vec<&str> = route
                        .path
                        .split('/')
                        .map(|segment| {
                            if segment.starts_with('{') {
                                "x"
                            } else {
                                segment
                            }
                        })
                        .collect();
                    let path = path.join("/");
                    let reply = server.aws(route.method, &path, &[], b"{}");
                    let case = format!("{} {path}", route.method);
                    assert_eq!(reply.status, 403, "{case}: {}", reply.text());
                    assert_eq!(
                        reply.json()["__type"],
                        "MissingAuthenticationTokenException",
                        "{case}"
                    );
                }
            }
        }
    }
    // Still serving (and still refusing) after every route.
    assert_eq!(server.es("GET", "/", &[], b"").status, 401);
    server.stop();
}
