//! Validated values: each type can only hold text that passes the contract's rule for it, so a
//! function that takes a `Content` never checks it again. The same rules serve the API, the
//! socket, the command line and the seed file.

use crate::error::{Error, Result};

pub const CONTENT_MAX_CHARS: usize = 4000;
/// Longest search text, in characters.
pub const SEARCH_MAX_CHARS: usize = 256;
pub const GROUP_NAME_MAX_CHARS: usize = 100;
pub const CLIENT_ID_MAX_CHARS: usize = 64;

macro_rules! text_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq)]
        pub struct $name(String);

        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> String {
                value.0
            }
        }
    };
}

text_type!(
    /// 3–32 characters of letters, digits, `_`, `.` or `-`.
    Username
);
text_type!(
    /// Looks like `name@example.com`.
    Email
);
text_type!(
    /// 8–128 characters.
    Password
);
text_type!(
    /// A message's text, trimmed: 1–4000 characters.
    Content
);
text_type!(
    /// A group's name, trimmed: 1–100 characters.
    GroupName
);
text_type!(
    /// The sender's own id for a message, for idempotent retries: 1–64 characters.
    ClientId
);
text_type!(
    /// At most 64 characters.
    DisplayName
);
text_type!(
    /// An http(s) URL of at most 2048 characters.
    AvatarUrl
);
text_type!(
    /// At most 8192 characters.
    PublicKey
);

/// Characters that show nothing: Unicode's format characters (category Cf: zero-width spaces
/// and joiners, bidi controls, the byte-order mark, tags) and the fillers and selectors that
/// render blank. Text made only of these and white space is empty.
fn is_invisible(c: char) -> bool {
    matches!(c,
        '\u{00AD}' | '\u{034F}' | '\u{0600}'..='\u{0605}' | '\u{061C}' | '\u{06DD}' | '\u{070F}'
        | '\u{08E2}' | '\u{115F}' | '\u{1160}' | '\u{17B4}' | '\u{17B5}' | '\u{180B}'..='\u{180F}'
        | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{206F}'
        | '\u{2800}' | '\u{3164}' | '\u{FE00}'..='\u{FE0F}' | '\u{FEFF}' | '\u{FFA0}'
        | '\u{FFF9}'..='\u{FFFB}' | '\u{110BD}' | '\u{110CD}' | '\u{13430}'..='\u{1343F}'
        | '\u{1BCA0}'..='\u{1BCA3}' | '\u{1D173}'..='\u{1D17A}' | '\u{E0000}'..='\u{E0FFF}')
}

/// The characters that reorder text around them (they can make a name read as another).
pub(super) fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

fn is_blank(s: &str) -> bool {
    s.chars().all(|c| c.is_whitespace() || is_invisible(c))
}

/// For names: no control characters at all (not even a newline) and no bidi controls.
fn has_unsafe_name_chars(s: &str) -> bool {
    s.chars().any(|c| c.is_control() || is_bidi_control(c))
}

impl Username {
    pub fn parse(s: &str) -> Result<Username> {
        let ok_chars = s
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
        if !(3..=32).contains(&s.len()) || !ok_chars {
            return Err(Error::invalid(
                "invalid_username",
                "username must be 3–32 characters of letters, digits, '_', '.' or '-'",
            ));
        }
        Ok(Username(s.to_string()))
    }
}

impl Email {
    pub fn parse(s: &str) -> Result<Email> {
        let valid = s.len() <= 254
            && !s
                .chars()
                .any(|c| c.is_whitespace() || c.is_control() || is_invisible(c))
            && matches!(s.split_once('@'), Some((local, domain))
                if !local.is_empty() && !domain.is_empty() && !domain.contains('@')
                    && !domain.starts_with('.') && !domain.ends_with('.'));
        if !valid {
            return Err(Error::invalid(
                "invalid_email",
                "email must look like name@example.com",
            ));
        }
        Ok(Email(s.to_string()))
    }
}

impl Password {
    pub fn parse(s: &str) -> Result<Password> {
        // bcrypt reads at most 72 bytes; longer passwords are still accepted (the contract
        // allows 128 characters) and hashed by the bcrypt crate, which truncates.
        if !(8..=128).contains(&s.chars().count()) {
            return Err(Error::invalid(
                "invalid_password",
                "password must be 8–128 characters",
            ));
        }
        Ok(Password(s.to_string()))
    }
}

impl Content {
    /// A message's text when it carries attachments: it may then be empty.
    pub fn parse_beside_attachments(s: &str) -> Result<Content> {
        if is_blank(s.trim()) {
            return Ok(Content(String::new()));
        }
        Content::parse(s)
    }

    /// Trimmed; not blank (white space and invisible characters only); no control characters
    /// but newline and tab.
    pub fn parse(s: &str) -> Result<Content> {
        let trimmed = s.trim();
        let n = trimmed.chars().count();
        if is_blank(trimmed) || n > CONTENT_MAX_CHARS {
            return Err(Error::invalid(
                "invalid_content",
                format!("content must be 1–{CONTENT_MAX_CHARS} visible characters after trimming"),
            ));
        }
        if trimmed
            .chars()
            .any(|c| c.is_control() && c != '\n' && c != '\t')
        {
            return Err(Error::invalid(
                "invalid_content",
                "content may not hold control characters other than newline and tab",
            ));
        }
        Ok(Content(trimmed.to_string()))
    }
}

