//! Container ids follow runc: `^[\w+\-.]+$` (ASCII letters, digits, `_`, `+`, `-`, `.`), and never
//! `.` or `..`, because the id becomes a directory name under `--root`.

use crate::{Result, SpecError};

pub fn validate_id(id: &str) -> Result<()> {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '+' | '-' | '.');
    if id.is_empty() {
        return Err(SpecError::EmptyId);
    }
    if id == "." || id == ".." || !id.chars().all(ok_char) {
        return Err(SpecError::InvalidId(id.to_string()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::validate_id;

    #[test]
    fn accepts_runc_ids() {
        for id in ["a", "my-ctr_1", "x.y+z", "0", "..a", "a..b"] {
            assert!(validate_id(id).is_ok(), "{id}");
        }
    }

    #[test]
    fn rejects_bad_ids() {
        for id in ["", ".", "..", "a/b", "../x", "a b", "é", "a\0b", "a:b"] {
            assert!(validate_id(id).is_err(), "{id:?}");
        }
    }
}
