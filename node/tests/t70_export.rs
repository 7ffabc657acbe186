//! `.xlsx` exports: supervisors only, real workbooks with one sheet per site.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::Read as _;

use common::*;

fn download(node: &Node, name: &str, token: &str) -> (u16, Option<String>, Vec<u8>) {
    let result = ureq::get(&format!("{}/api/v1/exports/{name}", node.base))
        .set("Authorization", &format!("Bearer {token}"))
        .call();
    let response = match result {
        Ok(response) => response,
        Err(ureq::Error::Status(_, response)) => response,
        Err(error) => panic!("{error}"),
    };
    let status = response.status();
    let content_type = Some(response.content_type().to_string());
    let mut bytes = Vec::new();
    response.into_reader().read_to_end(&mut bytes).unwrap();
    (status, content_type, bytes)
}

#[test]
fn supervisors_download_workbooks_with_one_sheet_per_site() {
    let (_directory, node) = single_site();
    let (status, body) = node.call(
        "POST",
        "/api/v1/orders",
        Some(ANNA),
        Some(order_body("+79160001122")),
    );
    assert_eq!(status, 201, "{body}");
    ready(&node, "anna", ANNA);
    for name in ["intervals.xlsx", "agents.xlsx", "orders.xlsx"] {
        let (status, content_type, bytes) = download(&node, name, SUPERVISOR);
        assert_eq!(status, 200, "{name}");
        assert!(content_type.unwrap().contains("spreadsheetml"), "{name}");
        assert!(bytes.starts_with(b"PK\x03\x04"), "{name} is a zip");
        let text = String::from_utf8_lossy(&bytes);
        assert!(text.contains("xl/worksheets/sheet1.xml"), "{name}");
        assert!(
            !text.contains("xl/worksheets/sheet2.xml"),
            "{name}: one site, one sheet"
        );
    }
    assert_eq!(
        download(&node, "orders.xlsx", ANNA).0,
        403,
        "agents do not export"
    );
    assert_eq!(download(&node, "orders.xlsx", GATEWAY).0, 403);
    assert_eq!(download(&node, "secrets.xlsx", SUPERVISOR).0, 404);
    let (status, body) = node.call(
        "GET",
        "/api/v1/reports/intervals?format=csv",
        Some(SUPERVISOR),
        None,
    );
    assert_eq!(status, 200, "the CSV stays");
    assert!(body.as_str().unwrap().starts_with("interval_start,"));
}