impl GroupName {
    pub fn parse(s: &str) -> Result<GroupName> {
        let trimmed = s.trim();
        let n = trimmed.chars().count();
        if is_blank(trimmed) || n > GROUP_NAME_MAX_CHARS || has_unsafe_name_chars(trimmed) {
            return Err(Error::invalid(
                "invalid_name",
                format!(
                    "group name must be 1–{GROUP_NAME_MAX_CHARS} visible characters after \
                     trimming, without control or bidi characters"
                ),
            ));
        }
        Ok(GroupName(trimmed.to_string()))
    }
}

impl ClientId {
    /// An absent client_id is fine; a present one must be 1–64 characters.
    pub fn parse(s: Option<&str>) -> Result<Option<ClientId>> {
        match s {
            None => Ok(None),
            Some(id) if id.is_empty() || id.chars().count() > CLIENT_ID_MAX_CHARS => {
                Err(Error::invalid(
                    "invalid_client_id",
                    format!("client_id must be 1–{CLIENT_ID_MAX_CHARS} characters"),
                ))
            }
            Some(id) => Ok(Some(ClientId(id.to_string()))),
        }
    }
}

impl DisplayName {
    pub fn parse(s: &str) -> Result<DisplayName> {
        if s.chars().count() > 64 || is_blank(s) || has_unsafe_name_chars(s) {
            return Err(Error::invalid(
                "invalid_display_name",
                "display name must be 1–64 visible characters, without control or bidi characters",
            ));
        }
        Ok(DisplayName(s.to_string()))
    }
}

impl AvatarUrl {
    pub fn parse(s: &str) -> Result<AvatarUrl> {
        let lower = s.to_ascii_lowercase();
        let scheme_ok = lower.starts_with("https://") || lower.starts_with("http://");
        if !scheme_ok || s.len() > 2048 || s.chars().any(char::is_whitespace) {
            return Err(Error::invalid(
                "invalid_avatar_url",
                "avatar_url must be an http:// or https:// URL of at most 2048 characters",
            ));
        }
        Ok(AvatarUrl(s.to_string()))
    }
}

impl PublicKey {
    pub fn parse(s: &str) -> Result<PublicKey> {
        if s.chars().count() > 8192 {
            return Err(Error::invalid(
                "invalid_public_key",
                "public_key must be at most 8192 characters",
            ));
        }
        Ok(PublicKey(s.to_string()))
    }
}

/// Search text: trimmed, 1–256 characters.
pub fn search_text(s: &str) -> Result<&str> {
    let trimmed = s.trim();
    if trimmed.is_empty() {
        return Err(Error::invalid(
            "invalid_query",
            "give the words to search for in q",
        ));
    }
    if trimmed.chars().count() > SEARCH_MAX_CHARS {
        return Err(Error::invalid(
            "invalid_query",
            format!("q must be at most {SEARCH_MAX_CHARS} characters"),
        ));
    }
    Ok(trimmed)
}

/// Page size: 1–200, default 50.
pub fn page_limit(v: Option<u32>) -> Result<u32> {
    match v {
        None => Ok(50),
        Some(n @ 1..=200) => Ok(n),
        Some(_) => Err(Error::invalid("invalid_limit", "limit must be 1–200")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_match_the_contract() {
        assert!(Username::parse("Ava").is_ok());
        assert!(Username::parse("ab").is_err());
        assert!(Username::parse(&"a".repeat(33)).is_err());
        assert!(Username::parse("zoë").is_err());
        assert!(Email::parse("ava@temp.com").is_ok());
        assert!(Email::parse("ava@").is_err());
        assert!(Email::parse("a b@x.y").is_err());
        assert!(Password::parse("1234567").is_err());
        assert!(Password::parse(&"é".repeat(128)).is_ok());
        assert_eq!(Content::parse("  hi \n").unwrap().as_str(), "hi");
        assert!(Content::parse(" \t ").is_err());
        assert!(Content::parse(&"😀".repeat(4000)).is_ok());
        assert!(Content::parse(&"😀".repeat(4001)).is_err());
        assert!(page_limit(Some(0)).is_err());
        assert!(search_text(&"w".repeat(257)).is_err());
        assert!(search_text(" hello ").is_ok());
    }

    #[test]
    fn blank_text_and_control_or_bidi_characters_are_refused() {
        for blank in ["\u{200B}", " \u{2060}\u{FEFF} ", "\u{3164}", "\u{2800}"] {
            assert!(Content::parse(blank).is_err(), "{blank:?}");
            assert!(GroupName::parse(blank).is_err(), "{blank:?}");
            assert!(DisplayName::parse(blank).is_err(), "{blank:?}");
        }
        assert!(Content::parse("a\u{0}b").is_err());
        assert!(Content::parse("a\u{7}b").is_err());
        assert!(Content::parse("line one\n\tline two").is_ok());
        assert!(Content::parse("👍\u{FE0F}").is_ok());
        assert!(Content::parse("family 👨\u{200D}👩\u{200D}👧").is_ok());
        for name in ["evil\u{202E}gnp.exe", "a\nb", "nul\u{0}", "x\u{2066}y"] {
            assert!(GroupName::parse(name).is_err(), "{name:?}");
            assert!(DisplayName::parse(name).is_err(), "{name:?}");
        }
        assert!(Email::parse("a\u{200B}@x.y").is_err());
        assert!(GroupName::parse("Matemáticas 2º").is_ok());
        assert_eq!(page_limit(None).unwrap(), 50);
    }
}
