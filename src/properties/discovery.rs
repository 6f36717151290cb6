//! Discovery URLs, `host:port` entries, `[a:b]` ranges, `file://` content and key-value URLs.
use proptest::prelude::*;

use super::{config, tricky_string};
use crate::discovery::{
    expand_ranges, file, kv, nodes, split_host_port, token, validate, DiscoveryUrl, Entry, Scheme,
    MAX_LIST_ADDRESSES, MAX_RANGE_VALUES,
};

/// A bound of a range: small, huge, signed, or not a number.
fn bound() -> BoxedStrategy<String> {
    prop_oneof![
        (0i64..300).prop_map(|n| n.to_string()),
        any::<i64>().prop_map(|n| n.to_string()),
        Just("99999999".to_string()),
        Just("9223372036854775808".to_string()),
        Just("-9223372036854775808".to_string()),
        Just("+1".to_string()),
        Just("01".to_string()),
        Just(String::new()),
        "[a-f:]{1,4}",
    ]
    .boxed()
}

/// `host:port` items with at most a couple of ranges, brackets and colons in odd places.
fn item() -> BoxedStrategy<String> {
    let host = prop_oneof![
        Just("10.0.0.".to_string()),
        Just("[::1]".to_string()),
        Just("[fe80::1".to_string()),
        Just("node-".to_string()),
        Just(String::new()),
        "[a-z0-9.:\\[\\]-]{0,10}",
    ];
    let range = (bound(), bound()).prop_map(|(a, b)| format!("[{a}:{b}]"));
    let port = prop_oneof![
        Just(":2375".to_string()),
        Just(":".to_string()),
        Just(String::new()),
        "[:0-9]{0,6}",
    ];
    prop_oneof![
        4 => (host.clone(), prop::option::of(range.clone()), port.clone(), prop::option::of(range))
            .prop_map(|(h, r1, p, r2)| {
                format!("{h}{}{p}{}", r1.unwrap_or_default(), r2.unwrap_or_default())
            }),
        1 => tricky_string(),
    ]
    .boxed()
}

fn list() -> BoxedStrategy<String> {
    prop::collection::vec(item(), 0..5)
        .prop_map(|items| items.join(","))
        .boxed()
}

proptest! {
    #![proptest_config(config(1_000))]

    #[test]
    fn ranges_expand_within_their_bound(pattern in item()) {
        let expanded = expand_ranges(&pattern);
        prop_assert!(expanded.len() as u64 <= MAX_RANGE_VALUES, "{}", expanded.len());
    }

    #[test]
    fn entries_split_like_go_and_print_back(addr in item()) {
        if let Ok((host, port)) = split_host_port(&addr) {
            let entry = Entry::new(host, port);
            // The printed form reads back as the same entry.
            prop_assert_eq!(Entry::parse(&entry.to_string()), Ok(entry));
        }
    }

    #[test]
    fn node_lists_parse_to_a_bounded_list_or_an_error(list in list()) {
        match nodes::parse_list(&list) {
            Ok(entries) => prop_assert!(entries.len() <= MAX_LIST_ADDRESSES),
            Err(err) => prop_assert!(!err.to_string().is_empty()),
        }
    }

    #[test]
    fn file_content_parses_to_a_bounded_list_or_an_error(
        lines in prop::collection::vec(
            prop_oneof![
                4 => item(),
                1 => tricky_string().prop_map(|s| format!("# {s}")),
                1 => (item(), tricky_string()).prop_map(|(i, s)| format!("  {i} #{s}")),
                1 => Just(String::new()),
            ],
            0..6,
        ),
        separator in prop::sample::select(&["\n", "\r\n", "\r"][..]),
    ) {
        match file::parse_content(&lines.join(separator)) {
            Ok(entries) => prop_assert!(entries.len() <= MAX_LIST_ADDRESSES),
            Err(err) => prop_assert!(!err.to_string().is_empty()),
        }
    }

    #[test]
    fn any_discovery_url_is_understood_or_refused(
        scheme in prop::sample::select(
            &["nodes://", "file://", "token://", "consul://", "etcd://", "zk://", "", "http://", "://"][..],
        ),
        body in prop_oneof![list(), tricky_string(), (list(), tricky_string()).prop_map(|(l, p)| format!("{l}/{p}"))],
    ) {
        let url = format!("{scheme}{body}");
        if let Ok(parsed) = DiscoveryUrl::parse(&url) {
            prop_assert!(url.ends_with(&parsed.body));
            let _ = validate(&url);
            match parsed.scheme {
                Scheme::Token => {
                    let _ = token::TokenUrl::parse(&parsed.body);
                }
                Scheme::Consul | Scheme::Etcd | Scheme::Zk => {
                    if let Ok(kv_url) = kv::KvUrl::parse(parsed.scheme, &parsed.body) {
                        prop_assert!(!kv_url.endpoints.is_empty());
                        let leader = kv_url.leader_key();
                        prop_assert!(!leader.contains("//") && !leader.starts_with('/'));
                        let _ = kv_url.nodes_dir(&body);
                    }
                }
                Scheme::Nodes | Scheme::File => {}
            }
        }
    }
}

#[test]
fn a_range_too_wide_is_refused_with_a_message_that_says_so() {
    let err = nodes::parse_list("10.0.0.[1:99999999]:2375").unwrap_err();
    assert!(err.to_string().contains("more than 65536"), "{err}");
    let err = file::parse_content("a:1\n10.0.0.[1:99999999]:2375\n").unwrap_err();
    assert!(err.to_string().contains("more than 65536"), "{err}");
}

#[test]
fn a_list_of_many_ranges_is_capped_as_a_whole() {
    let list = vec!["10.0.[0:255].1:2375"; 300].join(",");
    let err = nodes::parse_list(&list).unwrap_err();
    assert!(err.to_string().contains("more than 65536"), "{err}");
    let content = ["10.1.0.[0:65535]:2375"; 2].join("\n");
    assert!(file::parse_content(&content).is_err());
    let full = nodes::parse_list("10.0.[0:65535]:2375").unwrap();
    assert_eq!(full.len(), MAX_LIST_ADDRESSES);
}

#[tokio::test]
async fn a_discovery_file_larger_than_its_budget_is_an_error_not_a_read() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nodes");
    let file = std::fs::File::create(&path).unwrap();
    file.set_len(17 << 20).unwrap();
    let backend = file::FileBackend::new(&path, std::time::Duration::from_secs(1));
    let err = backend.fetch().await.unwrap_err();
    assert!(err.contains("file larger than 16 MiB"), "{err}");
}
