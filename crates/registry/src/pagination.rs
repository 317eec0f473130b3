//! The `n`/`last` pagination shared by the tag list and the catalog, and the RFC 5988 `Link`
//! header that points at the next page.

/// One page of a lexically sorted list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    /// The entries of this page, in order.
    pub items: Vec<String>,
    /// When more entries follow: the value to pass as `last` for the next page.
    pub next_last: Option<String>,
}

/// Cuts a page out of `sorted` (ascending, no duplicates): the entries strictly after `last`,
/// at most `n` of them. Without `n` every remaining entry is returned and there is no next
/// page; `n = 0` gives an empty page without a next link, as the spec requires.
pub fn paginate(sorted: &[String], n: Option<usize>, last: Option<&str>) -> Page {
    let from = match last {
        Some(last) => sorted.partition_point(|item| item.as_str() <= last),
        None => 0,
    };
    let rest = &sorted[from..];
    match n {
        None => Page {
            items: rest.to_vec(),
            next_last: None,
        },
        Some(0) => Page {
            items: Vec::new(),
            next_last: None,
        },
        Some(n) => {
            let items: Vec<String> = rest.iter().take(n).cloned().collect();
            let next_last = (rest.len() > n).then(|| items[n - 1].clone());
            Page { items, next_last }
        }
    }
}

/// `Link: </v2/...?n=<n>&last=<last>>; rel="next"` for the page after this one.
pub fn next_link(path: &str, n: usize, last: &str) -> String {
    format!(
        "<{path}?n={n}&last={}>; rel=\"next\"",
        encode_query_value(last)
    )
}

/// Percent-encodes everything outside the unreserved set, except `/` which is legal in a query.
fn encode_query_value(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for b in v.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'/') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn pages() {
        let all = list(&["a", "b", "c", "d", "e"]);
        let cases: &[(Option<usize>, Option<&str>, &[&str], Option<&str>)] = &[
            (None, None, &["a", "b", "c", "d", "e"], None),
            (Some(2), None, &["a", "b"], Some("b")),
            (Some(2), Some("b"), &["c", "d"], Some("d")),
            (Some(2), Some("d"), &["e"], None),
            (Some(5), None, &["a", "b", "c", "d", "e"], None),
            (Some(10), None, &["a", "b", "c", "d", "e"], None),
            (Some(0), None, &[], None),
            (None, Some("c"), &["d", "e"], None),
            (Some(1), Some("bb"), &["c"], Some("c")),
            (Some(3), Some("e"), &[], None),
            (Some(3), Some("0"), &["a", "b", "c"], Some("c")),
        ];
        for (n, last, items, next) in cases {
            let page = paginate(&all, *n, *last);
            assert_eq!(page.items, list(items), "n={n:?} last={last:?}");
            assert_eq!(page.next_last.as_deref(), *next, "n={n:?} last={last:?}");
        }
        assert_eq!(paginate(&[], Some(3), None).items, Vec::<String>::new());
    }

    #[test]
    fn links() {
        assert_eq!(
            next_link("/v2/team/app/tags/list", 2, "v1.0"),
            "</v2/team/app/tags/list?n=2&last=v1.0>; rel=\"next\""
        );
        assert_eq!(
            next_link("/v2/_catalog", 1, "team/app"),
            "</v2/_catalog?n=1&last=team/app>; rel=\"next\""
        );
        assert_eq!(encode_query_value("a b&c"), "a%20b%26c");
    }
}
