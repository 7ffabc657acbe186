//! Tests of the configuration: parsing, validation with the key named, the shipped samples.
#![allow(clippy::unwrap_used)]

use super::*;

fn parse(text: &str) -> Result<NodeConfig, ConfigError> {
    NodeConfig::parse(text, Path::new("site.toml"))
}

const FULL: &str = r#"
[site]
id = "msk"
city = "Moscow"
number = 0
data_dir = "/var/lib/callgrid"

[http]
listen = "0.0.0.0:8443"

[cluster]
node_id = 1
listen = "0.0.0.0:7001"
peers = [{ id = 2, address = "spb.example:7001" }, { id = 3, address = "kzn.example:7001" }]
learners = [3]
bootstrap = "new"

[routing]
offer_timeout_ms = 10000
skills = [
  { name = "line1", channel = "voice", line = "line1" },
  { name = "line2", channel = "voice", line = "line2" },
]

[[topics]]
topic = "consultation"
skill = "line2"

[overflow]
enabled = true

[callbacks]
delay_s = 30
attempts_max = 5

[orders]
order_ready_repeat_h = 12

[[agents]]
login = "anna"
id = 7
skills = ["line1", "line2"]
certificate_valid_until = "2027-03-31"

[[tokens]]
name = "anna"
role = "agent"
sha256 = "686c866500d6d3052f6ce44ef79b368d30fce9e40796aa100b7a851fe28e335d"
"#;

#[test]
fn full_config_parses() {
    let config = parse(FULL).unwrap();
    assert_eq!(config.site.id, "msk");
    assert_eq!(config.cluster.peers.len(), 2);
    assert_eq!(config.routing.offer_timeout_ms, 10_000);
    assert_eq!(config.callbacks.delay_s, 30);
    let policy = config.state_policy();
    assert_eq!(policy.callback_attempts_max, 5);
    assert_eq!(policy.order_ready_repeat_interval_ms, 12 * 3_600_000);
    assert_eq!(config.skill_index("line2"), Some(1));
}

#[test]
fn unknown_key_is_named() {
    let error = parse("[site]\nid = \"a\"\ncolour = \"red\"\n")
        .unwrap_err()
        .to_string();
    assert!(error.contains("colour"), "{error}");
    let error = parse("[site]\nid = \"a\"\n[http]\nlisten = \"nowhere\"\n")
        .unwrap_err()
        .to_string();
    assert!(error.contains("listen"), "{error}");
}

#[test]
fn invalid_values_name_the_key() {
    let cases = [
        (
            FULL.replace("skills = [\"line1\", \"line2\"]", "skills = [\"line9\"]"),
            "agents[0].skills",
        ),
        (
            FULL.replace("learners = [3]", "learners = [9]"),
            "cluster.learners[0]",
        ),
        (FULL.replace("id = 2,", "id = 1,"), "cluster.peers[0].id"),
        (
            FULL.replace("bootstrap = \"new\"\n", ""),
            "cluster.bootstrap",
        ),
        (
            FULL.replace("2027-03-31", "next spring"),
            "agents[0].certificate_valid_until",
        ),
        (
            // Defect 9: a plaintext token is refused, with the fix named.
            FULL.replace(
                "sha256 = \"686c866500d6d3052f6ce44ef79b368d30fce9e40796aa100b7a851fe28e335d\"",
                "token = \"anna-secret-token-123\"",
            ),
            "tokens[0].token",
        ),
        (
            FULL.replace(
                "sha256 = \"686c866500d6d3052f6ce44ef79b368d30fce9e40796aa100b7a851fe28e335d\"",
                "sha256 = \"beef\"",
            ),
            "tokens[0].sha256",
        ),
        (
            FULL.replace("node_id = 1\n", "node_id = 9000\n"),
            "cluster.node_id",
        ),
        (
            FULL.replace("skill = \"line2\"\n", "skill = \"nope\"\n"),
            "topics[0].skill",
        ),
        (
            FULL.replacen("[site]\n", "[site]\nutc_offset_minutes = 900\n", 1),
            "site.utc_offset_minutes",
        ),
        (
            FULL.replacen("[site]\n", "[site]\nutc_offset_minutes = 185\n", 1),
            "site.utc_offset_minutes",
        ),
        (
            format!(
                "{FULL}\n[[quality.checklist]]\nname = \"greeting\"\nmax_points = 5\n\
                 [[quality.checklist]]\nname = \"greeting\"\nmax_points = 3\n"
            ),
            "quality.checklist[1].name",
        ),
        (
            format!("{FULL}\n[[quality.checklist]]\nname = \"greeting\"\nmax_points = 0\n"),
            "quality.checklist[0].max_points",
        ),
        (
            format!("{FULL}\n[quality]\nchecklist = []\n"),
            "quality.checklist",
        ),
    ];
    for (text, key) in cases {
        let error = parse(&text).unwrap_err().to_string();
        assert!(error.contains(key), "expected `{key}` in: {error}");
    }
    for offset in [-720, -210, 0, 180, 345, 840] {
        let text = FULL.replacen(
            "[site]\n",
            &format!("[site]\nutc_offset_minutes = {offset}\n"),
            1,
        );
        assert_eq!(parse(&text).unwrap().site.utc_offset_minutes, offset);
    }
}

