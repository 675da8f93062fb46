//! The contract's input rules, shared by the API, the command line and the seed file.

use crate::error::ApiError;

pub const CONTENT_MAX_CHARS: usize = 4000;
pub const GROUP_NAME_MAX_CHARS: usize = 100;
pub const CLIENT_ID_MAX_CHARS: usize = 64;

pub fn username(s: &str) -> Result<(), ApiError> {
    let ok_chars = s
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if !(3..=32).contains(&s.len()) || !ok_chars {
        return Err(ApiError::invalid(
            "invalid_username",
            "username must be 3–32 characters of letters, digits, '_', '.' or '-'",
        ));
    }
    Ok(())
}

pub fn email(s: &str) -> Result<(), ApiError> {
    let valid = s.len() <= 254
        && !s.chars().any(|c| c.is_whitespace() || c.is_control())
        && matches!(s.split_once('@'), Some((local, domain))
            if !local.is_empty() && !domain.is_empty() && !domain.contains('@')
                && !domain.starts_with('.') && !domain.ends_with('.'));
    if !valid {
        return Err(ApiError::invalid(
            "invalid_email",
            "email must look like name@example.com",
        ));
    }
    Ok(())
}

pub fn password(s: &str) -> Result<(), ApiError> {
    // bcrypt reads at most 72 bytes; longer passwords are still accepted (the contract allows
    // 128 characters) and hashed by the bcrypt crate, which truncates.
    if !(8..=128).contains(&s.chars().count()) {
        return Err(ApiError::invalid(
            "invalid_password",
            "password must be 8–128 characters",
        ));
    }
    Ok(())
}

/// Message content, trimmed: 1–4000 characters.
pub fn content(s: &str) -> Result<&str, ApiError> {
    let trimmed = s.trim();
    let n = trimmed.chars().count();
    if n == 0 || n > CONTENT_MAX_CHARS {
        return Err(ApiError::invalid(
            "invalid_content",
            format!("content must be 1–{CONTENT_MAX_CHARS} characters after trimming"),
        ));
    }
    Ok(trimmed)
}

/// Group name, trimmed: 1–100 characters.
pub fn group_name(s: &str) -> Result<&str, ApiError> {
    let trimmed = s.trim();
    let n = trimmed.chars().count();
    if n == 0 || n > GROUP_NAME_MAX_CHARS {
        return Err(ApiError::invalid(
            "invalid_name",
            format!("group name must be 1–{GROUP_NAME_MAX_CHARS} characters after trimming"),
        ));
    }
    Ok(trimmed)
}

pub fn client_id(s: Option<&str>) -> Result<Option<&str>, ApiError> {
    match s {
        Some(id) if id.is_empty() || id.chars().count() > CLIENT_ID_MAX_CHARS => {
            Err(ApiError::invalid(
                "invalid_client_id",
                format!("client_id must be 1–{CLIENT_ID_MAX_CHARS} characters"),
            ))
        }
        other => Ok(other),
    }
}

pub fn display_name(s: &str) -> Result<(), ApiError> {
    if s.chars().count() > 64 {
        return Err(ApiError::invalid(
            "invalid_display_name",
            "display name must be 1–64 characters",
        ));
    }
    Ok(())
}

pub fn avatar_url(s: &str) -> Result<(), ApiError> {
    let lower = s.to_ascii_lowercase();
    let scheme_ok = lower.starts_with("https://") || lower.starts_with("http://");
    if !scheme_ok || s.len() > 2048 || s.chars().any(char::is_whitespace) {
        return Err(ApiError::invalid(
            "invalid_avatar_url",
            "avatar_url must be an http:// or https:// URL of at most 2048 characters",
        ));
    }
    Ok(())
}

pub fn public_key(s: &str) -> Result<(), ApiError> {
    if s.chars().count() > 8192 {
        return Err(ApiError::invalid(
            "invalid_public_key",
            "public_key must be at most 8192 characters",
        ));
    }
    Ok(())
}

/// Page size: 1–200, default 50.
pub fn limit(v: Option<u32>) -> Result<u32, ApiError> {
    match v {
        None => Ok(50),
        Some(n @ 1..=200) => Ok(n),
        Some(_) => Err(ApiError::invalid("invalid_limit", "limit must be 1–200")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_match_the_contract() {
        assert!(username("Ava").is_ok());
        assert!(username("ab").is_err());
        assert!(username(&"a".repeat(33)).is_err());
        assert!(username("zoë").is_err());
        assert!(email("ava@temp.com").is_ok());
        assert!(email("ava@").is_err());
        assert!(email("a b@x.y").is_err());
        assert!(password("1234567").is_err());
        assert!(password(&"é".repeat(128)).is_ok());
        assert_eq!(content("  hi \n").unwrap(), "hi");
        assert!(content(" \t ").is_err());
        assert!(content(&"😀".repeat(4000)).is_ok());
        assert!(content(&"😀".repeat(4001)).is_err());
        assert!(limit(Some(0)).is_err());
        assert_eq!(limit(None).unwrap(), 50);
    }
}
