//! The one URL redactor: connection URLs (PostgreSQL, Redis) may carry a
//! password, and every place that logs or reports one shows it through
//! [`redact_url`], so the rule of what is hidden is the same everywhere.

/// Replaces the password of `scheme://user:password@host…` with `***`.
/// The userinfo ends at the last `@` before the path, so a password that
/// contains `@` is hidden whole. A URL without a password is unchanged.
/// Something that is not a URL (no `://`) is hidden whole: it may be a
/// libpq `key=value` string whose password cannot be told apart reliably.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return "***".to_owned();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    let Some(at) = authority.rfind('@') else {
        return url.to_owned();
    };
    let userinfo = &authority[..at];
    let user = match userinfo.split_once(':') {
        Some((user, _password)) => format!("{user}:***"),
        None => userinfo.to_owned(),
    };
    format!("{scheme}://{user}{}", &rest[at..])
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn passwords_are_hidden() {
        for (url, shown) in [
            ("redis://h:6379", "redis://h:6379"),
            ("redis://user@h", "redis://user@h"),
            ("redis://:pw@h:6379/2", "redis://:***@h:6379/2"),
            ("postgres://u:p@ss@h/d", "postgres://u:***@h/d"),
            (
                "postgres://u:secret@h:5432/db",
                "postgres://u:***@h:5432/db",
            ),
            // An '@' after the path is not userinfo.
            ("postgres://u:p@h/db?x=a@b", "postgres://u:***@h/db?x=a@b"),
            ("postgres://h/db?x=a@b", "postgres://h/db?x=a@b"),
            ("host=db password=hunter2", "***"),
            ("", "***"),
        ] {
            assert_eq!(redact_url(url), shown, "{url}");
        }
    }
}
