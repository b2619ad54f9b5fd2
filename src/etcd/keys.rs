//! The key layout: where a store's sessions, variables and indexes live in
//! etcd's flat key space.
//!
//! Under the configured prefix `P` (default `varwatch/`):
//!
//! | key | value | written by |
//! |---|---|---|
//! | `P` `ids` | the last variable id handed out (decimal) | every registration |
//! | `P` `l/` *session* | empty: the list of sessions | session creation |
//! | `P` `s/` *session* `/meta` | the session (proto `SessionInfo`) | **every** write of the session |
//! | `P` `s/` *session* `/v/` *name* | the variable (proto `Variable`) | its registration and changes |
//! | `P` `s/` *session* `/i/` *id* | the variable's name | its registration |
//!
//! Session ids and names are escaped (`%` → `%25`, `/` → `%2F`), so that
//! the directory of one session is never a prefix of another's keys: a
//! session named `a/v/x` cannot reach into session `a`.
//!
//! Everything of one session is under one directory, so one etcd watch on
//! that prefix sees every change of the session in order, the `meta` key's
//! deletion (the session's end) included, and deleting the prefix deletes
//! the session in one revision.

/// Escapes `%` and `/` (only those: the rest of a valid name is kept as
/// it is, so keys stay readable in `etcdctl get --prefix`).
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '%' => out.push_str("%25"),
            '/' => out.push_str("%2F"),
            c => out.push(c),
        }
    }
    out
}

/// The inverse of [`escape`]; `None` for a string `escape` cannot produce.
fn unescape(s: &str) -> Option<String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('%') {
        out.push_str(&rest[..i]);
        match rest.get(i..i + 3)? {
            "%25" => out.push('%'),
            "%2F" => out.push('/'),
            _ => return None,
        }
        rest = &rest[i + 3..];
    }
    out.push_str(rest);
    Some(out)
}

/// What a key of a session's directory is.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum KeyKind {
    Meta,
    Var,
    Index,
    Other,
}

/// The layout under one prefix.
#[derive(Debug, Clone)]
pub(super) struct Keys {
    prefix: String,
}

impl Keys {
    pub(super) fn new(prefix: &str) -> Keys {
        Keys {
            prefix: prefix.to_string(),
        }
    }

    pub(super) fn ids(&self) -> String {
        format!("{}ids", self.prefix)
    }

    pub(super) fn list_dir(&self) -> String {
        format!("{}l/", self.prefix)
    }

    pub(super) fn list(&self, session: &str) -> String {
        format!("{}l/{}", self.prefix, escape(session))
    }

    /// The session id of a key of [`list_dir`](Self::list_dir).
    pub(super) fn session_of_list_key(&self, key: &[u8]) -> Option<String> {
        let key = std::str::from_utf8(key).ok()?;
        unescape(key.strip_prefix(&self.list_dir())?)
    }

    /// The session's directory: the prefix of all its keys.
    pub(super) fn dir(&self, session: &str) -> String {
        format!("{}s/{}/", self.prefix, escape(session))
    }

    pub(super) fn meta(&self, session: &str) -> String {
        format!("{}meta", self.dir(session))
    }

    pub(super) fn var_dir(&self, session: &str) -> String {
        format!("{}v/", self.dir(session))
    }

    pub(super) fn var(&self, session: &str, name: &str) -> String {
        format!("{}v/{}", self.dir(session), escape(name))
    }

    pub(super) fn index(&self, session: &str, id: &str) -> String {
        format!("{}i/{}", self.dir(session), id)
    }

    /// What `key`, a key under `dir`, is.
    pub(super) fn kind(dir: &str, key: &[u8]) -> KeyKind {
        let Some(rest) = key.strip_prefix(dir.as_bytes()) else {
            return KeyKind::Other;
        };
        if rest == b"meta" {
            KeyKind::Meta
        } else if rest.starts_with(b"v/") {
            KeyKind::Var
        } else if rest.starts_with(b"i/") {
            KeyKind::Index
        } else {
            KeyKind::Other
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_round_trips_and_keeps_sessions_apart() {
        for s in ["a", "a/v/x", "100%", "%2F", "/", "é/%/"] {
            assert_eq!(unescape(&escape(s)).as_deref(), Some(s));
            assert!(!escape(s).contains('/'));
        }
        let k = Keys::new("p/");
        // No session's directory is a prefix of another session's keys.
        assert!(!k.var("a/v/x", "y").starts_with(&k.dir("a")));
        assert!(!k.meta("ab").starts_with(&k.dir("a")));
        assert_eq!(
            k.session_of_list_key(k.list("a/b%").as_bytes()).as_deref(),
            Some("a/b%")
        );
        assert_eq!(unescape("%zz"), None);
        assert_eq!(Keys::kind(&k.dir("a"), k.meta("a").as_bytes()), KeyKind::Meta);
        assert_eq!(
            Keys::kind(&k.dir("a"), k.var("a", "meta").as_bytes()),
            KeyKind::Var
        );
        assert_eq!(
            Keys::kind(&k.dir("a"), k.index("a", "var_1").as_bytes()),
            KeyKind::Index
        );
        assert_eq!(Keys::kind(&k.dir("a"), k.meta("b").as_bytes()), KeyKind::Other);
    }
}
