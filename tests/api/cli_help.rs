//! The command line explains itself: the top-level help leads to `serve`'s options, every
//! argument of every command says what it is, and mistakes are one line naming the problem.

use crate::helpers::*;

const COMMANDS: &[&[&str]] = &[
    &["serve"],
    &["migrate"],
    &["seed"],
    &["user", "add"],
    &["user", "import"],
    &["user", "list"],
    &["user", "passwd"],
    &["user", "delete"],
    &["group", "create"],
    &["group", "list"],
    &["group", "members"],
    &["group", "add"],
    &["group", "remove"],
    &["token"],
    &["backup"],
    &["copy"],
];

/// The argument lines of a help text that say nothing about their argument. An argument line
/// is described on the same line, or (in the wide layout) on the next, more indented one.
fn undescribed(help: &str) -> Vec<String> {
    let lines: Vec<&str> = help.lines().collect();
    let indent = |l: &str| l.len() - l.trim_start().len();
    let is_arg = |l: &str| {
        let t = l.trim_start();
        indent(l) > 0 && (t.starts_with('-') || t.starts_with('<') || t.starts_with('['))
    };
    let mut bare = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        if !is_arg(line) {
            continue;
        }
        // `--flag <VALUE>  text`: two spaces part the argument from its description.
        let same_line = line
            .trim()
            .split_once("  ")
            .is_some_and(|(_, d)| !d.trim().is_empty());
        let next_line = lines
            .get(i + 1)
            .is_some_and(|n| !is_arg(n) && indent(n) > indent(line) && !n.trim().is_empty());
        if !same_line && !next_line {
            bare.push(line.trim().to_string());
        }
    }
    bare
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_argument_of_every_command_is_explained() {
    let top = cli(&["--help"], None).await;
    top.assert_success();
    for needed in [
        "--addr",
        "--registration",
        "chatserver serve --help",
        "group",
        "import",
    ] {
        assert!(
            top.stdout.contains(needed),
            "--help lacks {needed:?}:\n{}",
            top.stdout
        );
    }
    for command in COMMANDS {
        let mut args = command.to_vec();
        args.push("-h");
        let out = cli(&args, None).await;
        out.assert_success();
        assert_eq!(
            undescribed(&out.stdout),
            Vec::<String>::new(),
            "{command:?} -h:\n{}",
            out.stdout
        );
    }
    // The check itself: a bare argument is caught in both layouts.
    assert_eq!(
        undescribed("Arguments:\n  <EMAIL>\n\nOptions:\n  -h, --help  Print help\n"),
        ["<EMAIL>"]
    );
    assert_eq!(
        undescribed("Options:\n      --x\n      --y\n          The y\n"),
        ["--x"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mistakes_on_the_command_line_name_what_is_wrong() {
    for (args, says) in [
        (vec!["user", "add", "onlyname"], "<EMAIL>"),
        (vec!["group", "create"], "<NAME>"),
        (vec!["serve", "--cors-origin", "not a url"], "not an origin"),
        (
            vec!["serve", "--cors-origin", "https://site.example/path"],
            "not an origin",
        ),
        (vec!["--addr", "nowhere"], "--addr"),
    ] {
        let out = cli(&args, None).await;
        out.assert_one_line_failure();
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
        assert!(
            out.stderr.contains(says),
            "{args:?} should say {says:?}: {out:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_list_has_a_header_and_the_password_is_asked_twice() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("chat.db").to_str().unwrap().to_string();
    cli(&["migrate", "--db", &db], None).await.assert_success();
    cli(&["seed", "--db", &db], None).await.assert_success();
    let out = cli(&["user", "list", "--db", &db], None).await;
    out.assert_success();
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines[0], "ID\tUSERNAME\tEMAIL\tCREATED", "{out:?}");
    assert!(lines[1].starts_with("1\tAva\tava@temp.com\t"), "{out:?}");

    // On a terminal (script(1) gives it one) the password is asked twice and must match.
    if std::process::Command::new("script")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("skipped the prompt: script(1) is not installed");
        return;
    }
    let add = |typed: &'static str| {
        let db = db.clone();
        tokio::task::spawn_blocking(move || {
            use std::io::Write;
            let db = db_arg(std::path::Path::new(&db));
            let command = format!("{BIN} user add zed zed@example.test --db {db} --bcrypt-cost 4");
            let mut child = std::process::Command::new("script")
                .args(["-qec", &command, "/dev/null"])
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            child
                .stdin
                .take()
                .unwrap()
                .write_all(typed.as_bytes())
                .unwrap();
            let out = child.wait_with_output().unwrap();
            (
                out.status.code(),
                String::from_utf8_lossy(&out.stdout).to_string(),
            )
        })
    };
    let (code, text) = add("first-password-1\nother-password-2\n").await.unwrap();
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("Again:") && text.contains("differ"), "{text}");
    let (code, text) = add("first-password-1\nfirst-password-1\n").await.unwrap();
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("created user zed"), "{text}");
}
