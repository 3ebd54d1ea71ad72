//! What configuration values look like in `Debug` output and error messages: URLs without
//! their credentials, query or fragment.

use std::borrow::Cow;

use url::Url;

/// `url` with any user name, password, query and fragment replaced by `***`, for messages
/// and `Debug` output. A value that does not parse as a URL is shown only up to its scheme
/// separator when it could hold credentials (it contains `@`, `?` or `#`).
pub(crate) fn url(url: &str) -> Cow<'_, str> {
    let Ok(mut parsed) = Url::parse(url) else {
        return if url.contains(['@', '?', '#']) {
            let scheme = url.split_once("://").map_or("", |(s, _)| s);
            Cow::Owned(format!(
                "{scheme}://*** (not shown: it may hold credentials)"
            ))
        } else {
            Cow::Borrowed(url)
        };
    };
    let mut changed = false;
    if !parsed.username().is_empty() || parsed.password().is_some() {
        // Both only fail on URLs that cannot have credentials, which had none to hide.
        let _ = parsed.set_username("***");
        let _ = parsed.set_password(None);
        changed = true;
    }
    if parsed.query().is_some() {
        parsed.set_query(Some("***"));
        changed = true;
    }
    if parsed.fragment().is_some() {
        parsed.set_fragment(Some("***"));
        changed = true;
    }
    if changed {
        Cow::Owned(parsed.into())
    } else {
        Cow::Borrowed(url)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_query_and_fragment_never_show() {
        let table = [
            ("https://login.example.com/", "https://login.example.com/"),
            (
                "https://user:s3cret@login.example.com/jwks",
                "https://***@login.example.com/jwks",
            ),
            (
                "https://:s3cret@login.example.com/",
                "https://***@login.example.com/",
            ),
            (
                "https://login.example.com/jwks?key=s3cret#s3cret",
                "https://login.example.com/jwks?***#***",
            ),
            ("not a url", "not a url"),
            (
                "ht tp://user:s3cret@host/",
                "ht tp://*** (not shown: it may hold credentials)",
            ),
        ];
        for (input, shown) in table {
            assert_eq!(url(input), shown, "{input}");
            assert!(!url(input).contains("s3cret"), "{input}");
        }
    }
}
