//! What a message carries besides its text: attachments, the message it answers, reactions and
//! mentions; and the validated values they are made of (a file name, an emoji).

use serde::Serialize;
use unicode_segmentation::UnicodeSegmentation;
use utoipa::ToSchema;

use super::ids::{AttachmentId, MessageId, UserId};
use crate::error::{Error, Result};

/// An uploaded file, as a message and its uploader see it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct Attachment {
    pub id: AttachmentId,
    pub name: String,
    pub size: i64,
    /// Read from the file's bytes, not from what the client said.
    pub content_type: String,
    pub sha256: String,
    /// For images (PNG, JPEG, GIF, WebP); else null.
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub created_at: String,
}

/// The types served inline, as images; everything else is a download.
pub const INLINE_IMAGES: [&str; 4] = ["image/png", "image/jpeg", "image/gif", "image/webp"];

impl Attachment {
    pub fn is_image(&self) -> bool {
        self.width.is_some() && INLINE_IMAGES.contains(&self.content_type.as_str())
    }
}

/// The message a reply answers, quoted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct ReplyQuote {
    pub id: MessageId,
    pub sender_id: Option<UserId>,
    pub sender_username: Option<String>,
    /// The start of its text (empty once it is deleted).
    pub excerpt: String,
    pub deleted: bool,
}

impl ReplyQuote {
    /// The quote of message `id` as stored: a deleted one (or one that is gone, `None`)
    /// quotes no text.
    pub fn new(
        id: MessageId,
        sender_id: Option<UserId>,
        sender_username: Option<String>,
        content: Option<&str>,
        deleted: Option<bool>,
    ) -> ReplyQuote {
        let deleted = deleted.unwrap_or(true);
        ReplyQuote {
            id,
            sender_id,
            sender_username,
            excerpt: match deleted {
                true => String::new(),
                false => excerpt(content.unwrap_or("")),
            },
            deleted,
        }
    }
}

/// Characters of the answered message a reply quotes.
pub const EXCERPT_CHARS: usize = 100;

/// The start of `content`, at most `EXCERPT_CHARS` characters, with `…` when cut.
fn excerpt(content: &str) -> String {
    let mut chars = content.chars();
    let head: String = chars.by_ref().take(EXCERPT_CHARS).collect();
    match chars.next() {
        Some(_) => format!("{head}…"),
        None => head,
    }
}

/// One emoji on a message: how many reacted with it, and who (in the order they did).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct Reaction {
    pub emoji: String,
    pub count: usize,
    pub user_ids: Vec<UserId>,
}

/// Distinct emoji one message may carry.
pub const MAX_REACTIONS: usize = 20;
/// Attachments one message may carry.
pub const MAX_ATTACHMENTS: usize = 10;

/// One emoji grapheme from Unicode's emoji list (skin tones and ZWJ sequences included), in
/// its fully qualified form, so `❤` and `❤️` are the same reaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Emoji(&'static str);

impl Emoji {
    pub fn parse(s: &str) -> Result<Emoji> {
        let bad = || {
            Error::invalid(
                "invalid_emoji",
                "a reaction is one emoji (percent-encoded in the path)",
            )
        };
        if s.len() > 64 || s.graphemes(true).count() != 1 {
            return Err(bad());
        }
        // Text-style spellings (`❤` for `❤️`) are the same emoji; a bare digit or `#` is not
        // (only its keycap, `1️⃣`, is).
        let found = emojis::get(s)
            .or_else(|| (!s.is_ascii()).then(|| emojis::get(&format!("{s}\u{fe0f}")))?)
            .ok_or_else(bad)?;
        Ok(Emoji(found.as_str()))
    }

    pub fn as_str(&self) -> &'static str {
        self.0
    }
}

/// Longest file name kept, in characters.
pub const FILE_NAME_MAX_CHARS: usize = 255;

/// A file's name as shown and offered for saving: no directories, no control or bidi
/// characters, at most 255 characters; `file` when nothing is left.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileName(String);

impl FileName {
    /// Never refuses: what a client sends is cleaned up, not checked.
    pub fn clean(given: Option<&str>) -> FileName {
        let given = given.unwrap_or("");
        let base = given.rsplit(['/', '\\']).next().unwrap_or("");
        let kept: String = base
            .chars()
            .filter(|c| !c.is_control() && !super::text::is_bidi_control(*c))
            .take(FILE_NAME_MAX_CHARS)
            .collect();
        let kept = kept.trim().trim_start_matches('.').trim();
        if kept.is_empty() {
            return FileName("file".into());
        }
        FileName(kept.to_string())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The usernames `@`-mentioned in `content`, lower-cased: `@` not inside a word, then a
/// username's characters. A name may end in `.` or `-`, or the sentence may: both are offered.
pub fn mentioned_names(content: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut prev: Option<char> = None;
    for (i, c) in content.char_indices() {
        let starts = c == '@' && !prev.is_some_and(|p| p.is_alphanumeric() || p == '_');
        prev = Some(c);
        if !starts {
            continue;
        }
        let rest = &content[i + 1..];
        let end = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')))
            .unwrap_or(rest.len());
        let name = rest[..end].to_ascii_lowercase();
        let trimmed = name.trim_end_matches(['.', '-']).to_string();
        for n in [name, trimmed] {
            if (3..=32).contains(&n.len()) && !names.contains(&n) {
                names.push(n);
            }
        }
        if names.len() >= 64 {
            break;
        }
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_emoji_with_skin_tones_and_joins_is_a_reaction() {
        for ok in ["👍", "👍🏽", "👨‍👩‍👧", "🏳️‍🌈", "❤️", "🇫🇷", "1️⃣"]
        {
            assert!(Emoji::parse(ok).is_ok(), "{ok} refused");
        }
        assert_eq!(Emoji::parse("❤").unwrap(), Emoji::parse("❤️").unwrap());
        for bad in [
            "", "a", "👍👍", ":+1:", "👍 ", "1", "#", "<b>", "\u{200d}", "\u{fe0f}",
        ] {
            assert!(Emoji::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn file_names_lose_directories_and_controls() {
        assert_eq!(FileName::clean(Some("../../etc/passwd")).as_str(), "passwd");
        assert_eq!(
            FileName::clean(Some("C:\\x\\photo.png")).as_str(),
            "photo.png"
        );
        assert_eq!(
            FileName::clean(Some("a\u{202e}gnp.exe")).as_str(),
            "agnp.exe"
        );
        assert_eq!(FileName::clean(Some("..")).as_str(), "file");
        assert_eq!(FileName::clean(None).as_str(), "file");
        assert_eq!(FileName::clean(Some(&"x".repeat(300))).as_str().len(), 255);
    }

    #[test]
    fn mentions_are_found_outside_words() {
        assert_eq!(
            mentioned_names("hi @Mike, and @ava. mail me@x.org @no"),
            ["mike", "ava.", "ava"]
        );
        assert!(mentioned_names("email@example.com").is_empty());
        assert_eq!(excerpt(&"a".repeat(150)).chars().count(), EXCERPT_CHARS + 1);
    }
}
