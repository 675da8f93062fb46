//! A class list as read from CSV: every row checked (all problems named by line), passwords
//! made up where missing, hashed on every core, and the sheet handed to the class.

use std::collections::HashMap;
use std::path::Path;

use rand::Rng;

use crate::auth;
use crate::error::{Error, Result};
use crate::model::{DisplayName, Email, Password, Username};

/// One row of the class list, as read.
pub(super) struct Row {
    line: u64,
    username: String,
    email: String,
    display_name: Option<String>,
    password: Option<String>,
}

pub(super) fn read_rows(path: &Path) -> Result<Vec<Row>> {
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .flexible(false)
        .from_path(path)
        .map_err(|e| Error::not_found(format!("cannot read {}: {e}", path.display())))?;
    let bad = |msg: String| Error::invalid("invalid_csv", format!("{}: {msg}", path.display()));
    let header = reader
        .headers()
        .map_err(|e| bad(e.to_string()))?
        .iter()
        .map(|h| h.trim_start_matches('\u{feff}').to_ascii_lowercase())
        .collect::<Vec<_>>();
    const KNOWN: [&str; 4] = ["username", "email", "display_name", "password"];
    if let Some(unknown) = header.iter().find(|h| !KNOWN.contains(&h.as_str())) {
        return Err(bad(format!(
            "line 1: unknown column {unknown:?} (the columns are username, email, display_name, password)"
        )));
    }
    let column = |name: &str| header.iter().position(|h| h == name);
    let (Some(username), Some(email)) = (column("username"), column("email")) else {
        return Err(bad(
            "line 1: the header must name the columns username and email".into(),
        ));
    };
    let (display_name, password) = (column("display_name"), column("password"));
    let mut rows = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| match e.kind() {
            csv::ErrorKind::UnequalLengths {
                pos: Some(pos),
                expected_len,
                len,
            } => bad(format!(
                "line {}: {len} fields, but the header names {expected_len}",
                pos.line()
            )),
            _ => bad(e.to_string()),
        })?;
        let line = record.position().map_or(0, |p| p.line());
        if record.iter().all(str::is_empty) {
            continue;
        }
        let field = |i: Option<usize>| {
            i.and_then(|i| record.get(i))
                .filter(|v| !v.is_empty())
                .map(str::to_string)
        };
        rows.push(Row {
            line,
            username: field(Some(username)).unwrap_or_default(),
            email: field(Some(email)).unwrap_or_default(),
            display_name: field(display_name),
            password: field(password),
        });
    }
    if rows.is_empty() {
        return Err(bad("no accounts in it".into()));
    }
    Ok(rows)
}

/// A row that passed every check.
pub(super) struct Checked {
    pub(super) line: u64,
    pub(super) username: Username,
    pub(super) email: Email,
    pub(super) display_name: Option<DisplayName>,
    pub(super) password: String,
    pub(super) generated: bool,
}

/// Every row's fields, and no username or email twice: all problems, each with its line.
pub(super) fn check_rows(rows: &[Row]) -> Result<Vec<Checked>> {
    let mut problems = Vec::new();
    let mut checked = Vec::new();
    let mut seen = HashMap::new();
    for row in rows {
        let mut fail = |what: String| problems.push(format!("line {}: {what}", row.line));
        let username = Username::parse(&row.username);
        let email = Email::parse(&row.email);
        let display_name = row
            .display_name
            .as_deref()
            .map(DisplayName::parse)
            .transpose();
        let password = match &row.password {
            Some(p) => Password::parse(p).map(|_| (p.clone(), false)),
            None => Ok((generate_password(), true)),
        };
        for key in [
            format!("username {}", row.username.to_lowercase()),
            format!("email {}", row.email.to_lowercase()),
        ] {
            if let Some(first) = seen.insert(key.clone(), row.line) {
                fail(format!("{key} is also on line {first}"));
            }
        }
        match (username, email, display_name, password) {
            (Ok(username), Ok(email), Ok(display_name), Ok((password, generated))) => {
                checked.push(Checked {
                    line: row.line,
                    username,
                    email,
                    display_name,
                    password,
                    generated,
                })
            }
            (u, e, d, p) => {
                for err in [u.err(), e.err(), d.err(), p.err()].into_iter().flatten() {
                    fail(err.to_string());
                }
            }
        }
    }
    if !problems.is_empty() {
        return Err(Error::invalid(
            "invalid_csv",
            format!("nothing imported: {}", problems.join("; ")),
        ));
    }
    Ok(checked)
}

/// bcrypt is slow on purpose: a class list is hashed on every core.
pub(super) fn hash_all(accounts: &[Checked], cost: u32) -> Result<Vec<String>> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let chunk = accounts.len().div_ceil(threads).max(1);
    std::thread::scope(|scope| {
        let workers: Vec<_> = accounts
            .chunks(chunk)
            .map(|part| {
                scope.spawn(move || {
                    part.iter()
                        .map(|a| auth::hash_password(&a.password, cost))
                        .collect::<Result<Vec<_>>>()
                })
            })
            .collect();
        let mut all = Vec::with_capacity(accounts.len());
        for w in workers {
            all.extend(
                w.join()
                    .map_err(|_| Error::internal("hashing a password failed"))??,
            );
        }
        Ok(all)
    })
}

/// The sheet handed to the class: username, display name and password of everyone imported
/// (a given password is not repeated: its owner knows it).
pub(super) fn sheet(accounts: &[Checked]) -> String {
    let mut out = csv::Writer::from_writer(Vec::new());
    let _ = out.write_record(["username", "display_name", "password"]);
    for a in accounts {
        let name = a.display_name.as_ref().map_or("", |d| d.as_str());
        let password = if a.generated {
            a.password.as_str()
        } else {
            "(as given)"
        };
        let _ = out.write_record([a.username.as_str(), name, password]);
    }
    String::from_utf8(out.into_inner().unwrap_or_default()).unwrap_or_default()
}

const WORDS: &str = include_str!("words.txt");

/// Easy to read aloud and type: two short words and four digits, like `maple-otter-4821`
/// (256² × 10⁴ ≈ 2²⁹ choices; the login limits make guessing one hopeless).
fn generate_password() -> String {
    let words: Vec<&str> = WORDS.lines().filter(|w| !w.is_empty()).collect();
    let mut rng = rand::rng();
    format!(
        "{}-{}-{:04}",
        words[rng.random_range(0..words.len())],
        words[rng.random_range(0..words.len())],
        rng.random_range(0..10_000)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_passwords_are_long_enough_and_valid() {
        for _ in 0..200 {
            let p = generate_password();
            assert!(p.len() >= 10, "{p}");
            assert!(Password::parse(&p).is_ok(), "{p}");
            assert!(p
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'));
        }
        assert_eq!(WORDS.lines().count(), 256);
    }
}