#[test]
fn peer_sites_are_checked() {
    let peers = |entries: &str| format!("{FULL}\n{entries}");
    let config = parse(&peers(
        "[[peer_sites]]\nid = \"spb\"\nnumber = 1\napi_url = \"http://spb:8080\"\n",
    ))
    .unwrap();
    assert_eq!(config.peer_site("spb").map(|peer| peer.number), Some(1));
    assert_eq!(
        config.peer_site_by_number(1).map(|peer| peer.id.as_str()),
        Some("spb")
    );
    let cases = [
        (
            "[[peer_sites]]\nid = \"msk\"\nnumber = 1\n",
            "peer_sites[0].id",
        ),
        (
            "[[peer_sites]]\nid = \"spb\"\nnumber = 0\n",
            "peer_sites[0].number",
        ),
        (
            "[[peer_sites]]\nid = \"spb\"\nnumber = 1\n[[peer_sites]]\nid = \"spb\"\nnumber = 2\n",
            "peer_sites[1].id",
        ),
        (
            "[[peer_sites]]\nid = \"spb\"\nnumber = 1\napi_url = \"spb:8080\"\n",
            "peer_sites[0].api_url",
        ),
    ];
    for (entries, key) in cases {
        let error = parse(&peers(entries)).unwrap_err().to_string();
        assert!(error.contains(key), "expected `{key}` in: {error}");
    }
}

#[test]
fn shipped_compose_site_configs_are_valid() {
    for text in [
        include_str!("../../../deploy/compose/sites/msk.toml"),
        include_str!("../../../deploy/compose/sites/ekb.toml"),
        include_str!("../../../deploy/compose/sites/nsk.toml"),
    ] {
        let config = parse(text).unwrap();
        assert!(config.overflow.enabled);
        assert_eq!(config.peer_sites.len(), 2);
    }
}

#[test]
fn embedded_default_is_valid() {
    let config = NodeConfig::embedded_default();
    config.validate().unwrap();
    assert_eq!(config.http.listen.to_string(), HTTP_LISTEN_DEFAULT);
    assert_eq!(config.site.data_dir, PathBuf::from(DATA_DIR_DEFAULT));
    assert!(config.skill_index("line2").is_some());
}

#[test]
fn certificate_date_is_end_of_day() {
    assert_eq!(parse_date_end_ms("1970-01-01"), Some(DAY_MS));
    assert_eq!(parse_date_end_ms("1970-13-01"), None);
}

/// Keys set in a TOML value, as `section.key`, `section[].key` for arrays of tables.
fn keys(prefix: &str, value: &toml::Value, out: &mut Vec<String>) {
    match value {
        toml::Value::Table(table) => {
            for (key, value) in table {
                let name = if prefix.is_empty() {
                    key.clone()
                } else {
                    format!("{prefix}.{key}")
                };
                // Sections are headings, not keys.
                if !value.is_table() {
                    out.push(name.clone());
                }
                keys(&name, value, out);
            }
        }
        toml::Value::Array(items) => {
            for item in items.iter().filter(|item| item.is_table()) {
                keys(&format!("{prefix}[]"), item, out);
            }
        }
        _ => {}
    }
}

/// The sample is valid, every key it sets is documented in docs/CONFIG.md, and every
/// documented key appears in the sample (set, or shown in a comment).
#[test]
fn the_sample_and_docs_config_md_agree_with_the_parser() {
    let config = NodeConfig::parse(NodeConfig::EXAMPLE, Path::new("site.example.toml")).unwrap();
    assert!(
        !config.site.data_dir.starts_with("/data"),
        "a copied sample must not write to /data"
    );
    let docs_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/CONFIG.md");
    let docs = std::fs::read_to_string(docs_path).unwrap();
    let documented: Vec<String> = docs
        .lines()
        .filter_map(|line| line.strip_prefix("| `"))
        .filter_map(|rest| rest.split('`').next())
        .map(str::to_string)
        .collect();
    let value: toml::Value = toml::from_str(NodeConfig::EXAMPLE).unwrap();
    let mut set = Vec::new();
    keys("", &value, &mut set);
    for key in &set {
        assert!(documented.contains(key), "`{key}` is not in docs/CONFIG.md");
    }
    for key in &documented {
        let leaf = key.rsplit('.').next().unwrap_or(key).trim_end_matches("[]");
        let shown = NodeConfig::EXAMPLE.contains(&format!("{leaf} ="))
            || NodeConfig::EXAMPLE.contains(&format!("[[{leaf}]]"))
            || NodeConfig::EXAMPLE.contains(&format!(".{leaf}]]"))
            || NodeConfig::EXAMPLE.contains(&format!("[{leaf}]"));
        assert!(shown, "documented `{key}` is not in node/site.example.toml");
    }
}
