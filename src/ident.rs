//! Identifiers: session ids, variable names, variable ids, and the rule that
//! keeps ids and names apart.
//!
//! # No string can mean two variables
//!
//! A variable has an **id**, given by the store, of the form `var_<n>` (`n` a
//! decimal number without leading zeros, never reused in a store), and a
//! **name**, given by the user, unique in its session. Every operation that
//! takes an identifier accepts either, and the two forms are disjoint:
//!
//! * a string of the form `var_` followed by ASCII digits only is an id, and
//!   is looked up among ids only;
//! * any other string is a name, and is looked up among names only;
//! * so a name of the id form (`var_3`, `var_007`) is refused at
//!   registration ([`Error::InvalidName`]).
//!
//! The rule is the same locally, over every transport and in the wire
//! protocol (the server applies it), so `update("s", "var_3", …)` can only
//! ever change the variable whose id is `var_3`.
//!
//! Session ids and variable names are 1 to 256 bytes of UTF-8 without
//! control characters.

use crate::error::Error;

/// Longest session id or variable name, in bytes.
pub(crate) const MAX_NAME_BYTES: usize = 256;

/// The prefix of every variable id.
const ID_PREFIX: &str = "var_";

/// Whether `s` has the form of a variable id (`var_` then ASCII digits).
pub(crate) fn is_var_id(s: &str) -> bool {
    s.strip_prefix(ID_PREFIX)
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// The numeric part of a variable id (`var_12` → 12): ids are handed out in
/// registration order, so this is that order (anything else sorts last).
#[cfg(feature = "transport")]
pub(crate) fn id_number(id: &str) -> u64 {
    id.strip_prefix(ID_PREFIX)
        .and_then(|n| n.parse().ok())
        .unwrap_or(u64::MAX)
}

/// The id of the `n`th variable of a store.
pub(crate) fn var_id(n: u64) -> String {
    format!("{ID_PREFIX}{n}")
}

/// Checks a session id.
pub(crate) fn check_session_id(id: &str) -> Result<(), Error> {
    check_name("session id", id)
}

/// Checks a variable name: the common rules, and not of the id form.
pub(crate) fn check_var_name(name: &str) -> Result<(), Error> {
    check_name("variable name", name)?;
    if is_var_id(name) {
        return Err(Error::InvalidName {
            what: "variable name".into(),
            name: name.to_string(),
            reason: "has the form of a variable id (`var_` followed by digits), which names may not take"
                .into(),
        });
    }
    Ok(())
}

fn check_name(what: &'static str, name: &str) -> Result<(), Error> {
    let reason = if name.is_empty() {
        "must not be empty"
    } else if name.len() > MAX_NAME_BYTES {
        "must be at most 256 bytes long"
    } else if name.chars().any(char::is_control) {
        "must not contain control characters"
    } else {
        return Ok(());
    };
    Err(Error::InvalidName {
        what: what.into(),
        name: name.to_string(),
        reason: reason.into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_names_are_disjoint() {
        for id in ["var_1", "var_0", "var_007", "var_18446744073709551616"] {
            assert!(is_var_id(id), "{id}");
            assert!(check_var_name(id).is_err(), "{id}");
        }
        for name in [
            "var_", "var_x", "var_1a", "Var_1", "var__1", "var_ 1", "v", "var_١",
        ] {
            assert!(!is_var_id(name), "{name}");
            assert!(check_var_name(name).is_ok(), "{name}");
        }
        assert_eq!(var_id(42), "var_42");
        assert!(is_var_id(&var_id(u64::MAX)));
    }
}
