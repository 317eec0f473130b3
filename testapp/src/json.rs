//! Just enough JSON writing (strings and flat objects) to avoid a serializer dependency.

use std::fmt::Write as _;

/// Returns `s` as a quoted JSON string literal.
pub fn string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Returns a JSON object whose values are all strings, keeping the given order.
pub fn string_object<K: AsRef<str>, V: AsRef<str>>(pairs: &[(K, V)]) -> String {
    let mut out = String::from("{");
    for (i, (k, v)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&string(k.as_ref()));
        out.push(':');
        out.push_str(&string(v.as_ref()));
    }
    out.push('}');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_strings() {
        let cases = [
            ("", r#""""#),
            ("plain", r#""plain""#),
            ("a\"b", r#""a\"b""#),
            ("back\\slash", r#""back\\slash""#),
            ("line\nbreak\ttab\r", r#""line\nbreak\ttab\r""#),
            ("\u{1}", r#""\u0001""#),
            ("héllo", "\"héllo\""),
        ];
        for (input, want) in cases {
            assert_eq!(string(input), want, "input {input:?}");
        }
    }

    #[test]
    fn writes_objects_in_order() {
        assert_eq!(string_object::<&str, &str>(&[]), "{}");
        assert_eq!(
            string_object(&[("b", "1"), ("a", "x\"y")]),
            r#"{"b":"1","a":"x\"y"}"#
        );
    }
}
