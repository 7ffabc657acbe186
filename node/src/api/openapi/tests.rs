//! The document against its own tables: success answers, references, links, statuses and
//! query parameters.

use super::*;

/// Every endpoint of the table has exactly one success answer with a body schema that
/// exists, and every `$ref` in the document resolves.
#[test]
fn every_endpoint_has_its_success_answer_and_every_reference_resolves() {
    for (method, path, ..) in ENDPOINTS {
        let rows = SUCCESS
            .iter()
            .filter(|(m, p, _, _)| m == method && p == path)
            .count();
        assert_eq!(rows, 1, "{method} {path}: {rows} success rows");
    }
    for (method, path, ..) in SUCCESS {
        assert!(
            ENDPOINTS.iter().any(|(m, p, ..)| m == method && p == path),
            "{method} {path} is not an endpoint"
        );
    }
    let document = document();
    let text = document.to_string();
    let schemas = &document["components"]["schemas"];
    for reference in text.split("\"#/components/schemas/").skip(1) {
        let name = reference.split('"').next().unwrap_or_default();
        assert!(schemas[name].is_object(), "unresolved schema {name}");
    }
    for (method, path, ..) in ENDPOINTS {
        let operation = &document["paths"][format!("/api/v1{path}")][*method];
        let (status, _) = success(method, path).unwrap_or((0, ""));
        assert!(
            operation["responses"][status.to_string()].is_object(),
            "{method} {path}: no {status}"
        );
        for error in ["400", "401", "403", "404", "409", "503"] {
            assert!(
                operation["responses"][error]["content"]["application/problem+json"].is_object(),
                "{method} {path}: {error} without a problem body"
            );
        }
    }
}

/// Operation ids are unique, and every link names an operation of the document.
#[test]
fn operation_ids_are_unique_and_links_resolve() {
    let document = document();
    let mut ids = std::collections::BTreeSet::new();
    for (_, operations) in document["paths"].as_object().into_iter().flatten() {
        for (_, operation) in operations.as_object().into_iter().flatten() {
            let id = operation["operationId"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            assert!(ids.insert(id.clone()), "operationId {id} twice");
        }
    }
    for (_, _, method, path, ..) in LINKS {
        assert!(ids.contains(&operation_id(method, path)), "{method} {path}");
    }
}

/// The statuses the server answers are the documented ones (creates 201, the monitoring
/// request 202, sign-out 204), and the query parameters the handlers read are listed.
#[test]
fn statuses_and_query_parameters_are_the_servers() {
    let document = document();
    let responses = |path: &str, method: &str| document["paths"][path][method]["responses"].clone();
    for path in [
        "/contacts",
        "/orders",
        "/pre-orders",
        "/reservations",
        "/complaints",
        "/cluster/tokens",
    ] {
        let answers = responses(&format!("/api/v1{path}"), "post");
        assert!(answers["201"].is_object(), "{path}: {answers}");
        assert!(answers.get("200").is_none(), "{path} answers 201, not 200");
    }
    assert!(responses("/api/v1/supervisor/monitor", "post")["202"].is_object());
    assert!(responses("/api/v1/session", "delete")["204"].is_object());
    let names = |path: &str| -> Vec<String> {
        document["paths"][path]["get"]["parameters"]
            .as_array()
            .map(|parameters| {
                parameters
                    .iter()
                    .filter(|parameter| parameter["in"] == "query")
                    .filter_map(|parameter| parameter["name"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    assert_eq!(names("/api/v1/orders"), ["caller", "limit", "consistency"]);
    assert_eq!(
        names("/api/v1/self-service/order-status"),
        ["caller", "consistency"]
    );
    assert_eq!(names("/api/v1/callbacks"), ["limit", "consistency"]);
    assert_eq!(
        names("/api/v1/reports/intervals"),
        ["date", "format", "rows", "sep", "decimal", "locale"]
    );
    let report = &responses("/api/v1/reports/intervals", "get")["200"]["content"];
    assert!(report["text/csv"].is_object() && report["application/json"].is_object());
}

/// The idempotent creates and the replicated reads are endpoints of the table, and the
/// document shows their header, parameter and problem types.
#[test]
fn idempotent_creates_and_replicated_reads_are_documented() {
    let document = document();
    for (method, path) in IDEMPOTENT_CREATES {
        let operation = &document["paths"][format!("/api/v1{path}")][*method];
        let text = operation.to_string();
        assert!(text.contains("Idempotency-Key"), "{method} {path}: {text}");
        assert!(text.contains("Idempotent-Replayed"), "{method} {path}");
        assert!(operation["responses"]["422"].is_object(), "{method} {path}");
    }
    for path in REPLICATED_READS {
        let operation = &document["paths"][format!("/api/v1{path}")]["get"];
        let text = operation.to_string();
        assert!(text.contains("X-Callgrid-Staleness-Ms"), "{path}: {text}");
        assert!(text.contains("\"consistency\""), "{path}");
    }
    for path in ASYNC_CREATES {
        let operation = &document["paths"][format!("/api/v1{path}")]["post"];
        assert!(operation["responses"]["202"].is_object(), "{path}");
        assert!(operation.to_string().contains("respond-async"), "{path}");
    }
    let problem = document["components"]["schemas"]["Problem"].to_string();
    for (slug, _, _) in PROBLEM_TYPES {
        assert!(problem.contains(slug), "{slug}");
    }
}
