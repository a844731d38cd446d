//! URI and markup helpers shared by the HLS and DASH writers.

use std::fmt::Write as _;

/// `?param=value` with the value percent-encoded (RFC 3986 unreserved characters kept), or "" without a token.
pub fn query(token: &Option<(String, String)>) -> String {
    match token {
        None => String::new(),
        Some((param, value)) => {
            let mut out = String::with_capacity(param.len() + value.len() + 2);
            out.push('?');
            percent_encode(param, &mut out);
            out.push('=');
            percent_encode(value, &mut out);
            out
        }
    }
}

fn percent_encode(text: &str, out: &mut String) {
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
}

/// Escapes text for an XML attribute or element.
pub fn xml_escape(text: &str, out: &mut String) {
    for ch in text.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
}

/// A base URI that ends with `/` (or "" for relative URIs).
pub fn base(base_uri: &str) -> String {
    if base_uri.is_empty() || base_uri.ends_with('/') {
        base_uri.to_owned()
    } else {
        format!("{base_uri}/")
    }
}

/// A quoted-string attribute value for HLS: double quotes and line breaks are not allowed inside.
pub fn hls_quoted_ok(text: &str) -> bool {
    !text.contains(['"', '\n', '\r'])
}
